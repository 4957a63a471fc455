"""The persisted status of a restore (``<backup>/restores/<restore_id>.json``): the only code that writes it.

The data is :class:`~.status_model.RestoreStatus` (typed, versioned). :class:`Status` owns one restore's
status object: its lease and lock, and the verbs every step records what happened with (``file_started``,
``file_done``, ``collection_created``, ``job_submitted``, ``failed``...). Verbs that record a step a resume
depends on write the object at once; per-file progress is written at most every ``status_interval`` seconds;
the others (marked "written with the next write") go out with the next write or heartbeat.

Status contract (retention relies on it): the status object is a :class:`~.lease.Lease` body with ``host``,
``pid``, ``ttl`` and ``heartbeat_at``, plus ``state`` (``executing``, ``success`` or ``failed``). While a
restore runs in a process, a heartbeat thread refreshes it every ``ttl / 4`` seconds, so
``lease.is_alive(body)`` tells a running restore from a dead one. A restore returned by
:meth:`RestoreEngine.submit` whose import jobs still run is *detached*: ``pid`` is ``None`` and ``ttl`` is
``detached_ttl``; every poll refreshes the heartbeat. A backup must not be deleted while any body under
``<backup>/restores/`` (``lease.read_leases``) has ``state == "executing"`` and ``lease.is_alive(body)``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import readers
from airflow_milvus_backup.engine.clock import now_iso
from airflow_milvus_backup.engine.errors import BackupDeletedError, RestoreError
from airflow_milvus_backup.engine.names import validate_backup_name
from airflow_milvus_backup.engine.restore.context import log
from airflow_milvus_backup.engine.restore.status_model import (
    CollectionState,
    CollectionStatus,
    FileState,
    FileStatus,
    RestoreStatus,
    RunState,
    public,
    totals,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.restore.plan import Target
    from airflow_milvus_backup.engine.storage import Storage

#: The run states (the same strings as before; kept under these names for the planner and the facade).
EXECUTING, SUCCESS, FAILED = RunState.EXECUTING, RunState.SUCCESS, RunState.FAILED

__all__ = [
    "EXECUTING",
    "FAILED",
    "SUCCESS",
    "CollectionState",
    "CollectionStatus",
    "FileState",
    "FileStatus",
    "RestoreStatus",
    "RunState",
    "Status",
    "public",
    "status_key",
    "totals",
]


def status_key(backup_name: str, restore_id: str) -> str:
    """Return the key of a restore's status object, relative to the storage root."""
    return f"{validate_backup_name(backup_name)}/{mf.RESTORES}{restore_id}.json"


class StatusLease(leases.Lease):
    """A lease whose body is the restore status, written under one lock (heartbeat and updates).

    Its own ``body`` holds the lease's keys; the payload is the status with them. It is written only while
    the backup's manifest exists: a backup deleted under a running restore is never re-created by its status
    (checked before and after each write; :mod:`~.readers`).
    """

    def __init__(
        self, storage: Storage, key: str, doc: RestoreStatus, ttl: float, lock: threading.RLock
    ) -> None:
        super().__init__(storage, key, {"id": doc.restore_id}, ttl)
        self.doc = doc
        self._lock = lock

    def document(self) -> dict[str, Any]:
        """Return the status as it is written: the model's JSON with the lease's keys."""
        with self._lock:
            return {**self.doc.to_json(), **self.body}

    def payload(self) -> bytes:  # noqa: D102
        with self._lock:
            return super().payload()

    def write(self, exclusive: bool = False) -> bool:  # noqa: D102
        backup, rid = self.doc.backup_name, self.doc.restore_id
        with self._lock:
            readers.check_not_deleted(self.storage, backup, rid)
            stored = super().write(exclusive)
            try:
                readers.check_not_deleted(self.storage, backup, rid)  # deleted while we wrote
            except BackupDeletedError:
                self.storage.delete([self.key])
                raise
            return stored


class Status:
    """The persisted status of one restore, shared by the worker threads; every change is a verb here.

    :param doc: the status; its lease keys are replaced by this process' lease.
    """

    def __init__(
        self, storage: Storage, key: str, doc: RestoreStatus, ttl: float, interval: float = 0.0
    ) -> None:
        self.lock = threading.RLock()
        doc.lease = {}
        self.doc = doc
        self.lease = StatusLease(storage, key, doc, ttl, self.lock)
        self.interval = interval
        self._last = 0.0
        #: Set when a failed setup was undone completely: the status object is deleted instead of kept.
        self.untouched = False

    @property
    def id(self) -> str:
        """Return the restore id."""
        return self.doc.restore_id

    @property
    def state(self) -> RunState:
        """Return the restore's state."""
        return self.doc.state

    def of(self, t: Target | str) -> CollectionStatus:
        """Return the status of a target (a plan's target, or ``db.collection``)."""
        return self.doc.of(t if isinstance(t, str) else t.target)

    def importing(self, t: Target) -> dict[str, FileStatus]:
        """Return a target's files whose import job is being submitted or runs, by key."""
        return {
            k: fs
            for k, fs in self.of(t).files.items()
            if fs.state in (FileState.IMPORTING, FileState.SUBMITTING)
        }

    def json(self) -> dict[str, Any]:
        """Return the status as stored (with the lease's keys)."""
        return self.lease.document()

    def public(self, *, with_files: bool = False) -> dict[str, Any]:
        """Return the status for callers (:func:`~.status_model.public`)."""
        return public(self.json(), with_files=with_files)

    # ------------------------------------------------------------------------------------ persistence
    def save(self, force: bool = True) -> None:
        """Persist the status (with a fresh heartbeat); unforced saves happen at most every ``interval`` s.

        An unforced change not written yet goes out with the next save or heartbeat; a restore resumed
        after a crash redoes every file not recorded ``done``, so losing one costs time, never rows.
        """
        with self.lock:
            t = time.monotonic()
            if not force and t - self._last < self.interval:
                return
            self._last = t
            self.lease.write()

    def start(self, exclusive: bool) -> None:
        """Write the status for the first time and start the heartbeat."""
        if not self.lease.write(exclusive=exclusive) and exclusive:
            raise RestoreError(
                f"Restore {self.id} already has a status object ({self.lease.key}); another process started "
                "it at the same moment. Use another restore_id.",
                retryable=False,
            )
        self.lease.start_heartbeat()

    def stop(self) -> None:
        """Stop the heartbeat; keep the status object."""
        self.lease.release(delete=False)

    def discard(self) -> None:
        """Stop the heartbeat and delete the status object (the restore left nothing to resume or report)."""
        self.lease.release(delete=True)

    # ------------------------------------------------------------------------------------ setup
    def database_created(self, db: str) -> None:
        """Record a database this restore created (for its targets in it); written at once."""
        with self.lock:
            self.doc.databases_created.append(db)
            for c in self.doc.collections:
                if c.db == db:
                    c.database_created = True
        self.save()

    def database_dropped(self, db: str) -> None:
        """Record that a database this restore created was dropped again (rollback); with the next write."""
        with self.lock:
            self.doc.databases_created.remove(db)

    def existing_dropped(self, t: Target, aliases: list[str]) -> None:
        """Record that an existing target was dropped (``drop_existing``), and its aliases; next write."""
        with self.lock:
            self.of(t).dropped_aliases = list(aliases)

    def collection_created(self, t: Target, temp_properties: list[str], *, anew: bool = False) -> None:
        """Record a collection as this restore's, just *before* it is created; written at once.

        A restore killed right after the create call still knows the collection is its own.

        :param temp_properties: properties set for the restore only (removed at the end).
        :param anew: the collection of an interrupted restore was gone: its files are all pending again.
        """
        with self.lock:
            c = self.of(t)
            if anew:
                c.reset_files()
            c.created = True
            c.temp_properties = list(temp_properties)
        self.save()

    def collection_undone(self, t: Target) -> None:
        """Record that a collection this restore created was dropped again (rollback); with the next write."""
        with self.lock:
            c = self.of(t)
            c.created, c.temp_properties, c.indexes = False, [], []

    def temp_property_set(self, t: Target, prop: str) -> None:
        """Record a property set on an existing target for the restore only; written at once."""
        with self.lock:
            self.of(t).temp_properties = [prop]
        self.save()

    def indexes_built(self, t: Target, indexes: list[dict[str, Any]]) -> None:
        """Record the indexes of a target (built, existing, or fallbacks); written at once."""
        with self.lock:
            self.of(t).indexes = list(indexes)
        self.save()

    # ------------------------------------------------------------------------------------ by insert
    def collection_restarted(self, t: Target) -> None:
        """Record a target created again from its first file (new keys, interrupted); with the next write."""
        with self.lock:
            c = self.of(t)
            c.indexes = []
            c.reset_files()

    def collection_restoring(self, t: Target) -> None:
        """Record that a target's rows are being restored; with the next write."""
        with self.lock:
            self.of(t).state = CollectionState.RESTORING

    def file_started(self, t: Target, key: str) -> None:
        """Record that a data file's rows are being inserted (another attempt).

        Written at once when the target gets new primary keys (a partly inserted file then forces a restart
        of the collection), else at most every ``status_interval``.
        """
        with self.lock:
            c = self.of(t)
            f = c.files[key]
            f.state, f.inserted, f.attempts = FileState.STARTED, 0, (f.attempts or 0) + 1
            c.recount()
            force = c.keys != "kept"
        self.save(force=force)

    def file_progress(self, t: Target, key: str, inserted: int) -> None:
        """Record the rows of a file inserted so far; with the next write."""
        with self.lock:
            c = self.of(t)
            c.files[key].inserted = inserted
            c.recount()

    def file_done(self, t: Target, key: str, inserted: int) -> None:
        """Record that all rows of a file are in (a resume skips it); written within ``status_interval``."""
        with self.lock:
            c = self.of(t)
            f = c.files[key]
            f.state, f.inserted = FileState.DONE, inserted
            c.recount()
        self.save(force=False)

    def time_spent(self, t: Target, seconds: float) -> None:
        """Add working time to a target; with the next write."""
        with self.lock:
            c = self.of(t)
            c.seconds = round(c.seconds + seconds, 3)

    # ------------------------------------------------------------------------------------ bulk import
    def file_submitting(self, t: Target, key: str) -> None:
        """Record that a file's import job is about to be submitted; written at once."""
        with self.lock:
            f = self.of(t).files[key]
            f.state, f.task_id, f.error = FileState.SUBMITTING, None, None
        self.save()

    def job_submitted(self, t: Target, key: str, task_id: int) -> None:
        """Record a file's import job (submitted or adopted); written at once."""
        with self.lock:
            c = self.of(t)
            f = c.files[key]
            f.state, f.task_id, f.progress = FileState.IMPORTING, int(task_id), 0
            c.state = CollectionState.RESTORING
        self.save()

    def job_progress(self, t: Target, key: str, progress: int) -> None:
        """Record an import job's progress (percent); with the next write."""
        with self.lock:
            self.of(t).files[key].progress = int(progress)

    def job_done(self, t: Target, key: str, rows: int) -> None:
        """Record a completed import job and its rows; with the next write."""
        with self.lock:
            c = self.of(t)
            f = c.files[key]
            f.state, f.inserted, f.progress = FileState.DONE, int(rows), 100
            c.recount()

    def job_failed(self, t: Target, key: str, reason: str) -> None:
        """Record a failed import job and why; written at once."""
        with self.lock:
            f = self.of(t).files[key]
            f.state, f.error = FileState.FAILED, reason
        self.save()

    def rbac_restored(self, report: dict[str, Any]) -> None:
        """Record what the RBAC step created and left (names only); written at once."""
        with self.lock:
            self.doc.extra["rbac"] = report
        self.save()

    def jobs_imported(self) -> None:
        """Record that every import job is done (the restore is still to be finished); next write."""
        with self.lock:
            self.doc.imported = True

    # ------------------------------------------------------------------------------------ finish
    def temp_property_dropped(self, t: Target, prop: str) -> None:
        """Record that a temporary property was removed from a target; with the next write."""
        with self.lock:
            self.of(t).temp_properties.remove(prop)

    def load_state_restored(self, t: Target, report: dict[str, Any]) -> None:
        """Record what was done about a target's load state; with the next write."""
        with self.lock:
            self.of(t).load_state = report

    def partitions_verified(self, t: Target, counts: dict[str, dict[str, int]]) -> None:
        """Record each partition's imported and found rows (a physical restore); with the next write."""
        if counts:
            with self.lock:
                self.of(t).extra["partition_rows"] = counts

    def aliases_restored(self, t: Target, restored: list[str], skipped: list[dict[str, Any]]) -> None:
        """Record a target's aliases (created, and the ones taken elsewhere); with the next write."""
        with self.lock:
            self.of(t).aliases = {"restored": restored, "skipped": skipped}

    def collection_succeeded(self, t: Target, rows_found: int | None, seconds: float) -> None:
        """Record a finished target, its row count (``None``: not loaded) and time; written at once."""
        with self.lock:
            c = self.of(t)
            c.rows_found, c.counted = rows_found, True
            c.state = CollectionState.SUCCESS
            c.seconds = round(c.seconds + seconds, 3)
        self.save()

    def succeeded(self) -> None:
        """Record the restore's success; written at once."""
        with self.lock:
            self.doc.state = RunState.SUCCESS
            self.doc.finished_at = now_iso()
            self.doc.error = None
            self.doc.detached = False
        self.save()

    def took(self, seconds: float) -> None:
        """Record how long the restore took; written at once."""
        with self.lock:
            self.doc.seconds = round(seconds, 3)
        self.save()

    # ------------------------------------------------------------------------------------ run
    def detach(self, ttl: float) -> None:
        """Mark the restore as detached (no owning process; alive while polled) and persist it."""
        with self.lock:
            self.doc.detached = True
            self.lease.body["pid"] = None
            self.lease.body["ttl"] = ttl
        self.save()

    def fail(self, exc: BaseException) -> None:
        """Record a failure (state ``failed``, the error message; unfinished targets failed); never raises."""
        if isinstance(exc, BackupDeletedError):
            return  # no status is kept for a deleted backup
        msg = str(exc) or type(exc).__name__
        with self.lock:
            self.doc.state = RunState.FAILED
            self.doc.finished_at = now_iso()
            self.doc.error = msg
            self.doc.errors.append(msg)
            for c in self.doc.collections:
                if c.state != CollectionState.SUCCESS:
                    c.state = CollectionState.FAILED
        try:
            self.save()
        except Exception as e:  # noqa: BLE001 - the original error matters more
            log.warning("Could not record the failure of restore %s: %s", self.id, e)

    def cancelled(self, exc: BaseException) -> None:
        """Record that the restore was cancelled (it then fails with ``exc``); never raises."""
        with self.lock:
            self.doc.cancelled = True
        self.fail(exc)
