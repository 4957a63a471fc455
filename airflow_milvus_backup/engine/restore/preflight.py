"""Checks of a backup's objects before a restore touches Milvus: presence and size, sha256 for bulk import."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine import integrity
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import IntegrityError, StorageNotFoundError
from airflow_milvus_backup.engine.restore import rbac_step
from airflow_milvus_backup.engine.restore.options import Method
from airflow_milvus_backup.engine.restore.plan import Action

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry, DataFile
    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.plan import Plan, Target


def check(ctx: Context, plan: Plan) -> None:
    """Check the data objects a planned restore will read, before anything is touched (none for meta_only).

    Every object's presence and size (one listing), its Parquet footer (types, row count, vector dims) and,
    for bulk import, its sha256.

    :raises IntegrityError: an object is missing or does not match the manifest (the message names its key).
    :raises RbacUnsupportedError: ``rbac=True`` onto Milvus Lite (:func:`.rbac_step.snapshot_of`).
    """
    rbac_step.snapshot_of(plan)
    if plan.opts.meta_only:
        return
    if plan.method == Method.BINLOG_IMPORT:
        from airflow_milvus_backup.engine.physical import restore as physical

        physical.require_milvus_storage(ctx, plan)
        physical.check_binlogs(ctx, plan, physical.backup_info(ctx.storage, plan.backup))
        return
    check_listing(ctx, plan)
    integrity.check_footers(ctx.storage, plan.backup, pending_with_meta(plan), ctx.parallelism)
    if plan.method == Method.BULK_IMPORT:
        verify_objects(ctx, plan)


def pending_with_meta(plan: Plan) -> list[tuple[CollectionEntry, DataFile]]:
    """Return the data files this restore will read, each with its collection's entry."""
    out: list[tuple[CollectionEntry, DataFile]] = []
    for t in plan.targets:
        if t.action == Action.DONE:
            continue
        done = set(prior_done(plan, t))
        out.extend((t.meta, f) for _, f in t.files() if f.key not in done)
    return out


def pending_files(plan: Plan) -> list[DataFile]:
    """Return the manifest entries of the data files this restore will read."""
    return [f for _, f in pending_with_meta(plan)]


def check_listing(ctx: Context, plan: Plan) -> None:
    """Compare every data file to read with one listing of ``<backup>/data/`` (key and size).

    A deleted or truncated object fails here, before anything is created in Milvus. A changed byte keeps
    the size: it is caught by the sha256 check of each file before its rows are inserted.
    """
    pending = pending_files(plan)
    if not pending:
        return
    where = ctx.storage.description
    stored = {o.key: o.size for o in ctx.storage.list(f"{plan.backup}/{mf.DATA}")}
    problems = []
    for f in pending:
        key = f"{plan.backup}/{f.key}"
        size = stored.get(key)
        if size is None:
            problems.append(f"Data object {key!r} of backup {plan.backup!r} is missing from {where}")
        elif size != f.size:
            problems.append(
                f"Data object {key!r} of backup {plan.backup!r} in {where} does not match its manifest "
                f"({size} bytes stored, {f.size} in the manifest): it was truncated or replaced"
            )
    if problems:
        more = f" ({len(problems) - 1} more object(s) missing or wrong)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"{problems[0]}{more}: the backup is damaged. Nothing was restored; restore another backup, "
            "or run verify_backup to list every damaged object."
        )
    ctx.log.info("Found the %d data object(s) to restore, of the sizes in the manifest", len(pending))


def verify_objects(ctx: Context, plan: Plan) -> None:
    """Check the sha256 and size of every object a bulk import will read, before anything is touched."""
    jobs = pending_files(plan)
    if not jobs:
        return

    def check(f: DataFile) -> None:
        key = f"{plan.backup}/{f.key}"
        try:
            digest, size = ctx.storage.sha256(key)
        except StorageNotFoundError:
            raise integrity.missing_object(plan.backup, key, ctx.storage.description) from None
        integrity.check_digest(plan.backup, key, digest, size, f, ctx.storage.description)

    with ThreadPoolExecutor(ctx.parallelism * 2, thread_name_prefix="verify") as pool:
        for fut in [pool.submit(check, f) for f in jobs]:
            fut.result()
    ctx.log.info("Checked the sha256 of %d object(s) before submitting the import jobs", len(jobs))


def prior_done(plan: Plan, t: Target) -> list[str]:
    """Return the data files a resumed target already has (recorded ``done``)."""
    for c in (plan.prior or {}).get("collections", []):
        if c["target"] == t.target and t.action == Action.RESUME:
            return [k for k, f in c.get("files", {}).items() if f.get("state") == "done"]
    return []
