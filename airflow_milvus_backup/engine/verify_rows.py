"""Verify restored collections against their backup: rows per partition, every row, schema, searches.

See :mod:`~.verify` for what is compared; :func:`verify_restore` is re-exported there.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.arrow import arrow_schema, result_to_table, table_to_rows
from airflow_milvus_backup.engine.client import MilvusParams, connect, milvus_errors
from airflow_milvus_backup.engine.errors import InvalidArgumentError, MilvusBackupError
from airflow_milvus_backup.engine.filters import Grammar, grammar_of, pk_in
from airflow_milvus_backup.engine.names import DEFAULT_DB, split_qualified
from airflow_milvus_backup.engine.paging import pk_pages
from airflow_milvus_backup.engine.rowdigest import iter_file_tables, row_digest
from airflow_milvus_backup.engine.schema import exported_fields, primary_field
from airflow_milvus_backup.engine.schema_compare import SchemaPolicy, schema_differences
from airflow_milvus_backup.engine.verify_search import CollectionCheck, compare_searches

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.verify")

_MAX_MISMATCHES = 10


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
    from airflow_milvus_backup.engine.physical import restore as physical_restore
    from airflow_milvus_backup.engine.physical import restore_meta as physical_meta

    lg = logger or log
    # ours (logical), or a physical backup's meta read as one (its data are binlogs: compared with the source)
    manifest = physical_restore.load_manifest(storage, backup_name)
    by_source = {c.qualified_name: c for c in manifest.collections}
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
                    CollectionCheck(
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
                        physical=physical_meta.is_physical(manifest),
                    )
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


def _verify_collection(chk: CollectionCheck) -> dict[str, Any]:
    milvus, meta, tdb, tname = chk.milvus, chk.meta, chk.tdb, chk.tname
    source = meta.qualified_name
    target = chk.target
    res: dict[str, Any] = {"source": source, "target": target}
    client = connect(replace(milvus, db_name=tdb))
    try:
        if not client.has_collection(tname):
            res.update(ok=False, error=f"{target} does not exist in Milvus at {milvus.address}")
            return res
        desc = client.describe_collection(tname)
        res["schema_differences"] = [d.text for d in schema_differences(meta, desc, SchemaPolicy.SAME)]
        res["schema_equal"] = not res["schema_differences"]
        res["indexes"] = _indexes(client, tname)
        state = client.get_load_state(tname).get("state")
        was_loaded = getattr(state, "name", str(state)) == "Loaded"
        if not was_loaded:
            client.load_collection(tname)
        try:
            if chk.meta_only or not chk.physical:
                _compare_data(client, chk, res)
            else:
                _compare_with_source(client, chk, res)
            res["search_overlap"], res["search_note"] = None, None
            if chk.sample_searches > 0 and not chk.meta_only:
                compare_searches(client, chk, res)
        finally:
            if not was_loaded:
                client.release_collection(tname)
        res["ok"] = bool(
            res["rows_found"] == res["rows_expected"] and res["data_equal"] and res["schema_equal"]
        )
        return res
    finally:
        client.close()


def _compare_with_source(client: MilvusClient, chk: CollectionCheck, res: dict[str, Any]) -> None:
    """Compare a collection restored from a physical backup with its source collection, per partition.

    A physical backup holds Milvus' binlogs, not rows this package could read: the restored rows are compared,
    by row digests, with the source collection as it is now (``source_milvus``, else the target Milvus). A
    source written since the backup shows as a difference, named as such.
    """
    meta = chk.meta
    fields = exported_fields(meta)
    all_names = {f["name"] for f in meta.fields}
    dynamic = meta.enable_dynamic_field
    pk, pk_type = primary_field(meta)["name"], str(primary_field(meta)["type"])
    out = ["*"] if dynamic else [f["name"] for f in fields]
    partition_key = any(f.get("is_partition_key") for f in meta.fields)
    parts: list[str | None] = [None]
    if not partition_key:
        parts = [*sorted({p.partition for p in meta.data if p.partition is not None})] or [None]
    sdb, sname = split_qualified(meta.qualified_name, DEFAULT_DB)
    source = connect(replace(chk.source_milvus or chk.milvus, db_name=sdb))
    try:
        if not source.has_collection(sname):
            res.update(rows_expected=None, rows_found=_count(client, chk.tname, pk, pk_type, None))
            res.update(data_equal=False, mismatches=[], missing=[], compared_with="nothing")
            res["error"] = (
                f"{chk.target}: restored from a physical backup, whose rows can only be compared with the "
                f"source collection {meta.qualified_name}, which no longer exists; pass source_milvus if it "
                "is elsewhere"
            )
            return
        reports, expected, found, equal = [], 0, 0, True
        for pname in parts:
            want: Counter[str] = Counter(
                row_digest(r, fields, all_names, dynamic, json_as_float=True)
                for r in _iter_rows(source, sname, pk, pk_type, out, pname)
            )
            got: Counter[str] = Counter(
                row_digest(r, fields, all_names, dynamic, json_as_float=True)
                for r in _iter_rows(client, chk.tname, pk, pk_type, out, pname)
            )
            n_want, n_got = sum(want.values()), sum(got.values())
            expected, found, equal = expected + n_want, found + n_got, equal and want == got
            reports.append({"partition": pname or "(all)", "rows_expected": n_want, "rows_found": n_got})
    finally:
        source.close()
    res.update(
        rows_expected=expected,
        rows_found=found,
        partitions=reports,
        data_equal=equal,
        mismatches=[] if equal else ["rows differ from the source collection (written since the backup?)"],
        missing=[],
        compared_with=f"source collection {meta.qualified_name} now",
    )


def _compare_data(client: MilvusClient, chk: CollectionCheck, res: dict[str, Any]) -> None:
    storage, backup, meta, tname, meta_only = chk.storage, chk.backup, chk.meta, chk.tname, chk.meta_only
    fields = exported_fields(meta)
    all_names = {f["name"] for f in meta.fields}
    dynamic = meta.enable_dynamic_field
    pk = primary_field(meta)["name"]
    pk_type = str(primary_field(meta)["type"])
    grammar = grammar_of(client)
    new_keys = chk.entry.get("keys") == "new"
    partition_key = any(f.get("is_partition_key") for f in meta.fields)
    # a server that refuses key filters on the collection (Milvus Lite 2.5.1 with a partition key) is compared
    # by a scan of every row, as when the keys were regenerated, but with the keys in the digests
    scan = new_keys or (partition_key and _filters_refused(client, tname, pk, pk_type, grammar))
    out = ["*"] if dynamic else [f["name"] for f in fields]
    parts_report = []
    mismatches: list[Any] = []
    missing: list[Any] = []
    rows_expected = 0
    rows_found = 0
    data_equal = True
    for part in meta.data:
        pname = None if partition_key else part.partition
        expected = 0 if meta_only else part.rows
        found = _count(client, tname, pk, pk_type, pname)
        rows_expected += expected
        rows_found += found
        parts_report.append({"partition": part.partition, "rows_expected": expected, "rows_found": found})
        if found != expected:
            data_equal = False
        if meta_only:
            continue
        if scan:
            skip = pk if new_keys else None
            want: Counter[str] = Counter()
            for f in part.files:
                for table in iter_file_tables(storage, f"{backup}/{f.key}", chk.tmp_dir):
                    for row in table_to_rows(table, fields, json_text=True):
                        want[row_digest(row, fields, all_names, dynamic, skip=skip, json_as_float=True)] += 1
            # query_iterator's rows come decoded by pymilvus (JSON numbers as float64): compare as such
            got: Counter[str] = Counter(
                row_digest(r, fields, all_names, dynamic, skip=skip, json_as_float=True)
                for r in _iter_rows(client, tname, pk, pk_type, out, pname)
            )
            if want != got:
                data_equal = False
                mismatches.append(f"{sum((want - got).values())} backup row(s) without an equal restored row")
            continue
        kw: dict[str, Any] = {"output_fields": out, "consistency_level": "Strong"}
        if pname:
            kw["partition_names"] = [pname]
        for f in part.files:
            for table in iter_file_tables(storage, f"{backup}/{f.key}", chk.tmp_dir):
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
    if partition_key or not meta.data:
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


def _filters_refused(client: MilvusClient, name: str, pk: str, dtype: str, grammar: Grammar) -> bool:
    """Return whether the server refuses a key filter on ``name`` (:func:`~.server_api.rejects_filter`)."""
    try:
        client.query(name, filter=pk_in(pk, dtype, [0 if dtype == "INT64" else ""], grammar), limit=1)
    except Exception as e:
        if server_api.rejects_filter(e):
            return True
        raise
    return False


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
