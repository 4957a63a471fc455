"""Milvus Backup's schema structs (``backup.proto``): fields, functions, collection schema, indexes, enums.

Part of :mod:`.mbmodel` (import them from there); see it for the conventions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

from airflow_milvus_backup.engine.physical.gojson import BOOL, INT, MAP_STR, RAW, STR, F, GoStruct, ListOf


class ConsistencyLevel(IntEnum):
    """``ConsistencyLevel`` as the proto numbers it."""

    Strong = 0
    Session = 1
    Bounded = 2
    Eventually = 3
    Customized = 4


class DataType(IntEnum):
    """``DataType`` (field types) as the proto numbers them."""

    NONE = 0
    Bool = 1
    Int8 = 2
    Int16 = 3
    Int32 = 4
    Int64 = 5
    Float = 10
    Double = 11
    String = 20
    VarChar = 21
    Array = 22
    JSON = 23
    Geometry = 24
    Text = 25
    Timestamptz = 26
    BinaryVector = 100
    FloatVector = 101
    Float16Vector = 102
    BFloat16Vector = 103
    SparseFloatVector = 104
    Int8Vector = 105
    ArrayOfVector = 106
    ArrayOfStruct = 200
    Struct = 201


class FunctionType(IntEnum):
    """``FunctionType`` as the proto numbers it."""

    Unknown = 0
    BM25 = 1
    TextEmbedding = 2


def _tuple() -> Any:
    return field(default_factory=tuple)


def _dict() -> Any:
    return field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class KeyValuePair(GoStruct):
    """``KeyValuePair``: a property or parameter."""

    key: str = ""
    value: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("key", "key", STR), F("value", "value", STR))


def kv_pairs(pairs: Mapping[str, str]) -> tuple[KeyValuePair, ...]:
    """Return ``KeyValuePair`` structs of a mapping, in its order."""
    return tuple(KeyValuePair(key=str(k), value=str(v)) for k, v in pairs.items())


def kv_dict(pairs: tuple[KeyValuePair, ...]) -> dict[str, str]:
    """Return a list of ``KeyValuePair`` as a dict (a later key wins, as Milvus reads them)."""
    return {p.key: p.value for p in pairs}


@dataclass(frozen=True, kw_only=True)
class FieldSchema(GoStruct):
    """``FieldSchema``.

    ``default_value`` (a Go oneof) is kept as the JSON Go wrote; Milvus Backup itself reads
    ``default_value_base64`` (the serialised ``schemapb.ValueField``).
    """

    field_id: int = 0
    name: str = ""
    is_primary_key: bool = False
    description: str = ""
    data_type: int = 0
    type_params: tuple[KeyValuePair, ...] = _tuple()
    index_params: tuple[KeyValuePair, ...] = _tuple()
    auto_id: bool = False
    state: int = 0
    element_type: int = 0
    default_value: Any = None
    is_dynamic: bool = False
    is_partition_key: bool = False
    nullable: bool = False
    default_value_proto: str = ""
    is_function_output: bool = False
    default_value_base64: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("field_id", "fieldID", INT),
        F("name", "name", STR),
        F("is_primary_key", "is_primary_key", BOOL),
        F("description", "description", STR),
        F("data_type", "data_type", INT),
        F("type_params", "type_params", ListOf(KeyValuePair)),
        F("index_params", "index_params", ListOf(KeyValuePair)),
        F("auto_id", "autoID", BOOL),
        F("state", "state", INT),
        F("element_type", "element_type", INT),
        F("default_value", "default_value", RAW),
        F("is_dynamic", "is_dynamic", BOOL),
        F("is_partition_key", "is_partition_key", BOOL),
        F("nullable", "nullable", BOOL),
        F("default_value_proto", "default_value_proto", STR),
        F("is_function_output", "is_function_output", BOOL),
        F("default_value_base64", "default_value_base64", STR),
    )


@dataclass(frozen=True, kw_only=True)
class FunctionSchema(GoStruct):
    """``FunctionSchema`` (BM25 and others)."""

    name: str = ""
    id: int = 0
    description: str = ""
    type: int = 0
    input_field_names: tuple[str, ...] = _tuple()
    input_field_ids: tuple[int, ...] = _tuple()
    output_field_names: tuple[str, ...] = _tuple()
    output_field_ids: tuple[int, ...] = _tuple()
    params: tuple[KeyValuePair, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("name", "name", STR),
        F("id", "id", INT),
        F("description", "description", STR),
        F("type", "type", INT),
        F("input_field_names", "input_field_names", ListOf(STR)),
        F("input_field_ids", "input_field_ids", ListOf(INT)),
        F("output_field_names", "output_field_names", ListOf(STR)),
        F("output_field_ids", "output_field_ids", ListOf(INT)),
        F("params", "params", ListOf(KeyValuePair)),
    )


@dataclass(frozen=True, kw_only=True)
class StructArrayFieldSchema(GoStruct):
    """``StructArrayFieldSchema``."""

    field_id: int = 0
    name: str = ""
    description: str = ""
    fields: tuple[FieldSchema, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("field_id", "fieldID", INT),
        F("name", "name", STR),
        F("description", "description", STR),
        F("fields", "fields", ListOf(FieldSchema)),
    )


@dataclass(frozen=True, kw_only=True)
class CollectionSchema(GoStruct):
    """``CollectionSchema``."""

    name: str = ""
    description: str = ""
    auto_id: bool = False
    fields: tuple[FieldSchema, ...] = _tuple()
    enable_dynamic_field: bool = False
    properties: tuple[KeyValuePair, ...] = _tuple()
    functions: tuple[FunctionSchema, ...] = _tuple()
    struct_array_fields: tuple[StructArrayFieldSchema, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("name", "name", STR),
        F("description", "description", STR),
        F("auto_id", "autoID", BOOL),
        F("fields", "fields", ListOf(FieldSchema)),
        F("enable_dynamic_field", "enable_dynamic_field", BOOL),
        F("properties", "properties", ListOf(KeyValuePair)),
        F("functions", "functions", ListOf(FunctionSchema)),
        F("struct_array_fields", "struct_array_fields", ListOf(StructArrayFieldSchema)),
    )


@dataclass(frozen=True, kw_only=True)
class IndexInfo(GoStruct):
    """``IndexInfo``: one index; ``params`` holds ``index_type``, ``metric_type`` and the build params."""

    field_name: str = ""
    index_name: str = ""
    index_type: str = ""
    params: Mapping[str, str] = _dict()
    index_id: int = 0
    field_id: int = 0
    create_time: int = 0
    type_params: tuple[KeyValuePair, ...] = _tuple()
    index_params: tuple[KeyValuePair, ...] = _tuple()
    user_index_params: tuple[KeyValuePair, ...] = _tuple()
    is_auto_index: bool = False
    min_index_version: int = 0
    max_index_version: int = 0
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("field_name", "field_name", STR),
        F("index_name", "index_name", STR),
        F("index_type", "index_type", STR),
        F("params", "params", MAP_STR),
        F("index_id", "index_id", INT),
        F("field_id", "field_id", INT),
        F("create_time", "create_time", INT),
        F("type_params", "type_params", ListOf(KeyValuePair)),
        F("index_params", "index_params", ListOf(KeyValuePair)),
        F("user_index_params", "user_index_params", ListOf(KeyValuePair)),
        F("is_auto_index", "is_auto_index", BOOL),
        F("min_index_version", "min_index_version", INT),
        F("max_index_version", "max_index_version", INT),
    )
