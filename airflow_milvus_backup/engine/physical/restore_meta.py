"""A physical backup's meta as a restore plan's input: Milvus Backup's ``BackupInfo`` -> our manifest model.

The restore steps (:mod:`~..restore.plan`, :mod:`~..restore.setup`, :mod:`~..restore.finish`) read a
:class:`~..manifest.Manifest`; :func:`as_manifest` builds one from a backup in Milvus Backup's format, so a
physical restore takes every option a logical one takes (suffix, renames, target db, drop existing, skip
create, meta only, indexes, aliases, load state). Pure. Each "data file" of the result is one import unit
(:func:`~.importer.import_units`: its key is the unit's folder, its rows the unit's rows). The ``$meta`` field
is left out of the fields: a collection created with ``enable_dynamic_field`` gets it from Milvus.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.physical import importer
from airflow_milvus_backup.engine.physical.mbrbac import snapshot_from_rbac_meta
from airflow_milvus_backup.engine.physical.mbschema import ConsistencyLevel, DataType, FunctionType, kv_dict

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.mbmodel import BackupInfo, CollectionBackupInfo, FieldSchema
    from airflow_milvus_backup.engine.physical.sidecar import Sidecar

#: ``Manifest.source["kind"]`` of a manifest built from a physical backup (what the restore dispatches on)
PHYSICAL_SOURCE = "physical"
#: the sha256 of a unit (it is a folder, checked by size against the meta instead)
_NO_DIGEST = "-"
#: pymilvus' DataType names by Milvus' numbers, where they differ from Milvus Backup's enum names
_TYPE_NAMES = {
    DataType.VarChar: "VARCHAR",
    DataType.FloatVector: "FLOAT_VECTOR",
    DataType.BinaryVector: "BINARY_VECTOR",
    DataType.Float16Vector: "FLOAT16_VECTOR",
    DataType.BFloat16Vector: "BFLOAT16_VECTOR",
    DataType.SparseFloatVector: "SPARSE_FLOAT_VECTOR",
    DataType.Int8Vector: "INT8_VECTOR",
}
_INT_PARAMS = {"dim", "max_length", "max_capacity"}


def type_name(number: int) -> str:
    """Return pymilvus' ``DataType`` name of a Milvus type number (``101`` -> ``FLOAT_VECTOR``)."""
    try:
        dt = DataType(number)
    except ValueError:
        return str(number)
    return _TYPE_NAMES.get(dt, dt.name.upper())


def _default(f: FieldSchema) -> Any:
    if not f.default_value_base64:
        return None
    from pymilvus.grpc_gen import schema_pb2

    v = schema_pb2.ValueField()
    v.ParseFromString(base64.b64decode(f.default_value_base64))
    which = v.WhichOneof("data")
    if which is None:
        return None
    val = getattr(v, which)
    return val.hex() if which == "bytes_data" else val


def field_entry(f: FieldSchema) -> dict[str, Any]:
    """Return a field of Milvus Backup's schema as our manifest records one (``capture_field``'s shape)."""
    params: dict[str, Any] = {}
    for k, v in kv_dict(f.type_params).items():
        params[k] = int(v) if k in _INT_PARAMS and v.isdigit() else v
    out: dict[str, Any] = {
        "name": f.name,
        "type": type_name(f.data_type),
        "description": f.description,
        "params": params,
        "field_id": f.field_id,
    }
    for flag, value in (
        ("is_primary", f.is_primary_key),
        ("auto_id", f.auto_id),
        ("is_partition_key", f.is_partition_key),
        ("nullable", f.nullable),
        ("is_function_output", f.is_function_output),
    ):
        if value:
            out[flag] = True
    if f.element_type:
        out["element_type"] = type_name(f.element_type)
    default = _default(f)
    if default is not None:
        out["default_value"] = default
    return out


def index_entry(idx: Any) -> dict[str, Any]:
    """Return an index of Milvus Backup's meta as our manifest records one."""
    params: dict[str, Any] = {}
    for k, v in dict(idx.params).items():
        if k == "params":
            try:
                params.update(json.loads(v))
            except ValueError:
                params[k] = v
        elif k not in ("index_type", "metric_type"):
            params[k] = v
    return {
        "index_name": idx.index_name or idx.field_name,
        "field_name": idx.field_name,
        "index_type": idx.index_type or dict(idx.params).get("index_type"),
        "metric_type": dict(idx.params).get("metric_type"),
        "params": params,
    }


def collection_entry(name: str, coll: CollectionBackupInfo) -> mf.CollectionEntry:
    """Return our manifest's entry of one collection of a physical backup; its data files are import units."""
    schema = coll.schema
    if schema is None:
        from airflow_milvus_backup.engine.errors import ManifestError

        raise ManifestError(f"Collection {coll.qualified_name} of backup {name!r} has no schema in its meta.")
    fields = [field_entry(f) for f in schema.fields if not f.is_dynamic]
    units = importer.import_units(name, coll)
    parts: list[mf.PartitionData] = []
    for p in coll.partition_backups:
        mine = [u for u in units if u.partition_id == p.partition_id and not u.l0]
        parts.append(
            mf.PartitionData(partition=p.partition_name, rows=sum(u.rows for u in mine), files=_files(mine))
        )
    l0 = [u for u in units if u.l0]
    if l0:
        parts.append(mf.PartitionData(partition=None, rows=0, files=_files(l0)))
    try:
        level_name = ConsistencyLevel(coll.consistency_level).name
    except ValueError:
        level_name = None
    has_pk_key = any(f.is_partition_key for f in schema.fields)
    doc = {
        "db_name": coll.db_name or "default",
        "name": coll.collection_name,
        "description": schema.description,
        "auto_id": any(f.auto_id for f in schema.fields if f.is_primary_key) or schema.auto_id,
        "enable_dynamic_field": schema.enable_dynamic_field,
        "num_shards": coll.shards_num or 1,
        "num_partitions": len(coll.partition_backups) if has_pk_key else None,
        "consistency_level": coll.consistency_level,
        "consistency_level_name": level_name,
        "properties": kv_dict(coll.properties),
        "fields": fields,
        "functions": [_function(fn) for fn in schema.functions],
        "partitions": [p.partition_name for p in coll.partition_backups],
        "indexes": [index_entry(i) for i in coll.index_infos],
        "aliases": list(coll.aliases),
        "load_state": coll.load_state or "NotLoad",
        "row_count": sum(u.rows for u in units),
        "snapshot_ts": coll.backup_timestamp or None,
        "data": [],
    }
    return replace(mf.CollectionEntry.build(doc), data=tuple(parts))


def _function(fn: Any) -> dict[str, Any]:
    try:
        kind = FunctionType(fn.type).name.upper()
    except ValueError:
        kind = str(fn.type)
    return {
        "name": fn.name,
        "type": kind,
        "description": fn.description,
        "input_field_names": list(fn.input_field_names),
        "output_field_names": list(fn.output_field_names),
        "params": kv_dict(fn.params),
    }


def _files(units: list[importer.ImportUnit]) -> tuple[mf.DataFile, ...]:
    return tuple(mf.DataFile(key=u.key, rows=u.rows, size=u.size, sha256=_NO_DIGEST) for u in units)


def as_manifest(name: str, info: BackupInfo, sidecar: Sidecar | None, kind: str) -> mf.Manifest:
    """Return a physical backup as our manifest model (for planning and setting up its restore). Pure.

    :param kind: ``physical`` (ours) or ``milvus-backup``; recorded as ``source["backup_kind"]`` (and
        ``source["kind"]`` is :data:`PHYSICAL_SOURCE`).
    """
    databases = {d.db_name or "default": kv_dict(d.properties) for d in info.database_backups}
    collections = tuple(collection_entry(name, c) for c in info.collection_backups)
    # users, roles and grants of a backup made with rbac=True, for a restore with rbac=True (no passwords)
    rbac = None
    if info.rbac_meta is not None:
        snap = snapshot_from_rbac_meta(info.rbac_meta)
        if snap.users or snap.roles or snap.grants or snap.privilege_groups:
            rbac = snap.to_manifest()
    return mf.Manifest(
        name=name,
        id=info.id or (sidecar.id if sidecar is not None else name),
        server_version=info.milvus_version or None,
        source={"kind": PHYSICAL_SOURCE, "backup_kind": kind, "backup_timestamp": info.backup_timestamp},
        databases=databases or None,
        producer=sidecar.producer if sidecar is not None else None,
        totals=mf.Totals.of(collections),
        collections=collections,
        rbac=rbac,
    )


def is_physical(manifest: mf.Manifest) -> bool:
    """Return whether a manifest was built by :func:`as_manifest`."""
    return (manifest.source or {}).get("kind") == PHYSICAL_SOURCE


def end_ts(manifest: mf.Manifest, coll: mf.CollectionEntry) -> int:
    """Return the timestamp a collection's import stops at (its backup timestamp, else the backup's)."""
    return int(coll.snapshot_ts or (manifest.source or {}).get("backup_timestamp") or 0)
