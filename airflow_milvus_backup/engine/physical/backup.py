"""A physical backup: flush, copy each flushed segment's binlogs server-side, write Milvus Backup's meta.

:class:`PhysicalBackup` runs inside :meth:`~airflow_milvus_backup.engine.backup.BackupEngine.create` (which
takes the backup's lock and writes its ownership marker first, and removes a failed backup's objects), for
one collection after the other:

1. capture the collection (:func:`~..schema.capture_collection`, then :func:`.describe.describe`: Milvus
   Backup's ``CollectionBackupInfo`` without segments);
2. flush it and wait (:func:`.segments.flush`): the backup's *flush point*;
3. list its flushed segments and each one's binlogs in Milvus' bucket, with Milvus Backup's checks
   (:mod:`.segments`);
4. copy them into ``<name>/binlogs/...`` (:mod:`.copier`: server-side ``CopyObject``, each copy checked by
   size and ETag);
5. list the segments again: a segment that is no longer listed (compacted away during the copy) or whose
   objects vanished is *redone*: the collection is flushed again, its segments listed again, the new ones
   copied, and the copies of the segments that are gone deleted; until one listing finds every copied
   segment still there (at most ``max_rounds`` times);
6. when every collection is copied: check every binlog's copy by a listing (present, same size), then write
   Milvus Backup's meta files and our sidecar (size, ETag and a digest of every object: the S3 checksum or
   the copy's MD5 ETag where the server gives one, else its SHA-256 read back; the producer),
   ``backup_meta.json`` last (:func:`.mbwrite.write_meta`). With ``rbac=True``, users, roles
   and grants go into ``BackupInfo.rbac_meta`` (``backup_meta.json`` and ``full_meta.json``), as Milvus
   Backup stores them (:func:`.mbrbac.rbac_meta_from_snapshot`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup import DISTRIBUTION, __version__
from airflow_milvus_backup.engine.clock import now_iso
from airflow_milvus_backup.engine.errors import (
    IntegrityError,
    MilvusBackupError,
)
from airflow_milvus_backup.engine.physical import layout, mbwrite
from airflow_milvus_backup.engine.physical import mbmodel as mb
from airflow_milvus_backup.engine.physical import segments as sg
from airflow_milvus_backup.engine.physical.copier import CopyItem, CopyOptions, CopyResult, copy_objects
from airflow_milvus_backup.engine.physical.describe import describe, with_dynamic_field
from airflow_milvus_backup.engine.physical.digests import sidecar_objects
from airflow_milvus_backup.engine.physical.mbrbac import rbac_counts_of, rbac_meta_from_snapshot
from airflow_milvus_backup.engine.physical.sidecar import Sidecar
from airflow_milvus_backup.engine.progress import human_bytes
from airflow_milvus_backup.engine.rbac import RbacSnapshot
from airflow_milvus_backup.engine.schema import capture_collection
from airflow_milvus_backup.engine.server_api import use_database

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.storage import Storage
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

log = logging.getLogger("airflow_milvus_backup.engine.physical")

#: called after each copy round with the collection (``db.name``) and the round (0, 1, ...)
RoundHook = Callable[[str, int], None]


class CompactionRaceError(MilvusBackupError):
    """A collection's segments kept being compacted away during every copy round."""


@dataclass(frozen=True)
class PhysicalOptions:
    """Tuning of a physical backup.

    :param copy: the copier's options (concurrency, part sizes, checksums); by default a copy with no digest
        from the server (no ``ChecksumSHA256``, no MD5 ETag) is read back for its SHA-256.
    :param flush_timeout: seconds to wait for one flush.
    :param max_rounds: copy rounds per collection before giving up on a collection compacted all along.
    :param after_round: called after each copy round with the collection (``db.name``) and the round number
        (a test compacts the collection there).
    """

    copy: CopyOptions = field(default_factory=lambda: CopyOptions(hash_server_copies=True))
    flush_timeout: float = 600.0
    max_rounds: int = 5
    after_round: RoundHook | None = None


@dataclass
class _Collection:
    """One collection's progress: its info, flush point, and the segments copied so far."""

    qualified: str
    info: mb.CollectionBackupInfo
    point: sg.FlushPoint
    copied: dict[int, tuple[mb.SegmentBackupInfo, list[CopyResult]]] = field(default_factory=dict)
    rounds: int = 0
    redone: list[int] = field(default_factory=list)


class PhysicalBackup:
    """Copy the flushed segments of collections into a backup in Milvus Backup's layout.

    :param storage: the backup storage.
    :param milvus_storage: Milvus' bucket (keys relative to its root path; only read).
    :param options: tuning.
    :param logger: where progress goes.
    :param progress_callback: the copier's progress figures.
    """

    def __init__(
        self,
        storage: Storage,
        milvus_storage: S3Storage,
        options: PhysicalOptions | None = None,
        *,
        logger: logging.Logger | None = None,
        progress_callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.storage = storage
        self.milvus_storage = milvus_storage
        self.options = options or PhysicalOptions()
        self.log = logger or log
        self.progress_callback = progress_callback

    def run(
        self,
        client: MilvusClient,
        name: str,
        backup_id: str,
        selection: Sequence[tuple[str, str]],
        server_version: str,
        rbac: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Back up ``selection`` (``(db, collection)`` pairs) as backup ``name``; return its figures.

        :param rbac: the RBAC captured for ``rbac=True`` (our manifest's ``rbac`` shape), stored as
            ``rbac_meta``; ``None``: none.
        """
        started_at = now_iso()
        rbac_meta = rbac_meta_from_snapshot(RbacSnapshot.from_manifest(rbac)) if rbac is not None else None
        started = time.monotonic()
        done: list[_Collection] = []
        for db, coll in selection:
            use_database(client, db)
            done.append(self._collection(client, name, backup_id, db, coll))
        results = [r for c in done for _seg, rs in c.copied.values() for r in rs]
        self._check_copies(name, results)
        colls = tuple(self._finish_collection(c) for c in done)
        dbs = sorted({c.info.db_name for c in done})
        info = mbwrite.with_sizes(
            mb.BackupInfo(
                id=backup_id,
                name=name,
                collection_backups=colls,
                milvus_version=server_version,
                database_backups=tuple(mb.DatabaseBackupInfo(db_name=d) for d in dbs),
                rbac_meta=rbac_meta,
            )
        )
        files = mbwrite.meta_files(info)
        sidecar = Sidecar(
            name=name,
            id=backup_id,
            producer={"package": DISTRIBUTION, "version": __version__},
            created_at=started_at,
            finished_at=now_iso(),
            milvus_version=server_version,
            objects=sidecar_objects(name, results, files),
        )
        mbwrite.write_meta(self.storage, name, info, sidecar=sidecar)
        rows = sum(s.num_of_rows for c in colls for s in c.segments())
        size = sum(r.size for r in results)
        seconds = round(time.monotonic() - started, 3)
        self.log.info(
            "Physical backup %s complete: %d collection(s), %s rows in %d segment(s), %s in %d binlog(s), "
            "%.1f s",
            name,
            len(colls),
            f"{rows:,}",
            sum(len(c.segments()) for c in colls),
            human_bytes(size),
            len(results),
            seconds,
        )
        return {
            "mode": "physical",
            "collections": [c.qualified for c in done],
            "rows": rows,
            "bytes": size,
            "files": len(results),
            "segments": sum(len(c.copied) for c in done),
            "redone_segments": sorted(i for c in done for i in c.redone),
            "copy_methods": _methods(results),
            **({"rbac": rbac_counts_of(rbac_meta)} if rbac_meta is not None else {}),
        }

    def summary(
        self,
        client: MilvusClient,
        name: str,
        backup_id: str,
        selection: Sequence[tuple[str, str]],
        server_version: str,
        started: float,
        rbac: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the backup; return :meth:`~..backup.BackupEngine.create`'s summary (``started``: monotonic)."""
        figures = self.run(client, name, backup_id, selection, server_version, rbac)
        return {
            "backup_name": name,
            "backup_id": backup_id,
            **figures,
            "seconds": round(time.monotonic() - started, 3),
            "storage": self.storage.description,
        }

    # ------------------------------------------------------------------------------------ one collection
    def _collection(self, client: MilvusClient, name: str, backup_id: str, db: str, coll: str) -> _Collection:
        captured = capture_collection(client, coll, db)
        info = describe(client, coll, captured, backup_id)
        point = sg.flush(client, coll, timeout=self.options.flush_timeout)
        state = _Collection(f"{db}.{coll}", info, point)
        for round_no in range(self.options.max_rounds):
            state.rounds = round_no + 1
            listed = sg.list_segments(client, coll)
            vanished, suspects = self._copy_new(name, state, listed)
            if self.options.after_round is not None:
                self.options.after_round(state.qualified, round_no)
            still = {s.segment_id for s in sg.list_segments(client, coll)}
            for seg_id, err in suspects.items():
                if seg_id in still:
                    raise err  # a listed segment whose files fail the checks: not a compaction
            gone = sorted((set(state.copied) - still) | vanished | set(suspects))
            if not gone:
                return state
            self.log.warning(
                "%s: segment(s) %s were compacted away during the copy; flushing again and copying the "
                "segments that replaced them",
                state.qualified,
                gone,
            )
            self._drop(state, gone)
            state.redone.extend(gone)
            state.point = sg.flush(client, coll, timeout=self.options.flush_timeout)
        raise CompactionRaceError(
            f"The segments of {state.qualified} were compacted away during each of {self.options.max_rounds} "
            "copy rounds; run the backup when compaction is quieter (or raise max_rounds)."
        )

    def _copy_new(
        self, name: str, state: _Collection, listed: list[sg.SegmentRef]
    ) -> tuple[set[int], dict[int, sg.SegmentError]]:
        """Copy the listed segments not copied yet.

        Return the segments whose objects vanished during the copy, and those whose files failed the checks
        (the caller lists again: a segment compacted away and collected in between is redone, not an error).
        """
        fields = {f.field_id for f in state.info.schema.fields} if state.info.schema else set()
        todo: list[tuple[mb.SegmentBackupInfo, dict[str, Any]]] = []
        vanished: set[int] = set()
        suspects: dict[int, sg.SegmentError] = {}
        new = [ref for ref in listed if ref.segment_id not in state.copied]
        for ref, found in zip(new, self._discover(new, fields), strict=True):
            if isinstance(found, sg.SegmentError):
                suspects[ref.segment_id] = found
            else:
                todo.append(self._segment_info(name, found))
        items = [CopyItem(src, dest, size) for seg, srcs in todo for dest, (src, size) in srcs.items()]
        if not items:
            for seg, _ in todo:
                state.copied[seg.segment_id] = (seg, [])
            return vanished, suspects
        report = copy_objects(
            self.milvus_storage,
            self.storage,
            items,
            name,
            self.options.copy,
            what=f"Copy {state.qualified}",
            logger=self.log,
            progress_callback=self.progress_callback,
        )
        by_dest = {r.dest_key: r for r in report.results}
        lost = {it.dest_key for it in report.vanished}
        for seg, srcs in todo:
            if lost & set(srcs):
                vanished.add(seg.segment_id)
                self._delete([by_dest[k].dest_key for k in srcs if k in by_dest])
                continue
            state.copied[seg.segment_id] = (seg, [by_dest[k] for k in srcs])
        return vanished, suspects

    def _discover(
        self, refs: list[sg.SegmentRef], fields: set[int]
    ) -> list[sg.SegmentFiles | sg.SegmentError]:
        """List the segments' binlogs, ``copy.concurrency`` segments at once (in ``refs``' order).

        Listings are round trips, and a store may compute the listed objects' ETags then (a cold listing
        of 40 x 8 MiB objects took rclone 1.2 s, a warm one 0.01 s): one segment after the other, that is a
        serial step growing with the collection.
        """

        def one(ref: sg.SegmentRef) -> sg.SegmentFiles | sg.SegmentError:
            try:
                files = sg.discover_segment(self.milvus_storage, ref)
                sg.check_fields(files, fields)
            except sg.SegmentError as e:
                return e
            return files

        if len(refs) <= 1:
            return [one(r) for r in refs]
        workers = min(len(refs), self.options.copy.concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discover") as pool:
            return list(pool.map(one, refs))

    def _segment_info(self, name: str, files: sg.SegmentFiles) -> tuple[mb.SegmentBackupInfo, dict[str, Any]]:
        """Return the segment's ``SegmentBackupInfo`` and its copies: backup key -> (Milvus key, size)."""
        ref = files.segment
        root = self.milvus_storage.root

        def binlog(b: sg.Binlog) -> mb.Binlog:
            return mb.Binlog(log_id=b.log_id, log_size=b.size, log_path=_join(root, b.key))

        seg = mb.SegmentBackupInfo(
            segment_id=ref.segment_id,
            collection_id=ref.collection_id,
            partition_id=ref.partition_id,
            num_of_rows=ref.num_rows,
            storage_version=ref.storage_version,
            group_id=ref.group_id,
            is_l0=ref.is_l0,
            binlogs=tuple(
                mb.FieldBinlog(field_id=fid, binlogs=tuple(binlog(b) for b in logs))
                for fid, logs in files.insert_logs.items()
            ),
            # as Milvus Backup lists them: one entry (field 0) holding every delta log, even none
            deltalogs=(mb.FieldBinlog(binlogs=tuple(binlog(b) for b in files.delta_logs)),),
            size=files.size,
        )
        by_source = {_join(root, b.key): b for b in files.binlogs()}
        copies = {
            o.key: (by_source[o.source].key, by_source[o.source].size)
            for o in layout.segment_binlogs(name, seg)
        }
        return seg, copies

    def _drop(self, state: _Collection, gone: list[int]) -> None:
        for seg_id in gone:
            entry = state.copied.pop(seg_id, None)
            if entry is not None:
                self._delete([r.dest_key for r in entry[1]])

    def _delete(self, keys: list[str]) -> None:
        if keys:
            self.storage.delete(keys)

    def _finish_collection(self, state: _Collection) -> mb.CollectionBackupInfo:
        """Put the copied segments into their partitions; record the flush point."""
        segs = [seg for seg, _ in state.copied.values()]
        info = state.info
        if info.schema is not None:
            ids = {b.field_id for s in segs for b in s.binlogs}
            info = replace(info, schema=with_dynamic_field(info.schema, ids))
        parts = []
        known = {p.partition_id for p in info.partition_backups}
        for p in info.partition_backups:
            mine = tuple(
                sorted((s for s in segs if s.partition_id == p.partition_id), key=lambda s: s.segment_id)
            )
            parts.append(replace(p, segment_backups=mine, size=sum(s.size for s in mine)))
        orphans = [s.segment_id for s in segs if s.partition_id not in known]
        if orphans:
            # Milvus Backup logs and skips these (milvus#47145): a partition dropped during the backup
            self.log.warning(
                "%s: segments %s belong to no listed partition; left out", state.qualified, orphans
            )
        return replace(
            info,
            partition_backups=tuple(parts),
            size=sum(p.size for p in parts),
            backup_timestamp=state.point.max_channel_ts,
            backup_physical_timestamp=state.point.seal_time,
            channel_checkpoints=dict(state.point.channel_checkpoints),
        )

    def _check_copies(self, name: str, results: list[CopyResult]) -> None:
        """Check by one listing that every copy is in the backup with its size (as Milvus Backup does)."""
        listed = {o.key: o.size for o in self.storage.list(layout.binlogs_prefix(name))}
        for r in results:
            if listed.get(r.dest_key) != r.size:
                got = listed.get(r.dest_key)
                raise IntegrityError(
                    f"The copy {self.storage.description}/{r.dest_key} of {r.source_key!r} is "
                    f"{'missing' if got is None else f'{got} bytes'}, expected {r.size}; run the backup "
                    "again."
                )


def _join(root: str, key: str) -> str:
    return f"{root}/{key}" if root else key


def _methods(results: list[CopyResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out[r.method] = out.get(r.method, 0) + 1
    return out
