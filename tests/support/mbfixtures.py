"""Backups laid out as Milvus Backup writes them, built from its documented structs (core/proto/backup.proto).

:func:`sample_info` builds a :class:`BackupInfo` tree of two collections (one with two partitions, deletes,
a segment without a group folder; one with a partition key and the dynamic field), with small fake binlog
bodies; :func:`write_mb_backup` stores it in a :class:`Storage` as Milvus Backup ``version`` does (binlogs
first, then the meta files, ``backup_meta.json`` last).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.physical import layout, mbwrite
from airflow_milvus_backup.engine.physical import mbmodel as m
from airflow_milvus_backup.engine.physical.sidecar import Sidecar, SidecarObject

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

COLL_A, COLL_B = 449000000000000101, 449000000000000201
PART_A0, PART_A1, PART_B0 = 449000000000000102, 449000000000000103, 449000000000000202
TS = 449000123456789012  # a hybrid timestamp: physical ms << 18


def _body(key: str, size: int) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _seg(
    coll: int,
    part: int,
    seg: int,
    rows: int,
    fields: list[int],
    *,
    group: bool,
    deltas: int = 0,
    legacy_paths: bool = False,
) -> m.SegmentBackupInfo:
    binlogs = []
    size = 0
    for f in fields:
        logs = []
        for i in range(2):
            log_id = seg * 10 + f % 7 + i
            n = 40 + f + i
            size += n
            logs.append(
                m.Binlog(
                    entries_num=rows if legacy_paths else 0,
                    log_path=layout.milvus_insert_log_key("files", coll, part, seg, f, log_id),
                    log_size=n,
                    log_id=0 if legacy_paths else log_id,
                )
            )
        binlogs.append(m.FieldBinlog(field_id=f, binlogs=tuple(logs)))
    delta = []
    if deltas:
        log_id = seg * 10 + 9
        size += 33
        delta.append(
            m.FieldBinlog(
                binlogs=(
                    m.Binlog(
                        log_path=layout.milvus_delta_log_key("files", coll, part, seg, log_id),
                        log_size=33,
                        log_id=0 if legacy_paths else log_id,
                        entries_num=deltas,
                    ),
                )
            )
        )
    return m.SegmentBackupInfo(
        segment_id=seg,
        collection_id=coll,
        partition_id=part,
        num_of_rows=rows,
        binlogs=tuple(binlogs),
        deltalogs=tuple(delta),
        size=size,
        group_id=seg if group else 0,
    )


def _schema_a() -> m.CollectionSchema:
    return m.CollectionSchema(
        name="docs",
        description="a <doc> & more",
        fields=(
            m.FieldSchema(
                field_id=100, name="id", is_primary_key=True, data_type=m.DataType.Int64, auto_id=True
            ),
            m.FieldSchema(
                field_id=101,
                name="vec",
                data_type=m.DataType.FloatVector,
                type_params=(m.KeyValuePair(key="dim", value="4"),),
            ),
            m.FieldSchema(
                field_id=102,
                name="title",
                data_type=m.DataType.VarChar,
                type_params=(m.KeyValuePair(key="max_length", value="64"),),
                nullable=True,
            ),
        ),
    )


def _schema_b() -> m.CollectionSchema:
    return m.CollectionSchema(
        name="tenants",
        fields=(
            m.FieldSchema(
                field_id=100,
                name="pk",
                is_primary_key=True,
                data_type=m.DataType.VarChar,
                type_params=(m.KeyValuePair(key="max_length", value="32"),),
            ),
            m.FieldSchema(field_id=101, name="tenant", data_type=m.DataType.Int64, is_partition_key=True),
            m.FieldSchema(
                field_id=102,
                name="v",
                data_type=m.DataType.FloatVector,
                type_params=(m.KeyValuePair(key="dim", value="2"),),
            ),
            m.FieldSchema(field_id=103, name="$meta", data_type=m.DataType.JSON, is_dynamic=True),
        ),
        enable_dynamic_field=True,
    )


def sample_info(name: str, *, legacy: bool = False, no_groups: bool = False) -> m.BackupInfo:
    """Return a two-collection backup tree (v0.4/v0.5 task fields when ``legacy``)."""
    sys_fields = [0, 1]
    a0 = (
        _seg(
            COLL_A,
            PART_A0,
            449000000000001001,
            5,
            [*sys_fields, 100, 101, 102],
            group=not no_groups,
            deltas=2,
            legacy_paths=legacy,
        ),
        _seg(
            COLL_A,
            PART_A0,
            449000000000001002,
            3,
            [*sys_fields, 100, 101, 102],
            group=False,
            legacy_paths=legacy,
        ),
    )
    a1 = (
        _seg(
            COLL_A,
            PART_A1,
            449000000000001003,
            4,
            [*sys_fields, 100, 101, 102],
            group=not no_groups,
            legacy_paths=legacy,
        ),
    )
    b0 = (
        _seg(
            COLL_B,
            PART_B0,
            449000000000002001,
            6,
            [*sys_fields, 100, 101, 102, 103],
            group=not no_groups,
            deltas=1,
            legacy_paths=legacy,
        ),
    )
    task = (
        {
            "state_code": 2,
            "error_message": "",
            "start_time": 1700000000000,
            "end_time": 1700000005000,
            "progress": 100,
        }
        if legacy
        else {}
    )
    coll_a = m.CollectionBackupInfo(
        id="c-a",
        collection_id=COLL_A,
        db_name="default",
        collection_name="docs",
        schema=_schema_a(),
        shards_num=2,
        consistency_level=m.ConsistencyLevel.Bounded,
        partition_backups=(
            m.PartitionBackupInfo(
                partition_id=PART_A0,
                partition_name="_default",
                collection_id=COLL_A,
                segment_backups=a0,
                load_state="Loaded",
            ),
            m.PartitionBackupInfo(
                partition_id=PART_A1,
                partition_name="p1",
                collection_id=COLL_A,
                segment_backups=a1,
                load_state="Loaded",
            ),
        ),
        backup_timestamp=TS,
        has_index=True,
        index_infos=(
            m.IndexInfo(
                field_name="vec",
                index_name="vec_idx",
                index_type="HNSW",
                params={
                    "index_type": "HNSW",
                    "metric_type": "L2",
                    "params": '{"M": 8, "efConstruction": 64}',
                },
            ),
        ),
        load_state="Loaded",
        backup_physical_timestamp=1700000001,
        channel_checkpoints={"by-dev-rootcoord-dml_0_449000000000000101v0": "AAEC"},
        **task,
    )
    coll_b = m.CollectionBackupInfo(
        id="c-b",
        collection_id=COLL_B,
        db_name="default" if not legacy else "",
        collection_name="tenants",
        schema=_schema_b(),
        shards_num=1,
        partition_backups=(
            m.PartitionBackupInfo(
                partition_id=PART_B0, partition_name="_default_0", collection_id=COLL_B, segment_backups=b0
            ),
        ),
        backup_timestamp=TS,
        load_state="NotLoad",
        properties=() if legacy else (m.KeyValuePair(key="collection.ttl.seconds", value="0"),),
        aliases=() if legacy else ("tenants_live",),
        **task,
    )
    info = m.BackupInfo(
        id="bk-" + name,
        name=name,
        backup_timestamp=TS,
        collection_backups=(coll_a, coll_b),
        milvus_version="v2.3.5",
        **task,
    )
    return mbwrite.with_sizes(info)


def write_binlogs(storage: Storage, name: str, info: m.BackupInfo) -> dict[str, bytes]:
    """Store a fake body of each binlog the meta lists (its recorded size); return them by key."""
    out = {}
    for b in layout.backup_binlogs(name, info):
        body = _body(b.key, b.size)
        storage.put_bytes(b.key, body)
        out[b.key] = body
    return out


def write_mb_backup(
    storage: Storage,
    name: str,
    *,
    version: str = mbwrite.CURRENT,
    no_groups: bool = False,
    info: m.BackupInfo | None = None,
) -> m.BackupInfo:
    """Store a whole backup as Milvus Backup ``version`` writes it; return its tree."""
    info = info or sample_info(name, legacy=version != mbwrite.CURRENT, no_groups=no_groups)
    write_binlogs(storage, name, info)
    mbwrite.write_meta(storage, name, info, version=version)
    return info


def binlog_digest(key: str, body: bytes, kind: str) -> SidecarObject:
    """A sidecar entry with the digest ``kind`` records: ``sha256`` (ours, and every older sidecar),
    ``md5`` (a server-side copy's MD5 ETag), ``server`` (the server's ``ChecksumSHA256``, base64)."""
    if kind == "md5":
        md5 = hashlib.md5(body).hexdigest()
        return SidecarObject(key=key, size=len(body), md5=md5, etag=md5)
    if kind == "server":
        checksum = {"sha256": base64.b64encode(hashlib.sha256(body).digest()).decode()}
        return SidecarObject(key=key, size=len(body), checksum=checksum)
    return SidecarObject(key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest())


def write_physical_backup(
    storage: Storage, name: str, digest: str = "sha256"
) -> tuple[m.BackupInfo, Sidecar]:
    """Store a physical backup as this package writes one: Milvus Backup's current files plus our sidecar.

    :param digest: what the sidecar records per binlog (:func:`binlog_digest`), or ``"mixed"``: each kind
        in turn.
    """
    info = sample_info(name)
    bodies = write_binlogs(storage, name, info)
    files = mbwrite.meta_files(info)
    kinds = ("sha256", "md5", "server") if digest == "mixed" else (digest,)
    objects = [
        binlog_digest(k[len(name) + 1 :], v, kinds[i % len(kinds)])
        for i, (k, v) in enumerate(sorted(bodies.items()))
    ]
    objects += [
        SidecarObject(key=f"meta/{f}", size=len(v), sha256=hashlib.sha256(v).hexdigest())
        for f, v in files.items()
        if f != layout.BACKUP_META
    ]
    sc = Sidecar(
        name=name,
        id=info.id,
        producer={"package": "airflow-milvus-backup", "version": "test"},
        created_at="2026-01-01T00:00:00+00:00",
        milvus_version=info.milvus_version,
        objects=tuple(objects),
    )
    mbwrite.write_meta(storage, name, info, sidecar=sc)
    return info, sc


def renamed(info: m.BackupInfo, name: str) -> m.BackupInfo:
    """Return ``info`` under another backup name."""
    return replace(info, name=name, id="bk-" + name)
