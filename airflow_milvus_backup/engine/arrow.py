"""Milvus field types <-> Arrow types, and rows <-> Arrow tables, keeping every value exact.

The mapping (documented in FORMAT.md):

=====================  ==========================================  =========================================
Milvus                 Arrow / Parquet column                      Notes
=====================  ==========================================  =========================================
BOOL, INT8..INT64      bool, int8, int16, int32, int64
FLOAT, DOUBLE          float32, float64
VARCHAR                string (utf8)                               ``pa.string()``, never large_string
JSON                   string                                      the JSON text
ARRAY                  list<element type>
FLOAT_VECTOR           list<float32>                               dim values per row
BINARY_VECTOR          list<uint8>                                 dim / 8 bytes per row
FLOAT16/BFLOAT16_VEC.  list<uint8>                                 2 x dim bytes per row, little endian
INT8_VECTOR            list<int8>
SPARSE_FLOAT_VECTOR    map<uint32, float32>                        index -> value
GEOMETRY, TIMESTAMPTZ  string                                      as the server returns them
``$meta``              string                                      JSON object of the dynamic fields
=====================  ==========================================  =========================================

Nullable fields use Arrow nulls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import UnsupportedError

if TYPE_CHECKING:
    import pyarrow as pa

META_FIELD = "$meta"

_SCALARS = {
    "BOOL": "bool_",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "VARCHAR": "string",
    "STRING": "string",
    "JSON": "string",
    "GEOMETRY": "string",
    "TIMESTAMPTZ": "string",
}
_BYTE_VECTORS = {"BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR"}


def arrow_type(field: dict[str, Any]) -> pa.DataType:
    """Return the Arrow type that stores values of a captured Milvus field exactly."""
    import pyarrow as pa

    t = field["type"]
    if t in _SCALARS:
        return getattr(pa, _SCALARS[t])()
    if t == "ARRAY":
        et = field.get("element_type")
        if et not in _SCALARS or et == "JSON":
            raise UnsupportedError(
                f"Array field {field['name']!r} has element type {et} this package cannot store."
            )
        return pa.list_(getattr(pa, _SCALARS[et])())
    if t == "FLOAT_VECTOR":
        return pa.list_(pa.float32())
    if t in _BYTE_VECTORS:
        return pa.list_(pa.uint8())
    if t == "INT8_VECTOR":
        return pa.list_(pa.int8())
    if t == "SPARSE_FLOAT_VECTOR":
        return pa.map_(pa.uint32(), pa.float32())
    raise UnsupportedError(f"Field {field['name']!r} has type {t} that this package cannot back up yet.")


def arrow_schema(fields: list[dict[str, Any]], dynamic: bool) -> pa.Schema:
    """Return the Arrow schema of a collection's data files."""
    import pyarrow as pa

    cols = [pa.field(f["name"], arrow_type(f), nullable=True) for f in fields]
    if dynamic:
        cols.append(pa.field(META_FIELD, pa.string(), nullable=True))
    return pa.schema(cols)


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _bytes_of(v: Any) -> bytes | None:
    """Normalise a byte-vector value (bytes, a one-element list of bytes, or a numpy array) to bytes."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], (bytes, bytearray)):
        return bytes(v[0])
    if hasattr(v, "tobytes"):
        return bytes(v.tobytes())
    return bytes(v)


def _vector_column(values: list[Any], value_type: pa.DataType, np_dtype: str) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    if any(v is None for v in values):
        return pa.array(values, type=pa.list_(value_type))
    if not values:
        return pa.array([], type=pa.list_(value_type))
    arr = np.asarray(values, dtype=np_dtype)
    if arr.ndim != 2:
        return pa.array([list(v) for v in values], type=pa.list_(value_type))
    n, dim = arr.shape
    flat = pa.array(arr.reshape(-1), type=value_type)
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def rows_to_table(
    rows: list[dict[str, Any]],
    fields: list[dict[str, Any]],
    schema: pa.Schema,
    dynamic: bool,
    all_names: set[str] | None = None,
) -> pa.Table:
    """Convert rows as returned by ``query_iterator`` into a table of ``schema``, values exact.

    :param all_names: every field name of the collection; other keys of a row belong to ``$meta``.
    """
    import numpy as np
    import pyarrow as pa

    cols: list[pa.Array] = []
    names = all_names or {f["name"] for f in fields}
    for f, af in zip(fields, schema, strict=False):
        name, t = f["name"], f["type"]
        vals = [r.get(name) for r in rows]
        if t == "JSON":
            cols.append(pa.array([_json_text(v) for v in vals], type=pa.string()))
        elif t == "FLOAT_VECTOR":
            cols.append(_vector_column(vals, pa.float32(), "float32"))
        elif t == "INT8_VECTOR":
            cols.append(_vector_column(vals, pa.int8(), "int8"))
        elif t in _BYTE_VECTORS:
            bvals = [_bytes_of(v) for v in vals]
            cols.append(
                pa.array(
                    [None if b is None else np.frombuffer(b, dtype=np.uint8) for b in bvals], type=af.type
                )
            )
        elif t == "SPARSE_FLOAT_VECTOR":
            cols.append(
                pa.array(
                    [
                        None if v is None else sorted((int(k), float(x)) for k, x in _sparse_items(v))
                        for v in vals
                    ],
                    type=af.type,
                )
            )
        else:
            cols.append(pa.array(vals, type=af.type))
    if dynamic:
        metas = []
        for r in rows:
            extra = r.get(META_FIELD)
            if extra is None:
                extra = {k: v for k, v in r.items() if k not in names}
            metas.append(_json_text(extra))
        cols.append(pa.array(metas, type=pa.string()))
    return pa.Table.from_arrays(cols, schema=schema)


def _sparse_items(v: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(v, dict):
        return v.items()
    if hasattr(v, "tocoo"):
        coo = v.tocoo()
        return zip(coo.col.tolist(), coo.data.tolist(), strict=False)
    return v  # type: ignore[no-any-return]


def table_to_rows(
    table: pa.Table, fields: list[dict[str, Any]], *, skip: set[str] | None = None
) -> list[dict[str, Any]]:
    """Convert a data-file table back into rows that ``MilvusClient.insert`` takes, values exact.

    :param skip: field names to leave out (e.g. an auto_id primary key when new keys are accepted).
    """
    import numpy as np

    skip = skip or set()
    n = table.num_rows
    columns: dict[str, list[Any]] = {}
    for f in fields:
        name, t = f["name"], f["type"]
        if name in skip or name not in table.column_names:
            continue
        col = table.column(name)
        if t == "FLOAT_VECTOR" and col.null_count == 0:
            flat = (
                col.combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            )
            dim = len(flat) // n if n else 0
            columns[name] = list(flat.reshape(n, dim)) if n else []
        elif t == "JSON":
            columns[name] = [None if v is None else json.loads(v) for v in col.to_pylist()]
        elif t in _BYTE_VECTORS:
            columns[name] = [None if v is None else bytes(v) for v in col.to_pylist()]
        elif t == "INT8_VECTOR":
            columns[name] = [None if v is None else np.asarray(v, dtype=np.int8) for v in col.to_pylist()]
        elif t == "SPARSE_FLOAT_VECTOR":
            columns[name] = [None if v is None else {int(k): float(x) for k, x in v} for v in col.to_pylist()]
        else:
            columns[name] = col.to_pylist()
    metas = table.column(META_FIELD).to_pylist() if META_FIELD in table.column_names else None
    rows: list[dict[str, Any]] = []
    keys = list(columns)
    for i in range(n):
        row = {k: columns[k][i] for k in keys}
        if metas is not None and metas[i]:
            extra = json.loads(metas[i])
            if isinstance(extra, dict):
                row.update(extra)
        rows.append(row)
    return rows
