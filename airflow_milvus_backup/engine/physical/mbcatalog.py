"""Listing and reading backups in Milvus Backup's format (kinds ``physical`` and ``milvus-backup``).

:func:`entry` is a folder's line in :meth:`~..catalog.Catalog.list` (the same keys as a logical backup's,
plus ``kind``, ``meta_version`` and ``segments``); :func:`describe` is what ``get`` returns for one.

States, by Milvus Backup's rules: ``backup_meta.json`` present = the backup exists, then its ``state_code``
(:func:`~.mbread.meta_state`); a meta file that does not parse makes it ``corrupt`` (with the reason).
Without ``backup_meta.json`` the folder is ``in_progress`` while our live lock holds it, else ``partial``.
Ownership: a physical backup of ours is ``owned``; a backup Milvus Backup wrote is not, but a complete one
may be deleted (by ``delete`` and by retention: it is a recognised, complete backup), while an incomplete
one (Milvus Backup may be writing it right now) is never touched without ``force``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine.errors import (
    BackupNotFoundError,
    FormatVersionError,
    IncompleteBackupError,
    ManifestError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.physical import kinds, layout, mbread
from airflow_milvus_backup.engine.physical.sidecar import Sidecar, read_sidecar

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.kinds import Sniffed
    from airflow_milvus_backup.engine.physical.mbmodel import BackupInfo
    from airflow_milvus_backup.engine.storage import ObjectInfo, Storage

#: Physical milliseconds are the high bits of a Milvus hybrid timestamp (the low 18 are a logical counter).
_LOGICAL_BITS = 18


def _iso_ms(ms: int) -> str | None:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def meta_version(info: BackupInfo, objects: set[str], name: str) -> str:
    """Return which Milvus Backup wrote the meta: ``"current"``, ``"v0.5"`` or ``"v0.4"``."""
    if not info.legacy:
        return "current"
    return "v0.5" if layout.meta_key(name, layout.FULL_META) in objects else "v0.4"


def times(info: BackupInfo, sidecar: Sidecar | None, objs: list[ObjectInfo]) -> tuple[str | None, str | None]:
    """Return (created_at, finished_at), ISO 8601 UTC, of a backup in Milvus Backup's format.

    Created: our sidecar's, else v0.4/v0.5's ``start_time``, else the physical part of ``backup_timestamp``,
    else the oldest object. Finished: our sidecar's, else ``end_time``, else the newest object.
    """
    created = sidecar.created_at if sidecar is not None else None
    finished = sidecar.finished_at if sidecar is not None else None
    if created is None and info.start_time:
        created = _iso_ms(info.start_time)
    if created is None and info.backup_timestamp:
        created = _iso_ms(info.backup_timestamp >> _LOGICAL_BITS)
    if created is None and objs:
        created = min(o.last_modified for o in objs).isoformat()
    if finished is None and info.end_time:
        finished = _iso_ms(info.end_time)
    if finished is None and objs:
        finished = max(o.last_modified for o in objs).isoformat()
    return created, finished


def _base(name: str, kind: str | None, objs: list[ObjectInfo]) -> dict[str, Any]:
    created = min((o.last_modified for o in objs), default=None)
    return {
        "name": name,
        "kind": kind,
        "size": sum(o.size for o in objs),
        "objects": len(objs),
        "created_at": created.isoformat() if created else None,
        "state": "partial",
        "owned": kind == kinds.PHYSICAL,
        "id": None,
        "collections": [],
    }


def _locks(storage: Storage, name: str) -> list[dict[str, Any]]:
    return [
        b
        for b in leases.read_leases(storage, f"{name}/meta/locks/")
        if b.get("backup") == name and isinstance(b.get("id"), str)
    ]


def summary_of(info: BackupInfo) -> dict[str, Any]:
    """Return the listing fields the meta tree gives: id, collections, rows, segments, server version."""
    segs = [s for s in info.segments() if not s.is_l0]
    return {
        "id": info.id or None,
        "collections": [c.qualified_name for c in info.collection_backups],
        "rows": sum(s.num_of_rows for s in segs),
        "segments": len(segs),
        "server_version": info.milvus_version or None,
        "format": info.format or "binlog",
    }


def entry(storage: Storage, name: str, objs: list[ObjectInfo], sniffed: Sniffed) -> dict[str, Any]:
    """Return the listing entry of a folder of kind ``physical`` or ``milvus-backup``."""
    out = _base(name, sniffed.kind, objs)
    keys = {o.key for o in objs}
    if not sniffed.committed:
        live = [b for b in _locks(storage, name) if leases.is_alive(b)]
        if live and sniffed.kind == kinds.PHYSICAL:
            out.update(state="in_progress", id=live[0].get("id"))
        else:
            why = (
                "interrupted physical backup of airflow-milvus-backup (no backup_meta.json): delete it"
                if sniffed.kind == kinds.PHYSICAL
                else f"{name!r} has Milvus Backup's files but no backup_meta.json: Milvus Backup is writing "
                "it, or it was interrupted; not touched"
            )
            out.update(state="partial", reason=why)
        return out
    sidecar = None
    try:
        if sniffed.sidecar:
            sidecar = read_sidecar(storage, name)
        info = mbread.read_meta(storage, name)
    except (ManifestError, FormatVersionError, IncompleteBackupError, BackupNotFoundError) as e:
        out.update(state="corrupt", reason=str(e), error=str(e))
        return out
    st = mbread.meta_state(info)
    created, finished = times(info, sidecar, objs)
    out.update(summary_of(info), state=st.state, created_at=created, finished_at=finished)
    out["meta_version"] = meta_version(info, keys, name)
    if sidecar is not None:
        out["producer"] = sidecar.producer
    if st.reason:
        out.update(reason=st.reason)
    return out


def deletable(e: dict[str, Any]) -> bool:
    """Return whether ``delete`` (without ``force``) may remove a backup of this entry.

    Ours (physical) always; Milvus Backup's only when complete (an incomplete one may be being written).
    """
    if e.get("kind") == kinds.PHYSICAL:
        return True
    return e.get("kind") == kinds.MILVUS_BACKUP and e.get("state") == "complete"


def describe(storage: Storage, name: str, sniffed: Sniffed) -> dict[str, Any]:
    """Return what ``get`` returns for a complete backup in Milvus Backup's format.

    The listing's fields plus ``backup_info`` (the whole meta tree, as Milvus Backup's Go JSON parsed) and
    ``sidecar`` (ours, or ``None``).

    :raises IncompleteBackupError: no ``backup_meta.json``, or its state is not complete.
    :raises ManifestError: a meta file is missing or does not parse (the object named).
    """
    if not sniffed.committed:
        raise IncompleteBackupError(
            f"Backup {name!r} in {storage.description} has no {layout.BACKUP_META}: it was interrupted (or "
            "is being written) and is not a complete backup."
        )
    objs = list(storage.list(f"{name}/"))
    sidecar = read_sidecar(storage, name) if sniffed.sidecar else None
    info = mbread.read_meta(storage, name)
    st = mbread.meta_state(info)
    if st.state != "complete":
        raise IncompleteBackupError(f"Backup {name!r} in {storage.description} is not complete: {st.reason}.")
    created, finished = times(info, sidecar, objs)
    out = _base(name, sniffed.kind, objs)
    out.update(summary_of(info), state="complete", created_at=created, finished_at=finished)
    out["meta_version"] = meta_version(info, {o.key for o in objs}, name)
    out["backup_info"] = _masked(json.loads(info.to_go_json()))
    out["sidecar"] = sidecar.to_json() if sidecar is not None else None
    return out


def _masked(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the meta tree with users' password hashes masked (they stay in the bucket, not in ``get``)."""
    users = (doc.get("rbac_meta") or {}).get("users") or []
    for user in users:
        if isinstance(user, dict) and user.get("password"):
            user["password"] = "***"
    return doc


def read_backup(storage: Storage, name: str) -> tuple[BackupInfo, Sidecar | None]:
    """Return the meta tree and our sidecar (``None``: Milvus Backup wrote it) of a complete backup.

    For restore: the one reader of a backup in Milvus Backup's format.

    :raises BackupNotFoundError: nothing under that name.
    :raises IncompleteBackupError: no ``backup_meta.json`` or not complete.
    :raises ManifestError: a meta file or the sidecar is missing or does not parse (the object named).
    """
    info = mbread.read_meta(storage, name)
    st = mbread.meta_state(info)
    if st.state != "complete":
        raise IncompleteBackupError(f"Backup {name!r} in {storage.description} is not complete: {st.reason}.")
    try:
        sidecar = read_sidecar(storage, name)
    except StorageNotFoundError:
        sidecar = None
    return info, sidecar
