"""Milvus Backup's meta model: the ``backuppb`` structs of its ``core/proto/backup.proto``, typed.

Each class mirrors one Go struct of ``core/proto/backuppb/backup.pb.go`` (zilliztech/milvus-backup):
its fields, their ``json`` tags and ``omitempty``, in declaration order (see :mod:`.gojson` for the encoding).
Fields removed from the current proto but written by v0.4/v0.5 (``state_code``, ``errorMessage``,
``start_time``, ``end_time``, ``progress`` on the backup and on each collection) are ``legacy``: ``None`` when
the struct has none. Integers are Python ints (int64/uint64/enums), repeated fields tuples, maps dicts,
pointers ``None`` when nil. ``from_go_json()`` / ``to_go_json()`` come from :class:`~.gojson.GoStruct`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

from airflow_milvus_backup.engine.physical.gojson import BOOL, INT, MAP_STR, STR, F, GoStruct, ListOf
from airflow_milvus_backup.engine.physical.mbrbac import (
    GrantEntity,
    GrantorEntity,
    ObjectEntity,
    PrivilegeEntity,
    PrivilegeGroupInfo,
    RBACMeta,
    RoleEntity,
    UserEntity,
    UserInfo,
)
from airflow_milvus_backup.engine.physical.mbschema import (
    CollectionSchema,
    ConsistencyLevel,
    DataType,
    FieldSchema,
    FunctionSchema,
    FunctionType,
    IndexInfo,
    KeyValuePair,
    StructArrayFieldSchema,
    kv_dict,
    kv_pairs,
)


class BackupTaskStateCode(IntEnum):
    """``BackupTaskStateCode``: the state a v0.4/v0.5 ``backup_meta.json`` records (current ones write 0)."""

    BACKUP_INITIAL = 0
    BACKUP_EXECUTING = 1
    BACKUP_SUCCESS = 2
    BACKUP_FAIL = 3
    BACKUP_TIMEOUT = 4


def _tuple() -> Any:
    return field(default_factory=tuple)


def _dict() -> Any:
    return field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Binlog(GoStruct):
    """``Binlog``: one binlog object. ``log_path`` is its key in Milvus' bucket when the backup was made."""

    entries_num: int = 0
    timestamp_from: int = 0
    timestamp_to: int = 0
    log_path: str = ""
    log_size: int = 0
    log_id: int = 0
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("entries_num", "entries_num", INT),
        F("timestamp_from", "timestamp_from", INT),
        F("timestamp_to", "timestamp_to", INT),
        F("log_path", "log_path", STR),
        F("log_size", "log_size", INT, omitempty=False),
        F("log_id", "log_id", INT),
    )


@dataclass(frozen=True, kw_only=True)
class FieldBinlog(GoStruct):
    """``FieldBinlog``: the binlogs of one field of a segment (delta logs: field 0 or the pk field)."""

    field_id: int = 0
    binlogs: tuple[Binlog, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("field_id", "fieldID", INT),
        F("binlogs", "binlogs", ListOf(Binlog)),
    )


@dataclass(frozen=True, kw_only=True)
class SegmentBackupInfo(GoStruct):
    """``SegmentBackupInfo``: one sealed segment and its binlogs; ``group_id`` names its import group."""

    segment_id: int = 0
    collection_id: int = 0
    partition_id: int = 0
    num_of_rows: int = 0
    binlogs: tuple[FieldBinlog, ...] = _tuple()
    statslogs: tuple[FieldBinlog, ...] = _tuple()
    deltalogs: tuple[FieldBinlog, ...] = _tuple()
    size: int = 0
    group_id: int = 0
    backuped: bool = False
    is_l0: bool = False
    v_channel: str = ""
    storage_version: int = 0
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("segment_id", "segment_id", INT),
        F("collection_id", "collection_id", INT),
        F("partition_id", "partition_id", INT),
        F("num_of_rows", "num_of_rows", INT),
        F("binlogs", "binlogs", ListOf(FieldBinlog)),
        F("statslogs", "statslogs", ListOf(FieldBinlog)),
        F("deltalogs", "deltalogs", ListOf(FieldBinlog)),
        F("size", "size", INT, omitempty=False),
        F("group_id", "group_id", INT),
        F("backuped", "backuped", BOOL),
        F("is_l0", "is_l0", BOOL),
        F("v_channel", "v_channel", STR),
        F("storage_version", "storage_version", INT),
    )


@dataclass(frozen=True, kw_only=True)
class PartitionBackupInfo(GoStruct):
    """``PartitionBackupInfo``: a partition and (in the tree form) its segments."""

    partition_id: int = 0
    partition_name: str = ""
    collection_id: int = 0
    segment_backups: tuple[SegmentBackupInfo, ...] = _tuple()
    size: int = 0
    load_state: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("partition_id", "partition_id", INT),
        F("partition_name", "partition_name", STR),
        F("collection_id", "collection_id", INT),
        F("segment_backups", "segment_backups", ListOf(SegmentBackupInfo)),
        F("size", "size", INT, omitempty=False),
        F("load_state", "load_state", STR),
    )


@dataclass(frozen=True, kw_only=True)
class SnapshotBackupInfo(GoStruct):
    """``SnapshotBackupInfo``: where a snapshot-format collection's bundle lives (not the binlog format)."""

    metadata_path: str = ""
    total_files: int = 0
    total_bytes: int = 0
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("metadata_path", "metadata_path", STR),
        F("total_files", "total_files", INT),
        F("total_bytes", "total_bytes", INT),
    )


_LEGACY_TASK = (
    F("state_code", "state_code", INT, omitempty=False, legacy=True),
    F("error_message", "errorMessage", STR, legacy=True),
    F("start_time", "start_time", INT, legacy=True),
    F("end_time", "end_time", INT, legacy=True),
    F("progress", "progress", INT, omitempty=False, legacy=True),
)


@dataclass(frozen=True, kw_only=True)
class CollectionBackupInfo(GoStruct):
    """``CollectionBackupInfo``: a collection's schema, indexes, settings and (tree form) partitions."""

    id: str = ""
    state_code: int | None = None
    error_message: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    progress: int | None = None
    collection_id: int = 0
    db_name: str = ""
    collection_name: str = ""
    schema: CollectionSchema | None = None
    shards_num: int = 0
    consistency_level: int = 0
    partition_backups: tuple[PartitionBackupInfo, ...] = _tuple()
    backup_timestamp: int = 0
    size: int = 0
    has_index: bool = False
    index_infos: tuple[IndexInfo, ...] = _tuple()
    load_state: str = ""
    backup_physical_timestamp: int = 0
    channel_checkpoints: Mapping[str, str] = _dict()
    l0_segments: tuple[SegmentBackupInfo, ...] = _tuple()
    properties: tuple[KeyValuePair, ...] = _tuple()
    db_id: int = 0
    created_timestamp: int = 0
    virtual_channel_names: tuple[str, ...] = _tuple()
    physical_channel_names: tuple[str, ...] = _tuple()
    aliases: tuple[str, ...] = _tuple()
    snapshot_backup: SnapshotBackupInfo | None = None
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("id", "id", STR),
        *_LEGACY_TASK,
        F("collection_id", "collection_id", INT),
        F("db_name", "db_name", STR),
        F("collection_name", "collection_name", STR),
        F("schema", "schema", CollectionSchema),
        F("shards_num", "shards_num", INT),
        F("consistency_level", "consistency_level", INT),
        F("partition_backups", "partition_backups", ListOf(PartitionBackupInfo)),
        F("backup_timestamp", "backup_timestamp", INT),
        F("size", "size", INT, omitempty=False),
        F("has_index", "has_index", BOOL, omitempty=False),
        F("index_infos", "index_infos", ListOf(IndexInfo)),
        F("load_state", "load_state", STR),
        F("backup_physical_timestamp", "backup_physical_timestamp", INT),
        F("channel_checkpoints", "channel_checkpoints", MAP_STR),
        F("l0_segments", "l0_segments", ListOf(SegmentBackupInfo)),
        F("properties", "properties", ListOf(KeyValuePair)),
        F("db_id", "db_id", INT),
        F("created_timestamp", "created_timestamp", INT),
        F("virtual_channel_names", "virtual_channel_names", ListOf(STR)),
        F("physical_channel_names", "physical_channel_names", ListOf(STR)),
        F("aliases", "aliases", ListOf(STR)),
        F("snapshot_backup", "snapshot_backup", SnapshotBackupInfo),
    )

    @property
    def qualified_name(self) -> str:
        """``<db>.<collection>`` (``default`` when the backup names no database, as v0.4 did not)."""
        return f"{self.db_name or 'default'}.{self.collection_name}"

    def segments(self) -> list[SegmentBackupInfo]:
        """Return every segment of the collection: its partitions' segments, then its L0 segments."""
        return [s for p in self.partition_backups for s in p.segment_backups] + list(self.l0_segments)


@dataclass(frozen=True, kw_only=True)
class DatabaseBackupInfo(GoStruct):
    """``DatabaseBackupInfo``: a database and its properties."""

    db_name: str = ""
    db_id: int = 0
    properties: tuple[KeyValuePair, ...] = _tuple()
    ezk: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("db_name", "db_name", STR),
        F("db_id", "db_id", INT),
        F("properties", "properties", ListOf(KeyValuePair)),
        F("ezk", "ezk", STR),
    )


@dataclass(frozen=True, kw_only=True)
class RPCChannelInfo(GoStruct):
    """``RPCChannelInfo`` (CDC)."""

    name: str = ""
    position: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("name", "name", STR), F("position", "position", STR))


@dataclass(frozen=True, kw_only=True)
class BackupInfo(GoStruct):
    """``BackupInfo``: the root of a backup (``backup_meta.json`` holds it without ``collection_backups``)."""

    id: str = ""
    state_code: int = 0
    error_message: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    progress: int | None = None
    name: str = ""
    backup_timestamp: int = 0
    collection_backups: tuple[CollectionBackupInfo, ...] = _tuple()
    size: int = 0
    milvus_version: str = ""
    rbac_meta: RBACMeta | None = None
    rpc_channel_info: RPCChannelInfo | None = None
    database_backups: tuple[DatabaseBackupInfo, ...] = _tuple()
    flush_all_msgs_base64: Mapping[str, str] = _dict()
    control_channel_name: str = ""
    physical_channel_names: tuple[str, ...] = _tuple()
    format: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("id", "id", STR),
        F("state_code", "state_code", INT, omitempty=False),
        *_LEGACY_TASK[1:],
        F("name", "name", STR),
        F("backup_timestamp", "backup_timestamp", INT),
        F("collection_backups", "collection_backups", ListOf(CollectionBackupInfo)),
        F("size", "size", INT, omitempty=False),
        F("milvus_version", "milvus_version", STR),
        F("rbac_meta", "rbac_meta", RBACMeta),
        F("rpc_channel_info", "rpc_channel_info", RPCChannelInfo),
        F("database_backups", "database_backups", ListOf(DatabaseBackupInfo)),
        F("flush_all_msgs_base64", "flush_all_msgs_base64", MAP_STR),
        F("control_channel_name", "control_channel_name", STR),
        F("physical_channel_names", "physical_channel_names", ListOf(STR)),
        F("format", "format", STR),
    )

    @property
    def legacy(self) -> bool:
        """Whether it was written by Milvus Backup v0.5 or older (it has the task fields)."""
        return self.progress is not None or self.start_time is not None or self.end_time is not None

    def segments(self) -> list[SegmentBackupInfo]:
        """Return every segment of every collection."""
        return [s for c in self.collection_backups for s in c.segments()]


@dataclass(frozen=True, kw_only=True)
class CollectionLevelBackupInfo(GoStruct):
    """``collection_meta.json``: ``{"infos": [CollectionBackupInfo ...]}``."""

    infos: tuple[CollectionBackupInfo, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("infos", "infos", ListOf(CollectionBackupInfo)),)


@dataclass(frozen=True, kw_only=True)
class PartitionLevelBackupInfo(GoStruct):
    """``partition_meta.json``: ``{"infos": [PartitionBackupInfo ...]}``."""

    infos: tuple[PartitionBackupInfo, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("infos", "infos", ListOf(PartitionBackupInfo)),)


@dataclass(frozen=True, kw_only=True)
class SegmentLevelBackupInfo(GoStruct):
    """``segment_meta.json``: ``{"infos": [SegmentBackupInfo ...]}``."""

    infos: tuple[SegmentBackupInfo, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("infos", "infos", ListOf(SegmentBackupInfo)),)


@dataclass(frozen=True, kw_only=True)
class ChannelPosition(GoStruct):
    """``ChannelPosition``: one entry of v0.5's ``channel_cp_meta.json`` (``{collection: [positions]}``)."""

    name: str = ""
    position: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("name", "name", STR), F("position", "position", STR))


__all__ = [
    "Binlog",
    "BackupInfo",
    "BackupTaskStateCode",
    "ChannelPosition",
    "CollectionBackupInfo",
    "CollectionLevelBackupInfo",
    "CollectionSchema",
    "ConsistencyLevel",
    "DataType",
    "DatabaseBackupInfo",
    "FieldBinlog",
    "FieldSchema",
    "FunctionSchema",
    "FunctionType",
    "GrantEntity",
    "GrantorEntity",
    "IndexInfo",
    "KeyValuePair",
    "ObjectEntity",
    "PartitionBackupInfo",
    "PartitionLevelBackupInfo",
    "PrivilegeEntity",
    "PrivilegeGroupInfo",
    "RBACMeta",
    "RPCChannelInfo",
    "RoleEntity",
    "SegmentBackupInfo",
    "SegmentLevelBackupInfo",
    "SnapshotBackupInfo",
    "StructArrayFieldSchema",
    "UserEntity",
    "UserInfo",
    "kv_dict",
    "kv_pairs",
]
