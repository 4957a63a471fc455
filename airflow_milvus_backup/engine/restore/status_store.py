"""Restore statuses in the backup's storage: open a new one, find the one to resume, read, list, cancel.

The objects are ``<backup>/restores/<restore_id>.json`` (:func:`~.status.status_key`), read through
:class:`~.status_model.RestoreStatus` (which also reads the previous layout) and written only by
:class:`~.status.Status`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.clock import now_iso
from airflow_milvus_backup.engine.errors import (
    InvalidArgumentError,
    NotFoundError,
    RestoreError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.names import restore_database, validate_backup_name
from airflow_milvus_backup.engine.restore.options import check_restore_id
from airflow_milvus_backup.engine.restore.status import Status, status_key
from airflow_milvus_backup.engine.restore.status_model import (
    CollectionState,
    CollectionStatus,
    FileStatus,
    RestoreStatus,
    RunState,
    public,
    same_arguments,
    totals,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.plan import Plan

#: Target actions whose prior files, indexes and temporary properties a resumed restore carries over.
_CARRIED = ("resume", "done", "existing")


def alive(body: dict[str, Any]) -> bool:
    """Return whether a status body stands for a restore still running (executing, its holder alive)."""
    return body.get("state") == RunState.EXECUTING and leases.is_alive(body)


def read_status(ctx: Context, name: str, restore_id: str) -> dict[str, Any]:
    """Return the stored status body of a restore (checked: a restore status this release can read).

    :raises NotFoundError: no restore of that id for that backup.
    :raises RestoreError: the object is damaged, or written by a newer major format version.
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
        raise RestoreError(
            f"The status object {key!r} is not valid JSON; it was damaged.", retryable=False
        ) from None
    RestoreStatus.from_json(body, repr(key))
    return dict(body)


def find_prior(
    ctx: Context, name: str, restore_id: str | None, fingerprint: str, arguments: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Return the status of the restore to resume (same arguments), or ``None`` for a new one.

    :param fingerprint: the new restore's fingerprint; a status with the same one resumes.
    :param arguments: the new restore's arguments; a status whose stored arguments mean the same (the
        fingerprint of another release) resumes too (:meth:`~.status_model.RestoreStatus.resumes`).
    """
    if restore_id is not None:
        try:
            body = read_status(ctx, name, restore_id)
        except NotFoundError:
            return None
        if not RestoreStatus.from_json(body).resumes(fingerprint, arguments):
            args = body.get("arguments", {})
            shown = json.dumps(args.get("options", {}), sort_keys=True)
            raise InvalidArgumentError(
                f"Restore {restore_id} of backup {name!r} was started with other arguments; resume it "
                f"with the same ones ({shown}, collections {args.get('collections')}) or use another "
                "restore_id."
            )
        refuse_if_running(body, name)
        return body

    def same(b: dict[str, Any]) -> bool:
        if not RestoreStatus.is_status(b):
            return False
        if b.get("fingerprint") == fingerprint:
            return True
        return arguments is not None and same_arguments(b.get("arguments") or {}, arguments)

    bodies = [b for b in leases.read_leases(ctx.storage, f"{name}/{mf.RESTORES}") if same(b)]
    running = [b for b in bodies if alive(b)]
    if running:
        refuse_if_running(running[0], name)
    candidates = [
        b
        for b in bodies
        if not b.get("cancelled") and b.get("state") in (RunState.FAILED, RunState.EXECUTING)
    ]
    if not candidates:
        return None
    candidates.sort(key=lambda b: str(b.get("first_started_at") or b.get("started_at") or ""))
    body = candidates[-1]
    RestoreStatus.from_json(body)  # refuses a newer major format version
    body.pop("_key", None)
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
    if alive(body):
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
    prior = RestoreStatus.from_json(plan.prior) if plan.prior is not None else None
    prior_of = {c.target: c for c in prior.collections} if prior else {}
    meta_only = plan.opts.meta_only
    collections = []
    for t in plan.targets:
        pe = prior_of.get(t.target)
        keep = pe if pe is not None and t.action in _CARRIED else None
        files: dict[str, FileStatus] = {}
        for part, f in t.files():
            old = keep.files.get(f.key) if keep else None
            files[f.key] = old or FileStatus(partition=part.partition, rows=f.rows)
        c = CollectionStatus(
            source=t.source,
            target=t.target,
            action=str(getattr(t.action, "value", t.action)),
            created=keep.created if keep else False,
            keys="kept" if t.keep_keys else "new",
            state=CollectionState.SUCCESS if t.action == "done" else CollectionState.PENDING,
            rows_expected=0 if meta_only else int(t.meta.row_count or 0),
            files_total=0 if meta_only else len(files),
            files={} if meta_only else files,
            temp_properties=list(keep.temp_properties) if keep else [],
            indexes=list(keep.indexes) if keep else [],
            aliases=(pe.aliases if pe else None) or {"restored": [], "skipped": []},
            load_state=(pe.load_state if pe else None) or {},
            database_created=keep.database_created if keep else False,
            seconds=keep.seconds if keep else 0.0,
            resumed=keep is not None,
        )
        if keep is not None:
            c.extra = dict(keep.extra)
        c.recount()
        collections.append(c)
    doc = RestoreStatus(
        restore_id=plan.restore_id,
        backup_name=plan.backup,
        backup_id=plan.manifest.id,
        state=RunState.EXECUTING,
        method=str(plan.method or ""),
        method_reason=plan.method_reason,
        meta_only=meta_only,
        fingerprint=plan.fingerprint,
        arguments=plan.arguments,
        target={
            "address": milvus.address,
            "db_name": restore_database(plan.opts.target_db_name, milvus.db_name),
            "server_version": plan.server.version,
            "lite": plan.server.lite,
        },
        storage=ctx.storage.description,
        first_started_at=(prior.first_started_at if prior else None) or now_iso(),
        attempts=(prior.attempts if prior else 0) + 1,
        databases_created=list(prior.databases_created) if prior else [],
        collections=collections,
        errors=list(prior.errors) if prior else [],
    )
    if prior is not None:  # keys of a newer writer, and its format version, are carried over
        doc.format_version, doc.extra = prior.format_version, dict(prior.extra)
    key = status_key(plan.backup, plan.restore_id)
    status = Status(ctx.storage, key, doc, ctx.status_ttl, ctx.status_interval)
    status.start(exclusive=prior is None)
    ctx.log.info("Restore %s status: %s/%s", plan.restore_id, ctx.storage.description, key)
    return status


def reopen(ctx: Context, body: dict[str, Any], *, detached: bool) -> Status:
    """Return the status of a restore read back (to poll, fail or cancel it)."""
    doc = RestoreStatus.from_json(body)
    ttl = ctx.detached_ttl if detached else ctx.status_ttl
    status = Status(ctx.storage, status_key(doc.backup_name, doc.restore_id), doc, ttl)
    if detached:
        status.lease.body["pid"] = None
    return status


def describe(ctx: Context, backup_name: str, restore_id: str) -> dict[str, Any]:
    """Return the stored status of a restore, with per-file detail and ``alive``.

    :raises NotFoundError: no restore of that id for that backup.
    """
    body = read_status(ctx, validate_backup_name(backup_name), restore_id)
    out = public(body, with_files=True)
    out["alive"] = alive(body)
    return out


def list_restores(ctx: Context, backup_name: str) -> list[dict[str, Any]]:
    """Return every restore recorded for a backup, newest first (id, state, alive, targets, times)."""
    name = validate_backup_name(backup_name)
    out = []
    for body in leases.read_leases(ctx.storage, f"{name}/{mf.RESTORES}"):
        if not RestoreStatus.is_status(body):
            continue
        out.append(
            {
                "restore_id": body["restore_id"],
                "backup_name": body.get("backup_name"),
                "state": body.get("state"),
                "alive": alive(body),
                "method": body.get("method"),
                "started_at": body.get("first_started_at") or body.get("started_at"),
                "finished_at": body.get("finished_at"),
                "collections": [
                    {"source": c["source"], "target": c["target"], "state": c["state"]}
                    for c in body["collections"]
                ],
                "totals": totals(body),
                "error": body.get("error"),
            }
        )
    out.sort(key=lambda r: (r["started_at"] or "", r["restore_id"]), reverse=True)
    return out


def cancel(ctx: Context, backup_name: str, restore_id: str) -> dict[str, Any]:
    """Mark a restore as failed (cancelled) so nothing waits on it; import jobs already running go on."""
    name = validate_backup_name(backup_name)
    body = read_status(ctx, name, restore_id)
    if body.get("state") != RunState.EXECUTING:
        return public(body)
    status = reopen(ctx, body, detached=True)
    status.cancelled(RestoreError(f"Restore {restore_id} of backup {name!r} was cancelled."))
    return status.public()
