"""Milvus Backup's backups with real binlogs: a physical backup of ours rewritten as Milvus Backup wrote it.

:func:`as_written_by` is the pure part: the ``BackupInfo`` tree Milvus Backup ``version`` recorded for the
same segments. :func:`make_mb_backup` takes a physical backup of ours (made with
``BackupEngine.create(..., mode="physical")`` from a real Milvus 2.3.5, so its binlogs are Milvus' own bytes)
and stores it as that version of Milvus Backup would have:

* ``"current"`` (``internal/meta/meta_write.go``): the same five meta files, but no sidecar and no marker of
  ours (the Go tool writes neither);
* ``"v0.5"`` (v0.4.30 - v0.5.x, ``core/meta/backup_meta.go``): the task fields (``state_code`` 2 = success,
  ``errorMessage``, ``start_time``/``end_time`` in ms, ``progress`` 100) on the backup and on each
  collection, whole collections in ``collection_meta.json``, ``channel_cp_meta.json``; none of the fields
  added since (properties, aliases, database backups, L0 segments, storage versions, channel names);
* ``"v0.4"`` (v0.4.0 - v0.4.1x, ``core/backup_meta.go``): as v0.5, but reduced collections, no
  ``full_meta.json``, no ``channel_cp_meta.json``, segments without ``group_id`` (so binlogs lie without a
  group folder: ``insert_log/<coll>/<part>/<seg>/<field>/<log>``) and binlogs without ``log_id`` (named by the
  last element of ``log_path``, as Milvus 2.2/2.3 reported them).

The binlogs are copied byte for byte to the keys the version uses (:func:`~...layout.segment_binlogs`).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from airflow_milvus_backup.engine.physical import layout, mbread, mbwrite, sidecar
from airflow_milvus_backup.engine.physical import mbmodel as m

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

CURRENT, V05, V04 = mbwrite.CURRENT, mbwrite.V05, mbwrite.V04
VERSIONS = mbwrite.VERSIONS
_LOGICAL_BITS = 18
T = TypeVar("T", m.BackupInfo, m.CollectionBackupInfo)


def _done(obj: T, started_ms: int, ended_ms: int) -> T:
    """Return ``obj`` with v0.4/v0.5's task fields of a successful backup."""
    return replace(
        obj,
        state_code=int(m.BackupTaskStateCode.BACKUP_SUCCESS),
        error_message="",
        start_time=started_ms,
        end_time=ended_ms,
        progress=100,
    )


def _binlogs(fbs: tuple[m.FieldBinlog, ...], version: str) -> tuple[m.FieldBinlog, ...]:
    def one(b: m.Binlog) -> m.Binlog:
        return replace(b, log_id=layout.log_id_of(b.log_id, b.log_path) if version != V04 else 0)

    return tuple(replace(fb, binlogs=tuple(one(b) for b in fb.binlogs)) for fb in fbs)


def _segment(s: m.SegmentBackupInfo, version: str) -> m.SegmentBackupInfo:
    return m.SegmentBackupInfo(
        segment_id=s.segment_id,
        collection_id=s.collection_id,
        partition_id=s.partition_id,
        num_of_rows=s.num_of_rows,
        binlogs=_binlogs(s.binlogs, version),
        statslogs=_binlogs(s.statslogs, version),
        deltalogs=_binlogs(s.deltalogs, version),
        size=s.size,
        group_id=s.segment_id if version == V05 else 0,
    )


def _collection(c: m.CollectionBackupInfo, version: str) -> m.CollectionBackupInfo:
    if c.l0_segments:
        raise ValueError(f"{c.collection_name} has L0 segments: Milvus Backup {version} knew none")
    parts = tuple(
        m.PartitionBackupInfo(
            partition_id=p.partition_id,
            partition_name=p.partition_name,
            collection_id=p.collection_id,
            segment_backups=tuple(_segment(s, version) for s in p.segment_backups),
            size=p.size,
            load_state=p.load_state,
        )
        for p in c.partition_backups
    )
    return m.CollectionBackupInfo(
        id=c.id,
        collection_id=c.collection_id,
        db_name=c.db_name,
        collection_name=c.collection_name,
        schema=c.schema,
        shards_num=c.shards_num,
        consistency_level=c.consistency_level,
        partition_backups=parts,
        backup_timestamp=c.backup_timestamp,
        size=c.size,
        has_index=c.has_index,
        index_infos=c.index_infos,
        load_state=c.load_state,
        backup_physical_timestamp=c.backup_physical_timestamp,
        channel_checkpoints=c.channel_checkpoints,
    )


def as_written_by(info: m.BackupInfo, version: str, *, started_ms: int, ended_ms: int) -> m.BackupInfo:
    """Return the tree Milvus Backup ``version`` recorded for the segments of ``info`` (pure).

    :param info: a tree as this package writes it (current format).
    :param version: ``"current"``, ``"v0.5"`` or ``"v0.4"``.
    :param started_ms: the backup's start (Unix ms), for v0.4/v0.5's ``start_time``.
    :param ended_ms: its end, for ``end_time``.
    :raises ValueError: an unknown version, or L0 segments in a legacy one.
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown Milvus Backup version {version!r}: one of {VERSIONS}")
    if version == CURRENT:
        return mbwrite.with_sizes(info)
    colls = tuple(_done(_collection(c, version), started_ms, ended_ms) for c in info.collection_backups)
    top = m.BackupInfo(
        id=info.id,
        name=info.name,
        backup_timestamp=info.backup_timestamp,
        collection_backups=colls,
        milvus_version=info.milvus_version,
        rbac_meta=info.rbac_meta,
    )
    return mbwrite.with_sizes(_done(top, started_ms, ended_ms))


def _ms(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None


def _times(storage: Storage, name: str, info: m.BackupInfo) -> tuple[int, int]:
    sc = sidecar.read_sidecar(storage, name)
    fallback = max((c.backup_timestamp for c in info.collection_backups), default=0) >> _LOGICAL_BITS
    started = (_ms(sc.created_at) if sc else None) or fallback
    ended = (_ms(sc.finished_at) if sc else None) or started
    return started, ended


def make_mb_backup(
    storage: Storage, name: str, version: str = CURRENT, *, source: str | None = None
) -> m.BackupInfo:
    """Store backup ``name`` as Milvus Backup ``version`` wrote it, from a physical backup; return its tree.

    :param storage: the backup storage holding ``source``.
    :param name: the backup to write; without ``source``, the physical backup rewritten in place (its sidecar,
        marker and meta files replaced, its binlogs moved where ``version`` keeps them).
    :param version: ``"current"``, ``"v0.5"`` or ``"v0.4"``.
    :param source: a complete physical backup (ours or Milvus Backup's) in ``storage`` to copy from; ``name``
        must not exist yet.
    :raises ValueError: ``name`` exists (with ``source``), or an unknown version.
    """
    src = source or name
    in_place = src == name
    if not in_place and next(iter(storage.list(f"{name}/")), None) is not None:
        raise ValueError(f"backup {name!r} exists already")
    info = mbread.read_meta(storage, src)
    started, ended = _times(storage, src, info)
    renamed = info if in_place else replace(info, name=name, id=uuid.uuid4().hex)
    new = as_written_by(renamed, version, started_ms=started, ended_ms=ended)
    old_keys = {b.source: b.key for b in layout.backup_binlogs(src, info)}
    new_keys = {b.source: b.key for b in layout.backup_binlogs(name, new)}
    assert old_keys.keys() == new_keys.keys()
    if in_place:  # uncommit it first: never a complete-looking half-rewritten backup
        storage.delete([layout.meta_key(name, layout.BACKUP_META)])
    for path, key in new_keys.items():
        if old_keys[path] != key:
            storage.put_bytes(key, storage.get_bytes(old_keys[path]))
    if in_place:
        stale = set(old_keys.values()) - set(new_keys.values())
        stale |= {o.key for o in storage.list(f"{name}/meta/")}
        storage.delete(sorted(stale))
    mbwrite.write_meta(storage, name, new, version=version)
    return new
