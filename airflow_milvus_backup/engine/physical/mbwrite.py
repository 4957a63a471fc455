"""Write a backup's meta files exactly as Milvus Backup does (current format, or v0.5 / v0.4 for tests).

:func:`meta_files` is the pure split of a :class:`~.mbmodel.BackupInfo` tree into the files, as bytes;
:func:`write_meta` stores them, ``backup_meta.json`` last (its presence is what makes the backup exist for
Milvus Backup and for this package), our sidecar just before it.

Versions (what each wrote, from Milvus Backup's source):

* ``"current"`` (``internal/meta/meta_write.go`` ``Write``): ``full_meta.json`` = the tree;
  ``backup_meta.json`` = the top level without collections (``id``, ``name``, ``format``,
  ``backup_timestamp``, ``size``, ``milvus_version``, ``rbac_meta``, ``rpc_channel_info``,
  ``database_backups``, ``flush_all_msgs_base64``, ``control_channel_name``, ``physical_channel_names``;
  ``state_code`` 0); ``collection_meta.json`` = collections without partitions; ``partition_meta.json`` =
  partitions without segments; ``segment_meta.json`` = the segments.
* ``"v0.5"`` (v0.4.30 to v0.5.x, ``core/meta/backup_meta.go`` ``treeToLevel``/``Serialize``): sizes summed
  from the segments; ``backup_meta.json`` = ``id``, ``state_code``, ``errorMessage``, ``start_time``,
  ``end_time``, ``progress``, ``name``, ``backup_timestamp``, ``size``, ``milvus_version``;
  ``collection_meta.json`` = whole clones of the collections (partitions and segments included);
  ``partition_meta.json`` = ``partition_id``, ``partition_name``, ``collection_id``, ``size``,
  ``load_state``; plus ``full_meta.json`` and ``channel_cp_meta.json``.
* ``"v0.4"`` (v0.4.0 to v0.4.1x, ``core/backup_meta.go``): as v0.5, but collections reduced to
  ``collection_id``, ``db_name``, ``collection_name``, ``schema``, ``shards_num``, ``consistency_level``,
  ``backup_timestamp``, ``size``, ``has_index``, ``index_infos``, ``load_state``,
  ``backup_physical_timestamp``; no ``full_meta.json``, no ``channel_cp_meta.json``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.physical import layout
from airflow_milvus_backup.engine.physical.gojson import go_dumps
from airflow_milvus_backup.engine.physical.mbmodel import (
    BackupInfo,
    CollectionBackupInfo,
    CollectionLevelBackupInfo,
    PartitionBackupInfo,
    PartitionLevelBackupInfo,
    SegmentBackupInfo,
    SegmentLevelBackupInfo,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.sidecar import Sidecar
    from airflow_milvus_backup.engine.storage import Storage

CURRENT = "current"
V05 = "v0.5"
V04 = "v0.4"
VERSIONS = (CURRENT, V05, V04)


def with_sizes(info: BackupInfo) -> BackupInfo:
    """Return ``info`` with every partition's, collection's and the backup's ``size`` summed from segments.

    (Milvus Backup sums them so when it reads the level files; v0.4/v0.5 also when writing.)
    """
    colls = []
    for c in info.collection_backups:
        parts = tuple(replace(p, size=sum(s.size for s in p.segment_backups)) for p in c.partition_backups)
        colls.append(replace(c, partition_backups=parts, size=sum(p.size for p in parts)))
    return replace(info, collection_backups=tuple(colls), size=sum(c.size for c in colls))


def _top_level(info: BackupInfo, version: str) -> BackupInfo:
    if version == CURRENT:
        return BackupInfo(
            id=info.id,
            name=info.name,
            format=info.format,
            backup_timestamp=info.backup_timestamp,
            size=info.size,
            milvus_version=info.milvus_version,
            rbac_meta=info.rbac_meta,
            rpc_channel_info=info.rpc_channel_info,
            database_backups=info.database_backups,
            flush_all_msgs_base64=info.flush_all_msgs_base64,
            control_channel_name=info.control_channel_name,
            physical_channel_names=info.physical_channel_names,
        )
    return BackupInfo(
        id=info.id,
        state_code=info.state_code,
        error_message=info.error_message if info.error_message is not None else "",
        start_time=info.start_time if info.start_time is not None else 0,
        end_time=info.end_time if info.end_time is not None else 0,
        progress=info.progress if info.progress is not None else 0,
        name=info.name,
        backup_timestamp=info.backup_timestamp,
        size=info.size,
        milvus_version=info.milvus_version,
    )


def _v04_collection(c: CollectionBackupInfo) -> CollectionBackupInfo:
    return CollectionBackupInfo(
        collection_id=c.collection_id,
        db_name=c.db_name,
        collection_name=c.collection_name,
        schema=c.schema,
        shards_num=c.shards_num,
        consistency_level=c.consistency_level,
        backup_timestamp=c.backup_timestamp,
        size=c.size,
        has_index=c.has_index,
        index_infos=c.index_infos,
        load_state=c.load_state,
        backup_physical_timestamp=c.backup_physical_timestamp,
    )


def _channel_cp(info: BackupInfo) -> bytes:
    """v0.5's ``channel_cp_meta.json``: ``{collection_name: [{name: pchannel, position}]}``."""
    out: dict[str, list[dict[str, str]]] = {}
    for c in info.collection_backups:
        cps = []
        for vch, pos in c.channel_checkpoints.items():
            parts = vch.split("_")
            pch = "_".join(parts[:2]) if len(parts) >= 2 else vch
            cps.append({"name": pch, "position": pos})
        out[c.collection_name] = cps
    # Go marshals []*ChannelPosition in field order: name, then position; go_dumps sorts dict keys, the same.
    return go_dumps(out).encode()


def meta_files(info: BackupInfo, version: str = CURRENT) -> dict[str, bytes]:
    """Return the meta files of a backup as Milvus Backup ``version`` writes them: ``{file name: bytes}``.

    :param info: the whole tree (collections with partitions with segments).
    :param version: ``"current"``, ``"v0.5"`` or ``"v0.4"`` (see the module's docstring).
    :raises InvalidArgumentError: an unknown version.
    """
    if version not in VERSIONS:
        raise InvalidArgumentError(f"Unknown Milvus Backup meta version {version!r}: use one of {VERSIONS}.")
    if version != CURRENT:
        info = with_sizes(info)
    parts: list[PartitionBackupInfo] = []
    segs: list[SegmentBackupInfo] = []
    colls: list[CollectionBackupInfo] = []
    for c in info.collection_backups:
        if version == CURRENT:
            colls.append(replace(c, partition_backups=()))
        elif version == V05:
            colls.append(c)
        else:
            colls.append(_v04_collection(c))
        for p in c.partition_backups:
            if version == CURRENT:
                parts.append(replace(p, segment_backups=()))
            else:
                parts.append(
                    PartitionBackupInfo(
                        partition_id=p.partition_id,
                        partition_name=p.partition_name,
                        collection_id=p.collection_id,
                        size=p.size,
                        load_state=p.load_state,
                    )
                )
            segs.extend(p.segment_backups)
    files = {
        layout.COLLECTION_META: CollectionLevelBackupInfo(infos=tuple(colls)).to_go_bytes(),
        layout.PARTITION_META: PartitionLevelBackupInfo(infos=tuple(parts)).to_go_bytes(),
        layout.SEGMENT_META: SegmentLevelBackupInfo(infos=tuple(segs)).to_go_bytes(),
    }
    if version != V04:
        files[layout.FULL_META] = info.to_go_bytes()
    if version == V05:
        files[layout.CHANNEL_CP_META] = _channel_cp(info)
    files[layout.BACKUP_META] = _top_level(info, version).to_go_bytes()
    return files


def write_meta(
    storage: Storage, name: str, info: BackupInfo, *, version: str = CURRENT, sidecar: Sidecar | None = None
) -> list[str]:
    """Store a backup's meta files (and our sidecar), ``backup_meta.json`` last; return the keys written.

    :param storage: the backup storage (keys relative to its root).
    :param name: the backup's folder.
    :param info: the whole tree.
    :param version: which Milvus Backup's files to write (``"current"`` for backups of this package).
    :param sidecar: our sidecar, written just before ``backup_meta.json`` (physical backups of ours).
    """
    files = meta_files(info, version)
    keys = []
    order = [
        f for f in (*layout.META_FILES, layout.CHANNEL_CP_META) if f in files and f != layout.BACKUP_META
    ]
    for f in order:
        storage.put_bytes(layout.meta_key(name, f), files[f])
        keys.append(layout.meta_key(name, f))
    if sidecar is not None:
        storage.put_bytes(layout.sidecar_key(name), sidecar.to_bytes())
        keys.append(layout.sidecar_key(name))
    storage.put_bytes(layout.meta_key(name, layout.BACKUP_META), files[layout.BACKUP_META])
    keys.append(layout.meta_key(name, layout.BACKUP_META))
    return keys
