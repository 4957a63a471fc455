"""Restore by bulk import: one import job per data file (Milvus reads the Parquet from the backup's bucket).

Import jobs already submitted are polled again rather than submitted twice (jobs whose id was never recorded
are found by file name). Polling only reads Milvus' import state; it records each job's progress in the
status.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import IntegrityError, RestoreError
from airflow_milvus_backup.engine.restore.status_model import FileState

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.manifest import DataFile
    from airflow_milvus_backup.engine.progress import Progress
    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.plan import Plan, Target
    from airflow_milvus_backup.engine.restore.status import Status


@contextmanager
def orm(ctx: Context, milvus: MilvusParams, db: str) -> Iterator[str]:
    """Yield an ORM connection alias (bulk import has no MilvusClient method that works on Milvus 2.3)."""
    from pymilvus import connections

    alias = f"restore-{uuid.uuid4().hex[:12]}"
    kw = replace(milvus, db_name=db).client_kwargs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        connections.connect(alias, **kw)
    try:
        yield alias
    finally:
        with suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            connections.disconnect(alias)


def import_path(ctx: Context, plan: Plan, f: DataFile) -> str:
    """Return the path Milvus' bulk import reads a data file from (relative to ``bulk_import_root``)."""
    location = ctx.storage.import_location()
    if location is None:  # the plan chose bulk import only where the storage has an import location
        raise RestoreError(
            f"Bulk import cannot read {ctx.storage.description}: Milvus imports only from S3. Use "
            "method='insert'.",
            retryable=False,
        )
    return location.import_path(f"{plan.backup}/{f.key}", plan.opts.bulk_import_root)


def submit_jobs(ctx: Context, milvus: MilvusParams, plan: Plan, status: Status) -> None:
    """Submit one import job per pending data file (adopting jobs an interrupted attempt submitted)."""
    from pymilvus import utility

    n = 0
    for t in plan.targets:
        if t.action == "done":
            continue
        with orm(ctx, milvus, t.db) as alias:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                known = known_tasks(ctx, utility, t, alias) if t.action == "resume" else {}
                for part, f in t.files():
                    fs = status.of(t).files[f.key]
                    if fs.done or (fs.task_id and fs.state == FileState.IMPORTING):
                        continue
                    path = import_path(ctx, plan, f)
                    adopted = known.get(path)
                    if fs.state == FileState.SUBMITTING and adopted is not None:
                        task_id = adopted
                    else:
                        status.file_submitting(t, f.key)
                        kwargs: dict[str, Any] = {}
                        if not t.partition_key and part.partition:
                            kwargs["partition_name"] = part.partition
                        task_id = utility.do_bulk_insert(t.name, files=[path], using=alias, **kwargs)
                        n += 1
                    status.job_submitted(t, f.key, int(task_id))
    ctx.log.info("Restore %s: submitted %d import job(s)", plan.restore_id, n)


def known_tasks(ctx: Context, utility: Any, t: Target, alias: str) -> dict[str, int]:
    """Return the import jobs Milvus knows for a target, by file path (failed ones left out)."""
    out: dict[str, int] = {}
    try:
        tasks = utility.list_bulk_insert_tasks(collection_name=t.name, using=alias)
    except Exception as e:  # noqa: BLE001 - older servers: nothing to adopt
        ctx.log.warning("Cannot list the import jobs of %s: %s", t.target, e)
        return out
    for task in tasks:
        if getattr(task, "state_name", "") == "Failed":
            continue
        files = getattr(task, "files", "") or ""
        for path in str(files).split(","):
            out[path.strip()] = int(task.task_id)
    return out


def poll_jobs(
    ctx: Context, milvus: MilvusParams, plan: Plan, status: Status, progress: Progress | None
) -> bool:
    """Check every running import job once; return whether all are done. A failed job raises."""
    from pymilvus import utility

    all_done = True
    for t in plan.targets:
        running = status.importing(t)
        if not running:
            continue
        with orm(ctx, milvus, t.db) as alias, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            for key, fs in running.items():
                if fs.state == FileState.SUBMITTING or fs.task_id is None:
                    raise RestoreError(
                        f"The import job of {key!r} into {t.target} was being submitted when the restore "
                        "was interrupted; run the restore again with the same arguments to resume it."
                    )
                st = utility.get_bulk_insert_state(fs.task_id, using=alias)
                state = str(getattr(st, "state_name", ""))
                if state.startswith("Failed"):
                    reason = getattr(st, "failed_reason", "") or "unknown reason"
                    status.job_failed(t, key, reason)
                    raise RestoreError(
                        f"Import job {fs.task_id} of {plan.backup}/{key} into {t.target} failed: "
                        f"{reason}. Run the restore again with the same arguments to retry the failed "
                        "jobs, or use method='insert'."
                    )
                if state == "Completed":
                    rows = int(getattr(st, "row_count", 0) or 0)
                    expected = fs.rows
                    if rows != expected:
                        raise IntegrityError(
                            f"Import job {fs.task_id} of {plan.backup}/{key} into {t.target} imported "
                            f"{rows} rows; the manifest says {expected}."
                        )
                    status.job_done(t, key, rows)
                    if progress is not None:
                        progress.add(rows=rows)
                else:
                    all_done = False
                    status.job_progress(t, key, int(getattr(st, "progress", 0) or 0))
    status.save()
    return all_done
