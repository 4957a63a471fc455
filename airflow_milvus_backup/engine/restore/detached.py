"""A restore by bulk import that does not wait: submit its jobs, check them (read-only), complete it later.

:func:`import_jobs` submits the import jobs and, when asked to wait, polls them until done. A restore that
does not wait is *detached* (no owning process; alive while polled): :func:`import_state` checks its jobs
once and records their progress without changing anything in Milvus (what Airflow's triggerer runs), and
:func:`complete` finishes it once every job is done (flush, load, aliases, counts: on a worker).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine.client import MilvusParams, connect, milvus_errors
from airflow_milvus_backup.engine.errors import (
    MilvusBackupError,
    MilvusConnectionError,
    RestoreError,
    StorageConnectionError,
)
from airflow_milvus_backup.engine.names import validate_backup_name
from airflow_milvus_backup.engine.physical import restore as physical
from airflow_milvus_backup.engine.restore import bulk, by_insert, finish
from airflow_milvus_backup.engine.restore.options import Method
from airflow_milvus_backup.engine.restore.plan import plan_from_status
from airflow_milvus_backup.engine.restore.snapshot import server_info
from airflow_milvus_backup.engine.restore.status import EXECUTING, public, totals
from airflow_milvus_backup.engine.restore.status_store import read_status, reopen

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.plan import Plan
    from airflow_milvus_backup.engine.restore.status import Status

#: ``import_state`` answers this while the import jobs are all done and the restore still has to be finished.
IMPORTED = "imported"


def import_jobs(ctx: Context, milvus: MilvusParams, plan: Plan, status: Status, *, wait: bool) -> bool:
    """Submit the import jobs of a restore; wait for them when ``wait``; return whether they are all done.

    Without ``wait`` the restore is detached and ``False`` returned: :func:`import_state` and
    :func:`complete` take it on.
    """
    jobs = _jobs(plan)
    jobs.submit_jobs(ctx, milvus, plan, status)
    if not wait:
        status.detach(ctx.detached_ttl)
        ctx.log.info(
            "Restore %s: import jobs submitted; poll it to finish (restore_id %s)",
            plan.restore_id,
            plan.restore_id,
        )
        return False
    progress = by_insert.progress_of(ctx, plan, status)
    while not jobs.poll_jobs(ctx, milvus, plan, status, progress):
        time.sleep(ctx.poll_interval)
    progress.report(final=True)
    return True


def _jobs(plan: Plan) -> Any:
    """Return the module that submits and polls the plan's import jobs (bulk import, or binlog import)."""
    return physical if plan.method == Method.BINLOG_IMPORT else bulk


def import_state(ctx: Context, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
    """Check the import jobs of a submitted restore once; return a summary. Changes nothing in Milvus.

    Records each job's progress (and the heartbeat) in the restore's status. ``state`` is ``executing`` while
    jobs run, ``imported`` when every job is done (:func:`complete` finishes the restore), ``success`` or
    ``failed`` (with ``error``) when the restore has ended. A restore whose process died is marked failed
    (run it again with the same arguments to resume it).
    """
    name = validate_backup_name(backup_name)
    body = read_status(ctx, name, restore_id)
    if body.get("state") != EXECUTING:
        return summary(body)
    if not body.get("detached"):
        if leases.is_alive(body):
            return summary(body)
        status = reopen(ctx, body, detached=True)
        status.fail(
            RestoreError(
                f"Restore {restore_id} of backup {name!r} was interrupted (its process, pid "
                f"{body.get('pid')} on {body.get('host')}, is gone); run it again with the same "
                "arguments to resume it."
            )
        )
        return summary(status.json())
    if body.get(IMPORTED):
        return summary(body, IMPORTED)
    status = reopen(ctx, body, detached=True)
    with _reopened(ctx, milvus, status, name, restore_id) as (plan, _):
        if _jobs(plan).poll_jobs(ctx, milvus, plan, status, None):
            status.jobs_imported()
        status.save()
    if status.state != EXECUTING:  # a job failed: the status says why
        return summary(status.json())
    return summary(status.json(), IMPORTED if status.doc.imported else None)


def complete(ctx: Context, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
    """Finish a submitted restore whose import jobs are all done (flush, load, aliases, counts).

    Returns the restore's report (as a restore that waits does). A restore that has already ended is
    returned as it is.

    :raises RestoreError: import jobs are still running (wait for :func:`import_state` to answer
        ``imported``).
    """
    name = validate_backup_name(backup_name)
    state = import_state(ctx, milvus, name, restore_id)
    body = read_status(ctx, name, restore_id)
    if state["state"] != IMPORTED:
        if state["state"] == EXECUTING:
            done = state["totals"]
            raise RestoreError(
                f"Restore {restore_id} of backup {name!r} still has import jobs running "
                f"({done['files_done']} of {done['files']} files done); wait until they are done."
            )
        return public(body)
    status = reopen(ctx, body, detached=True)
    with _reopened(ctx, milvus, status, name, restore_id) as (plan, client):
        finish.finish(ctx, client, milvus, plan, status)
    return status.public()


def summary(body: dict[str, Any], state: str | None = None) -> dict[str, Any]:
    """Return what a poller needs to know of a restore (no per-file detail)."""
    return {
        "state": state or body.get("state"),
        "restore_id": body.get("restore_id"),
        "backup_name": body.get("backup_name"),
        "method": body.get("method"),
        "totals": totals(body),
        "error": body.get("error"),
    }


@contextmanager
def _reopened(
    ctx: Context, milvus: MilvusParams, status: Status, name: str, restore_id: str
) -> Iterator[tuple[Plan, MilvusClient]]:
    """Yield the plan of a submitted restore and a client; record a failure of the restore in its status.

    A failure the restore caused (a failed import job, a bad row count) is recorded and not raised: the
    caller returns the status, which says why. A lost connection is raised (the restore may go on).
    """
    manifest = physical.load_manifest(ctx.storage, name)
    client = connect(milvus)
    try:
        with milvus_errors(milvus, f"Restore {restore_id} of backup {name!r}"):
            plan = plan_from_status(status.json(), manifest, server_info(client, milvus))
            try:
                yield plan, client
            except (MilvusConnectionError, StorageConnectionError):
                raise
            except BaseException as e:
                status.fail(e)
                physical.cleanup(
                    ctx, status, failed=True
                )  # staged binlogs of a failed physical restore (else a no-op)
                if not isinstance(e, MilvusBackupError):
                    raise
    finally:
        client.close()
