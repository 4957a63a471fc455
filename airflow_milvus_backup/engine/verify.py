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

Where it lives: :func:`verify_backup` here; :func:`verify_restore` in :mod:`~.verify_rows`, its searches in
:mod:`~.verify_search`, the exact values and row digests (:func:`canonical_value`, :func:`row_digest`) in
:mod:`~.rowdigest`; the schema comparison is :mod:`~.schema_compare`'s. All four are importable from here.
"""

from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import integrity
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import IntegrityError, ManifestError, StorageNotFoundError
from airflow_milvus_backup.engine.progress import human_bytes
from airflow_milvus_backup.engine.rowdigest import canonical_value, row_digest
from airflow_milvus_backup.engine.storage import file_sha256
from airflow_milvus_backup.engine.verify_rows import verify_restore

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry, DataFile, PartitionData
    from airflow_milvus_backup.engine.storage import Storage

__all__ = ["canonical_value", "row_digest", "verify_backup", "verify_restore"]

log = logging.getLogger("airflow_milvus_backup.engine.verify")


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

    A backup in Milvus Backup's format (kind ``physical`` or ``milvus-backup``) is checked by
    :func:`~.physical.mbverify.verify_physical` instead (meta files, binlog sizes, the sidecar's SHA-256).

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
    from airflow_milvus_backup.engine.physical import kinds, mbverify

    if kinds.sniff_folder(storage, backup_name).kind in (kinds.PHYSICAL, kinds.MILVUS_BACKUP):
        return mbverify.verify_physical(
            storage, backup_name, raise_on_error=raise_on_error, parallelism=parallelism, logger=lg
        )
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
        manifest = mf.load_manifest(storage, backup_name)
    except ManifestError as e:
        report["errors"].append({"key": mf.manifest_key(backup_name), "error": str(e)})
        if raise_on_error:
            raise
        return report
    errors: list[dict[str, Any]] = report["errors"]
    entries = manifest.files()

    def check(entry: tuple[CollectionEntry, PartitionData, DataFile]) -> tuple[int, int, list[str]]:
        coll, _, f = entry
        return _check_object(storage, backup_name, coll, f, tmp_dir)

    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="verify") as pool:
        results = list(pool.map(check, entries))
    for (_, _, f), (size, rows, problems) in zip(entries, results, strict=True):
        key = f"{backup_name}/{f.key}"
        report["files_checked"] += 1
        report["bytes"] += size
        report["rows"] += rows
        errors.extend({"key": key, "error": p} for p in problems)
    for coll in manifest.collections if entries else ():
        for part in coll.data:
            got = sum(f.rows for f in part.files)
            if got != part.rows:
                errors.append(
                    {
                        "key": mf.manifest_key(backup_name),
                        "error": f"partition {part.partition!r} of {coll.qualified_name} "
                        f"lists {got} rows in its files but {part.rows} in total",
                    }
                )
    listed = {f"{backup_name}/{f.key}" for _, _, f in entries}
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


def _check_object(
    storage: Storage, backup: str, coll: CollectionEntry, f: DataFile, tmp_dir: str | None
) -> tuple[int, int, list[str]]:
    """Return (size, rows, problems) of one data object (the checks are :mod:`~.engine.integrity`'s)."""
    key = f"{backup}/{f.key}"
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
