"""Create, list, get and delete backups (the operations of Milvus Backup's API).

One backup of collections goes:

1. validate the name and the selection (a missing collection fails before anything is written);
2. take the backup's lock (``<name>/meta/locks/<id>.json``): two writers of one name never both proceed;
3. capture each collection's metadata (:mod:`~airflow_milvus_backup.engine.schema`);
4. stream each partition with ``query_iterator`` into zstd Parquet files, reading, encoding and uploading
   overlapping (:class:`_PartitionExport`), partitions and collections in parallel;
5. write the manifest (``<name>/meta/backup_meta.json``) last, then drop the lock.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import arguments as checks
from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import ownership, readers
from airflow_milvus_backup.engine.arrow import (
    arrow_schema,
    dictionary_columns,
    result_to_table,
    rows_to_table,
)
from airflow_milvus_backup.engine.client import MilvusParams, connect, milvus_errors
from airflow_milvus_backup.engine.errors import (
    BackupExistsError,
    BackupInProgressError,
    BackupNotFoundError,
    NotABackupError,
)
from airflow_milvus_backup.engine.names import (
    DEFAULT_DB,
    NAME_RE,
    check_not_empty,
    select_collections,
    validate_backup_name,
)
from airflow_milvus_backup.engine.paging import pk_pages
from airflow_milvus_backup.engine.progress import Progress, ProgressCallback, human_bytes
from airflow_milvus_backup.engine.schema import capture_collection, exported_fields, primary_field
from airflow_milvus_backup.engine.storage import file_sha256

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.backup")

PACKAGE_VERSION = "0.1.0"
_DONE = object()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _use_database(client: MilvusClient, db: str) -> None:
    """Switch ``client`` to database ``db``.

    pymilvus' ``use_database`` first calls DescribeDatabase, which Milvus before 2.4 does not implement. The
    callers only switch to databases the server listed, so there the switch is made without that check.
    """
    config = getattr(client, "_config", None)
    if (getattr(config, "db_name", None) or DEFAULT_DB) == db:
        return
    try:
        client.use_database(db)
    except Exception as e:
        text = str(e).lower()
        if config is None or ("unimplemented" not in text and "describedatabase" not in text):
            raise
        config.db_name = db


def _row_bytes_estimate(fields: list[dict[str, Any]]) -> int:
    size = 16
    for f in fields:
        dim = int(f.get("params", {}).get("dim", 0) or 0)
        t = f["type"]
        if t == "FLOAT_VECTOR":
            size += 4 * dim
        elif t in ("FLOAT16_VECTOR", "BFLOAT16_VECTOR"):
            size += 2 * dim
        elif t == "BINARY_VECTOR":
            size += dim // 8
        elif t in ("VARCHAR", "JSON", "ARRAY", "SPARSE_FLOAT_VECTOR"):
            size += 64
        else:
            size += 8
    return size


class _PartitionExport:
    """Stream one partition (or a whole collection) into Parquet data files.

    A reader thread pulls pages of rows from Milvus (:meth:`_pages`: ``query_iterator``'s requests, pages
    kept columnar; network bound, releases the GIL) into a small queue; this thread converts them to Arrow
    column by column (:func:`~airflow_milvus_backup.engine.arrow.result_to_table`) and writes Parquet to a
    temporary file; finished files go to the shared upload pool. Memory is bounded by the page size
    (``batch_bytes``), the queue depth and the in-flight uploads.
    """

    def __init__(
        self,
        engine: BackupEngine,
        client: MilvusClient,
        backup: str,
        meta: dict[str, Any],
        partition: str | None,
        uploads: ThreadPoolExecutor,
        upload_slots: threading.Semaphore,
        progress: Progress,
    ) -> None:
        self.engine = engine
        self.client = client
        self.backup = backup
        self.meta = meta
        self.partition = partition
        self.uploads = uploads
        self.upload_slots = upload_slots
        self.progress = progress
        self.fields = exported_fields(meta)
        self.all_names = {f["name"] for f in meta["fields"]}
        self.schema = arrow_schema(self.fields, meta["enable_dynamic_field"])
        self.pk = primary_field(meta)["name"]
        self.snapshot_ts: int | None = None

    def _reader(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            row_bytes = _row_bytes_estimate(self.fields)
            batch = max(256, min(16384, self.engine.batch_bytes // row_bytes))
            output = ["*"] if self.meta["enable_dynamic_field"] else [f["name"] for f in self.fields]
            for page in self._pages(batch, output, stop):
                q.put(page)
            q.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the writer thread
            q.put(e)

    def _pages(self, batch: int, output: list[str], stop: threading.Event) -> Iterator[Any]:
        """Yield the partition's rows page by page, in primary-key order, all read at one timestamp.

        ``query_iterator`` sets the iteration up (the MVCC timestamp); the pages are then read with the
        requests its ``next()`` sends (primary-key cursor, the server's iterator mode, that timestamp), but
        through ``MilvusClient.query``, whose pages keep vectors and JSON columnar (protobuf) until a row is
        read. ``next()`` reads every row: a 768-d vector becomes 768 Python floats, which cost the client
        more CPU than all the rest of a backup and left Milvus waiting. The cursor filter is built by
        :func:`~airflow_milvus_backup.engine.paging.pk_pages` (escaped for the server: any key pages
        correctly), never by ``next()``, whose cursor pastes the key unescaped. With a pymilvus that has no
        cursor, the pages are read without one snapshot timestamp.
        """
        kwargs: dict[str, Any] = {"batch_size": batch, "output_fields": output}
        if self.partition is not None:
            kwargs["partition_names"] = [self.partition]
        it = self.client.query_iterator(self.meta["name"], **kwargs)
        try:
            session_ts = int(it.get_cursor().session_ts)
        except Exception:  # noqa: BLE001 - older pymilvus
            session_ts = 0
        it.close()
        # without a session timestamp (older pymilvus) pages are read at the latest data, each on its own
        params: dict[str, Any] = {"consistency_level": "Strong"}
        if session_ts:
            self.snapshot_ts = session_ts
            params = {"guarantee_timestamp": session_ts}
        if self.meta.get("collection_id") is not None:
            params["collection_id"] = self.meta["collection_id"]
        yield from pk_pages(
            self.client,
            self.meta["name"],
            pk=self.pk,
            dtype=str(primary_field(self.meta)["type"]),
            output_fields=output,
            batch=batch,
            partition=self.partition,
            params=params,
            stop=stop,
        )

    def run(self) -> dict[str, Any]:
        """Export the partition; return its manifest entry (name, rows, files)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        q: queue.Queue[Any] = queue.Queue(maxsize=self.engine.queue_depth)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._reader,
            args=(q, stop),
            daemon=True,
            name=f"read-{self.meta['name']}-{self.partition}",
        )
        reader.start()
        files: list[Future[dict[str, Any]]] = []
        entry: dict[str, Any] = {"partition": self.partition, "rows": 0, "files": []}
        writer: pq.ParquetWriter | None = None
        sink: pa.NativeFile | None = None
        tmp_path: Path | None = None
        encoded = 0  # bytes of the open file already counted in the progress
        file_rows = 0
        file_bytes = 0
        min_pk: Any = None
        max_pk: Any = None
        index = 0

        def count(rows: int = 0) -> None:
            """Count rows and the Parquet bytes encoded since the last call (progress shows them at once)."""
            nonlocal encoded
            size = sink.tell() if sink is not None else encoded
            self.progress.add(rows=rows, nbytes=size - encoded)
            encoded = size

        def close_file() -> None:
            nonlocal writer, sink, tmp_path, file_rows, file_bytes, min_pk, max_pk, index, encoded
            if writer is None or tmp_path is None or sink is None:
                return
            writer.close()
            count()  # the footer
            sink.close()
            encoded = 0
            key = mf.data_file_key(self.meta["db_name"], self.meta["name"], self.partition, index)
            info = {"key": key, "rows": file_rows, "min_pk": min_pk, "max_pk": max_pk}
            path = tmp_path
            self.upload_slots.acquire()
            files.append(self.uploads.submit(self.engine._upload, self.backup, path, info, self.upload_slots))
            writer, sink, tmp_path = None, None, None
            file_rows, file_bytes, min_pk, max_pk = 0, 0, None, None
            index += 1

        try:
            while True:
                item = q.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                dynamic = self.meta["enable_dynamic_field"]
                table = result_to_table(item, self.fields, self.schema, dynamic, all_names=self.all_names)
                if table is None:
                    rows = list(item)  # reading the rows materializes them
                    table = rows_to_table(rows, self.fields, self.schema, dynamic, all_names=self.all_names)
                if table.num_rows == 0:
                    continue
                order = pc.sort_indices(table, sort_keys=[(self.pk, "ascending")])
                if not np.array_equal(order.to_numpy(), np.arange(len(order))):
                    table = table.take(order)  # pages come sorted: this copy is rarely needed
                if writer is None:
                    fd, name = tempfile.mkstemp(
                        prefix="milvus-backup-", suffix=".parquet", dir=self.engine.tmp_dir
                    )
                    os.close(fd)
                    tmp_path = Path(name)
                    sink = pa.OSFile(str(tmp_path), "wb")
                    writer = pq.ParquetWriter(
                        sink,
                        self.schema,
                        compression="zstd",
                        compression_level=self.engine.zstd_level,
                        use_dictionary=dictionary_columns(self.schema, self.fields),
                    )
                writer.write_table(table)
                del item  # the page (protobuf) is not needed any more
                pks = table.column(self.pk)
                lo, hi = pks[0].as_py(), pks[-1].as_py()
                min_pk = lo if min_pk is None else min(min_pk, lo)
                max_pk = hi if max_pk is None else max(max_pk, hi)
                file_rows += table.num_rows
                file_bytes += table.nbytes
                entry["rows"] += table.num_rows
                count(table.num_rows)
                if file_bytes >= self.engine.file_bytes:
                    close_file()
            close_file()
            entry["files"] = [f.result() for f in files]
        except BaseException:
            stop.set()
            while reader.is_alive():
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)
            for f in files:
                try:
                    f.result()
                except BaseException:  # noqa: BLE001,S110 - the first error is the one raised
                    pass
            raise
        finally:
            reader.join(timeout=30)
        entry["snapshot_ts"] = self.snapshot_ts
        return entry


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
    ) -> dict[str, Any]:
        """Back up collections; return a summary (name, id, collections, rows, bytes, seconds).

        :param milvus: how to reach Milvus.
        :param backup_name: the backup's name (the Milvus Backup name rule).
        :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"``; default: every collection
            of ``db_name``.
        :param db_name: database of bare names (default: the connection's database).
        :param overwrite: replace an existing backup of that name.
        :param allow_empty: write a backup even when the selection holds no collection (an empty database);
            without it that is an :class:`EmptyBackupError` and nothing is written.
        """
        name = validate_backup_name(backup_name)
        if isinstance(collection_names, str):
            collection_names = [collection_names]
        db_name = db_name or milvus.db_name or DEFAULT_DB
        started = time.monotonic()
        self.storage.check()
        client = connect(milvus)
        try:
            with milvus_errors(milvus, f"Backup {name!r}"):
                available = self._available(client, milvus, db_name, collection_names)
                selection = select_collections(collection_names, available, db_name)
                check_not_empty(selection, db_name, f"Milvus at {milvus.address}", allow_empty=allow_empty)
                server_version = str(client.get_server_version())
            lock = self._acquire(name, overwrite)
            try:
                # written first (after the lock): from now on the folder is ours, even if this run dies
                self.storage.put_bytes(ownership.marker_key(name), ownership.marker_body(name, lock.id))
                summary = self._create_locked(
                    client, milvus, name, lock.id, selection, server_version, started
                )
            except BaseException:
                self._cleanup_failed(name, keep=lock.key)
                raise
            finally:
                lock.release()
        finally:
            client.close()
        return summary

    def _available(
        self, client: MilvusClient, milvus: MilvusParams, db_name: str, requested: Iterable[str] | None
    ) -> dict[str, list[str]]:
        dbs = {db_name}
        for item in requested or []:
            if isinstance(item, str) and "." in item:
                dbs.add(item.split(".", 1)[0])
        try:
            known = set(client.list_databases())
        except Exception:  # noqa: BLE001 - servers without databases
            known = {DEFAULT_DB}
        out: dict[str, list[str]] = {}
        for db in sorted(dbs & known):
            _use_database(client, db)
            out[db] = list(client.list_collections())
        _use_database(client, milvus.db_name or DEFAULT_DB)
        return out

    def _acquire(self, name: str, overwrite: bool) -> leases.Lease:
        """Take the backup's lock, or raise: exactly one of two concurrent writers proceeds."""
        for attempt in range(3):
            self._check_free(name, overwrite)
            lock = leases.Lease(
                self.storage, f"{name}/{mf.LOCKS}{uuid.uuid4().hex}.json", {"backup": name}, ttl=self.lock_ttl
            )
            lock.write(exclusive=True)
            others = [b for b in self._live_locks(name) if b.get("id") != lock.id]
            if not others and (overwrite or not self.storage.exists(mf.manifest_key(name))):
                lock.start_heartbeat()
                if overwrite:
                    self._clear(name, keep=lock.key)
                return lock
            # Another writer raced us: both step back, and the first to come back wins.
            lock.release()
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
        raise BackupInProgressError(
            f"Backup {name!r} in {self.storage.description} is being written by another process; wait for it "
            "to finish or choose another name."
        )

    def _live_locks(self, name: str) -> list[dict[str, Any]]:
        """Return the bodies of the locks of backup ``name`` whose writers are still alive."""
        return [b for b in leases.read_leases(self.storage, f"{name}/{mf.LOCKS}") if leases.is_alive(b)]

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
        live = self._live_locks(name)
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

    def _clear(self, name: str, keep: str | None = None) -> None:
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

    def _cleanup_failed(self, name: str, keep: str) -> None:
        try:
            self._clear(name, keep=keep)
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
    ) -> dict[str, Any]:
        started_at = _now()
        self.log.info(
            "Backup %s: %d collection(s) from Milvus %s at %s to %s",
            name,
            len(selection),
            server_version,
            milvus.address,
            self.storage.description,
        )
        metas: list[dict[str, Any]] = []
        db_props: dict[str, dict[str, Any]] = {}
        total_rows = 0
        with milvus_errors(milvus, f"Backup {name!r}"):
            for db, coll in selection:
                _use_database(client, db)
                if db not in db_props:
                    db_props[db] = self._db_properties(client, db, server_version, milvus.is_lite)
                meta = capture_collection(client, coll, db)
                stats_rows = int(client.get_collection_stats(coll).get("row_count", 0))
                meta["stats_row_count"] = stats_rows
                total_rows += stats_rows
                metas.append(meta)
        progress = Progress(
            f"Backup {name}",
            total_rows=total_rows,
            logger=self.log,
            callback=self.progress_callback,
            interval=self.progress_interval,
        )
        upload_slots = threading.Semaphore(self.upload_concurrency + self.parallelism)
        loaded_here = self._load_for_export(client, milvus, name, metas)
        part_clients: list[MilvusClient] = []
        try:
            with (
                ThreadPoolExecutor(self.upload_concurrency, thread_name_prefix="upload") as uploads,
                ThreadPoolExecutor(self.parallelism, thread_name_prefix="export") as exports,
            ):
                jobs: list[tuple[dict[str, Any], Future[dict[str, Any]]]] = []
                for meta in metas:
                    part_client = self._client_for(milvus, meta["db_name"])
                    part_clients.append(part_client)
                    has_key = any(f.get("is_partition_key") for f in meta["fields"])
                    parts: list[str | None] = [None] if has_key else list(meta["partitions"])
                    for p in parts:
                        job = _PartitionExport(
                            self, part_client, name, meta, p, uploads, upload_slots, progress
                        )
                        jobs.append((meta, exports.submit(self._run_export, milvus, job)))
                for meta, fut in jobs:
                    meta.setdefault("data", []).append(fut.result())
            for meta in metas:
                self._warn_if_rows_missing(client, meta)
        finally:
            for c in part_clients:
                c.close()
            self._release(client, loaded_here)
        for meta in metas:
            meta["row_count"] = sum(p["rows"] for p in meta["data"])
            snaps = [p.get("snapshot_ts") for p in meta["data"] if p.get("snapshot_ts")]
            meta["snapshot_ts"] = min(snaps) if snaps else None
        files = [f for m in metas for p in m["data"] for f in p["files"]]
        total_bytes = sum(f["size"] for f in files)
        manifest: dict[str, Any] = {
            "format": mf.FORMAT_NAME,
            "format_version": mf.FORMAT_VERSION,
            "name": name,
            "id": backup_id,
            "state": "complete",
            "started_at": started_at,
            "finished_at": _now(),
            "producer": {"package": "airflow-milvus-backup", "version": PACKAGE_VERSION},
            "source": {"address": milvus.address, "lite": milvus.is_lite, "server_version": server_version},
            "server_version": server_version,
            "databases": db_props,
            "collections": metas,
            "totals": {
                "collections": len(metas),
                "rows": sum(m["row_count"] for m in metas),
                "files": len(files),
                "bytes": total_bytes,
            },
        }
        self.storage.put_bytes(mf.manifest_key(name), mf.dumps(manifest))
        progress.report(final=True)
        seconds = round(time.monotonic() - started, 3)
        self.log.info(
            "Backup %s complete: %d collection(s), %s rows, %s in %d file(s), %.1f s",
            name,
            len(metas),
            f"{manifest['totals']['rows']:,}",
            human_bytes(total_bytes),
            len(files),
            seconds,
        )
        return {
            "backup_name": name,
            "backup_id": backup_id,
            "collections": [f"{m['db_name']}.{m['name']}" for m in metas],
            "rows": manifest["totals"]["rows"],
            "bytes": total_bytes,
            "files": len(files),
            "seconds": seconds,
            "storage": self.storage.description,
        }

    def _load_for_export(
        self, client: MilvusClient, milvus: MilvusParams, name: str, metas: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """Load the collections that are not loaded (``query_iterator`` needs it); return those loaded here.

        A released collection (or one Milvus did not load again after a restart) would otherwise fail the
        backup with "collection not loaded". Its captured ``load_state`` stays the original one, and it is
        released again when the export ends.
        """
        loaded: list[tuple[str, str]] = []
        try:
            with milvus_errors(milvus, f"Backup {name!r}"):
                for meta in metas:
                    if meta.get("load_state") == "Loaded":
                        continue
                    _use_database(client, meta["db_name"])
                    self.log.info(
                        "Loading %s.%s for the backup (it is %s; it is released again afterwards)",
                        meta["db_name"],
                        meta["name"],
                        meta.get("load_state"),
                    )
                    client.load_collection(meta["name"])
                    loaded.append((meta["db_name"], meta["name"]))
        except BaseException:
            self._release(client, loaded)
            raise
        return loaded

    def _release(self, client: MilvusClient, loaded: list[tuple[str, str]]) -> None:
        for db, coll in loaded:
            try:
                _use_database(client, db)
                client.release_collection(coll)
            except Exception as e:  # noqa: BLE001 - the backup's own outcome matters more
                self.log.warning("Could not release %s.%s after the backup: %s", db, coll, e)

    def _warn_if_rows_missing(self, client: MilvusClient, meta: dict[str, Any]) -> None:
        """Warn when Milvus counts more rows than the export read (Milvus 2.3 hides its INT64 maximum key).

        A warning, not an error: rows written while the backup ran change the count too.
        """
        exported = sum(p["rows"] for p in meta["data"])
        try:
            _use_database(client, meta["db_name"])
            res = client.query(
                meta["name"], filter="", output_fields=["count(*)"], consistency_level="Strong"
            )
            counted = int(res[0]["count(*)"]) if res else exported
        except Exception as e:  # the check is advisory: the export itself succeeded
            self.log.debug("Could not count the rows of %s.%s: %s", meta["db_name"], meta["name"], e)
            return
        if counted > exported:
            self.log.warning(
                "Milvus counts %d rows in %s.%s but queries returned %d of them to the backup: %d row(s) "
                "are missing from it unless they were written while the backup ran. Milvus 2.3 never "
                "returns a row whose INT64 primary key is 9223372036854775807 to a query; check for one "
                "with a search, and re-key it.",
                counted,
                meta["db_name"],
                meta["name"],
                exported,
                counted - exported,
            )

    def _client_for(self, milvus: MilvusParams, db: str) -> MilvusClient:
        if (milvus.db_name or DEFAULT_DB) == db:
            return connect(milvus)
        from dataclasses import replace

        return connect(replace(milvus, db_name=db))

    def _run_export(self, milvus: MilvusParams, job: _PartitionExport) -> dict[str, Any]:
        what = f"Export of {job.meta['db_name']}.{job.meta['name']}" + (
            f" partition {job.partition}" if job.partition else ""
        )
        with milvus_errors(milvus, what):
            return job.run()

    def _db_properties(self, client: MilvusClient, db: str, version: str, lite: bool) -> dict[str, Any]:
        from airflow_milvus_backup.engine.restore.capabilities import ServerInfo

        if not ServerInfo.detect(version, lite).at_least(2, 4):
            return {}  # no DescribeDatabase before 2.4: calling it logs pymilvus' RPC error
        try:
            d = dict(client.describe_database(db))
        except Exception:  # noqa: BLE001 - not implemented before Milvus 2.4.x
            return {}
        d.pop("name", None)
        return {str(k): str(v) for k, v in d.items()}

    def _upload(
        self, backup: str, path: Path, info: dict[str, Any], slots: threading.Semaphore
    ) -> dict[str, Any]:
        try:
            digest, size = file_sha256(path)
            self.storage.put_file(f"{backup}/{info['key']}", path)
            return {**info, "size": size, "sha256": digest}
        finally:
            path.unlink(missing_ok=True)
            slots.release()

    # ---------------------------------------------------------------------------------------- list/get
    def list(self) -> list[dict[str, Any]]:
        """Return every folder under the root, newest first: name, id, state, size, collections, created time.

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
        folder = ownership.inspect(self.storage, name)
        objs = folder.objects
        created = min((o.last_modified for o in objs), default=None)
        entry: dict[str, Any] = {
            "name": name,
            "size": sum(o.size for o in objs),
            "objects": len(objs),
            "created_at": created.isoformat() if created else None,
            "state": folder.decision.state.value,
            "owned": folder.decision.owned,
            "id": None,
            "collections": [],
        }
        if folder.decision.reason:
            entry.update(reason=folder.decision.reason, error=folder.decision.reason)
        m = folder.manifest
        if m is not None:
            entry.update(
                id=m["id"],
                collections=[f"{c['db_name']}.{c['name']}" for c in m["collections"]],
                rows=(m.get("totals") or {}).get("rows"),
                created_at=m.get("started_at"),
                finished_at=m.get("finished_at"),
                server_version=m.get("server_version"),
            )
        elif folder.live_locks:
            entry.update(id=folder.live_locks[0].get("id"))
        return entry

    def get(self, backup_name: str) -> dict[str, Any]:
        """Return the manifest of a complete backup.

        :raises BackupNotFoundError: no such backup.
        :raises IncompleteBackupError: the backup was interrupted (no manifest).
        :raises ManifestError: the manifest is truncated or invalid.
        """
        return mf.load(self.storage, backup_name)

    def latest(self, prefix: str = "", *, allow_empty: bool = False) -> dict[str, Any]:
        """Return the list entry of the newest complete backup with data whose name starts with ``prefix``.

        :param prefix: only names starting with it count.
        :param allow_empty: also count complete backups without collections.
        :raises BackupNotFoundError: there is none.
        """
        found, empty = choose_latest(self.list(), prefix, allow_empty=allow_empty)
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
        folder = ownership.inspect(self.storage, name, objs)
        if not folder.decision.owned and not force:
            raise NotABackupError(
                f"Refusing to delete {name!r} in {self.storage.description}: {folder.decision.reason} "
                "Remove it by hand, or pass force=True if it really is a backup to delete."
            )
        if not force:
            live = self._live_locks(name)
            if live:
                raise BackupInProgressError(
                    f"Backup {name!r} is being written by another process (pid {live[0].get('pid')}); "
                    "wait for it to finish, or pass force=True."
                )
            readers.refuse_delete_while_read(self.storage, name)
        self._clear(name)
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
        if b["state"] != "complete" or not b["name"].startswith(prefix):
            continue
        if allow_empty or b.get("collections"):
            return b, skipped
        skipped += 1
    return None, skipped


def read_manifest(storage: Storage, backup_name: str) -> dict[str, Any]:
    """Return the checked manifest of a complete backup (see :func:`manifest.load`)."""
    return mf.load(storage, backup_name)
