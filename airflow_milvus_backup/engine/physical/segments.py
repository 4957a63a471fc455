"""Milvus' side of a physical backup: flush a collection, list its flushed segments, find their binlogs.

A physical backup is the binlog files of a collection's *flushed* segments, copied as they are. This module
finds them, as Milvus Backup does (``core/backup/coll_dml_task.go`` and ``coll_plan.go`` of its source):

1. :func:`flush` calls Milvus' raw ``Flush`` RPC (pymilvus' ``flush()`` returns nothing: the RPC's answer
   holds the seal time, the flush timestamp, the sealed segment ids and, on Milvus >= 2.4, the channel
   checkpoints) and waits with ``GetFlushState`` until every segment sealed by it is flushed;
2. :func:`list_segments` lists the collection's persistent segments (``GetPersistentSegmentInfo``) and keeps
   the flushed ones;
3. :func:`discover_segment` lists each segment's objects in Milvus' bucket (``insert_log/<coll>/<part>/<seg>/
   <field>/<log>`` and ``delta_log/<coll>/<part>/<seg>/<log>`` under Milvus' root path; Milvus 2.3.5 has no
   API that names a segment's binlogs) and applies Milvus Backup's checks (:func:`segment_files`, pure):
   every field has the same number of binlogs, and a segment that is not L0 has insert logs.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import IntegrityError, MilvusBackupError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.storage_base import ObjectInfo, Storage

log = logging.getLogger("airflow_milvus_backup.engine.physical")

#: partition id of an L0 segment that applies to every partition (Milvus >= 2.4)
ALL_PARTITIONS = -1

_INSERT_RE = re.compile(r"(?:^|/)insert_log/(\d+)/(-?\d+)/(\d+)/(\d+)/(\d+)$")
_DELTA_RE = re.compile(r"(?:^|/)delta_log/(\d+)/(-?\d+)/(\d+)/(\d+)$")


class SegmentError(IntegrityError):
    """A segment's binlogs in Milvus' bucket are not what Milvus Backup's checks require."""


class FlushTimeoutError(MilvusBackupError):
    """Milvus did not finish flushing a collection in time."""


@dataclass(frozen=True)
class FlushPoint:
    """What Milvus answered to ``Flush`` for one collection.

    :param collection: the collection's name.
    :param segment_ids: segments the flush sealed (and waited for).
    :param flushed_segment_ids: segments that were already flushed.
    :param flush_ts: the flush's hybrid timestamp (every row inserted before it is in a flushed segment).
    :param seal_time: the seal time, seconds since the epoch (Milvus' ``coll_seal_times``).
    :param channel_checkpoints: vchannel -> base64 of the ``MsgPosition`` (Milvus >= 2.4; empty before).
    :param max_channel_ts: the highest channel checkpoint timestamp (0 without checkpoints).
    """

    collection: str
    segment_ids: tuple[int, ...]
    flushed_segment_ids: tuple[int, ...]
    flush_ts: int
    seal_time: int
    channel_checkpoints: dict[str, str] = field(default_factory=dict)
    max_channel_ts: int = 0


@dataclass(frozen=True)
class SegmentRef:
    """One persistent segment as ``GetPersistentSegmentInfo`` lists it."""

    segment_id: int
    collection_id: int
    partition_id: int
    num_rows: int
    state: str
    level: str = "Legacy"
    storage_version: int = 0

    @property
    def is_l0(self) -> bool:
        """Whether this is an L0 (delete-only) segment (Milvus >= 2.4)."""
        return self.level.upper() == "L0"

    @property
    def group_id(self) -> int:
        """Milvus Backup's group id: the segment's own id, 0 for an L0 segment of every partition."""
        return 0 if self.partition_id == ALL_PARTITIONS else self.segment_id


@dataclass(frozen=True)
class Binlog:
    """One binlog object in Milvus' bucket.

    :param key: its key relative to Milvus' root path (``insert_log/...`` or ``delta_log/...``).
    :param log_id: the log id (the key's last part).
    :param size: its size in bytes, as listed.
    :param field_id: the field (insert logs), ``None`` for a delta log.
    """

    key: str
    log_id: int
    size: int
    field_id: int | None = None


@dataclass(frozen=True)
class SegmentFiles:
    """A segment and its binlogs: insert logs per field id (sorted by log id), delta logs."""

    segment: SegmentRef
    insert_logs: dict[int, tuple[Binlog, ...]]
    delta_logs: tuple[Binlog, ...]

    @property
    def size(self) -> int:
        """Bytes of every binlog of the segment."""
        return sum(b.size for b in self.binlogs())

    def binlogs(self) -> list[Binlog]:
        """Every binlog of the segment: insert logs by field, then delta logs."""
        out = [b for fid in sorted(self.insert_logs) for b in self.insert_logs[fid]]
        return out + list(self.delta_logs)


# ------------------------------------------------------------------------------------------------- flush
def flush(client: MilvusClient, collection: str, *, timeout: float = 600.0, poll: float = 0.5) -> FlushPoint:
    """Flush ``collection`` through the raw ``Flush`` RPC and wait until its sealed segments are flushed.

    :param client: a client switched to the collection's database.
    :param collection: the collection's name.
    :param timeout: seconds to wait for the flush to finish.
    :raises FlushTimeoutError: Milvus did not report the segments flushed within ``timeout``.
    """
    from pymilvus.client.call_context import _api_level_md
    from pymilvus.client.prepare import Prepare
    from pymilvus.client.utils import check_status

    handler = client._get_connection()  # noqa: SLF001 - the raw RPC's answer is what pymilvus drops
    context = client._generate_call_context()  # noqa: SLF001
    metadata = _api_level_md(context)
    resp = handler._stub.Flush(Prepare.flush_param([collection]), timeout=timeout, metadata=metadata)  # noqa: SLF001
    check_status(resp.status)
    point = flush_point(collection, resp)
    deadline = time.monotonic() + timeout
    # Wait even when nothing was sealed: deletes of segments flushed earlier reach their delta logs only
    # when the channels' checkpoints pass the flush ts (2.3.5 writes them seconds after Flush returns).
    if point.segment_ids or point.flush_ts:
        while not handler.get_flush_state(
            list(point.segment_ids), collection, point.flush_ts, timeout=timeout, context=context
        ):
            if time.monotonic() > deadline:
                raise FlushTimeoutError(
                    f"Milvus did not finish flushing {collection!r} in {timeout:.0f} s (segments "
                    f"{list(point.segment_ids)}); check the data nodes' health and run the backup again."
                )
            time.sleep(poll)
    log.info(
        "Flushed %s: %d segment(s) sealed, flush ts %d, seal time %d",
        collection,
        len(point.segment_ids),
        point.flush_ts,
        point.seal_time,
    )
    return point


def flush_point(collection: str, resp: Any) -> FlushPoint:
    """Read one collection's :class:`FlushPoint` out of a ``FlushResponse`` message (pure)."""
    seg_ids = (
        tuple(int(i) for i in resp.coll_segIDs[collection].data) if collection in resp.coll_segIDs else ()
    )
    flushed = (
        tuple(int(i) for i in resp.flush_coll_segIDs[collection].data)
        if collection in resp.flush_coll_segIDs
        else ()
    )
    cps: dict[str, str] = {}
    max_ts = 0
    for vch, pos in getattr(resp, "channel_cps", {}).items():
        cps[str(vch)] = base64.b64encode(pos.SerializeToString()).decode("ascii")
        max_ts = max(max_ts, int(pos.timestamp))
    return FlushPoint(
        collection=collection,
        segment_ids=seg_ids,
        flushed_segment_ids=flushed,
        flush_ts=int(resp.coll_flush_ts.get(collection, 0)),
        seal_time=int(resp.coll_seal_times.get(collection, 0)),
        channel_checkpoints=cps,
        max_channel_ts=max_ts,
    )


# ------------------------------------------------------------------------------------------------- list
def list_segments(client: MilvusClient, collection: str) -> list[SegmentRef]:
    """Return the flushed persistent segments of ``collection``, sorted by segment id.

    Segments in any other state (growing, sealed, flushing, dropped) are left out: they are not a complete
    set of binlogs, and those a flush sealed were waited for by :func:`flush`.
    """
    listed = [
        SegmentRef(
            segment_id=int(s.segment_id),
            collection_id=int(s.collection_id),
            partition_id=int(s.partition_id),
            num_rows=int(s.num_rows),
            state=_name(s.state),
            level=_level_name(getattr(s, "level", 0)),
            storage_version=int(getattr(s, "storage_version", 0) or 0),
        )
        for s in client.list_persistent_segments(collection)
    ]
    return flushed_only(listed, collection)


def flushed_only(segments: Iterable[SegmentRef], collection: str = "") -> list[SegmentRef]:
    """Keep the segments in state ``Flushed``, sorted by id; log the others (pure but for the log)."""
    keep: list[SegmentRef] = []
    skipped: list[SegmentRef] = []
    for s in segments:
        (keep if s.state.lower() == "flushed" else skipped).append(s)
    if skipped:
        log.info(
            "Not backed up from %s (not flushed): %s",
            collection,
            ", ".join(f"{s.segment_id} ({s.state})" for s in skipped),
        )
    return sorted(keep, key=lambda s: s.segment_id)


def _name(v: Any) -> str:
    return str(v.name) if hasattr(v, "name") else str(v)


#: ``common.SegmentLevel`` of Milvus' protocol
_LEVELS = {0: "Legacy", 1: "L0", 2: "L1", 3: "L2"}


def _level_name(v: Any) -> str:
    """Return a segment level's name from pymilvus' int (``SegmentLevel``) or name."""
    if isinstance(v, int):
        return _LEVELS.get(v, str(v))
    return _name(v)


# ------------------------------------------------------------------------------------------------- binlogs
def insert_log_dir(seg: SegmentRef) -> str:
    """Return the segment's insert log folder relative to Milvus' root path (with a trailing slash)."""
    return f"insert_log/{seg.collection_id}/{seg.partition_id}/{seg.segment_id}/"


def delta_log_dir(seg: SegmentRef) -> str:
    """Return the segment's delta log folder relative to Milvus' root path (with a trailing slash)."""
    return f"delta_log/{seg.collection_id}/{seg.partition_id}/{seg.segment_id}/"


def discover_segment(milvus_storage: Storage, seg: SegmentRef) -> SegmentFiles:
    """List one segment's binlogs in Milvus' bucket and check them (:func:`segment_files`).

    :param milvus_storage: Milvus' bucket, keys relative to its root path.
    :raises SegmentError: the binlogs fail Milvus Backup's checks.
    """
    inserts = list(milvus_storage.list(insert_log_dir(seg)))
    deltas = list(milvus_storage.list(delta_log_dir(seg)))
    return segment_files(seg, inserts, deltas)


def segment_files(
    seg: SegmentRef, inserts: Iterable[ObjectInfo], deltas: Iterable[ObjectInfo]
) -> SegmentFiles:
    """Group a segment's listed objects into :class:`SegmentFiles`, with Milvus Backup's checks (pure).

    :raises SegmentError: a key that is not a binlog of this segment, fields with different numbers of
        binlogs, or a segment that is not L0 without insert logs.
    """
    by_field: dict[int, list[Binlog]] = {}
    for obj in inserts:
        m = _INSERT_RE.search(obj.key)
        if not m or (int(m[1]), int(m[2]), int(m[3])) != (
            seg.collection_id,
            seg.partition_id,
            seg.segment_id,
        ):
            raise SegmentError(
                f"{obj.key!r} in segment {seg.segment_id}'s insert log folder is not one of its binlogs "
                "(expected insert_log/<collection>/<partition>/<segment>/<field>/<log>); Milvus' root path "
                "may be wrong."
            )
        fid = int(m[4])
        by_field.setdefault(fid, []).append(Binlog(obj.key, int(m[5]), int(obj.size), fid))
    counts = {fid: len(logs) for fid, logs in by_field.items()}
    if len(set(counts.values())) > 1:
        raise SegmentError(
            f"Segment {seg.segment_id} of collection {seg.collection_id} has fields with different numbers "
            f"of binlogs ({', '.join(f'field {k}: {v}' for k, v in sorted(counts.items()))}): its files in "
            "Milvus' bucket are incomplete (being written or garbage-collected); run the backup again."
        )
    if not by_field and not seg.is_l0:
        raise SegmentError(
            f"Segment {seg.segment_id} of collection {seg.collection_id} ({seg.num_rows} rows) has no insert "
            f"logs under {insert_log_dir(seg)!r} in Milvus' bucket: the bucket or root path is not Milvus' "
            "own, or the segment was compacted away; check the Milvus storage setting and run the backup "
            "again."
        )
    delta: list[Binlog] = []
    for obj in deltas:
        m = _DELTA_RE.search(obj.key)
        if not m or (int(m[1]), int(m[2]), int(m[3])) != (
            seg.collection_id,
            seg.partition_id,
            seg.segment_id,
        ):
            raise SegmentError(
                f"{obj.key!r} in segment {seg.segment_id}'s delta log folder is not one of its delta logs "
                "(expected delta_log/<collection>/<partition>/<segment>/<log>)."
            )
        delta.append(Binlog(obj.key, int(m[4]), int(obj.size)))
    return SegmentFiles(
        segment=seg,
        insert_logs={fid: tuple(sorted(v, key=lambda b: b.log_id)) for fid, v in sorted(by_field.items())},
        delta_logs=tuple(sorted(delta, key=lambda b: b.log_id)),
    )


def check_fields(files: SegmentFiles, field_ids: Iterable[int]) -> None:
    """Check that every field of the schema has insert logs in a segment with rows (pure).

    :param field_ids: the schema's field ids (Milvus adds its own system fields 0 and 1).
    :raises SegmentError: a field has no binlog.
    """
    if files.segment.is_l0 or files.segment.num_rows == 0:
        return
    missing = sorted(set(field_ids) - set(files.insert_logs))
    if missing:
        raise SegmentError(
            f"Segment {files.segment.segment_id} of collection {files.segment.collection_id} has no binlogs "
            f"of field(s) {missing} in Milvus' bucket: its files are incomplete; run the backup again."
        )
