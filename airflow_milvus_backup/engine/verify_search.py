"""Compare searches on the source and a restored collection: the mean overlap of their top-k ids.

Run by :func:`~.verify.verify_restore` when the source collection still exists with the same index on a vector
field. A sample of the backup's vectors is searched on both; the overlap of the hits is reported, not judged
(an approximate index may answer a little differently after a rebuild).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.arrow import table_to_rows
from airflow_milvus_backup.engine.client import MilvusParams, connect
from airflow_milvus_backup.engine.errors import MilvusBackupError
from airflow_milvus_backup.engine.fieldtypes import DENSE_VECTOR_TYPES
from airflow_milvus_backup.engine.rowdigest import iter_file_tables
from airflow_milvus_backup.engine.schema import primary_field

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.manifest import CollectionEntry
    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.verify")

#: The vector types searched with: the dense ones. Verification has never sampled sparse vectors (kept so:
#: their searches take other parameters, and the overlap of a sparse search says little about a restore).
SEARCHED_TYPES = DENSE_VECTOR_TYPES


def _same_index(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return False
    keys = ("index_type", "metric_type")
    pa_ = {
        k: v
        for k, v in a.items()
        if k not in ("total_rows", "indexed_rows", "pending_index_rows", "state", "index_name")
    }
    pb_ = {
        k: v
        for k, v in b.items()
        if k not in ("total_rows", "indexed_rows", "pending_index_rows", "state", "index_name")
    }
    return all(a.get(k) == b.get(k) for k in keys) and pa_ == pb_


def _index_of(client: MilvusClient, name: str, field_name: str) -> dict[str, Any] | None:
    for n in client.list_indexes(name):
        info = dict(client.describe_index(name, n) or {})
        if info.get("field_name") == field_name:
            return info
    return None


def _sample_vectors(
    storage: Storage, backup: str, meta: CollectionEntry, field_name: str, n: int, tmp_dir: str | None
) -> list[Any]:
    out: list[Any] = []
    fields = [f for f in meta.fields if f["name"] == field_name]
    for part in meta.data:
        for f in part.files:
            for table in iter_file_tables(storage, f"{backup}/{f.key}", tmp_dir):
                for row in table_to_rows(table.select([field_name]), fields):
                    if row.get(field_name) is not None:
                        v = row[field_name]
                        out.append(v.tolist() if hasattr(v, "tolist") else v)
                    if len(out) >= n:
                        return out
                break
    return out


@dataclass(frozen=True)
class CollectionCheck:
    """One restored collection to compare with its backup, and how (:func:`~.verify.verify_restore`'s)."""

    milvus: MilvusParams
    storage: Storage
    backup: str
    meta: CollectionEntry
    tdb: str
    tname: str
    entry: dict[str, Any]
    meta_only: bool
    tmp_dir: str | None
    sample_searches: int
    top_k: int
    source_milvus: MilvusParams | None
    #: the backup is physical (binlogs): its rows are compared with the source collection
    physical: bool = False

    @property
    def target(self) -> str:
        """Return the target, ``db.name``."""
        return f"{self.tdb}.{self.tname}"


def compare_searches(client: MilvusClient, chk: CollectionCheck, res: dict[str, Any]) -> None:
    """Put the searches' mean overlap and a note (or why they were skipped) in ``res``.

    :param client: the target's client, switched to the target's database.
    :param chk: the collection, and how many searches of how many hits.
    :param res: the collection's report, ``search_overlap`` and ``search_note`` set here.
    """
    meta, tname, top_k = chk.meta, chk.tname, chk.top_k
    src_params = chk.source_milvus or chk.milvus
    sdb, sname = meta.db_name, meta.name
    if chk.entry.get("keys") == "new" or res.get("keys") == "new":
        res["search_note"] = "skipped: the restore gave the rows new primary keys"
        return
    if src_params.address == chk.milvus.address and (sdb, sname) == (chk.tdb, tname):
        res["search_note"] = "skipped: the target is the source collection"
        return
    vector_fields = [
        f["name"] for f in meta.fields if f["type"] in SEARCHED_TYPES and not f.get("is_function_output")
    ]
    if not vector_fields:
        res["search_note"] = "skipped: no vector field stored in the backup"
        return
    try:
        src = connect(replace(src_params, db_name=sdb))
    except MilvusBackupError as e:
        res["search_note"] = f"skipped: cannot reach the source ({e})"
        return
    release_source = False
    try:
        if not src.has_collection(sname):
            res["search_note"] = f"skipped: the source collection {sdb}.{sname} no longer exists"
            return
        if getattr(src.get_load_state(sname).get("state"), "name", "") != "Loaded":
            # Searching needs it loaded (a Milvus Lite file forgets its load state between processes):
            # load it for the comparison and release it again, leaving the source as it was.
            src.load_collection(sname)
            release_source = True
        chosen: tuple[str, dict[str, Any]] | None = None
        for fname in vector_fields:
            si, ti = _index_of(src, sname, fname), _index_of(client, tname, fname)
            if si is not None and _same_index(si, ti):
                chosen = (fname, si)
                break
        if chosen is None:
            res["search_note"] = "skipped: no vector field has the same index on the source and the target"
            return
        fname, idx = chosen
        if chk.physical:  # binlogs, no rows to read: the query vectors are the source's first rows'
            got = src.query(sname, filter="", output_fields=[fname], limit=max(1, chk.sample_searches))
            vectors = [r[fname] for r in got][: chk.sample_searches]
        else:
            vectors = _sample_vectors(chk.storage, chk.backup, meta, fname, chk.sample_searches, chk.tmp_dir)
        if not vectors:
            res["search_note"] = "skipped: the backup has no vectors to search with"
            return
        metric = idx.get("metric_type")
        params = {"metric_type": metric} if metric else {}
        pk = primary_field(meta)["name"]
        kw: dict[str, Any] = {
            "anns_field": fname,
            "limit": top_k,
            "search_params": params,
            "output_fields": [pk],
        }
        a = src.search(sname, data=vectors, consistency_level="Strong", **kw)
        b = client.search(tname, data=vectors, consistency_level="Strong", **kw)
        ratios = []
        for ha, hb in zip(a, b, strict=False):
            ia = {h.get("id", h.get(pk)) for h in ha}
            ib = {h.get("id", h.get(pk)) for h in hb}
            ratios.append(len(ia & ib) / max(1, min(top_k, len(ia))) if ia else 1.0)
        res["search_overlap"] = round(sum(ratios) / len(ratios), 4) if ratios else None
        res["search_note"] = f"{len(ratios)} search(es) on {fname!r}, top {top_k}, against {sdb}.{sname}"
    finally:
        if release_source:
            try:
                src.release_collection(sname)
            except Exception as e:  # noqa: BLE001 - the verification result matters more
                log.warning("Could not release source %s.%s after the searches: %s", sdb, sname, e)
        src.close()
