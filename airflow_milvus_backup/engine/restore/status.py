"""The persisted status of a restore (``<backup>/restores/<restore_id>.json``): its lease, reading it back.

Status contract (retention relies on it): the status object is a :class:`~.lease.Lease` body with ``host``,
``pid``, ``ttl`` and ``heartbeat_at``, plus ``state`` (``executing``, ``success`` or ``failed``). While a
restore runs in a process, a heartbeat thread refreshes it every ``ttl / 4`` seconds, so
``lease.is_alive(body)`` tells a running restore from a dead one. A restore returned by
:meth:`RestoreEngine.submit` whose import jobs still run is *detached*: ``pid`` is ``None`` and ``ttl`` is
``detached_ttl``; every poll refreshes the heartbeat. A backup must not be deleted while any body under
``<backup>/restores/`` (``lease.read_leases``) has ``state == "executing"`` and ``lease.is_alive(body)``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import readers
from airflow_milvus_backup.engine.errors import (
    BackupDeletedError,
    InvalidArgumentError,
    NotFoundError,
    RestoreError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.names import restore_database, validate_backup_name
from airflow_milvus_backup.engine.restore.context import Context, log, now
from airflow_milvus_backup.engine.restore.options import check_restore_id

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.restore.plan import Plan
    from airflow_milvus_backup.engine.storage import Storage

EXECUTING, SUCCESS, FAILED = "executing", "success", "failed"


def status_key(backup_name: str, restore_id: str) -> str:
    """Return the key of a restore's status object, relative to the storage root."""
    return f"{validate_backup_name(backup_name)}/{mf.RESTORES}{restore_id}.json"


class StatusLease(leases.Lease):
    """A lease whose body is the restore status, written under one lock (heartbeat and updates).

    It is written only while the backup's manifest exists: a backup deleted under a running restore is never
    re-created by its status (checked before and after each write; :mod:`~.readers`).
    """

    def __init__(
        self, storage: Storage, key: str, body: dict[str, Any], ttl: float, lock: threading.RLock
    ) -> None:
        super().__init__(storage, key, body, ttl)
        self._lock = lock

    def write(self, exclusive: bool = False) -> bool:  # noqa: D102
        backup, rid = str(self.body["backup_name"]), str(self.body["restore_id"])
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
    """The persisted status of one restore, shared by the worker threads."""

    def __init__(
        self, storage: Storage, key: str, body: dict[str, Any], ttl: float, interval: float = 0.0
    ) -> None:
        self.lock = threading.RLock()
        self.lease = StatusLease(storage, key, body, ttl, self.lock)
        self.body = self.lease.body
        self.interval = interval
        self._last = 0.0
        #: Set when a failed setup was undone completely: the status object is deleted instead of kept.
        self.untouched = False

    @property
    def id(self) -> str:
        """Return the restore id."""
        return str(self.body["restore_id"])

    def save(self, force: bool = True) -> None:
        """Persist the status (with a fresh heartbeat); unforced saves happen at most every ``interval`` s.

        An unforced change not written yet goes out with the next save or heartbeat; a restore resumed
        after a crash redoes every file not recorded ``done``, so losing one costs time, never rows.
        """
        with self.lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return
            self._last = now
            self.lease.write()

    def start(self, exclusive: bool) -> None:
        """Write the status for the first time and start the heartbeat."""
        if not self.lease.write(exclusive=exclusive) and exclusive:
            raise RestoreError(
                f"Restore {self.id} already has a status object ({self.lease.key}); another process started "
                "it at the same moment. Use another restore_id."
            )
        self.lease.start_heartbeat()

    def stop(self) -> None:
        """Stop the heartbeat; keep the status object."""
        self.lease.release(delete=False)

    def discard(self) -> None:
        """Stop the heartbeat and delete the status object (the restore left nothing to resume or report)."""
        self.lease.release(delete=True)

    def detach(self, ttl: float) -> None:
        """Mark the restore as detached (no owning process; alive while polled) and persist it."""
        with self.lock:
            self.body["detached"] = True
            self.body["pid"] = None
            self.body["ttl"] = ttl
        self.save()

    def fail(self, exc: BaseException) -> None:
        """Record a failure (state ``failed``, the error message) and persist it; never raises."""
        if isinstance(exc, BackupDeletedError):
            return  # no status is kept for a deleted backup
        msg = str(exc) or type(exc).__name__
        with self.lock:
            self.body["state"] = FAILED
            self.body["finished_at"] = now()
            self.body["error"] = msg
            self.body.setdefault("errors", []).append(msg)
            for c in self.body["collections"]:
                if c["state"] not in (SUCCESS,):
                    c["state"] = FAILED
        try:
            self.save()
        except Exception as e:  # noqa: BLE001 - the original error matters more
            log.warning("Could not record the failure of restore %s: %s", self.id, e)


def totals(body: dict[str, Any]) -> dict[str, Any]:
    """Return the row and file totals of a status body."""
    cols = body["collections"]
    return {
        "collections": len(cols),
        "rows_expected": sum(c["rows_expected"] for c in cols),
        "rows_restored": sum(c["rows_restored"] for c in cols),
        "files": sum(c["files_total"] for c in cols),
        "files_done": sum(c["files_done"] for c in cols),
    }


def public(body: dict[str, Any], *, with_files: bool = False) -> dict[str, Any]:
    """Return a JSON-serialisable copy of a status body for callers (per-file detail only on request)."""
    out = json.loads(json.dumps(body, default=str))
    out.pop("_key", None)
    out["totals"] = totals(out)
    for c in out["collections"]:
        files = c.pop("files", {})
        if with_files:
            c["files"] = files
        if out.get("method") == "bulk_import" and files:
            c["jobs"] = [
                {
                    "key": k,
                    "partition": f.get("partition"),
                    "task_id": f.get("task_id"),
                    "state": f.get("state"),
                    "rows": f.get("inserted", 0),
                    "progress": f.get("progress", 100 if f.get("state") == "done" else 0),
                    **({"error": f["error"]} if f.get("error") else {}),
                }
                for k, f in files.items()
            ]
    return out


def reset_files(entry: dict[str, Any]) -> None:
    """Mark every file of a target pending again (its collection was created anew)."""
    for fs in entry.get("files", {}).values():
        fs.update(state="pending", inserted=0, task_id=None)
    recount(entry)


def recount(entry: dict[str, Any]) -> None:
    """Recompute a target's ``files_done`` and ``rows_restored`` from its files."""
    files = entry.get("files", {})
    entry["files_done"] = sum(1 for f in files.values() if f.get("state") == "done")
    entry["rows_restored"] = sum(int(f.get("inserted", 0)) for f in files.values())


def find_prior(ctx: Context, name: str, restore_id: str | None, fingerprint: str) -> dict[str, Any] | None:
    """Return the status of the restore to resume (same fingerprint), or ``None`` for a new one."""
    if restore_id is not None:
        try:
            body = read_status(ctx, name, restore_id)
        except NotFoundError:
            return None
        if body.get("fingerprint") != fingerprint:
            args = body.get("arguments", {})
            shown = json.dumps(args.get("options", {}), sort_keys=True)
            raise InvalidArgumentError(
                f"Restore {restore_id} of backup {name!r} was started with other arguments; resume it "
                f"with the same ones ({shown}, collections {args.get('collections')}) or use another "
                "restore_id."
            )
        refuse_if_running(body, name)
        return body
    candidates = [
        b
        for b in leases.read_leases(ctx.storage, f"{name}/{mf.RESTORES}")
        if b.get("fingerprint") == fingerprint
        and not b.get("cancelled")
        and (b.get("state") == FAILED or (b.get("state") == EXECUTING and not leases.is_alive(b)))
    ]
    running = [
        b
        for b in leases.read_leases(ctx.storage, f"{name}/{mf.RESTORES}")
        if b.get("fingerprint") == fingerprint and b.get("state") == EXECUTING and leases.is_alive(b)
    ]
    if running:
        refuse_if_running(running[0], name)
    if not candidates:
        return None
    candidates.sort(key=lambda b: str(b.get("first_started_at") or b.get("started_at") or ""))
    body = candidates[-1]
    ctx.log.info(
        "Resuming restore %s of backup %s (state %s, %s of %s files done)",
        body["restore_id"],
        name,
        body.get("state"),
        totals(body)["files_done"],
        totals(body)["files"],
    )
    return body


def refuse_if_running(body: dict[str, Any], name: str) -> None:
    """Refuse to start a restore that is running (alive) in another process."""
    if body.get("state") == EXECUTING and leases.is_alive(body):
        raise RestoreError(
            f"Restore {body.get('restore_id')} of backup {name!r} is running "
            + (
                "(its import jobs are being polled)"
                if body.get("detached")
                else f"in process {body.get('pid')} on {body.get('host')}"
            )
            + "; wait for it to finish (poll it) instead of starting it again."
        )


def open_status(ctx: Context, plan: Plan, milvus: MilvusParams) -> Status:
    """Write the first status of a restore (or the resumed one's, carrying over its files)."""
    key = status_key(plan.backup, plan.restore_id)
    prior = plan.prior
    prior_entries = {c["target"]: c for c in (prior or {}).get("collections", [])}
    collections = []
    for t in plan.targets:
        pe = prior_entries.get(t.target) or {}
        files: dict[str, Any] = {}
        keep_prior = bool(pe) and t.action in ("resume", "done", "existing")
        for part, f in t.files():
            old = (pe.get("files") or {}).get(f["key"]) if keep_prior else None
            files[f["key"]] = (
                dict(old)
                if old
                else {
                    "partition": part.get("partition"),
                    "rows": f["rows"],
                    "state": "pending",
                    "inserted": 0,
                }
            )
        entry = {
            "source": t.source,
            "target": t.target,
            "action": t.action,
            "created": bool(pe.get("created")) if keep_prior else False,
            "keys": "kept" if t.keep_keys else "new",
            "state": SUCCESS if t.action == "done" else "pending",
            "rows_expected": 0 if plan.opts.meta_only else int(t.meta.get("row_count", 0)),
            "rows_restored": 0,
            "files_total": 0 if plan.opts.meta_only else len(files),
            "files_done": 0,
            "files": {} if plan.opts.meta_only else files,
            "temp_properties": list(pe.get("temp_properties", [])) if keep_prior else [],
            "indexes": list(pe.get("indexes", [])) if keep_prior else [],
            "aliases": pe.get("aliases") or {"restored": [], "skipped": []},
            "load_state": pe.get("load_state") or {},
            "database_created": bool(pe.get("database_created")) if keep_prior else False,
            "seconds": float(pe.get("seconds", 0.0)) if keep_prior else 0.0,
            "resumed": keep_prior,
            "error": None,
        }
        recount(entry)
        t.entry = entry
        collections.append(entry)
    body: dict[str, Any] = {
        "id": plan.restore_id,
        "restore_id": plan.restore_id,
        "kind": "restore",
        "backup_name": plan.backup,
        "backup_id": plan.manifest["id"],
        "state": EXECUTING,
        "method": plan.method,
        "method_reason": plan.method_reason,
        "meta_only": plan.opts.meta_only,
        "fingerprint": plan.fingerprint,
        "arguments": plan.arguments,
        "target": {
            "address": milvus.address,
            "db_name": restore_database(plan.opts.target_db_name, milvus.db_name),
            "server_version": plan.server.version,
            "lite": plan.server.lite,
        },
        "storage": ctx.storage.description,
        "first_started_at": (prior or {}).get("first_started_at") or now(),
        "attempts": int((prior or {}).get("attempts", 0)) + 1,
        "finished_at": None,
        "detached": False,
        "databases_created": list((prior or {}).get("databases_created", [])),
        "collections": collections,
        "error": None,
        "errors": list((prior or {}).get("errors", [])),
    }
    status = Status(ctx.storage, key, body, ctx.status_ttl, ctx.status_interval)
    status.start(exclusive=prior is None)
    ctx.log.info("Restore %s status: %s/%s", plan.restore_id, ctx.storage.description, key)
    return status


def reopen(ctx: Context, body: dict[str, Any], *, detached: bool) -> Status:
    """Return the status of a restore read back (to poll, fail or cancel it)."""
    keep = {
        k: v for k, v in body.items() if k not in ("host", "pid", "started_at", "ttl", "heartbeat_at", "_key")
    }
    ttl = ctx.detached_ttl if detached else ctx.status_ttl
    status = Status(ctx.storage, status_key(body["backup_name"], body["restore_id"]), keep, ttl)
    if detached:
        status.body["pid"] = None
    return status


def read_status(ctx: Context, name: str, restore_id: str) -> dict[str, Any]:
    """Return the stored status body of a restore.

    :raises NotFoundError: no restore of that id for that backup.
    """
    check_restore_id(restore_id)
    key = status_key(name, restore_id)
    try:
        raw = ctx.storage.get_bytes(key)
    except StorageNotFoundError:
        raise NotFoundError(
            f"No restore {restore_id!r} of backup {name!r} in {ctx.storage.description} (no {key!r}); "
            "list the restores to see their ids."
        ) from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise RestoreError(f"The status object {key!r} is not valid JSON; it was damaged.") from None
    if not isinstance(body, dict) or "collections" not in body:
        raise RestoreError(f"The status object {key!r} is not a restore status.")
    return body
