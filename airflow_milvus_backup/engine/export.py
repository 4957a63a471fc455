"""Export one partition of a collection into Parquet data files (step 4 of a backup, :mod:`~.backup`).

:class:`PartitionExport` streams the partition with ``query_iterator``'s requests, encodes zstd Parquet and
hands finished files to an upload pool (:func:`upload`), reading, encoding and uploading overlapping.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.arrow import (
    arrow_schema,
    dictionary_columns,
    result_to_table,
    rows_to_table,
)
from airflow_milvus_backup.engine.failures import is_permission_denied
from airflow_milvus_backup.engine.paging import pk_pages
from airflow_milvus_backup.engine.pymilvus_logs import used_client_side_ts
from airflow_milvus_backup.engine.schema import exported_fields, primary_field
from airflow_milvus_backup.engine.server_api import use_database
from airflow_milvus_backup.engine.storage import file_sha256

log = logging.getLogger("airflow_milvus_backup.engine.backup")

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.progress import Progress
    from airflow_milvus_backup.engine.storage import Storage

_DONE = object()


@dataclass(frozen=True)
class ExportSettings:
    """How partitions are exported (checked by :class:`~.backup.BackupEngine`, which documents them)."""

    file_bytes: int
    batch_bytes: int
    queue_depth: int
    zstd_level: int
    tmp_dir: str | None


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


class PartitionExport:
    """Stream one partition (or a whole collection) into Parquet data files.

    A reader thread pulls pages of rows from Milvus (:meth:`_pages`: ``query_iterator``'s requests, pages
    kept columnar; network bound, releases the GIL) into a small queue; this thread converts them to Arrow
    column by column (:func:`~airflow_milvus_backup.engine.arrow.result_to_table`) and writes Parquet to a
    temporary file; finished files go to the shared upload pool. Memory is bounded by the page size
    (``batch_bytes``), the queue depth and the in-flight uploads.
    """

    def __init__(
        self,
        storage: Storage,
        settings: ExportSettings,
        client: MilvusClient,
        backup: str,
        meta: dict[str, Any],
        partition: str | None,
        uploads: ThreadPoolExecutor,
        upload_slots: threading.Semaphore,
        progress: Progress,
    ) -> None:
        self.storage = storage
        self.settings = settings
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
            batch = max(256, min(16384, self.settings.batch_bytes // row_bytes))
            output = ["*"] if self.meta["enable_dynamic_field"] else [f["name"] for f in self.fields]
            for page in self._pages(batch, output, stop):
                q.put(page)
            q.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the writer thread
            q.put(e)

    def _flush_for_iterator_mode(self) -> None:
        """Flush the collection first on a server without MVCC timestamps (Milvus 2.3, Lite).

        Milvus 2.3.5's iterator mode, which the pages are read in, lags rows that are not flushed yet: 10
        rows inserted just before read as 0 for 0.5-3 s while ``count(*)`` saw all 10, and a backup then
        lacked them. A flush (what Milvus Backup does too) makes them visible to it at once.
        """
        try:
            self.client.flush(self.meta["name"])
        except Exception as e:
            if not is_permission_denied(e):
                raise
            log.warning(
                "Milvus did not let the user flush %s: rows written in the last seconds before the backup "
                "may be missing from it (grant the Flush privilege to back up a collection being written)",
                self.meta["name"],
            )

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
        made: list[Any] = []
        client_ts = used_client_side_ts(
            lambda: made.append(self.client.query_iterator(self.meta["name"], **kwargs))
        )
        it = made[0]
        try:
            session_ts = 0 if client_ts else int(it.get_cursor().session_ts)
        except Exception:  # noqa: BLE001 - older pymilvus
            session_ts = 0
        it.close()
        if client_ts:
            self._flush_for_iterator_mode()
        # without the server's session timestamp (Milvus 2.3.5, Lite, older pymilvus) pages are read at the
        # latest data, each on its own: the client's clock is no snapshot of the server's
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

    def run(self) -> mf.PartitionData:
        """Export the partition; return its manifest entry (name, rows, files, snapshot)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        q: queue.Queue[Any] = queue.Queue(maxsize=self.settings.queue_depth)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._reader,
            args=(q, stop),
            daemon=True,
            name=f"read-{self.meta['name']}-{self.partition}",
        )
        reader.start()
        files: list[Future[mf.DataFile]] = []
        partition_rows = 0
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
            files.append(
                self.uploads.submit(upload, self.storage, self.backup, path, info, self.upload_slots)
            )
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
                        prefix="milvus-backup-", suffix=".parquet", dir=self.settings.tmp_dir
                    )
                    os.close(fd)
                    tmp_path = Path(name)
                    sink = pa.OSFile(str(tmp_path), "wb")
                    writer = pq.ParquetWriter(
                        sink,
                        self.schema,
                        compression="zstd",
                        compression_level=self.settings.zstd_level,
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
                partition_rows += table.num_rows
                count(table.num_rows)
                if file_bytes >= self.settings.file_bytes:
                    close_file()
            close_file()
            done = tuple(f.result() for f in files)
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
        return mf.PartitionData(
            partition=self.partition, rows=partition_rows, files=done, snapshot_ts=self.snapshot_ts
        )


def upload(
    storage: Storage, backup: str, path: Path, info: dict[str, Any], slots: threading.Semaphore
) -> mf.DataFile:
    """Upload a finished data file, then delete it; return its manifest entry (with its size and sha256).

    :param storage: the backup storage.
    :param backup: the backup's name.
    :param path: the local file.
    :param info: its ``key`` (relative to the backup's folder), ``rows``, ``min_pk`` and ``max_pk``.
    :param slots: released when done (bounds the files waiting for upload).
    """
    try:
        digest, size = file_sha256(path)
        storage.put_file(f"{backup}/{info['key']}", path)
        return mf.DataFile(size=size, sha256=digest, **info)
    finally:
        path.unlink(missing_ok=True)
        slots.release()


def warn_if_rows_missing(
    client: MilvusClient, meta: dict[str, Any], exported: int, log: logging.Logger
) -> None:
    """Warn when Milvus counts more rows than the export read (Milvus 2.3 hides its INT64 maximum key).

    A warning, not an error: rows written while the backup ran change the count too.

    :param client: a client of the collection's server.
    :param meta: the collection's captured metadata.
    :param exported: the rows the export read.
    :param log: where the warning goes.
    """
    try:
        use_database(client, meta["db_name"])
        res = client.query(meta["name"], filter="", output_fields=["count(*)"], consistency_level="Strong")
        counted = int(res[0]["count(*)"]) if res else exported
    except Exception as e:  # the check is advisory: the export itself succeeded
        log.debug("Could not count the rows of %s.%s: %s", meta["db_name"], meta["name"], e)
        return
    if counted > exported:
        log.warning(
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
