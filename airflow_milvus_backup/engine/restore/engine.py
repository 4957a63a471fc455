"""The :class:`RestoreEngine` facade: plan -> status -> setup -> data (insert or bulk import) -> finish.

Follow one restore through :mod:`.plan` (what will happen, checked before anything is touched),
:mod:`.status` (the persisted, resumable status), :mod:`.setup` (databases, collections, indexes),
:mod:`.by_insert` or :mod:`.bulk` (the rows) and :mod:`.finish` (load state, aliases, counts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import arguments as checks
from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine.client import MilvusParams, connect, milvus_errors
from airflow_milvus_backup.engine.errors import (
    IntegrityError,
    InvalidArgumentError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.names import validate_backup_name
from airflow_milvus_backup.engine.physical import restore as physical
from airflow_milvus_backup.engine.restore import by_insert, detached, finish, preflight, setup, status_store
from airflow_milvus_backup.engine.restore.context import Context, log
from airflow_milvus_backup.engine.restore.options import (
    IMPORT_METHODS,
    Method,
    RestoreOptions,
    check_restore_id,
)
from airflow_milvus_backup.engine.restore.snapshot import prepare
from airflow_milvus_backup.engine.restore.status import Status, public
from airflow_milvus_backup.engine.restore.status_store import open_status, read_status

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.progress import ProgressCallback
    from airflow_milvus_backup.engine.restore.plan import Plan
    from airflow_milvus_backup.engine.storage import Storage
    from airflow_milvus_backup.engine.storage_s3 import S3Storage


class RestoreEngine:
    """Restore backups into Milvus, resumably, and keep each restore's status beside the backup.

    :param storage: where the backups live.
    :param parallelism: partitions inserted at the same time (across collections), and objects checked at
        once.
    :param insert_batch_rows: rows per insert call; ``None`` sizes batches to about ``insert_batch_bytes``.
    :param insert_batch_bytes: target size of one insert call when ``insert_batch_rows`` is ``None``.
    :param logger: where progress lines go.
    :param progress_callback: also called with progress figures.
    :param progress_interval: seconds between progress lines.
    :param tmp_dir: where data files are downloaded (default: the system's temporary directory).
    :param poll_interval: seconds between two checks of import jobs in :meth:`restore` (0.5: the wait after
        the last job completes is what a restore adds to Milvus' import; a ``GetImportState`` per job each).
    :param status_ttl: heartbeat ttl of a running restore's status.
    :param detached_ttl: how long after its last poll a submitted (detached) restore still counts as alive.
    :param status_interval: seconds between two writes of the status for per-file progress (steps that
        resuming depends on are written at once).
    :param milvus_storage: Milvus' own bucket (:func:`~.physical.milvus_storage.open_milvus_bucket`), or a
        function returning it (called only for a physical backup): a physical restore imports binlogs from
        there, staging them under ``<root>/restore-temp-<restore_id>/`` when the backup is elsewhere.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        parallelism: int = 2,
        insert_batch_rows: int | None = None,
        insert_batch_bytes: int = 8 * 1024 * 1024,
        logger: logging.Logger | None = None,
        progress_callback: ProgressCallback | None = None,
        progress_interval: float = 5.0,
        tmp_dir: str | None = None,
        poll_interval: float = 0.5,
        status_ttl: float = leases.DEFAULT_TTL,
        detached_ttl: float = 3600.0,
        status_interval: float = 5.0,
        milvus_storage: S3Storage | Callable[[], S3Storage | None] | None = None,
    ) -> None:
        # checked here, before any work: nothing is created with a bad argument (see engine/arguments.py)
        self.ctx = Context(
            storage=storage,
            log=logger or log,
            parallelism=checks.count(parallelism, "parallelism", maximum=1024),
            insert_batch_rows=(
                None if insert_batch_rows is None else checks.count(insert_batch_rows, "insert_batch_rows")
            ),
            insert_batch_bytes=max(
                64 * 1024, checks.count(insert_batch_bytes, "insert_batch_bytes", maximum=1 << 34)
            ),
            progress_callback=progress_callback,
            progress_interval=checks.seconds(progress_interval, "progress_interval"),
            tmp_dir=checks.directory(tmp_dir, "tmp_dir"),
            poll_interval=checks.seconds(poll_interval, "poll_interval", minimum=0.01, maximum=86_400),
            status_ttl=checks.seconds(status_ttl, "status_ttl", minimum=1.0),
            detached_ttl=checks.seconds(detached_ttl, "detached_ttl", minimum=1.0),
            status_interval=checks.seconds(status_interval, "status_interval"),
            milvus_storage=milvus_storage,
        )
        self.storage = storage
        self.log = self.ctx.log

    # ----------------------------------------------------------------------------------------- public
    def restore(
        self,
        milvus: MilvusParams,
        backup_name: str,
        collection_names: Iterable[str] | None = None,
        options: RestoreOptions | None = None,
        *,
        restore_id: str | None = None,
        wait: bool = True,
        **option_values: Any,
    ) -> dict[str, Any]:
        """Restore collections of a backup and wait until they are complete; return the report.

        :param milvus: the target Milvus; its ``db_name`` is the target database unless ``target_db_name``
            is given.
        :param backup_name: the backup to restore.
        :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"`` (bare names are in
            ``default``, or in the backup's only database); default: every collection of the backup.
        :param options: the :class:`RestoreOptions` (or pass them as keyword arguments, e.g.
            ``collection_suffix="_recover"``; not both).
        :param restore_id: the restore's id (to resume one); default: resume the newest failed or dead restore
            with identical arguments, else a new id.
        :param wait: wait for bulk import jobs (``False``: see :meth:`submit`).
        :raises InvalidArgumentError: bad or conflicting options, two sources onto one target.
        :raises CollectionNotFoundError: a collection that is not in the backup.
        :raises TargetExistsError: a target exists (without ``drop_existing`` or ``skip_create``).
        :raises SchemaMismatchError: ``skip_create`` onto an incompatible collection (the message names the
            field).
        :raises UnsupportedError: the target cannot hold a field, keep the keys, or build an index.
        :raises IntegrityError: a data object does not match the manifest (the message names its key).
        """
        opts = _options(options, option_values)
        return self._run(milvus, backup_name, collection_names, opts, restore_id, wait=wait)

    def submit(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Start a restore and return its status without waiting for bulk import jobs.

        Takes the arguments of :meth:`restore`. Validates, creates the targets, checks the objects' sha256,
        submits one import job per data file and returns the status (``state`` ``executing``, ``restore_id``);
        :meth:`import_state` and :meth:`complete` (or :meth:`poll`) advance it. When the restore goes by
        insert (``method="insert"``, or ``"auto"`` where bulk import cannot work) or is ``meta_only``, there
        is nothing to wait for: the work is done here and the returned status is final (``success``).
        """
        return self.restore(*args, wait=False, **kwargs)

    def import_state(self, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Check the import jobs of a submitted restore once; return a summary. Changes nothing in Milvus.

        ``state`` is ``executing``, ``imported`` (call :meth:`complete`), ``success`` or ``failed``; see
        :func:`.detached.import_state`.
        """
        return detached.import_state(self.ctx, milvus, backup_name, restore_id)

    def complete(self, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Finish a submitted restore whose import jobs are all done (flush, load, aliases, counts).

        :raises RestoreError: import jobs are still running.
        """
        return detached.complete(self.ctx, milvus, backup_name, restore_id)

    def poll(self, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Advance a submitted restore: check its import jobs, finish it when all are done; return its status.

        ``state`` is ``executing`` while jobs run, ``success`` once the collections are loaded, indexed and
        aliased, ``failed`` (with ``error``) when a job failed.
        """
        if self.import_state(milvus, backup_name, restore_id)["state"] == detached.IMPORTED:
            return self.complete(milvus, backup_name, restore_id)
        return public(read_status(self.ctx, validate_backup_name(backup_name), restore_id))

    def status(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Return the stored status of a restore, with per-file detail and ``alive``.

        :raises NotFoundError: no restore of that id for that backup.
        """
        return status_store.describe(self.ctx, backup_name, restore_id)

    def list_restores(self, backup_name: str) -> list[dict[str, Any]]:
        """Return every restore recorded for a backup, newest first (id, state, alive, targets, times)."""
        return status_store.list_restores(self.ctx, backup_name)

    def cancel(self, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Mark a restore as failed (cancelled) so nothing waits on it; import jobs already running go on.

        Milvus has no way to cancel an import job; run the restore again with ``drop_existing=True`` to clean
        up.
        """
        return status_store.cancel(self.ctx, backup_name, restore_id)

    # ----------------------------------------------------------------------------------------- run
    def _run(
        self,
        milvus: MilvusParams,
        backup_name: str,
        collection_names: Iterable[str] | None,
        opts: RestoreOptions,
        restore_id: str | None,
        *,
        wait: bool,
    ) -> dict[str, Any]:
        started = time.monotonic()
        name = validate_backup_name(backup_name)
        if restore_id is not None:
            check_restore_id(restore_id)
        if isinstance(collection_names, str):
            collection_names = [collection_names]
        manifest = physical.load_manifest(self.storage, name)
        client = connect(milvus)
        try:
            with milvus_errors(milvus, f"Restore of backup {name!r}"):
                plan = prepare(self.ctx, client, milvus, manifest, collection_names, opts, restore_id)
                if plan.finished is not None:
                    self.log.info(
                        "Restore %s of backup %s already succeeded; nothing to do", plan.restore_id, name
                    )
                    return public(plan.finished)
                preflight.check(self.ctx, plan)
                status = open_status(self.ctx, plan, milvus)
                try:
                    self._execute(client, milvus, plan, status, wait=wait, started=started)
                except BaseException as e:
                    if isinstance(e, (IntegrityError, UnsupportedError)) and not status.untouched:
                        # data that disagrees with its manifest leaves no target this restore created empty
                        empty = [t for t in plan.targets if status.of(t).created]
                        empty = [t for t in empty if not status.of(t).rows_restored]
                        setup.rollback(self.ctx, client, milvus, setup.UndoLog(collections=empty), status)
                    if plan.method == Method.BINLOG_IMPORT:
                        physical.cleanup(self.ctx, status, failed=True)
                    if status.untouched:
                        status.discard()  # the failed setup was undone: no state is left behind
                    else:
                        status.fail(e)
                    raise
                finally:
                    status.stop()
        finally:
            client.close()
        return status.public()

    def _execute(
        self,
        client: MilvusClient,
        milvus: MilvusParams,
        plan: Plan,
        status: Status,
        *,
        wait: bool,
        started: float,
    ) -> None:
        self.log.info(
            "Restore %s of backup %s: %d collection(s) into %s at %s, method %s%s",
            plan.restore_id,
            plan.backup,
            len(plan.targets),
            plan.server.label,
            milvus.address,
            plan.method,
            f" ({plan.method_reason})" if plan.method_reason else "",
        )
        for t in plan.targets:
            self.log.info(
                "  %s -> %s (%s, %s rows)", t.source, t.target, t.action, f"{t.meta.row_count or 0:,}"
            )
        setup.setup(self.ctx, client, milvus, plan, status)
        if not plan.opts.meta_only:
            if plan.method in IMPORT_METHODS:
                if not detached.import_jobs(self.ctx, milvus, plan, status, wait=wait):
                    return  # detached: import_state and complete take it on
            else:
                by_insert.insert_all(self.ctx, milvus, plan, status)
        finish.finish(self.ctx, client, milvus, plan, status)
        status.took(time.monotonic() - started)
        self.log.info(
            "Restore %s of backup %s complete: %d collection(s), %s rows in %.1f s",
            plan.restore_id,
            plan.backup,
            len(plan.targets),
            f"{status.doc.totals()['rows_restored']:,}",
            time.monotonic() - started,
        )


def _options(options: RestoreOptions | None, values: dict[str, Any]) -> RestoreOptions:
    if options is not None and values:
        raise InvalidArgumentError(
            f"Pass the restore options either as a RestoreOptions or as keyword arguments, not both "
            f"(got options and {sorted(values)})."
        )
    if options is None:
        return RestoreOptions.build(values)
    options.validate()
    return options
