"""Describe a collection as Milvus Backup records it: the ``CollectionBackupInfo`` of a physical backup.

Milvus Backup's DDL step (``core/backup/coll_ddl_task.go`` of its source) reads the raw
``DescribeCollection``, ``DescribeIndex`` and ``ShowPartitions`` answers, so the schema keeps what pymilvus'
dict drops: field ids, the serialised default values, partition ids, index ids. This module does
the same, and takes the load
states and aliases from :func:`~airflow_milvus_backup.engine.schema.capture_collection` (Milvus 2.3.5
answers ``GetLoadingProgress`` of a released collection with an error, and lists no aliases in
``DescribeCollection``). Segments are added later (:mod:`.backup`).

One addition to what Milvus' answer holds: Milvus Backup reads the dynamic field (``$meta``) from etcd, since
``DescribeCollection`` leaves it out; this module adds it with the field id Milvus gave it, read from the
segments' binlog folders (:func:`with_dynamic_field`), or the next free id when no segment holds rows.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.physical import mbmodel as mb

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pymilvus import MilvusClient

#: Milvus' system fields (row id, timestamp): they have binlogs but are not in the schema
SYSTEM_FIELD_IDS = frozenset({0, 1})
DYNAMIC_FIELD = "$meta"
_JSON = 23
#: load states as Milvus Backup writes them (``internal/meta``)
LOAD_STATES = {"Loaded": "Loaded", "Loading": "Loading", "NotLoad": "NotLoad", "NotExist": "NotLoad"}


def _kv(pairs: Iterable[Any]) -> tuple[mb.KeyValuePair, ...]:
    return tuple(mb.KeyValuePair(key=str(p.key), value=str(p.value)) for p in pairs)


def _field(f: Any) -> mb.FieldSchema:
    default = ""
    if f.HasField("default_value"):
        default = base64.b64encode(f.default_value.SerializeToString()).decode("ascii")
    return mb.FieldSchema(
        field_id=int(f.fieldID),
        name=f.name,
        is_primary_key=bool(f.is_primary_key),
        description=f.description,
        data_type=int(f.data_type),
        type_params=_kv(f.type_params),
        index_params=_kv(f.index_params),
        auto_id=bool(f.autoID),
        is_dynamic=bool(getattr(f, "is_dynamic", False)),
        is_partition_key=bool(getattr(f, "is_partition_key", False)),
        nullable=bool(getattr(f, "nullable", False)),
        element_type=int(getattr(f, "element_type", 0)),
        is_function_output=bool(getattr(f, "is_function_output", False)),
        default_value_base64=default,
    )


def _function(fn: Any) -> mb.FunctionSchema:
    return mb.FunctionSchema(
        name=fn.name,
        id=int(fn.id),
        description=fn.description,
        type=int(fn.type),
        input_field_names=tuple(fn.input_field_names),
        input_field_ids=tuple(int(i) for i in fn.input_field_ids),
        output_field_names=tuple(fn.output_field_names),
        output_field_ids=tuple(int(i) for i in fn.output_field_ids),
        params=_kv(fn.params),
    )


def schema_of(resp: Any) -> mb.CollectionSchema:
    """Convert a raw ``DescribeCollectionResponse``'s schema as Milvus Backup does (pure)."""
    s = resp.schema
    return mb.CollectionSchema(
        name=s.name,
        description=s.description,
        auto_id=bool(s.autoID),
        fields=tuple(_field(f) for f in s.fields),
        properties=_kv(getattr(s, "properties", ())),
        enable_dynamic_field=bool(s.enable_dynamic_field),
        functions=tuple(_function(fn) for fn in getattr(s, "functions", ())),
    )


def indexes_of(resp: Any) -> tuple[mb.IndexInfo, ...]:
    """Convert a raw ``DescribeIndexResponse`` as Milvus Backup does (pure)."""
    out = []
    for d in resp.index_descriptions:
        params = {str(p.key): str(p.value) for p in d.params}
        out.append(
            mb.IndexInfo(
                index_id=int(d.indexID),
                field_name=d.field_name,
                index_name=d.index_name,
                index_type=params.get("index_type", ""),
                params=params,
            )
        )
    return tuple(out)


def with_dynamic_field(schema: mb.CollectionSchema, binlog_field_ids: Iterable[int]) -> mb.CollectionSchema:
    """Add the ``$meta`` field to a dynamic collection's schema, as Milvus Backup reads it from etcd (pure).

    :param binlog_field_ids: the field ids found in the collection's insert log folders.
    """
    if not schema.enable_dynamic_field or any(f.is_dynamic for f in schema.fields):
        return schema
    known = {f.field_id for f in schema.fields}
    extra = sorted(set(binlog_field_ids) - known - SYSTEM_FIELD_IDS)
    field_id = extra[0] if extra else max(known | {99}) + 1
    meta = mb.FieldSchema(field_id=field_id, name=DYNAMIC_FIELD, data_type=_JSON, is_dynamic=True)
    return dataclasses.replace(schema, fields=(*schema.fields, meta))


def describe(
    client: MilvusClient, collection: str, captured: Mapping[str, Any], backup_id: str
) -> mb.CollectionBackupInfo:
    """Return the collection's ``CollectionBackupInfo`` without segments (Milvus Backup's DDL step).

    :param client: a client switched to the collection's database.
    :param collection: the collection's name.
    :param captured: :func:`~airflow_milvus_backup.engine.schema.capture_collection`'s dict of it (load
        state, aliases).
    :param backup_id: the backup's id (Milvus Backup records its task id in each collection).
    """
    from pymilvus.client.call_context import _api_level_md
    from pymilvus.client.utils import check_status
    from pymilvus.grpc_gen import milvus_pb2

    stub = client._get_connection()._stub  # noqa: SLF001 - the raw answers hold the ids pymilvus drops
    md = _api_level_md(client._generate_call_context())  # noqa: SLF001
    desc = stub.DescribeCollection(
        milvus_pb2.DescribeCollectionRequest(collection_name=collection), metadata=md
    )
    check_status(desc.status)
    idx = stub.DescribeIndex(milvus_pb2.DescribeIndexRequest(collection_name=collection), metadata=md)
    indexes = indexes_of(idx) if idx.status.code == 0 and idx.status.error_code == 0 else ()
    parts = stub.ShowPartitions(milvus_pb2.ShowPartitionsRequest(collection_name=collection), metadata=md)
    check_status(parts.status)
    load_state = LOAD_STATES.get(str(captured.get("load_state") or "NotLoad"), "NotLoad")
    part_states = _partition_states(client, collection, load_state, list(parts.partition_names))
    partitions = tuple(
        mb.PartitionBackupInfo(
            partition_id=int(pid),
            partition_name=pname,
            collection_id=int(desc.collectionID),
            load_state=part_states[pname],
        )
        for pid, pname in zip(parts.partitionIDs, parts.partition_names, strict=True)
    )
    return mb.CollectionBackupInfo(
        id=backup_id,
        collection_id=int(desc.collectionID),
        db_name=desc.db_name or str(captured.get("db_name") or ""),
        collection_name=desc.collection_name or collection,
        schema=schema_of(desc),
        shards_num=int(desc.shards_num),
        consistency_level=int(desc.consistency_level),
        has_index=bool(indexes),
        index_infos=indexes,
        load_state=load_state,
        partition_backups=partitions,
        properties=_kv(desc.properties),
        db_id=int(getattr(desc, "db_id", 0)),
        created_timestamp=int(desc.created_timestamp),
        virtual_channel_names=tuple(desc.virtual_channel_names),
        physical_channel_names=tuple(desc.physical_channel_names),
        aliases=tuple(desc.aliases) or tuple(captured.get("aliases") or ()),
    )


def _partition_states(client: MilvusClient, collection: str, state: str, names: list[str]) -> dict[str, str]:
    """Each partition's load state, asked for only while the collection is partly loaded."""
    if state in ("Loaded", "NotLoad"):
        return dict.fromkeys(names, state)
    out = {}
    for name in names:
        out[name] = LOAD_STATES.get(server_api.load_state(client, collection, name), "NotLoad")
    return out
