"""Create, list, get and delete backups (the operations of Milvus Backup's API).

:class:`BackupEngine` creates backups here; listing, reading and deleting them is :mod:`~.catalog`'s, the
export of one partition :mod:`~.export`'s, the manifest's model :mod:`~.manifest`'s.

One backup of collections goes:

1. validate the name and the selection (a missing collection fails before anything is written);
2. take the backup's lock (``<name>/meta/locks/<id>.json``): two writers of one name never both proceed;
3. capture each collection's metadata (:mod:`~airflow_milvus_backup.engine.schema`);
4. stream each partition with ``query_iterator`` into zstd Parquet files, reading, encoding and uploading
   overlapping (:class:`~.export.PartitionExport`), partitions and collections in parallel;
5. write the manifest (``<name>/meta/backup_meta.json``) last, then drop the lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup import DISTRIBUTION, __version__
from airflow_milvus_backup.engine import arguments as checks
from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import ownership, readers, server_api
from airflow_milvus_backup.engine.catalog import Catalog
from airflow_milvus_backup.engine.client import MilvusParams, connect, milvus_errors
from airflow_milvus_backup.engine.client import server_version as version_of
from airflow_milvus_backup.engine.clock import now_iso
from airflow_milvus_backup.engine.errors import (
    BackupExistsError,
    BackupInProgressError,
    NotABackupError,
)
from airflow_milvus_backup.engine.export import (
    ExportSettings,
    PartitionExport,
    warn_if_rows_missing,
)
from airflow_milvus_backup.engine.export_loading import load_for_export, release
from airflow_milvus_backup.engine.names import (
    DEFAULT_DB,
    check_not_empty,
    select_collections,
    validate_backup_name,
)
from airflow_milvus_backup.engine.progress import Progress, ProgressCallback, human_bytes
from airflow_milvus_backup.engine.rbac_server import capture_for_backup, rbac_counts
from airflow_milvus_backup.engine.schema import capture_collection
from airflow_milvus_backup.engine.server_api import use_database

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.physical.backup import PhysicalOptions
    from airflow_milvus_backup.engine.storage import Storage
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

log = logging.getLogger("airflow_milvus_backup.engine.backup")


class BackupEngine:
    """Create, list, get and delete backups in one storage.

    :param storage: where backups live (:class:`~airflow_milvus_backup.engine.storage.S3Storage` or
        :class:`~airflow_milvus_backup.engine.storage.LocalStorage`).
    :param parallelism: partitions exported at the same time.
    :param file_bytes: roll over to a new data file after about this many (uncompressed) bytes.
    :param batch_bytes: target size of one page of rows read from Milvus (larger pages cost memory, not time:
        see bench/).
    :param logger: where progress lines go.
    :param progress_callback: also called with progress figures.
    :param progress_interval: seconds between progress lines.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        parallelism: int = 2,
        file_bytes: int = 64 * 1024 * 1024,
        batch_bytes: int = 2 * 1024 * 1024,
        queue_depth: int = 2,
        upload_concurrency: int = 2,
        zstd_level: int = 1,
        logger: logging.Logger | None = None,
        progress_callback: ProgressCallback | None = None,
        progress_interval: float = 5.0,
        tmp_dir: str | None = None,
        lock_ttl: float = leases.DEFAULT_TTL,
    ) -> None:
        self.storage = storage
        # checked here, before any work: nothing is read, written or created with a bad argument
        self.parallelism = checks.count(parallelism, "parallelism", maximum=1024)
        self.file_bytes = checks.count(file_bytes, "file_bytes", maximum=1 << 40)
        self.batch_bytes = checks.count(batch_bytes, "batch_bytes", maximum=1 << 34)
        self.queue_depth = checks.count(queue_depth, "queue_depth", maximum=1024)
        self.upload_concurrency = checks.count(upload_concurrency, "upload_concurrency", maximum=1024)
        self.zstd_level = checks.count(zstd_level, "zstd_level", minimum=-7, maximum=22)
        self.log = logger or log
        self.progress_callback = progress_callback
        self.progress_interval = checks.seconds(progress_interval, "progress_interval")
        self.tmp_dir = checks.directory(tmp_dir, "tmp_dir")
        self.lock_ttl = checks.seconds(lock_ttl, "lock_ttl", minimum=1.0)
        self.catalog = Catalog(storage, self.log)

    # ------------------------------------------------------------------------------------------- create
    def create(
        self,
        milvus: MilvusParams,
        backup_name: str,
        collection_names: Iterable[str] | None = None,
        *,
        db_name: str | None = None,
        overwrite: bool = False,
        allow_empty: bool = False,
        mode: str = "logical",
        milvus_storage: S3Storage | None = None,
        physical: PhysicalOptions | None = None,
        rbac: bool = False,
    ) -> dict[str, Any]:
        """Back up collections; return a summary (name, id, mode, collections, rows, bytes, seconds).

        :param milvus: how to reach Milvus.
        :param backup_name: the backup's name (the Milvus Backup name rule).
        :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"``; default: every collection
            of ``db_name``.
        :param db_name: database of bare names (default: the connection's database).
        :param overwrite: replace an existing backup of that name.
        :param allow_empty: write a backup even when the selection holds no collection (an empty database);
            without it that is an :class:`EmptyBackupError` and nothing is written.
        :param mode: ``"logical"`` (rows read with ``query_iterator``), ``"physical"`` (flushed segments'
            binlogs copied from Milvus' bucket in Milvus Backup's format, :mod:`.physical.backup`) or
            ``"auto"`` (physical when ``milvus_storage`` can be read, else logical; the reason is logged).
        :param milvus_storage: Milvus' own bucket (:func:`.physical.milvus_storage.open_milvus_bucket`).
        :param physical: tuning of a physical backup.
        :param rbac: also back up users (with their roles), roles and grants, as Milvus Backup's ``--rbac``
            (:mod:`~.rbac`; never passwords). Milvus Lite has no RBAC: an :class:`UnsupportedError` before
            anything is written. A physical backup stores them as Milvus Backup does (``rbac_meta``).
        """
        from airflow_milvus_backup.engine.physical import backup as physical_backup
        from airflow_milvus_backup.engine.physical import mode as physical_mode

        name = validate_backup_name(backup_name)
        if isinstance(collection_names, str):
            collection_names = [collection_names]
        db_name = db_name or milvus.db_name or DEFAULT_DB
        started = time.monotonic()
        self.storage.check()
        client = connect(milvus)
        try:
            with milvus_errors(milvus, f"Backup {name!r}"):
                server_version = version_of(client, milvus.address)
                # first: a user who may not read RBAC is told so, whatever else it may not do
                rbac_doc = capture_for_backup(client, milvus, name, server_version) if rbac else None
                available = server_api.collections_by_database(
                    client, milvus, db_name, collection_names, self.log
                )
                selection = select_collections(collection_names, available, db_name)
                check_not_empty(selection, db_name, f"Milvus at {milvus.address}", allow_empty=allow_empty)
            mode = physical_mode.resolve_mode(mode, milvus, milvus_storage, self.log)
            lock = self._acquire(name, overwrite)
            try:
                # written first (after the lock): from now on the folder is ours, even if this run dies
                kind = "physical" if mode == "physical" else None
                self.storage.put_bytes(ownership.marker_key(name), ownership.marker_body(name, lock.id, kind))
                if mode == "physical":
                    assert milvus_storage is not None  # resolve_mode checked it
                    run = physical_backup.PhysicalBackup(
                        self.storage, milvus_storage, physical, logger=self.log
                    )
                    with milvus_errors(milvus, f"Backup {name!r}"):
                        summary = run.summary(
                            client, name, lock.id, selection, server_version, started, rbac=rbac_doc
                        )
                else:
                    summary = self._create_locked(
                        client, milvus, name, lock.id, selection, server_version, started, rbac_doc
                    )
            except BaseException:
                self._cleanup_failed(name, keep=lock.key)
                raise
            finally:
                lock.release()
        finally:
            client.close()
        return summary

    def _acquire(self, name: str, overwrite: bool) -> leases.Lease:
        """Take the backup's lock, or raise: exactly one of two concurrent writers proceeds."""
        for attempt in range(3):
            self._check_free(name, overwrite)
            lock = leases.Lease(
                self.storage, f"{name}/{mf.LOCKS}{uuid.uuid4().hex}.json", {"backup": name}, ttl=self.lock_ttl
            )
            lock.write(exclusive=True)
            others = [b for b in self.catalog.live_locks(name) if b.get("id") != lock.id]
            if not others and (overwrite or not self.storage.exists(mf.manifest_key(name))):
                lock.start_heartbeat()
                if overwrite:
                    self.catalog.clear(name, keep=lock.key)
                return lock
            # Another writer raced us: both step back, and the first to come back wins.
            lock.release()
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
        raise BackupInProgressError(
            f"Backup {name!r} in {self.storage.description} is being written by another process; wait for it "
            "to finish or choose another name."
        )

    def _check_free(self, name: str, overwrite: bool) -> None:
        objs = list(self.storage.list(f"{name}/"))
        if objs:
            folder = ownership.inspect(self.storage, name, objs)
            if not folder.decision.owned:
                raise NotABackupError(
                    f"Refusing to back up to {name!r} in {self.storage.description}: "
                    f"{folder.decision.reason} Choose another backup name (overwrite=True never replaces a "
                    "folder that is not a backup)."
                )
        live = self.catalog.live_locks(name)
        if live:
            b = live[0]
            raise BackupInProgressError(
                f"Backup {name!r} in {self.storage.description} is being written by another process "
                f"(host {b.get('host')}, pid {b.get('pid')}, since {b.get('started_at')}); "
                "wait for it to finish "
                "or choose another name."
            )
        if overwrite:
            readers.refuse_delete_while_read(self.storage, name, overwrite=True)
            return
        if self.storage.exists(mf.manifest_key(name)):
            raise BackupExistsError(
                f"Backup {name!r} already exists in {self.storage.description}; "
                "choose another name, delete it, "
                "or pass overwrite=True."
            )
        if objs:
            raise BackupExistsError(
                f"A partial backup {name!r} (interrupted, no manifest) exists in {self.storage.description}; "
                "delete it or pass overwrite=True."
            )

    def _cleanup_failed(self, name: str, keep: str) -> None:
        try:
            self.catalog.clear(name, keep=keep)
            self.log.info("Removed the partial objects of failed backup %s", name)
        except Exception as e:  # noqa: BLE001 - the original error matters more
            self.log.warning(
                "Could not remove the partial objects of failed backup %s: %s; delete it later", name, e
            )

    def _create_locked(
        self,
        client: MilvusClient,
        milvus: MilvusParams,
        name: str,
        backup_id: str,
        selection: list[tuple[str, str]],
        server_version: str,
        started: float,
        rbac_doc: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        started_at = now_iso()
        self.log.info(
            "Backup %s: %d collection(s) from Milvus %s at %s to %s",
            name,
            len(selection),
            server_version,
            milvus.address,
            self.storage.description,
        )
        metas: list[dict[str, Any]] = []
        stats_rows: list[int] = []  # rows the server reported before the export, per collection
        db_props: dict[str, dict[str, Any]] = {}
        with milvus_errors(milvus, f"Backup {name!r}"):
            for db, coll in selection:
                use_database(client, db)
                if db not in db_props:
                    db_props[db] = server_api.database_properties(client, db, server_version, milvus.is_lite)
                meta = capture_collection(client, coll, db, milvus.address)
                stats_rows.append(int(client.get_collection_stats(coll).get("row_count", 0)))
                metas.append(meta)
        progress = Progress(
            f"Backup {name}",
            total_rows=sum(stats_rows),
            logger=self.log,
            callback=self.progress_callback,
            interval=self.progress_interval,
        )
        upload_slots = threading.Semaphore(self.upload_concurrency + self.parallelism)
        settings = ExportSettings(
            file_bytes=self.file_bytes,
            batch_bytes=self.batch_bytes,
            queue_depth=self.queue_depth,
            zstd_level=self.zstd_level,
            tmp_dir=self.tmp_dir,
        )
        loaded_here = load_for_export(client, milvus, name, metas, self.log)
        part_clients: list[MilvusClient] = []
        try:
            with (
                ThreadPoolExecutor(self.upload_concurrency, thread_name_prefix="upload") as uploads,
                ThreadPoolExecutor(self.parallelism, thread_name_prefix="export") as exports,
            ):
                jobs: list[tuple[int, Future[mf.PartitionData]]] = []
                for i, meta in enumerate(metas):
                    part_client = self._client_for(milvus, meta["db_name"])
                    part_clients.append(part_client)
                    has_key = any(f.get("is_partition_key") for f in meta["fields"])
                    parts: list[str | None] = [None] if has_key else list(meta["partitions"])
                    for p in parts:
                        args = (part_client, name, meta, p, uploads, upload_slots, progress)
                        job = PartitionExport(self.storage, settings, *args)
                        jobs.append((i, exports.submit(self._run_export, milvus, job)))
                data: list[list[mf.PartitionData]] = [[] for _ in metas]
                for i, fut in jobs:
                    data[i].append(fut.result())
            for meta, parts_done in zip(metas, data, strict=True):
                warn_if_rows_missing(client, meta, sum(p.rows for p in parts_done), self.log)
        finally:
            for c in part_clients:
                c.close()
            release(client, loaded_here, self.log)
        entries = tuple(
            mf.CollectionEntry.captured(meta, stats_row_count=stats, data=parts_done)
            for meta, stats, parts_done in zip(metas, stats_rows, data, strict=True)
        )
        totals = mf.Totals.of(entries)
        manifest = mf.Manifest(
            name=name,
            id=backup_id,
            started_at=started_at,
            finished_at=now_iso(),
            producer={"package": DISTRIBUTION, "version": __version__},
            source={"address": milvus.address, "lite": milvus.is_lite, "server_version": server_version},
            server_version=server_version,
            databases=db_props,
            collections=entries,
            totals=totals,
            rbac=rbac_doc,
        )
        self.storage.put_bytes(mf.manifest_key(name), manifest.dumps())
        progress.report(final=True)
        seconds = round(time.monotonic() - started, 3)
        self.log.info(
            "Backup %s complete: %d collection(s), %s rows, %s in %d file(s), %.1f s",
            name,
            len(entries),
            f"{totals.rows:,}",
            human_bytes(totals.bytes),
            totals.files,
            seconds,
        )
        return {
            "backup_name": name,
            "backup_id": backup_id,
            "mode": "logical",
            "collections": [c.qualified_name for c in entries],
            "rows": totals.rows,
            "bytes": totals.bytes,
            "files": totals.files,
            "seconds": seconds,
            "storage": self.storage.description,
            **({"rbac": rbac_counts(rbac_doc)} if rbac_doc is not None else {}),
        }

    def _client_for(self, milvus: MilvusParams, db: str) -> MilvusClient:
        if (milvus.db_name or DEFAULT_DB) == db:
            return connect(milvus)

        return connect(milvus, db)

    def _run_export(self, milvus: MilvusParams, job: PartitionExport) -> mf.PartitionData:
        what = f"Export of {job.meta['db_name']}.{job.meta['name']}" + (
            f" partition {job.partition}" if job.partition else ""
        )
        with milvus_errors(milvus, what):
            return job.run()

    # ------------------------------------------------------------------------------ list/get/latest/delete
    def list(self) -> list[dict[str, Any]]:
        """Return every folder under the root, newest first (:meth:`.catalog.Catalog.list`)."""
        return self.catalog.list()

    def get(self, backup_name: str) -> dict[str, Any]:
        """Return the manifest of a complete backup (:meth:`.catalog.Catalog.get`)."""
        return self.catalog.get(backup_name)

    def latest(self, prefix: str = "", *, allow_empty: bool = False) -> dict[str, Any]:
        """Return the newest complete backup named ``prefix*`` (:meth:`.catalog.Catalog.latest`)."""
        return self.catalog.latest(prefix, allow_empty=allow_empty)

    def delete(self, backup_name: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a backup, unless it is written or read by a live restore (:meth:`.catalog.Catalog.delete`).

        :param force: delete even then (that restore then stops with :class:`BackupDeletedError`).
        :raises BackupInProgressError: the backup is being written, or read by a live restore (the message
            names the restore, its host and pid) (without ``force``).
        """
        return self.catalog.delete(backup_name, force=force)
