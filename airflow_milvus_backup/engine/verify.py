"""Verify a backup against its manifest (no Milvus needed), and a restore against its backup.

:func:`verify_backup` re-reads every object the manifest lists and checks it with
:mod:`~airflow_milvus_backup.engine.integrity` (the check a restore makes too): sha256, size, Parquet row
count, columns and Arrow types against the captured fields, vector dimensions, array sizes, string lengths,
nulls, and the primary key range the manifest records. It is read-only and
detects a missing, truncated, changed or foreign object and an invalid manifest; it does not detect a backup
that was wrong when it was written (a source that changed during the backup), nor objects that the manifest
does not list (those are reported as ``unlisted``, not as errors).

:func:`verify_restore` compares restored collections with the backup:

* rows per partition equal to the manifest, counted by reading the partition back page by page
  (:func:`~airflow_milvus_backup.engine.paging.pk_pages`; Milvus Lite's ``count(*)`` ignores partition
  filters, so counts are not taken from it);
* every row equal to the backup: for each data file, a digest per row (every stored field, exact: float32 by
  bytes, JSON as the text Milvus returned with numbers compared as exact decimals, dynamic fields included)
  keyed by primary key, against the same rows fetched from the target by key (``pk in [...]`` in that
  partition, built by :func:`~airflow_milvus_backup.engine.filters.pk_in`). When the restore gave the rows
  new primary keys,
  the multiset of digests without the key is compared per partition instead;
* schema equal field by field (modulo what the server does not report back), indexes listed;
* when the source collection still exists with the same index, a sample of searches on the source and the
  target, reported as the mean overlap of their top-k ids.

A collection that is not loaded is loaded for the check and released again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import integrity
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.arrow import (
    META_FIELD,
    _bytes_of,
    arrow_schema,
    result_to_table,
    table_to_rows,
)
from airflow_milvus_backup.engine.client import MilvusParams, connect, milvus_errors
from airflow_milvus_backup.engine.errors import (
    IntegrityError,
    InvalidArgumentError,
    ManifestError,
    MilvusBackupError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.filters import grammar_of, pk_in
from airflow_milvus_backup.engine.jsontext import canonical_json, canonical_json_text
from airflow_milvus_backup.engine.names import DEFAULT_DB, split_qualified
from airflow_milvus_backup.engine.paging import pk_pages
from airflow_milvus_backup.engine.progress import human_bytes
from airflow_milvus_backup.engine.schema import capture_field, exported_fields, primary_field
from airflow_milvus_backup.engine.storage import file_sha256

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.verify")

#: Field params a server may not report back (Milvus Lite: array element max_length); ignored when comparing.
_UNREPORTED_PARAMS = {"max_length"}
_UNREPORTED_FLAGS = {"is_clustering_key"}
_VECTOR_TYPES = {"FLOAT_VECTOR", "BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR"}
_QUERY_CHUNK = 512
_MAX_MISMATCHES = 10


# ------------------------------------------------------------------------------------------------ backups
def verify_backup(
    storage: Storage,
    backup_name: str,
    *,
    raise_on_error: bool = True,
    parallelism: int = 4,
    tmp_dir: str | None = None,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Re-read every object of a backup and check it against the manifest; return the report.

    Report: ``{backup_name, ok, files_checked, bytes, rows, errors: [{key, error}], unlisted: [keys]}``.

    :param storage: where the backup lives.
    :param backup_name: the backup.
    :param raise_on_error: raise :class:`IntegrityError` (naming the first bad key) instead of returning a
        report
        with ``ok=False``.
    :param parallelism: objects read at the same time.
    :param tmp_dir: where objects are downloaded for reading.
    :param logger: where the summary goes.
    :raises IntegrityError: with ``raise_on_error``: an object is missing, truncated or changed, or the
        manifest
        is invalid (:class:`ManifestError`).
    """
    lg = logger or log
    report: dict[str, Any] = {
        "backup_name": backup_name,
        "ok": False,
        "files_checked": 0,
        "bytes": 0,
        "rows": 0,
        "errors": [],
        "unlisted": [],
    }
    try:
        manifest = mf.load(storage, backup_name)
    except ManifestError as e:
        report["errors"].append({"key": mf.manifest_key(backup_name), "error": str(e)})
        if raise_on_error:
            raise
        return report
    errors: list[dict[str, Any]] = report["errors"]
    try:
        _check_manifest_shape(manifest)
    except ManifestError as e:
        errors.append({"key": mf.manifest_key(backup_name), "error": str(e)})
    entries = mf.iter_files(manifest) if not errors else []

    def check(entry: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> tuple[int, int, list[str]]:
        coll, _, f = entry
        return _check_object(storage, backup_name, coll, f, tmp_dir)

    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="verify") as pool:
        results = list(pool.map(check, entries))
    for (_, _, f), (size, rows, problems) in zip(entries, results, strict=True):
        key = f"{backup_name}/{f['key']}"
        report["files_checked"] += 1
        report["bytes"] += size
        report["rows"] += rows
        errors.extend({"key": key, "error": p} for p in problems)
    for coll in manifest["collections"] if entries else []:
        for part in coll.get("data", []):
            got = sum(int(f.get("rows", 0)) for f in part.get("files", []))
            if got != int(part.get("rows", 0)):
                errors.append(
                    {
                        "key": mf.manifest_key(backup_name),
                        "error": f"partition {part.get('partition')!r} of {coll['db_name']}.{coll['name']} "
                        f"lists {got} rows in its files but {part.get('rows')} in total",
                    }
                )
    listed = {f"{backup_name}/{f['key']}" for _, _, f in mf.iter_files(manifest)}
    report["unlisted"] = sorted(
        o.key for o in storage.list(f"{backup_name}/{mf.DATA}") if o.key not in listed
    )
    report["ok"] = not errors
    lg.info(
        "Verified backup %s: %d file(s), %s rows, %s, %d error(s)%s",
        backup_name,
        report["files_checked"],
        f"{report['rows']:,}",
        human_bytes(report["bytes"]),
        len(errors),
        f", {len(report['unlisted'])} unlisted object(s)" if report["unlisted"] else "",
    )
    if errors and raise_on_error:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise IntegrityError(
            f"Backup {backup_name!r} in {storage.description} is damaged: object {first['key']!r}: "
            f"{first['error']}{more}. Do not restore it; restore another backup."
        )
    return report


def _check_manifest_shape(m: dict[str, Any]) -> None:
    for coll in m["collections"]:
        if not isinstance(coll, dict) or not {"db_name", "name", "fields"} <= set(coll):
            raise ManifestError(
                f"A collection entry of manifest {m['name']!r} lacks db_name, name or fields."
            )
        for part in coll.get("data", []):
            for f in part.get("files", []):
                if not {"key", "rows", "size", "sha256"} <= set(f):
                    raise ManifestError(
                        f"A file entry of {coll['db_name']}.{coll['name']} in manifest {m['name']!r} lacks "
                        "key, rows, size or sha256."
                    )


def _check_object(
    storage: Storage, backup: str, coll: dict[str, Any], f: dict[str, Any], tmp_dir: str | None
) -> tuple[int, int, list[str]]:
    """Return (size, rows, problems) of one data object (the checks are :mod:`~.engine.integrity`'s)."""
    key = f"{backup}/{f['key']}"
    fd, name = tempfile.mkstemp(prefix="milvus-verify-", suffix=".parquet", dir=tmp_dir)
    os.close(fd)
    path = Path(name)
    try:
        try:
            storage.download(key, path)
        except StorageNotFoundError:
            return 0, 0, ["missing: the object does not exist"]
        digest, size = file_sha256(path)
        rows, problems = integrity.parquet_problems(str(path), coll, f)
        return size, rows, integrity.digest_problems(digest, size, f) + problems
    finally:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ rows
def _f32(v: float) -> bytes:
    return struct.pack("<f", float(v))


def _f64(v: float) -> bytes:
    return struct.pack("<d", float(v))


def canonical_value(value: Any, field: dict[str, Any], json_as_float: bool = False) -> Any:
    """Return an exact, comparable form of one value of a field (float32 by its bytes, JSON canonical)."""
    import numpy as np

    if value is None:
        return None
    t = field["type"]
    if t == "FLOAT_VECTOR":
        return np.asarray(value, dtype=np.float32).tobytes().hex()
    if t == "INT8_VECTOR":
        return np.asarray(value, dtype=np.int8).tobytes().hex()
    if t in ("BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR"):
        b = _bytes_of(value)
        return b.hex() if b is not None else None
    if t == "SPARSE_FLOAT_VECTOR":
        items = value.items() if isinstance(value, dict) else value
        return sorted((int(k), _f32(x).hex()) for k, x in items)
    if t == "FLOAT":
        return _f32(value).hex()
    if t == "DOUBLE":
        return _f64(value).hex()
    if t == "JSON":
        # exact: two numbers that differ in any digit differ here (a float64 would merge them)
        if isinstance(value, (bytes, str)):
            return canonical_json_text(value, json_as_float)
        return canonical_json(value, json_as_float)
    if t == "ARRAY":
        et = field.get("element_type")
        if et == "FLOAT":
            return [_f32(x).hex() for x in value]
        if et == "DOUBLE":
            return [_f64(x).hex() for x in value]
        return [x.item() if hasattr(x, "item") else x for x in value]
    if t == "BOOL":
        return bool(value)
    if t in ("INT8", "INT16", "INT32", "INT64"):
        return int(value)
    return value


def row_digest(
    row: Mapping[str, Any],
    fields: list[dict[str, Any]],
    all_names: set[str],
    dynamic: bool,
    skip: str | None = None,
    json_as_float: bool = False,
) -> str:
    """Return a digest of one row over every stored field (and the dynamic fields), exact to the bit.

    :param row: a row as ``query`` returns it or as :func:`~.arrow.table_to_rows` builds it.
    :param fields: the stored fields (function outputs excluded).
    :param all_names: every field name of the collection (other keys are dynamic fields).
    :param dynamic: whether the collection has a dynamic field.
    :param skip: a field to leave out (the primary key, when keys were regenerated).
    :param json_as_float: JSON numbers as float64 (where one side's rows only come decoded by pymilvus).
    """
    canon: dict[str, Any] = {}
    for f in fields:
        if f["name"] != skip:
            canon[f["name"]] = canonical_value(row.get(f["name"]), f, json_as_float)
    if dynamic:
        extra = row.get(META_FIELD)
        if isinstance(extra, (str, bytes)):
            canon[META_FIELD] = canonical_json_text(extra, json_as_float)
        else:
            if not isinstance(extra, dict):
                extra = {k: v for k, v in row.items() if k not in all_names and k != META_FIELD}
            canon[META_FIELD] = canonical_json(extra, json_as_float)
    raw = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


# ------------------------------------------------------------------------------------------------ restores
def _pairs(mapping: Mapping[str, Any]) -> tuple[list[tuple[str, str, dict[str, Any]]], bool]:
    """Return ``(source, target, entry)`` triples (qualified names) and whether it was a meta_only restore."""
    if "collections" in mapping and isinstance(mapping["collections"], list):
        out = []
        for c in mapping["collections"]:
            if not isinstance(c, Mapping) or "source" not in c or "target" not in c:
                raise InvalidArgumentError(f"Restore report entry {c!r} has no source and target.")
            out.append((str(c["source"]), str(c["target"]), dict(c)))
        return out, bool(mapping.get("meta_only"))
    out = []
    for src, dst in mapping.items():
        if not isinstance(src, str) or not isinstance(dst, str):
            raise InvalidArgumentError(
                f"verify_restore takes a restore report or a mapping of source to target names, got {src!r}: "
                f"{dst!r}."
            )
        sdb, sname = split_qualified(src, DEFAULT_DB)
        tdb, tname = split_qualified(dst, sdb)
        out.append((f"{sdb}.{sname}", f"{tdb}.{tname}", {}))
    return out, False


def verify_restore(
    milvus: MilvusParams,
    storage: Storage,
    backup_name: str,
    mapping: Mapping[str, Any],
    *,
    sample_searches: int = 10,
    top_k: int = 10,
    source_milvus: MilvusParams | None = None,
    tmp_dir: str | None = None,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Compare restored collections with the backup; return the report (never raises on a difference).

    Report: ``{backup_name, ok, collections: [{source, target, rows_expected, rows_found, partitions,
    data_equal,
    mismatches, missing, schema_equal, schema_differences, indexes, search_overlap, search_note, ok}],
    errors}``.

    :param milvus: the Milvus the collections were restored to.
    :param storage: where the backup lives.
    :param backup_name: the backup.
    :param mapping: what :meth:`RestoreEngine.restore` returned, or ``{"db.source": "db.target"}``.
    :param sample_searches: searches compared with the source collection (0: none).
    :param top_k: hits per search.
    :param source_milvus: where the source collections live (default: ``milvus``).
    :param tmp_dir: where data files are downloaded.
    :param logger: where the summary goes.
    """
    lg = logger or log
    manifest = mf.load(storage, backup_name)
    by_source = {f"{c['db_name']}.{c['name']}": c for c in manifest["collections"]}
    pairs, meta_only = _pairs(mapping)
    report: dict[str, Any] = {"backup_name": backup_name, "ok": True, "collections": [], "errors": []}
    if not pairs:
        # nothing compared is not a pass: a drill on an empty backup must not report "verified"
        report["ok"] = False
        report["errors"].append(
            f"The restore of backup {backup_name!r} names no collections: nothing was restored, so nothing "
            "could be verified. Restore a backup with collections (the backup may be empty: check its "
            "database or Milvus Lite path)."
        )
        lg.warning("%s", report["errors"][0])
        return report
    for source, target, entry in pairs:
        meta = by_source.get(source)
        if meta is None:
            report["errors"].append(f"{source} is not in backup {backup_name!r}")
            report["ok"] = False
            continue
        tdb, tname = target.split(".", 1)
        try:
            with milvus_errors(milvus, f"Verify {target}"):
                res = _verify_collection(
                    milvus,
                    storage,
                    backup_name,
                    meta,
                    tdb,
                    tname,
                    entry,
                    meta_only,
                    tmp_dir,
                    sample_searches,
                    top_k,
                    source_milvus,
                )
        except MilvusBackupError:
            raise
        except Exception as e:  # noqa: BLE001 - a difference to report, not a crash
            res = {"source": source, "target": target, "ok": False, "error": f"{type(e).__name__}: {e}"}
        report["collections"].append(res)
        if not res["ok"]:
            report["ok"] = False
            report["errors"].append(res.get("error") or _summary(res))
        lg.info(
            "Verified %s -> %s: %s (%s/%s rows, data %s, search overlap %s)",
            source,
            target,
            "OK" if res["ok"] else "DIFFERENT",
            res.get("rows_found"),
            res.get("rows_expected"),
            "equal" if res.get("data_equal") else "different",
            res.get("search_overlap"),
        )
    return report


def _summary(res: dict[str, Any]) -> str:
    bits = []
    if res.get("rows_found") != res.get("rows_expected"):
        bits.append(f"{res.get('rows_found')} rows instead of {res.get('rows_expected')}")
    if not res.get("data_equal", True):
        bits.append(
            f"rows differ (e.g. primary keys {res.get('mismatches', [])[:3] or res.get('missing', [])[:3]})"
        )
    if not res.get("schema_equal", True):
        bits.append(f"schema differs: {res.get('schema_differences', [])[:3]}")
    return f"{res['target']}: " + "; ".join(bits or ["differs"])


def _count(client: MilvusClient, name: str, pk: str, dtype: str, partition: str | None) -> int:
    n = 0
    for page in pk_pages(
        client,
        name,
        pk=pk,
        dtype=dtype,
        output_fields=[pk],
        batch=4096,
        partition=partition,
        params={"consistency_level": "Strong"},
    ):
        n += len(page)
    return n


def _iter_rows(
    client: MilvusClient, name: str, pk: str, dtype: str, out: list[str], partition: str | None
) -> Iterator[dict[str, Any]]:
    for page in pk_pages(
        client,
        name,
        pk=pk,
        dtype=dtype,
        output_fields=out,
        batch=1000,
        partition=partition,
        params={"consistency_level": "Strong"},
    ):
        yield from page


def _iter_file_tables(storage: Storage, key: str, tmp_dir: str | None) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fd, name = tempfile.mkstemp(prefix="milvus-verify-", suffix=".parquet", dir=tmp_dir)
    os.close(fd)
    path = Path(name)
    try:
        storage.download(key, path)
        pf = pq.ParquetFile(str(path))
        for batch in pf.iter_batches(batch_size=_QUERY_CHUNK):
            yield pa.Table.from_batches([batch])
    finally:
        path.unlink(missing_ok=True)


def _verify_collection(
    milvus: MilvusParams,
    storage: Storage,
    backup: str,
    meta: dict[str, Any],
    tdb: str,
    tname: str,
    entry: dict[str, Any],
    meta_only: bool,
    tmp_dir: str | None,
    sample_searches: int,
    top_k: int,
    source_milvus: MilvusParams | None,
) -> dict[str, Any]:
    source = f"{meta['db_name']}.{meta['name']}"
    target = f"{tdb}.{tname}"
    res: dict[str, Any] = {"source": source, "target": target}
    client = connect(replace(milvus, db_name=tdb))
    try:
        if not client.has_collection(tname):
            res.update(ok=False, error=f"{target} does not exist in Milvus at {milvus.address}")
            return res
        desc = client.describe_collection(tname)
        res["schema_differences"] = _schema_differences(meta, desc)
        res["schema_equal"] = not res["schema_differences"]
        res["indexes"] = _indexes(client, tname)
        state = client.get_load_state(tname).get("state")
        was_loaded = getattr(state, "name", str(state)) == "Loaded"
        if not was_loaded:
            client.load_collection(tname)
        try:
            _compare_data(client, storage, backup, meta, tname, entry, meta_only, tmp_dir, res)
            res["search_overlap"], res["search_note"] = None, None
            if sample_searches > 0 and not meta_only:
                _compare_searches(
                    client,
                    milvus,
                    source_milvus,
                    storage,
                    backup,
                    meta,
                    tdb,
                    tname,
                    entry,
                    sample_searches,
                    top_k,
                    tmp_dir,
                    res,
                )
        finally:
            if not was_loaded:
                client.release_collection(tname)
        res["ok"] = bool(
            res["rows_found"] == res["rows_expected"] and res["data_equal"] and res["schema_equal"]
        )
        return res
    finally:
        client.close()


def _compare_data(
    client: MilvusClient,
    storage: Storage,
    backup: str,
    meta: dict[str, Any],
    tname: str,
    entry: dict[str, Any],
    meta_only: bool,
    tmp_dir: str | None,
    res: dict[str, Any],
) -> None:
    fields = exported_fields(meta)
    all_names = {f["name"] for f in meta["fields"]}
    dynamic = bool(meta.get("enable_dynamic_field"))
    pk = primary_field(meta)["name"]
    pk_type = str(primary_field(meta)["type"])
    grammar = grammar_of(client)
    new_keys = entry.get("keys") == "new"
    partition_key = any(f.get("is_partition_key") for f in meta["fields"])
    out = ["*"] if dynamic else [f["name"] for f in fields]
    parts_report = []
    mismatches: list[Any] = []
    missing: list[Any] = []
    rows_expected = 0
    rows_found = 0
    data_equal = True
    for part in meta.get("data", []):
        pname = None if partition_key else part.get("partition")
        expected = 0 if meta_only else int(part.get("rows", 0))
        found = _count(client, tname, pk, pk_type, pname)
        rows_expected += expected
        rows_found += found
        parts_report.append(
            {"partition": part.get("partition"), "rows_expected": expected, "rows_found": found}
        )
        if found != expected:
            data_equal = False
        if meta_only:
            continue
        if new_keys:
            want: Counter[str] = Counter()
            for f in part.get("files", []):
                for table in _iter_file_tables(storage, f"{backup}/{f['key']}", tmp_dir):
                    for row in table_to_rows(table, fields, json_text=True):
                        want[row_digest(row, fields, all_names, dynamic, skip=pk, json_as_float=True)] += 1
            # query_iterator's rows come decoded by pymilvus (JSON numbers as float64): compare as such
            got: Counter[str] = Counter(
                row_digest(r, fields, all_names, dynamic, skip=pk, json_as_float=True)
                for r in _iter_rows(client, tname, pk, pk_type, out, pname)
            )
            if want != got:
                data_equal = False
                mismatches.append(f"{sum((want - got).values())} backup row(s) without an equal restored row")
            continue
        kw: dict[str, Any] = {"output_fields": out, "consistency_level": "Strong"}
        if pname:
            kw["partition_names"] = [pname]
        for f in part.get("files", []):
            for table in _iter_file_tables(storage, f"{backup}/{f['key']}", tmp_dir):
                rows = table_to_rows(table, fields, json_text=True)
                want_d = {r[pk]: row_digest(r, fields, all_names, dynamic) for r in rows}
                got_rows = _exact_rows(
                    client.query(tname, filter=pk_in(pk, pk_type, list(want_d), grammar), **kw),
                    fields,
                    all_names,
                    dynamic,
                )
                got_d = {r[pk]: row_digest(r, fields, all_names, dynamic) for r in got_rows}
                for key, digest in want_d.items():
                    if key not in got_d:
                        data_equal = False
                        if len(missing) < _MAX_MISMATCHES:
                            missing.append(key)
                    elif got_d[key] != digest:
                        data_equal = False
                        if len(mismatches) < _MAX_MISMATCHES:
                            mismatches.append(key)
    if partition_key or not meta.get("data"):
        # rows outside the backed-up partitions (or in a collection with none) count too
        total = _count(client, tname, pk, pk_type, None)
        if total != rows_found:
            rows_found = total
            data_equal = data_equal and total == rows_expected
    res.update(
        rows_expected=rows_expected,
        rows_found=rows_found,
        partitions=parts_report,
        data_equal=data_equal and rows_found == rows_expected,
        mismatches=mismatches,
        missing=missing,
        keys="new" if new_keys else "kept",
    )


def _exact_rows(
    result: Any, fields: list[dict[str, Any]], all_names: set[str], dynamic: bool
) -> list[dict[str, Any]]:
    """Return a query page's rows with JSON values as the text Milvus returned.

    pymilvus decodes JSON into float64, which would hide a changed digit; where the page cannot be read
    column by column the rows are as pymilvus gives them.
    """
    table = result_to_table(result, fields, arrow_schema(fields, dynamic), dynamic, all_names=all_names)
    if table is None:
        return list(result)
    return table_to_rows(table, fields, json_text=True)


def _schema_differences(meta: dict[str, Any], desc: dict[str, Any]) -> list[str]:
    diffs: list[str] = []
    have = {f["name"]: capture_field(f) for f in desc["fields"]}
    for f in meta["fields"]:
        t = have.get(f["name"])
        if t is None:
            diffs.append(f"field {f['name']!r} is missing")
            continue
        for k in ("type", "element_type"):
            if f.get(k) != t.get(k):
                diffs.append(f"field {f['name']!r}: {k} {t.get(k)} instead of {f.get(k)}")
        for flag in ("is_primary", "auto_id", "is_partition_key", "nullable", "is_function_output"):
            if bool(f.get(flag)) != bool(t.get(flag)):
                diffs.append(
                    f"field {f['name']!r}: {flag} {bool(t.get(flag))} instead of {bool(f.get(flag))}"
                )
        for p, v in (f.get("params") or {}).items():
            if p in _UNREPORTED_PARAMS and p not in t["params"]:
                continue
            if str(t["params"].get(p)) != str(v):
                diffs.append(f"field {f['name']!r}: {p} {t['params'].get(p)!r} instead of {v!r}")
        if f.get("default_value") != t.get("default_value"):
            diffs.append(
                f"field {f['name']!r}: default {t.get('default_value')!r} instead of "
                f"{f.get('default_value')!r}"
            )
    for name in have:
        if not any(f["name"] == name for f in meta["fields"]):
            diffs.append(f"field {name!r} is not in the backup")
    if bool(meta.get("enable_dynamic_field")) != bool(desc.get("enable_dynamic_field")):
        diffs.append(
            f"dynamic field {bool(desc.get('enable_dynamic_field'))} instead of "
            f"{meta['enable_dynamic_field']}"
        )
    return diffs


def _indexes(client: MilvusClient, name: str) -> list[dict[str, Any]]:
    out = []
    for n in client.list_indexes(name):
        info = dict(client.describe_index(name, n) or {})
        out.append(
            {
                "index_name": info.get("index_name", n),
                "field_name": info.get("field_name"),
                "index_type": info.get("index_type"),
                "metric_type": info.get("metric_type"),
            }
        )
    return out


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
    storage: Storage, backup: str, meta: dict[str, Any], field_name: str, n: int, tmp_dir: str | None
) -> list[Any]:
    out: list[Any] = []
    fields = [f for f in meta["fields"] if f["name"] == field_name]
    for part in meta.get("data", []):
        for f in part.get("files", []):
            for table in _iter_file_tables(storage, f"{backup}/{f['key']}", tmp_dir):
                for row in table_to_rows(table.select([field_name]), fields):
                    if row.get(field_name) is not None:
                        v = row[field_name]
                        out.append(v.tolist() if hasattr(v, "tolist") else v)
                    if len(out) >= n:
                        return out
                break
    return out


def _compare_searches(
    client: MilvusClient,
    milvus: MilvusParams,
    source_milvus: MilvusParams | None,
    storage: Storage,
    backup: str,
    meta: dict[str, Any],
    tdb: str,
    tname: str,
    entry: dict[str, Any],
    n: int,
    top_k: int,
    tmp_dir: str | None,
    res: dict[str, Any],
) -> None:
    src_params = source_milvus or milvus
    sdb, sname = meta["db_name"], meta["name"]
    if entry.get("keys") == "new" or res.get("keys") == "new":
        res["search_note"] = "skipped: the restore gave the rows new primary keys"
        return
    if src_params.address == milvus.address and (sdb, sname) == (tdb, tname):
        res["search_note"] = "skipped: the target is the source collection"
        return
    vector_fields = [
        f["name"] for f in meta["fields"] if f["type"] in _VECTOR_TYPES and not f.get("is_function_output")
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
        vectors = _sample_vectors(storage, backup, meta, fname, n, tmp_dir)
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
