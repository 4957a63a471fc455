"""Capture a collection's complete metadata as plain JSON, and build a pymilvus schema back from it.

A captured collection is read in two forms: the dict :func:`capture_collection` returns (a backup reads it
before its manifest exists) and the manifest's :class:`~.manifest.CollectionEntry`. The fields themselves are
dicts in both (Milvus' own description). :func:`exported_fields` and :func:`primary_field` take either.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.errors import UnsupportedError
from airflow_milvus_backup.engine.jsonmodel import value_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pymilvus import CollectionSchema, MilvusClient

    from airflow_milvus_backup.engine.manifest import CollectionEntry

log = logging.getLogger(__name__)

#: Field params that are numbers on the wire but come back as strings from some servers.
_INT_PARAMS = {"dim", "max_length", "max_capacity"}
_FIELD_FLAGS = (
    "is_primary",
    "auto_id",
    "is_partition_key",
    "is_clustering_key",
    "nullable",
    "is_function_output",
)


def _dtype_name(t: Any) -> str:
    return t.name if hasattr(t, "name") else str(t)


def _default_value(v: Any) -> Any:
    """Turn the protobuf ``ValueField`` pymilvus returns for a default value into a JSON value."""
    if v is None:
        return None
    which = v.WhichOneof("data") if hasattr(v, "WhichOneof") else None
    if which is None:
        return v
    val = getattr(v, which)
    if which == "bytes_data":
        return val.hex()
    return val


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "name") and hasattr(v, "value") and not isinstance(v, (str, int, float)):
        return v.name
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def capture_field(f: dict[str, Any]) -> dict[str, Any]:
    """Return one field of ``describe_collection`` as JSON, every param kept."""
    params: dict[str, Any] = {}
    for k, v in (f.get("params") or {}).items():
        if k in _INT_PARAMS:
            try:
                v = int(v)
            except (TypeError, ValueError):
                pass
        params[k] = _jsonable(v)
    out: dict[str, Any] = {
        "name": f["name"],
        "type": _dtype_name(f["type"]),
        "description": f.get("description", "") or "",
        "params": params,
    }
    for flag in _FIELD_FLAGS:
        if f.get(flag):
            out[flag] = True
    if f.get("element_type") is not None:
        out["element_type"] = _dtype_name(f["element_type"])
    if f.get("default_value") is not None:
        out["default_value"] = _default_value(f["default_value"])
    return out


def capture_collection(client: MilvusClient, name: str, db_name: str, address: str = "") -> dict[str, Any]:
    """Return the metadata of one collection: schema, functions, properties, partitions, indexes, aliases.

    A server without the partitions or aliases API (:mod:`~.server_api`) gives ``["_default"]`` and ``[]``.

    :param client: a client already switched to ``db_name``.
    :param name: the collection.
    :param db_name: its database (recorded, not switched to).
    :param address: the server's address, for the log line saying what was assumed.
    """
    d = client.describe_collection(name)
    fields = [capture_field(f) for f in d["fields"]]
    functions = [
        {
            "name": fn["name"],
            "type": _dtype_name(fn["type"]),
            "description": fn.get("description", "") or "",
            "input_field_names": list(fn.get("input_field_names") or []),
            "output_field_names": list(fn.get("output_field_names") or []),
            "params": _jsonable(dict(fn.get("params") or {})),
        }
        for fn in d.get("functions") or []
    ]
    indexes = []
    for idx_name in client.list_indexes(name):
        info = dict(client.describe_index(name, idx_name) or {})
        for k in ("total_rows", "indexed_rows", "pending_index_rows", "state", "fail_reason"):
            info.pop(k, None)
        field_name = info.pop("field_name", None)
        index_name = info.pop("index_name", idx_name)
        index_type = info.pop("index_type", None)
        metric_type = info.pop("metric_type", None)
        params = {}
        for k, v in info.items():
            if k == "params" and isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            params[k] = _jsonable(v)
        indexes.append(
            {
                "index_name": index_name,
                "field_name": field_name,
                "index_type": index_type,
                "metric_type": metric_type,
                "params": params,
            }
        )
    where = address or "the source"
    functions = complete_functions(name, fields, functions, indexes, where)
    has_pk_key = any(f.get("is_partition_key") for f in fields)
    try:
        aliases = sorted(server_api.list_aliases(client, where, name))
    except Exception as e:  # noqa: BLE001 - some servers do not list aliases per collection
        log.warning("Cannot list aliases of %s.%s: %s", db_name, name, e)
        aliases = []
    load_state = server_api.load_state(client, name)
    partitions = sorted(server_api.list_partitions(client, name, where))
    return {
        "db_name": db_name,
        "name": name,
        "description": d.get("description", "") or "",
        "auto_id": bool(d.get("auto_id")),
        "enable_dynamic_field": bool(d.get("enable_dynamic_field")),
        "num_shards": int(d.get("num_shards") or 1),
        "num_partitions": int(d.get("num_partitions") or 0) if has_pk_key else None,
        "consistency_level": int(d.get("consistency_level") or 0),
        "consistency_level_name": d.get("consistency_level_name"),
        "properties": _jsonable(dict(d.get("properties") or {})),
        "fields": fields,
        "functions": functions,
        "partitions": partitions,
        "indexes": indexes,
        "aliases": aliases,
        "load_state": load_state,
        "collection_id": d.get("collection_id"),
        "created_timestamp": d.get("created_timestamp"),
    }


def complete_functions(
    collection: str,
    fields: list[dict[str, Any]],
    functions: list[dict[str, Any]],
    indexes: list[dict[str, Any]],
    address: str,
) -> list[dict[str, Any]]:
    """Make the captured fields and functions agree; return the functions (a missing BM25 one recovered).

    Every output of a described function is marked ``is_function_output`` (its values are regenerated, never
    backed up or inserted). A field marked as an output that no function names is a server that does not
    describe its functions (Milvus Lite 2.5.1 reports ``functions: []``): it is recovered as a BM25 function
    when that is the only reading (the field's index has metric BM25 and exactly one analyzer-enabled
    VARCHAR field is no function's input yet), logged; otherwise the backup is refused with the fix.

    :param collection: the collection's name (for the log line and the message).
    :param fields: its captured fields (:func:`capture_field`), marked in place.
    :param functions: its captured functions.
    :param indexes: its captured indexes.
    :param address: the server's address (for the log line and the message).
    """
    outputs = {o for fn in functions for o in fn["output_field_names"]}
    for f in fields:
        if f["name"] in outputs:
            f["is_function_output"] = True
    lost = [f["name"] for f in fields if f.get("is_function_output") and f["name"] not in outputs]
    if not lost:
        return functions
    inputs = {i for fn in functions for i in fn["input_field_names"]}
    texts = [
        f["name"]
        for f in fields
        if f["type"] == "VARCHAR"
        and str((f.get("params") or {}).get("enable_analyzer", "")).lower() == "true"
        and f["name"] not in inputs
    ]
    bm25 = {i["field_name"] for i in indexes if str(i.get("metric_type") or "").upper() == "BM25"}
    if len(lost) == 1 and len(texts) == 1 and lost[0] in bm25:
        fn = {
            "name": f"{texts[0]}_bm25",
            "type": "BM25",
            "description": "",
            "input_field_names": texts,
            "output_field_names": lost,
            "params": {},
        }
        log.warning(
            "Milvus at %s describes field %s of %s as a function output but no function: taking it for "
            "the BM25 function of %s (its index's metric is BM25), recorded as %r",
            address,
            lost[0],
            collection,
            texts[0],
            fn["name"],
        )
        return [*functions, fn]
    raise UnsupportedError(
        f"Milvus at {address} describes fields {lost} of {collection!r} as function outputs but does not "
        f"describe the functions (it lists {[fn['name'] for fn in functions]}), so a restore could not "
        "regenerate them. Back the collection up from a Milvus server that describes its functions "
        "(Milvus 2.5 standalone or later)."
    )


def exported_fields(meta: CollectionEntry | Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the fields whose values are stored in data files (function outputs are regenerated).

    :param meta: a captured collection (the manifest's entry, or :func:`capture_collection`'s dict).
    """
    return [f for f in value_of(meta, "fields") if not f.get("is_function_output")]


def primary_field(meta: CollectionEntry | Mapping[str, Any]) -> dict[str, Any]:
    """Return the primary key field of a captured collection (the manifest's entry, or its dict)."""
    for f in value_of(meta, "fields"):
        if f.get("is_primary"):
            return f
    raise UnsupportedError(f"Collection {value_of(meta, 'name')!r} has no primary key field in its metadata.")


def build_schema(meta: CollectionEntry, *, auto_id: bool | None = None) -> CollectionSchema:
    """Build a pymilvus ``CollectionSchema`` equal to the captured one.

    :param meta: a collection entry of the manifest.
    :param auto_id: override the primary key's ``auto_id`` (``None`` keeps the captured value).
    """
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(
        auto_id=meta.auto_id if auto_id is None else auto_id,
        enable_dynamic_field=meta.enable_dynamic_field,
        description=meta.description or "",
    )
    for f in meta.fields:
        kwargs: dict[str, Any] = dict(f.get("params") or {})
        for flag in ("is_primary", "is_partition_key", "is_clustering_key", "nullable"):
            if f.get(flag):
                kwargs[flag] = True
        if f.get("is_primary"):
            kwargs["auto_id"] = meta.auto_id if auto_id is None else auto_id
        if f.get("element_type"):
            kwargs["element_type"] = DataType[f["element_type"]]
            if f["element_type"] == "VARCHAR" and "max_length" not in kwargs:
                # Milvus Lite does not report an array's element max_length; the widest is always safe.
                kwargs["max_length"] = 65535
        if "default_value" in f:
            kwargs["default_value"] = f["default_value"]
        for k in ("enable_analyzer", "enable_match", "mmap_enabled"):
            if isinstance(kwargs.get(k), str):
                kwargs[k] = kwargs[k].lower() == "true"
        if isinstance(kwargs.get("analyzer_params"), str):
            try:
                kwargs["analyzer_params"] = json.loads(kwargs["analyzer_params"])
            except ValueError:
                pass
        try:
            dtype = DataType[f["type"]]
        except KeyError:
            raise UnsupportedError(
                f"Field {f['name']!r} of {meta.name!r} has type {f['type']} that this pymilvus does not know."
            ) from None
        schema.add_field(f["name"], dtype, description=f.get("description", ""), **kwargs)
    for fn in meta.functions or ():
        schema.add_function(
            Function(
                name=fn["name"],
                function_type=FunctionType[fn["type"]],
                input_field_names=fn["input_field_names"],
                output_field_names=fn["output_field_names"],
                description=fn.get("description", ""),
                params=fn.get("params") or None,
            )
        )
    return schema
