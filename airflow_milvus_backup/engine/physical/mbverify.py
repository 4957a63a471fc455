"""Verify a backup in Milvus Backup's format (``physical`` or ``milvus-backup``) without Milvus.

Checks, read-only, nothing imported:

* every meta file present parses as Milvus Backup reads it (``backup_meta``, ``collection_meta``,
  ``partition_meta``, ``segment_meta``, ``full_meta``, v0.5's ``channel_cp_meta``), and the tree can be read;
* every binlog the meta lists exists in the backup (``binlogs/insert_log/...``, ``binlogs/delta_log/...``)
  with the size the meta records (``log_size``; a missing or truncated object is named);
* our sidecar, where present (physical backups of ours): it parses, lists every binlog, and every object it
  lists has its size and the digest it records, read and computed here: its SHA-256 (ours or the server's
  ``ChecksumSHA256``), else its MD5 (:func:`~.sidecar.expected_digest`); an object with no digest recorded
  is checked by size;
* consistency, as Milvus Backup checks at backup time: the insert-log fields of a segment have the same
  number of binlogs; a non-L0 segment has insert logs.

Objects under ``binlogs/`` that the meta does not list are reported as ``unlisted`` (not errors).
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import (
    IntegrityError,
    ManifestError,
    MilvusBackupError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.physical import layout, mbread
from airflow_milvus_backup.engine.physical.mbmodel import (
    BackupInfo,
    CollectionLevelBackupInfo,
    PartitionLevelBackupInfo,
    SegmentBackupInfo,
    SegmentLevelBackupInfo,
)
from airflow_milvus_backup.engine.physical.sidecar import expected_digest, read_sidecar
from airflow_milvus_backup.engine.progress import human_bytes
from airflow_milvus_backup.engine.storage_base import CHUNK
from airflow_milvus_backup.engine.storage_s3 import S3Storage

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.gojson import GoStruct
    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.verify")

_META_CLASSES: dict[str, type[GoStruct]] = {
    layout.BACKUP_META: BackupInfo,
    layout.FULL_META: BackupInfo,
    layout.COLLECTION_META: CollectionLevelBackupInfo,
    layout.PARTITION_META: PartitionLevelBackupInfo,
    layout.SEGMENT_META: SegmentLevelBackupInfo,
}


_SHOWN = {"sha256": "SHA-256", "md5": "MD5"}


def segment_problems(seg: SegmentBackupInfo) -> list[str]:
    """Return what is inconsistent in a segment's binlog lists (Milvus Backup's checks at backup time)."""
    problems = []
    counts = {fb.field_id: len(fb.binlogs) for fb in seg.binlogs}
    if len(set(counts.values())) > 1:
        problems.append(
            f"segment {seg.segment_id}: its fields have different numbers of binlogs "
            f"({', '.join(f'field {k}: {v}' for k, v in sorted(counts.items()))})"
        )
    if not seg.is_l0 and not any(fb.binlogs for fb in seg.binlogs):
        problems.append(f"segment {seg.segment_id} has no insert logs")
    return problems


def _parse_meta_files(storage: Storage, name: str, keys: set[str], errors: list[dict[str, Any]]) -> None:
    for meta_file, cls in _META_CLASSES.items():
        key = layout.meta_key(name, meta_file)
        if key not in keys:
            continue
        try:
            mbread.parse_meta(mbread.read_meta_bytes(storage, name, meta_file), cls, key, name)
        except (ManifestError, StorageNotFoundError) as e:
            errors.append({"key": key, "error": str(e)})
    key = layout.meta_key(name, layout.CHANNEL_CP_META)
    if key in keys:
        try:
            doc = json.loads(mbread.read_meta_bytes(storage, name, layout.CHANNEL_CP_META))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, ManifestError, StorageNotFoundError) as e:
            errors.append({"key": key, "error": f"does not parse: {e}"})


def verify_physical(
    storage: Storage,
    backup_name: str,
    *,
    raise_on_error: bool = True,
    parallelism: int = 4,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Check a backup in Milvus Backup's format; return the report (as :func:`~..verify.verify_backup`'s).

    Report: ``{backup_name, kind, ok, files_checked, bytes, rows, errors: [{key, error}], unlisted: [keys],
    sha256_checked, md5_checked, size_only}`` (objects checked by each digest, and by size alone).

    :param storage: where the backup lives.
    :param backup_name: the backup.
    :param raise_on_error: raise :class:`IntegrityError` naming the first bad object instead of returning.
    :param parallelism: objects hashed at the same time.
    :param logger: where the summary goes.
    :raises IntegrityError: with ``raise_on_error``: a meta file does not parse, a binlog is missing,
        truncated or changed.
    """
    lg = logger or log
    name = backup_name
    errors: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "backup_name": name,
        "kind": "milvus-backup",
        "ok": False,
        "files_checked": 0,
        "bytes": 0,
        "rows": 0,
        "sha256_checked": 0,
        "md5_checked": 0,
        "size_only": 0,
        "errors": errors,
        "unlisted": [],
    }
    objs = {o.key: o.size for o in storage.list(f"{name}/")}
    _parse_meta_files(storage, name, set(objs), errors)
    try:
        info = mbread.read_meta(storage, name)
        sidecar = read_sidecar(storage, name)
    except MilvusBackupError as e:
        if not errors:  # a meta file that does not parse is already named
            errors.append({"key": layout.meta_key(name, layout.BACKUP_META), "error": str(e)})
        return _finish(storage, report, raise_on_error, lg)
    if sidecar is not None:
        report["kind"] = "physical"
    state = mbread.meta_state(info)
    if state.state != "complete":
        errors.append(
            {"key": layout.meta_key(name, layout.BACKUP_META), "error": f"not complete: {state.reason}"}
        )
    for seg in info.segments():
        errors.extend(
            {"key": layout.meta_key(name, layout.SEGMENT_META), "error": p} for p in segment_problems(seg)
        )
    try:
        binlogs = layout.backup_binlogs(name, info)
    except ValueError as e:
        errors.append({"key": layout.meta_key(name, layout.SEGMENT_META), "error": str(e)})
        binlogs = []
    report["rows"] = sum(s.num_of_rows for s in info.segments() if not s.is_l0)
    listed = {b.key for b in binlogs}
    side = {f"{name}/{o.key}": o for o in sidecar.objects} if sidecar is not None else {}
    to_hash: list[tuple[str, str, str]] = []  # key, algorithm, expected hex
    for b in binlogs:
        report["files_checked"] += 1
        size = objs.get(b.key)
        if size is None:
            errors.append({"key": b.key, "error": "missing: the object does not exist"})
            continue
        report["bytes"] += size
        if b.size and size != b.size:
            errors.append(
                {"key": b.key, "error": f"truncated or changed: {size} bytes, the meta records {b.size}"}
            )
            continue
        if sidecar is not None and b.key not in side:
            errors.append({"key": b.key, "error": "not listed in the sidecar of this physical backup"})
    bad = {e["key"] for e in errors}
    for key, o in side.items():
        size = objs.get(key)
        if key in bad:
            continue
        if size is None:
            errors.append({"key": key, "error": "missing: the sidecar lists it but it does not exist"})
            continue
        if size != o.size:
            errors.append(
                {"key": key, "error": f"truncated or changed: {size} bytes, the sidecar records {o.size}"}
            )
            continue
        want = expected_digest(o)
        if want is None:
            report["size_only"] += 1
        else:
            to_hash.append((key, *want))

    def digest(job: tuple[str, str, str]) -> str | None:
        try:
            return object_digest(storage, job[0], job[1])
        except StorageNotFoundError:
            return None

    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="verify") as pool:
        for (key, algorithm, want_hex), got in zip(to_hash, pool.map(digest, to_hash), strict=True):
            report[f"{algorithm}_checked"] += 1
            if got is None:
                errors.append({"key": key, "error": "missing: the object does not exist"})
            elif got != want_hex:
                errors.append(
                    {"key": key, "error": f"changed: its {_SHOWN[algorithm]} differs from the sidecar's"}
                )
    report["unlisted"] = sorted(
        k for k in objs if k.startswith(layout.binlogs_prefix(name)) and k not in listed
    )
    return _finish(storage, report, raise_on_error, lg)


def object_digest(storage: Storage, key: str, algorithm: str) -> str:
    """Return the hex digest (``"sha256"`` or ``"md5"``) of an object, streamed; one read is one attempt.

    :raises StorageNotFoundError: the object does not exist.
    """
    if algorithm == "sha256":
        return storage.sha256(key)[0]

    def read() -> str:
        h = hashlib.new(algorithm)
        with storage.open_read(key) as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()

    if isinstance(storage, S3Storage):  # a body cut short is read again from its first byte
        return storage.call(f"Read {key!r}", read)
    return read()


def _finish(
    storage: Storage, report: dict[str, Any], raise_on_error: bool, lg: logging.Logger
) -> dict[str, Any]:
    errors = report["errors"]
    report["ok"] = not errors
    lg.info(
        "Verified %s backup %s: %d binlog(s), %s, %d SHA-256 and %d MD5 checked, %d error(s)%s",
        report["kind"],
        report["backup_name"],
        report["files_checked"],
        human_bytes(report["bytes"]),
        report["sha256_checked"],
        report["md5_checked"],
        len(errors),
        f", {len(report['unlisted'])} unlisted object(s)" if report["unlisted"] else "",
    )
    if errors and raise_on_error:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise IntegrityError(
            f"Backup {report['backup_name']!r} in {storage.description} is damaged: object {first['key']!r}: "
            f"{first['error']}{more}. Do not restore it; restore another backup."
        )
    return report
