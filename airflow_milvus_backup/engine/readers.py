"""Who reads a backup: its live restores, and the guard that keeps a restore out of a deleted backup.

The live restores are the status objects under ``<backup>/restores/`` in state ``executing`` whose holder is
alive (:func:`~.lease.is_alive`).

A backup a live restore reads is not deleted (:func:`refuse_delete_while_read`) unless the caller forces it;
a forced delete makes the restore stop with :class:`BackupDeletedError` at its next read or status write, and
its status object is never written again (:func:`check_not_deleted`), so a deleted backup's folder is never
re-created (it would list as a partial backup).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import BackupDeletedError, BackupInProgressError
from airflow_milvus_backup.engine.names import validate_backup_name

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

#: The state of a restore status while the restore reads its backup.
EXECUTING = "executing"


def live_readers(
    bodies: Iterable[dict[str, Any]], alive: Callable[[dict[str, Any]], bool] = leases.is_alive
) -> list[dict[str, Any]]:
    """Return the restore status bodies that stand for a restore still reading its backup.

    :param bodies: restore status bodies (as :func:`~.lease.read_leases` returns them).
    :param alive: tells a live holder from a dead one (default :func:`~.lease.is_alive`).
    """
    return [b for b in bodies if b.get("state") == EXECUTING and alive(b)]


def live_restores(storage: Storage, backup_name: str) -> list[dict[str, Any]]:
    """Return the status bodies of the live restores reading ``backup_name``."""
    name = validate_backup_name(backup_name)
    return live_readers(leases.read_leases(storage, f"{name}/{mf.RESTORES}"))


def reader_problem(
    backup: str, where: str, readers: list[dict[str, Any]], *, overwrite: bool = False
) -> str | None:
    """Return why ``backup`` must not be deleted (or overwritten) now, naming the restore, host and pid.

    :param backup: the backup's name.
    :param where: the storage, for the message.
    :param readers: its live restores (:func:`live_restores`).
    :param overwrite: the backup would be overwritten (``create(overwrite=True)``), not deleted.
    :returns: the message, or ``None`` when nothing reads it.
    """
    if not readers:
        return None
    r = readers[0]
    who = "a detached restore (import jobs running)" if r.get("detached") else f"pid {r.get('pid')}"
    more = f" and {len(readers) - 1} other restore(s)" if len(readers) > 1 else ""
    verb, fix = (
        ("overwriting", "write it under another name") if overwrite else ("deleting", "pass force=True")
    )
    return (
        f"Backup {backup!r} in {where} is being read by restore {r.get('restore_id')} (host {r.get('host')}, "
        f"{who}, since {r.get('first_started_at') or r.get('started_at')}){more}; {verb} it would fail "
        f"that restore halfway. Wait for the restore to finish, or {fix}."
    )


def refuse_delete_while_read(storage: Storage, backup_name: str, *, overwrite: bool = False) -> None:
    """Raise :class:`BackupInProgressError` if a live restore reads the backup (:func:`reader_problem`)."""
    problem = reader_problem(
        backup_name, storage.description, live_restores(storage, backup_name), overwrite=overwrite
    )
    if problem:
        raise BackupInProgressError(problem)


def deleted_error(backup: str, restore_id: str, where: str) -> BackupDeletedError:
    """Return the error of a restore whose backup was deleted while it read it."""
    return BackupDeletedError(
        f"Backup {backup!r} was deleted while restore {restore_id} read it (from {where}); the restore "
        "stopped and keeps no status. The collections it was restoring are incomplete: restore them from "
        "another backup with drop_existing=True."
    )


def check_not_deleted(storage: Storage, backup: str, restore_id: str) -> None:
    """Raise :class:`BackupDeletedError` if the backup's manifest is gone."""
    if not storage.exists(mf.manifest_key(backup)):
        raise deleted_error(backup, restore_id, storage.description)
