"""The backups in one storage: list, get, latest and delete, for :class:`~.backup.BackupEngine`.

Which folders are backups, and in what state, is :mod:`~.ownership`'s decision; who reads a backup is
:mod:`~.readers`'. :func:`choose_latest` is the pure choice of the newest complete backup.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import ownership, readers
from airflow_milvus_backup.engine.errors import BackupInProgressError, BackupNotFoundError, NotABackupError
from airflow_milvus_backup.engine.names import NAME_RE, validate_backup_name
from airflow_milvus_backup.engine.physical import kinds, mbcatalog
from airflow_milvus_backup.engine.progress import human_bytes

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.backup")


class Catalog:
    """List, read and delete the backups of one storage.

    :param storage: where the backups live.
    :param logger: where what is deleted is logged.
    """

    def __init__(self, storage: Storage, logger: logging.Logger | None = None) -> None:
        self.storage = storage
        self.log = logger or log

    def live_locks(self, name: str) -> list[dict[str, Any]]:
        """Return the bodies of the locks of backup ``name`` whose writers are still alive."""
        return [b for b in leases.read_leases(self.storage, f"{name}/{mf.LOCKS}") if leases.is_alive(b)]

    def clear(self, name: str, keep: str | None = None) -> None:
        """Delete a backup's objects, bounded to its folder.

        The manifest goes first, so the backup never looks complete while half deleted; the marker goes
        last, so an interrupted delete leaves a partial backup of ours (which retention finishes).
        """
        folder = f"{name}/"
        keys = [o.key for o in self.storage.list(folder) if o.key != keep and o.key.startswith(folder)]
        if mf.manifest_key(name) in keys:
            self.storage.delete([mf.manifest_key(name)])
            keys.remove(mf.manifest_key(name))
        last = [k for k in keys if k == ownership.marker_key(name)]
        rest = [k for k in keys if k not in last]
        if rest:
            self.storage.delete(rest)
        if last:
            self.storage.delete(last)

    def list(self) -> list[dict[str, Any]]:
        """Return every folder under the root, newest first: name, kind, id, state, size, collections, time.

        ``kind`` is ``logical`` (our manifest), ``physical`` (Milvus Backup's format, made by this package:
        it has our sidecar), ``milvus-backup`` (made by Milvus Backup), or ``None`` (not a backup).

        ``state`` is ``complete`` (a valid manifest of ours), ``in_progress`` (a live writer holds its lock),
        ``partial`` (ours, without a manifest: an interrupted backup; delete it), ``corrupt`` (its manifest
        is malformed; ``reason`` says how) or ``unknown`` (not a backup of this package: never touched).
        ``owned`` says whether the folder carries a mark of this package (see
        :mod:`~airflow_milvus_backup.engine.ownership`).
        """
        out = []
        for name in self.storage.list_dirs(""):
            if not NAME_RE.fullmatch(name):
                continue
            out.append(self._summary(name))
        out.sort(key=lambda o: (o.get("created_at") or "", o["name"]), reverse=True)
        return out

    def _summary(self, name: str) -> dict[str, Any]:
        objs = list(self.storage.list(f"{name}/"))
        sniffed = kinds.sniff_folder(self.storage, name, objs)
        if sniffed.kind in (kinds.PHYSICAL, kinds.MILVUS_BACKUP):
            return mbcatalog.entry(self.storage, name, objs, sniffed)
        folder = ownership.inspect(self.storage, name, objs)
        created = min((o.last_modified for o in objs), default=None)
        entry: dict[str, Any] = {
            "name": name,
            "size": sum(o.size for o in objs),
            "objects": len(objs),
            "created_at": created.isoformat() if created else None,
            "state": folder.decision.state.value,
            "owned": folder.decision.owned,
            "kind": kinds.LOGICAL if folder.decision.owned else None,
            "id": None,
            "collections": [],
        }
        if folder.decision.reason:
            entry.update(reason=folder.decision.reason, error=folder.decision.reason)
        m = folder.manifest
        if m is not None:
            entry.update(
                id=m.id,
                collections=[c.qualified_name for c in m.collections],
                rows=m.totals.rows if m.totals is not None else None,
                created_at=m.started_at,
                finished_at=m.finished_at,
                server_version=m.server_version,
            )
        elif folder.live_locks:
            entry.update(id=folder.live_locks[0].get("id"))
        return entry

    def get(self, backup_name: str) -> dict[str, Any]:
        """Return the manifest of a complete backup (``kind`` added: ``logical``).

        A backup in Milvus Backup's format (``physical`` or ``milvus-backup``) returns its listing fields, its
        whole meta tree (``backup_info``) and our sidecar (:func:`~.physical.mbcatalog.describe`).

        :raises BackupNotFoundError: no such backup.
        :raises IncompleteBackupError: the backup was interrupted (no manifest).
        :raises ManifestError: the manifest is truncated or invalid.
        """
        name = validate_backup_name(backup_name)
        sniffed = kinds.sniff_folder(self.storage, name)
        if sniffed.kind in (kinds.PHYSICAL, kinds.MILVUS_BACKUP):
            return mbcatalog.describe(self.storage, name, sniffed)
        return {**mf.load_manifest(self.storage, backup_name).to_json(), "kind": kinds.LOGICAL}

    def latest(
        self, prefix: str = "", *, allow_empty: bool = False, kind: str | None = None
    ) -> dict[str, Any]:
        """Return the list entry of the newest complete backup with data whose name starts with ``prefix``.

        :param prefix: only names starting with it count.
        :param allow_empty: also count complete backups without collections.
        :param kind: only backups of this kind count (``logical``, ``physical``, ``milvus-backup``).
        :raises BackupNotFoundError: there is none.
        """
        entries = self.list()
        if kind is not None:
            entries = [e for e in entries if e.get("kind") == kind]
        found, empty = choose_latest(entries, prefix, allow_empty=allow_empty)
        if found is not None:
            if empty:
                self.log.info(
                    "Latest backup: %s (%d newer backup(s) without collections skipped)", found["name"], empty
                )
            return found
        raise BackupNotFoundError(
            f"No complete backup{f' named {prefix}*' if prefix else ''} with data in "
            f"{self.storage.description}"
            + (
                f"; {empty} complete backup(s) without collections are not counted (allow_empty=True "
                "counts them)."
                if empty
                else "."
            )
        )

    def delete(self, backup_name: str, *, force: bool = False) -> dict[str, Any]:
        """Delete every object of a backup, complete or partial; return what was deleted.

        :param force: delete even while a live process writes the backup or a live restore reads it (that
            restore then stops with :class:`BackupDeletedError`).
        :raises BackupNotFoundError: nothing is stored under that name.
        :raises BackupInProgressError: the backup is being written, or read by a live restore (the message
            names the restore, its host and pid) (without ``force``).
        """
        name = validate_backup_name(backup_name)
        objs = list(self.storage.list(f"{name}/"))
        if not objs:
            raise BackupNotFoundError(
                f"Backup {name!r} does not exist in {self.storage.description}; nothing to delete."
            )
        sniffed = kinds.sniff_folder(self.storage, name, objs)
        if sniffed.kind in (kinds.PHYSICAL, kinds.MILVUS_BACKUP):
            e = mbcatalog.entry(self.storage, name, objs, sniffed)
            if not mbcatalog.deletable(e) and not force:
                raise NotABackupError(
                    f"Refusing to delete {name!r} in {self.storage.description}: {e.get('reason')}. "
                    "Pass force=True if it really is a backup to delete."
                )
        else:
            folder = ownership.inspect(self.storage, name, objs)
            if not folder.decision.owned and not force:
                raise NotABackupError(
                    f"Refusing to delete {name!r} in {self.storage.description}: {folder.decision.reason} "
                    "Remove it by hand, or pass force=True if it really is a backup to delete."
                )
        if not force:
            live = self.live_locks(name)
            if live:
                raise BackupInProgressError(
                    f"Backup {name!r} is being written by another process (pid {live[0].get('pid')}); "
                    "wait for it to finish, or pass force=True."
                )
            readers.refuse_delete_while_read(self.storage, name)
        self.clear(name)
        size = sum(o.size for o in objs)
        self.log.info("Deleted backup %s: %d object(s), %s", name, len(objs), human_bytes(size))
        return {"backup_name": name, "objects": len(objs), "bytes": size}


def choose_latest(
    entries: list[dict[str, Any]], prefix: str = "", *, allow_empty: bool = False
) -> tuple[dict[str, Any] | None, int]:
    """Return the newest complete entry named ``prefix*`` with a collection (any, with ``allow_empty``).

    :param entries: :meth:`BackupEngine.list` entries, newest first.
    :param prefix: only names starting with it count.
    :param allow_empty: a complete backup without collections counts too.
    :returns: the entry (or ``None``) and how many complete backups were passed over for being empty.
    """
    skipped = 0
    for b in entries:
        if b["state"] != ownership.BackupState.COMPLETE or not b["name"].startswith(prefix):
            continue
        if allow_empty or b.get("collections"):
            return b, skipped
        skipped += 1
    return None, skipped
