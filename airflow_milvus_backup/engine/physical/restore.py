"""Physical restore: binlog import of a backup in Milvus Backup's format (ours or Milvus Backup's own).

The restore facade (:class:`~..restore.engine.RestoreEngine`) plans and sets up a physical restore as a
logical one (the backup's meta read as a manifest: :mod:`.restore_meta`); this module does the data step:

1. :func:`check_binlogs` (before anything is created): every binlog of the selected units exists in the
   backup with the size its meta records; the first missing or truncated object is named, nothing is touched.
2. :func:`check_field_ids` (after the collections are created): the target's field ids are the backup's
   (a binlog import reads the field folders by id).
3. :func:`stage`: when the backup is not in Milvus' own bucket, its units' binlogs are copied (server-side on
   the same endpoint, streamed otherwise: :mod:`.copier`) into Milvus' bucket under
   ``<milvus root>/restore-temp-<restore_id>/``; :func:`cleanup` deletes them after the imports and when the
   restore fails.
4. :func:`submit_jobs`: one raw ``Import`` per unit (:mod:`.importer`), its job id persisted in the restore's
   status before anything waits on it; a job an interrupted attempt submitted is adopted (by id, or found by
   its files through ``ListImportTasks``), never submitted twice.
5. :func:`poll_jobs`: ``GetImportState`` of every running job; a failed job fails the restore with Milvus'
   reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import (
    IntegrityError,
    InvalidArgumentError,
    RestoreError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.physical import importer, kinds, mbcatalog
from airflow_milvus_backup.engine.physical.copy_model import CopyItem, same_endpoint
from airflow_milvus_backup.engine.physical.restore_meta import as_manifest, end_ts, is_physical
from airflow_milvus_backup.engine.restore.context import client_for
from airflow_milvus_backup.engine.restore.status_model import FileState

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.physical.mbmodel import BackupInfo
    from airflow_milvus_backup.engine.progress import Progress
    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.plan import Plan, Target
    from airflow_milvus_backup.engine.restore.status import Status
    from airflow_milvus_backup.engine.storage import Storage
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

#: the restore status' ``extra`` key naming the staging prefix in Milvus' bucket
STAGED = "staged_prefix"
#: the connection settings that name Milvus' bucket (for the message when none is given)
SETTING = (
    "the milvus connection's extra milvus_bucket / milvus_root_path (or milvus_storage_conn_id, or "
    "backup_config's minio section); engine: RestoreEngine(milvus_storage=...)"
)


def load_manifest(storage: Storage, name: str) -> mf.Manifest:
    """Return the manifest of backup ``name``: ours (logical), or a physical backup's meta read as one."""
    sniffed = kinds.sniff_folder(storage, name)
    if sniffed.kind in (kinds.PHYSICAL, kinds.MILVUS_BACKUP) and sniffed.committed:
        info, sidecar = mbcatalog.read_backup(storage, name)
        return as_manifest(name, info, sidecar, str(sniffed.kind))
    return mf.load_manifest(storage, name)


def backup_info(storage: Storage, name: str) -> BackupInfo:
    """Return the meta tree of a physical backup (the units' folders and binlogs)."""
    return mbcatalog.read_backup(storage, name)[0]


def units_of(plan: Plan, info: BackupInfo, t: Target) -> dict[str, importer.ImportUnit]:
    """Return the import units of a target's source collection, by key."""
    for c in info.collection_backups:
        if (c.db_name or "default") == t.meta.db_name and c.collection_name == t.meta.name:
            return {u.key: u for u in importer.import_units(plan.backup, c)}
    raise RestoreError(f"Collection {t.source} is not in the meta of backup {plan.backup!r}.")


_resolved: dict[Any, S3Storage | None] = {}


def milvus_storage_of(ctx: Context) -> S3Storage | None:
    """Return Milvus' own bucket from the context (calling the function that gives it once)."""
    ms = ctx.milvus_storage
    if callable(ms):
        if ms not in _resolved:
            _resolved.clear()  # the last engine's is enough: never grows
            _resolved[ms] = ms()
        return _resolved[ms]
    return ms


def require_milvus_storage(ctx: Context, plan: Plan) -> S3Storage:
    """Return Milvus' own bucket, or raise naming the setting that gives it."""
    ms = milvus_storage_of(ctx)
    if ms is None:
        raise InvalidArgumentError(
            f"Backup {plan.backup!r} is a physical backup: restoring it imports binlogs, which needs Milvus' "
            f"own bucket and root path. Set {SETTING}."
        )
    return ms


# ----------------------------------------------------------------------------------------- checks
def check_binlogs(ctx: Context, plan: Plan, info: BackupInfo) -> None:
    """Check that every binlog of the units to import is in the backup with its recorded size.

    :raises IntegrityError: naming the first missing or truncated object (nothing was touched).
    """
    listed = {o.key: o.size for o in ctx.storage.list(f"{plan.backup}/binlogs/")}
    for t in plan.targets:
        if t.action == "done" or plan.opts.meta_only:
            continue
        for unit in units_of(plan, info, t).values():
            for b in unit.binlogs:
                size = listed.get(b.key)
                if size is None:
                    raise IntegrityError(
                        f"Binlog {b.key!r} of {t.source} (segment {b.segment_id}) is missing from backup "
                        f"{plan.backup!r} in {ctx.storage.description}; nothing was imported. The backup is "
                        "damaged: restore another backup."
                    )
                if b.size and size != b.size:
                    raise IntegrityError(
                        f"Binlog {b.key!r} of {t.source} (segment {b.segment_id}) in backup {plan.backup!r} "
                        f"is {size} bytes, its meta records {b.size} (truncated or replaced); nothing was "
                        "imported. Restore another backup."
                    )


def field_ids(client: MilvusClient, collection: str) -> dict[str, int]:
    """Return a collection's field ids by name (raw ``DescribeCollection``: pymilvus' dict keeps them too)."""
    desc = client.describe_collection(collection)
    return {str(f["name"]): int(f["field_id"]) for f in desc["fields"] if "field_id" in f}


def check_field_ids(c: MilvusClient, t: Target) -> None:
    """Check a target's field ids are the backup's (binlog folders are named by field id).

    :raises UnsupportedError: naming the field whose id differs.
    """
    have = field_ids(c, t.name)
    for f in t.meta.fields:
        want = f.get("field_id")
        if want is None or f["name"] not in have:
            continue
        if have[f["name"]] != int(want):
            raise UnsupportedError(
                f"Field {f['name']!r} of {t.target} has id {have[f['name']]}, the backup's binlogs are "
                f"for id {want}: a binlog import needs the backup's field ids. Restore into a new "
                "collection (let the restore create it), not skip_create onto a collection made otherwise."
            )


# ----------------------------------------------------------------------------------------- staging
def in_milvus_bucket(ctx: Context, milvus_storage: S3Storage) -> bool:
    """Return whether Milvus can import straight from the backup storage (same endpoint, same bucket)."""
    loc = ctx.storage.import_location()
    return (
        loc is not None and loc.bucket == milvus_storage.bucket and same_endpoint(milvus_storage, ctx.storage)
    )


def staging_prefix(restore_id: str) -> str:
    """Return the staging folder of a restore in Milvus' bucket (relative to Milvus' root path)."""
    return f"restore-temp-{restore_id}"


def import_path(ctx: Context, plan: Plan, status: Status, folder: str) -> str:
    """Return the path Milvus' import reads a unit folder (relative to the backup storage's root) from."""
    if not folder:
        return ""
    staged = status.doc.extra.get(STAGED)
    if staged:
        ms = require_milvus_storage(ctx, plan)
        return ms.full_key(f"{staged}/{folder.rstrip('/')}") + "/"
    loc = ctx.storage.import_location()
    if loc is None:
        raise UnsupportedError(f"Milvus cannot import from {ctx.storage.description}.")
    return loc.import_path(folder.rstrip("/")) + "/"


def stage(ctx: Context, plan: Plan, status: Status, info: BackupInfo) -> None:
    """Copy the binlogs of the units still to submit into Milvus' bucket, when the backup is elsewhere."""
    ms = require_milvus_storage(ctx, plan)
    if in_milvus_bucket(ctx, ms):
        return
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

    if not isinstance(ctx.storage, S3Storage):
        raise UnsupportedError(
            f"A physical restore from {ctx.storage.description} needs the backup in S3 (Milvus imports "
            "binlogs from its own bucket; the restore copies them there from an S3 backup)."
        )
    prefix = staging_prefix(plan.restore_id)
    items = []
    for t in plan.targets:
        if t.action == "done":
            continue
        files = status.of(t).files
        for key, unit in units_of(plan, info, t).items():
            if key in files and (files[key].done or files[key].state == FileState.IMPORTING):
                continue
            items += [CopyItem(b.key, f"{prefix}/{b.key}", b.size or None) for b in unit.binlogs]
    with status.lock:
        status.doc.extra[STAGED] = prefix
    status.save()  # before the copy: a failed copy still gets its objects deleted
    if items:
        from airflow_milvus_backup.engine.physical.copier import copy_objects

        report = copy_objects(
            ctx.storage, ms, items, prefix, what=f"Stage backup {plan.backup}", logger=ctx.log
        )
        report.raise_for_vanished()


def cleanup(ctx: Context, status: Status, *, failed: bool = False) -> None:
    """Delete a restore's staged copies from Milvus' bucket (a no-op when nothing was staged).

    :param failed: the restore failed: the copies are kept while a job may still read them (a re-run that
        finishes deletes them).
    """
    staged = status.doc.extra.get(STAGED)
    ms = milvus_storage_of(ctx) if staged else None
    if not staged or ms is None:
        return
    if failed:
        running = [
            k for c in status.doc.collections for k, f in c.files.items() if f.state == FileState.IMPORTING
        ]
        if running:
            ctx.log.warning(
                "Keeping the staged copies under %s: import jobs may still read them (%s); a re-run of the "
                "restore deletes them when it is done",
                ms.full_key(staged),
                ", ".join(running[:3]),
            )
            return
    try:
        keys = [o.key for o in ms.list(f"{staged}/")]
        if keys:
            ms.delete(keys)
        ctx.log.info("Deleted %d staged object(s) under %s", len(keys), ms.full_key(staged))
    except Exception as e:  # noqa: BLE001 - the restore's own outcome matters more
        ctx.log.warning("Could not delete the staged copies under %s: %s; delete them by hand", staged, e)


# ----------------------------------------------------------------------------------------- jobs
def submit_jobs(ctx: Context, milvus: MilvusParams, plan: Plan, status: Status) -> None:
    """Stage if needed, check field ids, and start one import job per pending unit (adopting known jobs)."""
    info = backup_info(ctx.storage, plan.backup)
    stage(ctx, plan, status, info)
    n = adopted = 0
    for t in plan.targets:
        if t.action == "done":
            continue
        c = client_for(milvus, t.db)
        try:
            check_field_ids(c, t)
            known: dict[int, importer.JobState] | None = None
            units = units_of(plan, info, t)
            for part, f in t.files():
                fs = status.of(t).files[f.key]
                if fs.done or (fs.task_id and fs.state == FileState.IMPORTING):
                    continue
                unit = units[f.key]
                files = importer.import_files(
                    import_path(ctx, plan, status, unit.insert_dir),
                    import_path(ctx, plan, status, unit.delta_dir),
                )
                if fs.state == FileState.SUBMITTING:  # an attempt died around the call: did Milvus get it?
                    if known is None:
                        known = importer.list_jobs(c, t.name)
                    job = importer.adoptable(known, files)
                    if job is not None:
                        status.job_submitted(t, f.key, job)
                        adopted += 1
                        continue
                status.file_submitting(t, f.key)
                job = importer.submit(
                    c,
                    t.name,
                    files,
                    importer.import_options(unit, end_ts(plan.manifest, t.meta)),
                    partition="" if unit.l0 else (part.partition or ""),
                )
                status.job_submitted(t, f.key, job)
                n += 1
        finally:
            c.close()
    ctx.log.info("Restore %s: submitted %d binlog import job(s), adopted %d", plan.restore_id, n, adopted)


def poll_jobs(
    ctx: Context, milvus: MilvusParams, plan: Plan, status: Status, progress: Progress | None
) -> bool:
    """Check every running import job once; return whether all are done. A failed job raises."""
    all_done = True
    for t in plan.targets:
        running = status.importing(t)
        if not running:
            continue
        c = client_for(milvus, t.db)
        try:
            for key, fs in running.items():
                if fs.state == FileState.SUBMITTING or fs.task_id is None:
                    raise RestoreError(
                        f"The import job of {key!r} into {t.target} was being submitted when the restore was "
                        "interrupted; run the restore again with the same arguments to adopt or resubmit it."
                    )
                st = importer.job_state(c, fs.task_id)
                if st.state == "failed":
                    reason = st.reason or "unknown reason"
                    status.job_failed(t, key, reason)
                    raise RestoreError(
                        f"Binlog import job {fs.task_id} of {plan.backup}/{key} into {t.target} failed: "
                        f"{reason}. Run the restore again with the same arguments to retry the failed jobs."
                    )
                if st.state == "completed":
                    status.job_done(t, key, st.rows)
                    if progress is not None:
                        progress.add(rows=st.rows)
                else:
                    all_done = False
                    status.job_progress(t, key, st.progress)
        finally:
            c.close()
    status.save()
    if all_done:
        cleanup(ctx, status)
    return all_done


def verify_partitions(c: MilvusClient, t: Target, status: Status) -> dict[str, dict[str, int]]:
    """Compare each partition's ``count(*)`` of a loaded target with the rows its import jobs reported.

    Skipped (``{}``) for a collection with L0 units (their deletes span partitions) and in ``meta_only``.

    :raises IntegrityError: a partition holds other than the rows imported into it (named).
    """
    files = status.of(t).files
    expected: dict[str, int] = {}
    for part, f in t.files():
        if part.partition is None:  # L0 units: deletes across partitions, no per-partition figure
            return {}
        fs = files.get(f.key)
        expected[part.partition] = expected.get(part.partition, 0) + (fs.inserted if fs is not None else 0)
    out = {}
    for p, want in expected.items():
        res = c.query(
            t.name, filter="", output_fields=["count(*)"], partition_names=[p], consistency_level="Strong"
        )
        found = int(res[0]["count(*)"]) if res else 0
        out[p] = {"imported": want, "found": found}
        if found != want:
            raise IntegrityError(
                f"Partition {p!r} of {t.target} holds {found} rows after the binlog import; its import jobs "
                f"reported {want}. Run the restore again with drop_existing=True."
            )
    return out


def report(plan: Plan) -> dict[str, Any]:
    """Return what a physical restore adds to the report (the backup's kind)."""
    return {"backup_kind": (plan.manifest.source or {}).get("backup_kind")}


__all__ = [
    "check_binlogs",
    "check_field_ids",
    "cleanup",
    "is_physical",
    "load_manifest",
    "poll_jobs",
    "stage",
    "submit_jobs",
]
