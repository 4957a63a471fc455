"""Restore by insert: download each data file, check it, insert its rows in batches; resumable.

Each data file is downloaded to a temporary file, its sha256 and size are checked against the manifest
before any of its rows is inserted, then it is read in record batches (bounded memory) and inserted in
batches, partitions and collections in parallel. A resumed restore redoes every file not recorded ``done``,
each batch's primary keys deleted (in its partition) just before the batch is inserted, so the end result is
exactly the backup's rows. With newly generated keys an interrupted collection cannot be repaired row by
row: if the restore created it, it is dropped and restored again from its first file.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from airflow_milvus_backup.engine import integrity, readers, server_api
from airflow_milvus_backup.engine.client import MilvusParams, milvus_errors
from airflow_milvus_backup.engine.errors import (
    IntegrityError,
    RestoreError,
    RowRejectedError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.failures import (
    FailureKind,
    classify,
    message_of,
    retryable,
)
from airflow_milvus_backup.engine.filters import grammar_of, pk_in
from airflow_milvus_backup.engine.insert import BatchInserter
from airflow_milvus_backup.engine.progress import Progress
from airflow_milvus_backup.engine.refused_rows import misfit_field, rejected_rows_message
from airflow_milvus_backup.engine.restore.context import Context, client_for, milvus_exception
from airflow_milvus_backup.engine.restore.setup import create_collection, create_indexes
from airflow_milvus_backup.engine.restore.status_model import FileState
from airflow_milvus_backup.engine.schema import exported_fields, primary_field
from airflow_milvus_backup.engine.storage import file_sha256

if TYPE_CHECKING:
    import pyarrow as pa
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.manifest import DataFile, PartitionData
    from airflow_milvus_backup.engine.restore.plan import Plan, Target
    from airflow_milvus_backup.engine.restore.status import Status

DELETE_CHUNK = 4096


class Stop(Exception):
    """Raised inside a worker when another worker failed."""


def progress_of(ctx: Context, plan: Plan, status: Status) -> Progress:
    """Return the progress reporter of a restore's pending rows."""
    total = 0
    for t in plan.targets:
        files = status.of(t).files
        total += sum(f.rows for _, f in t.files() if not (f.key in files and files[f.key].done))
    return Progress(
        f"Restore {plan.backup}",
        total_rows=total,
        logger=ctx.log,
        callback=ctx.progress_callback,
        interval=ctx.progress_interval,
    )


def insert_all(ctx: Context, milvus: MilvusParams, plan: Plan, status: Status) -> None:
    """Insert every pending data file; partitions (across collections) in parallel."""
    units: list[tuple[Target, list[tuple[PartitionData, DataFile, bool]]]] = []
    for t in plan.targets:
        if t.action == "done":
            continue
        files = status.of(t).files
        pending = [(p, f) for p, f in t.files() if not files[f.key].done]
        started = [f.key for _, f in pending if files[f.key].state == FileState.STARTED]
        if started and not t.keep_keys:
            restart_collection(ctx, milvus, plan, t, status, started)
            pending = list(t.files())
        # a resumed restore redoes every file not recorded done (deleting each batch's keys first):
        # rows of a file may be in Milvus although its "started" was never written
        resumed = status.of(t).resumed and t.keep_keys
        if pending:
            status.collection_restoring(t)
        by_part: dict[str | None, list[tuple[PartitionData, DataFile, bool]]] = {}
        for p, f in pending:
            redo = resumed
            by_part.setdefault(p.partition, []).append((p, f, redo))
        units.extend((t, items) for items in by_part.values())
    status.save()
    if not units:
        return
    progress = progress_of(ctx, plan, status)
    stop = threading.Event()
    with ThreadPoolExecutor(ctx.parallelism, thread_name_prefix="restore") as pool:
        futures = [
            pool.submit(insert_unit, ctx, milvus, plan, t, items, status, progress, stop)
            for t, items in units
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in done if f.exception() is not None]
        if errors:
            stop.set()
        wait(futures)
    errors = [f.exception() for f in futures if f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Stop)]
    if real:
        raise real[0]  # type: ignore[misc]
    progress.report(final=True)


def restart_collection(
    ctx: Context, milvus: MilvusParams, plan: Plan, t: Target, status: Status, started: list[str]
) -> None:
    """Start a collection with regenerated keys over: its interrupted file cannot be repaired."""
    if not status.of(t).created:
        raise RestoreError(
            f"Cannot resume {t.target}: file(s) {started[:3]} were partly inserted with newly generated "
            "primary keys, which cannot be told apart from the collection's other rows. Delete its rows "
            "(or drop it) and restore again.",
            retryable=False,
        )
    ctx.log.warning(
        "Restarting %s from its first file: it gets new primary keys and was interrupted mid-file",
        t.target,
    )
    c = client_for(milvus, t.db)
    try:
        c.drop_collection(t.name)
        create_collection(ctx, c, plan, t)
        if not t.partition_key:
            have = set(server_api.list_partitions(c, t.name, plan.address))
            for p in t.meta.partitions or ():
                if p not in have:
                    c.create_partition(t.name, p)
        status.collection_restarted(t)
        create_indexes(ctx, c, plan, t, status)
    finally:
        c.close()


def insert_unit(
    ctx: Context,
    milvus: MilvusParams,
    plan: Plan,
    t: Target,
    items: list[tuple[PartitionData, DataFile, bool]],
    status: Status,
    progress: Progress,
    stop: threading.Event,
) -> None:
    """Insert the files of one partition of one target, in order, the next one downloaded ahead."""
    began = time.monotonic()
    with milvus_errors(milvus, f"Restore of {t.source} into {t.target}"):
        c = client_for(milvus, t.db)
        # one per unit: it reads the target's schema once for all its files
        inserter = BatchInserter(c, t.name, exported_fields(t.meta), set() if t.keep_keys else {t.pk})
        fetcher = ThreadPoolExecutor(1, thread_name_prefix="fetch")
        ahead: Future[Path] | None = None
        try:
            for i, (part, f, redo) in enumerate(items):
                if stop.is_set():
                    raise Stop()
                tmp = ahead.result() if ahead is not None else fetch(ctx, plan, f, progress)
                ahead = None
                if i + 1 < len(items):
                    # the next file is downloaded and checked while this one is inserted
                    ahead = fetcher.submit(fetch, ctx, plan, items[i + 1][1], progress)
                insert_file(ctx, milvus, c, inserter, plan, t, part, f, redo, status, progress, stop, tmp)
        finally:
            if ahead is not None:
                with suppress(BaseException):
                    ahead.result().unlink(missing_ok=True)
            fetcher.shutdown()
            c.close()
            status.time_spent(t, time.monotonic() - began)


def fetch(ctx: Context, plan: Plan, f: DataFile, progress: Progress) -> Path:
    """Download a data file to a temporary file and check its size and sha256; return its path."""
    key = f"{plan.backup}/{f.key}"
    fd, tmp_name = tempfile.mkstemp(prefix="milvus-restore-", suffix=".parquet", dir=ctx.tmp_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            ctx.storage.download(key, tmp)
        except StorageNotFoundError:
            readers.check_not_deleted(ctx.storage, plan.backup, plan.restore_id)
            raise integrity.missing_object(plan.backup, key, ctx.storage.description) from None
        digest, size = file_sha256(tmp)
        integrity.check_digest(plan.backup, key, digest, size, f, ctx.storage.description)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    progress.add(nbytes=size)
    return tmp


def insert_file(
    ctx: Context,
    milvus: MilvusParams,
    c: MilvusClient,
    inserter: BatchInserter,
    plan: Plan,
    t: Target,
    part: PartitionData,
    f: DataFile,
    redo: bool,
    status: Status,
    progress: Progress,
    stop: threading.Event,
    tmp: Path,
) -> None:
    """Insert the rows of one downloaded and checked data file (``tmp``, removed afterwards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = f"{plan.backup}/{f.key}"
    partition = None if t.partition_key else part.partition
    try:
        # pre_buffer=False: read a row group at a time, not the whole file into memory up front
        pf = pq.ParquetFile(str(tmp), pre_buffer=False)
        integrity.check_file(plan.backup, key, pf, t.meta, f)
        kinds = integrity.json_kinds_stored(plan.server.lite, plan.server.numbers)
        integrity.check_json_kinds(pf, t.meta, key, kinds, plan.server.label, t.target)
        batch_rows = ctx.insert_batch_rows or auto_batch_rows(pf, ctx.insert_batch_bytes)
        # with new keys, a partly inserted file forces a restart of the collection: recorded at once
        status.file_started(t, f.key)
        n = 0
        for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
            if stop.is_set():
                raise Stop()
            table = pa.Table.from_batches([batch])
            pks = table.column(t.pk).to_pylist() if t.keep_keys else []
            try:
                if redo and pks:
                    delete(ctx, c, t, pks, partition)
                insert(ctx, c, inserter, t, table, pks, partition)
            except Exception as e:
                if classify(e) in (FailureKind.OTHER, FailureKind.REFUSED) and milvus_exception(e):
                    raise RowRejectedError(
                        rejected_rows_message(
                            address=milvus.address,
                            key=key,
                            target=t.target,
                            reason=milvus.scrub(message_of(e)),
                            fields=list(t.meta.fields),
                            suspect=misfit_field(table, exported_fields(t.meta), t.meta.enable_dynamic_field),
                        )
                    ) from e
                raise
            n += table.num_rows
            status.file_progress(t, f.key, n)
            progress.add(rows=table.num_rows)
        if n != f.rows:
            raise IntegrityError(
                f"Data object {key!r} of backup {plan.backup!r} held {n} rows, its manifest says "
                f"{f.rows}; the backup is inconsistent. Verify it (verify_backup) and restore another "
                "one."
            )
        status.file_done(t, f.key, n)
    finally:
        tmp.unlink(missing_ok=True)


def delete(ctx: Context, c: MilvusClient, t: Target, pks: list[Any], partition: str | None) -> None:
    """Delete the rows with primary keys ``pks`` from a target (in chunks)."""
    # the filter is built by filters.pk_in: pymilvus' delete(ids=...) quotes keys without escaping them
    kwargs = {"partition_name": partition} if partition else {}
    dtype, grammar = str(primary_field(t.meta)["type"]), grammar_of(c)
    for i in range(0, len(pks), DELETE_CHUNK):
        c.delete(t.name, filter=pk_in(t.pk, dtype, pks[i : i + DELETE_CHUNK], grammar), **kwargs)


def insert(
    ctx: Context,
    c: MilvusClient,
    inserter: BatchInserter,
    t: Target,
    table: pa.Table,
    pks: list[Any],
    partition: str | None,
) -> None:
    """Insert one batch, retrying transient failures (the keys of a failed attempt are deleted first)."""
    for attempt in Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(6),
        wait=wait_exponential(multiplier=0.5, max=15),
        reraise=True,
        before_sleep=lambda rs: ctx.log.warning(
            "Insert into %s failed (%s); retry %d",
            t.target,
            rs.outcome.exception() if rs.outcome else "",
            rs.attempt_number,
        ),
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1 and pks:
                # The failed call may have landed: remove its rows so the retry cannot duplicate them.
                delete(ctx, c, t, pks, partition)
            inserter.insert(table, partition)


def auto_batch_rows(pf: Any, target_bytes: int) -> int:
    """Return rows per insert call for about ``target_bytes`` per call, from the file's footer."""
    md = pf.metadata
    total = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    per_row = max(1, total // max(1, md.num_rows))
    return int(max(1, min(50_000, target_bytes // per_row)))
