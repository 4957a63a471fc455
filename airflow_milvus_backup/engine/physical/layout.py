"""The keys of a backup in Milvus Backup's format (its ``internal/storage/mpath``), as pure functions.

Relative to the backup root (``<root>/``, our :class:`~..storage.Storage` root)::

    <name>/meta/backup_meta.json         the top level, written last: its presence = the backup exists
    <name>/meta/collection_meta.json     {"infos": [collections without partitions]}
    <name>/meta/partition_meta.json      {"infos": [partitions without segments]}
    <name>/meta/segment_meta.json        {"infos": [segments]}
    <name>/meta/full_meta.json           the whole tree (read first when present)
    <name>/meta/channel_cp_meta.json     v0.5 only: {collection: [{name, position}]}
    <name>/meta/airflow_milvus_backup.json   our sidecar (physical backups made by this package)
    <name>/binlogs/insert_log/<coll>/<part>/<group>/<seg>/<field>/<log>
    <name>/binlogs/delta_log/<coll>/<part>/<group>/<seg>/<log>

The ``<group>`` folder (Milvus Backup's virtual partition for bulk import, the segment id since v0.4) is
there when the segment's ``group_id`` is not 0; older backups (group 0) have no such folder, and neither
have the delta logs of L0 segments (partition ``-1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.names import validate_backup_name

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.mbmodel import BackupInfo, SegmentBackupInfo

META = "meta/"
BACKUP_META = "backup_meta.json"
COLLECTION_META = "collection_meta.json"
PARTITION_META = "partition_meta.json"
SEGMENT_META = "segment_meta.json"
FULL_META = "full_meta.json"
CHANNEL_CP_META = "channel_cp_meta.json"
#: Our sidecar: a name Milvus Backup never reads (it reads only the files above, by name).
SIDECAR = "airflow_milvus_backup.json"
#: Every meta file Milvus Backup writes, in the order our writer writes them (``backup_meta.json`` last).
META_FILES = (FULL_META, COLLECTION_META, PARTITION_META, SEGMENT_META, BACKUP_META)
BINLOGS = "binlogs/"
INSERT_LOG = "insert_log"
DELTA_LOG = "delta_log"
#: The partition id of L0 segments (they span the collection's partitions).
ALL_PARTITION_ID = -1

_INSERT_RE = re.compile(r"^(?:(.+)/)?insert_log/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)$")
_DELTA_RE = re.compile(r"^(?:(.+)/)?delta_log/(\d+)/(-?\d+)/(\d+)/(\d+)$")


def meta_key(name: str, meta_file: str) -> str:
    """Return the key of a meta file of backup ``name`` (e.g. ``meta_key(n, BACKUP_META)``)."""
    return f"{validate_backup_name(name)}/{META}{meta_file}"


def sidecar_key(name: str) -> str:
    """Return the key of our sidecar in backup ``name``."""
    return meta_key(name, SIDECAR)


def binlogs_prefix(name: str) -> str:
    """Return the folder of a backup's binlogs (``<name>/binlogs/``)."""
    return f"{validate_backup_name(name)}/{BINLOGS}"


def group_folder(group_id: int, partition_id: int = 0, *, delta: bool = False) -> int | None:
    """Return the ``<group>`` folder of a segment's logs, or ``None`` when its logs have none.

    :param group_id: the segment's ``group_id`` (0: a backup without groups).
    :param partition_id: the segment's partition (``-1``: an L0 segment, whose delta logs have no group).
    :param delta: for its delta logs.
    """
    if group_id == 0 or (delta and partition_id == ALL_PARTITION_ID):
        return None
    return group_id


def insert_log_dir(
    name: str, collection_id: int, partition_id: int, group_id: int | None, segment_id: int
) -> str:
    """Return the folder of a segment's insert logs in the backup, ending with ``/`` (field folders below).

    :param group_id: the group folder (:func:`group_folder`), ``None`` for none.
    """
    group = "" if group_id is None else f"{group_id}/"
    return f"{binlogs_prefix(name)}{INSERT_LOG}/{collection_id}/{partition_id}/{group}{segment_id}/"


def delta_log_dir(
    name: str, collection_id: int, partition_id: int, group_id: int | None, segment_id: int
) -> str:
    """Return the folder of a segment's delta logs in the backup, ending with ``/``."""
    group = "" if group_id is None else f"{group_id}/"
    return f"{binlogs_prefix(name)}{DELTA_LOG}/{collection_id}/{partition_id}/{group}{segment_id}/"


def insert_log_key(
    name: str,
    collection_id: int,
    partition_id: int,
    group_id: int | None,
    segment_id: int,
    field_id: int,
    log_id: int,
) -> str:
    """Return the key of one insert log (binlog of one field) in the backup."""
    return f"{insert_log_dir(name, collection_id, partition_id, group_id, segment_id)}{field_id}/{log_id}"


def delta_log_key(
    name: str, collection_id: int, partition_id: int, group_id: int | None, segment_id: int, log_id: int
) -> str:
    """Return the key of one delta log in the backup."""
    return f"{delta_log_dir(name, collection_id, partition_id, group_id, segment_id)}{log_id}"


def milvus_insert_log_key(
    root: str, collection_id: int, partition_id: int, segment_id: int, field_id: int, log_id: int
) -> str:
    """Return an insert log's key in Milvus' own bucket (``<root>/insert_log/<c>/<p>/<s>/<f>/<log>``).

    :param root: Milvus' ``rootPath`` (``minio.rootPath``, ``files`` by default; ``""`` for the top).
    """
    base = f"{root.strip('/')}/" if root.strip("/") else ""
    return f"{base}{INSERT_LOG}/{collection_id}/{partition_id}/{segment_id}/{field_id}/{log_id}"


def milvus_delta_log_key(
    root: str, collection_id: int, partition_id: int, segment_id: int, log_id: int
) -> str:
    """Return a delta log's key in Milvus' own bucket (``<root>/delta_log/<coll>/<part>/<seg>/<log>``)."""
    base = f"{root.strip('/')}/" if root.strip("/") else ""
    return f"{base}{DELTA_LOG}/{collection_id}/{partition_id}/{segment_id}/{log_id}"


@dataclass(frozen=True)
class LogPath:
    """A parsed binlog key of Milvus' layout (``root`` is what precedes ``insert_log``/``delta_log``).

    ``field_id`` is ``None`` for a delta log.
    """

    root: str
    collection_id: int
    partition_id: int
    segment_id: int
    field_id: int | None
    log_id: int


def parse_milvus_log_path(path: str) -> LogPath | None:
    """Parse a binlog key of Milvus' layout (``.../insert_log/c/p/s/f/l`` or ``.../delta_log/c/p/s/l``).

    Returns ``None`` when ``path`` is neither (Milvus Backup's ``mpath.ParseInsertLogPath`` rules).
    """
    if path.endswith("/"):
        return None
    m = _INSERT_RE.match(path)
    if m:
        return LogPath(
            m.group(1) or "",
            int(m.group(2)),
            int(m.group(3)),
            int(m.group(4)),
            int(m.group(5)),
            int(m.group(6)),
        )
    m = _DELTA_RE.match(path)
    if m:
        return LogPath(
            m.group(1) or "", int(m.group(2)), int(m.group(3)), int(m.group(4)), None, int(m.group(5))
        )
    return None


def log_id_of(log_id: int, log_path: str) -> int:
    """Return a binlog's id: ``log_id``, or (older meta without it) the last element of its ``log_path``.

    :raises ValueError: neither gives one.
    """
    if log_id:
        return log_id
    tail = log_path.rstrip("/").rsplit("/", 1)[-1]
    if tail.isdigit():
        return int(tail)
    raise ValueError(f"binlog {log_path!r} has no log id")


@dataclass(frozen=True)
class BinlogObject:
    """One binlog of a backup: its key in the backup and the size its meta records.

    :param key: relative to the backup root (``<name>/binlogs/...``).
    :param size: ``log_size`` from the meta (``0`` in meta that does not record it).
    :param source: the ``log_path`` the meta records (its key in Milvus' bucket when backed up).
    :param segment_id: the segment it belongs to.
    :param field_id: the field of an insert log; ``None`` for a delta log.
    """

    key: str
    size: int
    source: str
    segment_id: int
    field_id: int | None


def segment_binlogs(name: str, seg: SegmentBackupInfo) -> list[BinlogObject]:
    """Return where Milvus Backup keeps the insert and delta logs of a segment in backup ``name``.

    Insert logs: ``insert_log/<coll>/<part>/<group>/<seg>/<field>/<log>``; delta logs the same without the
    field (and without the group for L0 segments); no group folder where ``group_id`` is 0.

    :raises ValueError: a binlog has neither a ``log_id`` nor a ``log_path`` ending in one.
    """
    out = []
    group = group_folder(seg.group_id, seg.partition_id)
    for fb in seg.binlogs:
        for b in fb.binlogs:
            log_id = log_id_of(b.log_id, b.log_path)
            key = insert_log_key(
                name, seg.collection_id, seg.partition_id, group, seg.segment_id, fb.field_id, log_id
            )
            out.append(BinlogObject(key, b.log_size, b.log_path, seg.segment_id, fb.field_id))
    dgroup = group_folder(seg.group_id, seg.partition_id, delta=True)
    for fb in seg.deltalogs:
        for b in fb.binlogs:
            log_id = log_id_of(b.log_id, b.log_path)
            key = delta_log_key(name, seg.collection_id, seg.partition_id, dgroup, seg.segment_id, log_id)
            out.append(BinlogObject(key, b.log_size, b.log_path, seg.segment_id, None))
    return out


def backup_binlogs(name: str, info: BackupInfo) -> list[BinlogObject]:
    """Return every binlog a backup's meta lists (every segment of every collection, L0 ones included)."""
    return [b for seg in info.segments() for b in segment_binlogs(name, seg)]


def import_dirs(name: str, seg: SegmentBackupInfo) -> tuple[str, str]:
    """Return the two folders a binlog import of ``seg``'s group reads: its insert and delta log folders.

    These are the group's folders (``.../<part>/<group>/``), as Milvus Backup passes them to the bulk insert
    with ``backup=true``; without a group folder, the partition's.
    """
    group = group_folder(seg.group_id, seg.partition_id)
    g = "" if group is None else f"{group}/"
    base = binlogs_prefix(name)
    return (
        f"{base}{INSERT_LOG}/{seg.collection_id}/{seg.partition_id}/{g}",
        f"{base}{DELTA_LOG}/{seg.collection_id}/{seg.partition_id}/{g}",
    )
