"""Milvus field types <-> Arrow types, and rows <-> Arrow tables, keeping every value exact.

The mapping (documented in FORMAT.md; the types themselves are :mod:`~.fieldtypes`' one table):

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
from airflow_milvus_backup.engine.fieldtypes import (
    BYTE_VECTOR_TYPES,
    DENSE_VECTOR_TYPES,
    FIELD_TYPES,
    SCALAR_ARROW,
    VECTOR_TYPES,
)
from airflow_milvus_backup.engine.jsontext import exact_dumps, exact_json_text, exact_loads

if TYPE_CHECKING:
    import pyarrow as pa

META_FIELD = "$meta"


def arrow_type(field: dict[str, Any]) -> pa.DataType:
    """Return the Arrow type that stores values of a captured Milvus field exactly."""
    import pyarrow as pa

    t = field["type"]
    if t in SCALAR_ARROW:
        return getattr(pa, SCALAR_ARROW[t])()
    if t == "ARRAY":
        et = field.get("element_type")
        if et not in SCALAR_ARROW or et == "JSON":
            raise UnsupportedError(
                f"Array field {field['name']!r} has element type {et} this package cannot store."
            )
        return pa.list_(getattr(pa, SCALAR_ARROW[et])())
    if t in DENSE_VECTOR_TYPES:
        return pa.list_(getattr(pa, str(FIELD_TYPES[t].arrow))())
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


# json.dumps(v, ensure_ascii=False, separators=(",", ":")), without building an encoder per value
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    return _JSON_ENCODER.encode(v)


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
        elif t in BYTE_VECTOR_TYPES:
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
    return v


# Dense vector types read straight from a query result's protobuf: attribute of ``VectorField`` (the type's
# name in lower case), numpy dtype (the Arrow value type's name), values per row as a function of ``dim``.
_DENSE_PAYLOAD: dict[str, tuple[str, str, Any]] = {
    n: (n.lower(), str(FIELD_TYPES[n].arrow), FIELD_TYPES[n].width) for n in sorted(DENSE_VECTOR_TYPES)
}


def dictionary_columns(schema: pa.Schema, fields: list[dict[str, Any]]) -> list[str]:
    """Return the Parquet column paths worth dictionary encoding: all but the vectors.

    Vectors are high-entropy numbers: trying a dictionary first costs about twice the CPU of writing them
    plainly (zstd) and saves nothing.
    """
    import pyarrow as pa

    vectors = {f["name"] for f in fields if f["type"] in VECTOR_TYPES}
    out: list[str] = []
    for af in schema:
        if af.name in vectors:
            continue
        if pa.types.is_list(af.type):
            out.append(f"{af.name}.list.element")
        elif pa.types.is_map(af.type):
            out += [f"{af.name}.key_value.key", f"{af.name}.key_value.value"]
        else:
            out.append(af.name)
    return out


def _json_loads() -> Any:
    try:
        import orjson  # what pymilvus decodes JSON cells with

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with pymilvus
        return json.loads


def _dense_from_field_data(fd: Any, kind: str, n: int) -> pa.Array | None:
    import numpy as np
    import pyarrow as pa

    if len(fd.valid_data):  # nullable vectors are stored sparsely: leave them to the row path
        return None
    attr, np_dtype, width_of = _DENSE_PAYLOAD[kind]
    payload = getattr(fd.vectors, attr)
    width = width_of(int(fd.vectors.dim))
    if kind == "FLOAT_VECTOR":
        flat = np.array(payload.data, dtype=np.float32)  # one C-level copy, no Python floats
    else:
        flat = np.frombuffer(payload, dtype=np_dtype)
    if width <= 0 or flat.size != n * width:
        return None
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat))


def _sparse_from_field_data(fd: Any, n: int) -> pa.Array | None:
    """Return a sparse vector column: each row's bytes are (uint32 index, float32 value) pairs."""
    import numpy as np
    import pyarrow as pa

    contents = fd.vectors.sparse_float_vector.contents
    if len(fd.valid_data) or len(contents) != n:
        return None
    pair = np.dtype([("i", "<u4"), ("v", "<f4")])
    rows = [np.sort(np.frombuffer(b, dtype=pair), order="i") for b in contents]
    flat = np.concatenate(rows) if rows else np.empty(0, dtype=pair)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return pa.MapArray.from_arrays(
        pa.array(offsets), pa.array(flat["i"].astype(np.uint32)), pa.array(flat["v"].astype(np.float32))
    )


def result_to_table(
    result: Any,
    fields: list[dict[str, Any]],
    schema: pa.Schema,
    dynamic: bool,
    all_names: set[str] | None = None,
) -> pa.Table | None:
    """Convert one page of ``MilvusClient.query`` results into a table of ``schema``, column by column.

    pymilvus returns a query page as a list of row dicts whose scalar values are filled in, while vectors
    and JSON stay in their protobuf columns until a row is read (``HybridExtraList``). Reading a row turns
    its vector into a list of Python floats, which costs more than everything else a backup does; here
    the vector column becomes one numpy array instead, and the values are the same as
    :func:`rows_to_table` gives for the rows. Return ``None`` when ``result`` is not such a page or holds
    a field this fast path does not handle (nullable vectors, struct arrays); the caller then converts the
    rows.
    """
    import pyarrow as pa

    lazy = getattr(result, "_lazy_field_data", None)
    if not isinstance(result, list) or lazy is None:
        return None
    rows: list[dict[str, Any]] = list.__getitem__(result, slice(None))  # the rows, not materialized
    n = len(rows)
    if n == 0:
        return pa.Table.from_pylist([], schema=schema)
    by_name = {fd.field_name: fd for fd in lazy}
    names = all_names or {f["name"] for f in fields}
    loads = _json_loads()
    cols: list[pa.Array] = []
    for f, af in zip(fields, schema, strict=False):
        name, t = f["name"], f["type"]
        fd = by_name.get(name)
        if fd is None:
            vals = [r.get(name) for r in rows]
            if (t in VECTOR_TYPES or t == "JSON") and any(v is not None for v in vals):
                return None  # not the page shape this function knows
            cols.append(pa.array(vals, type=af.type))
        elif t in _DENSE_PAYLOAD:
            col = _dense_from_field_data(fd, t, n)
            if col is None:
                return None
            cols.append(col)
        elif t == "SPARSE_FLOAT_VECTOR":
            col = _sparse_from_field_data(fd, n)
            if col is None:
                return None
            cols.append(col)
        elif t == "JSON" and not fd.is_dynamic:
            # the text Milvus returned, exactly: decoding would turn wide numbers into float64
            data, valid = fd.scalars.json_data.data, fd.valid_data
            has_valid = len(valid) > 0
            cols.append(
                pa.array(
                    [
                        None if (has_valid and not valid[i]) or i >= len(data) else exact_json_text(data[i])
                        for i in range(n)
                    ],
                    type=pa.string(),
                )
            )
        else:
            return None
    if dynamic:
        meta_fd = next((fd for fd in lazy if fd.is_dynamic), None)
        present = set(rows[0])
        wanted = getattr(result, "_dynamic_fields", None) or set()
        metas: list[str | None] = []
        if meta_fd is None:
            metas = [_json_text({})] * n
        else:
            data, valid = meta_fd.scalars.json_data.data, meta_fd.valid_data
            has_valid = len(valid) > 0
            for i in range(n):
                raw = None if (has_valid and not valid[i]) or i >= len(data) else data[i]
                metas.append(_meta_text(raw, present, names, wanted, loads))
        cols.append(pa.array(metas, type=pa.string()))
    return pa.Table.from_arrays(cols, schema=schema)


def _meta_text(raw: bytes | None, present: set[str], names: set[str], wanted: set[str], loads: Any) -> str:
    """Return the dynamic fields of one row's ``$meta`` document as JSON text, every number exact.

    The keys that are not dynamic fields of the row (fields returned as columns, keys not asked for) are
    dropped; when there are none the text is Milvus' own, else the object is written again from an exact
    parse (:func:`~.jsontext.exact_loads`).
    """
    if raw is None:
        return "{}"
    try:
        keys = loads(raw)
    except ValueError:
        keys = None
    if not isinstance(keys, dict):
        doc = exact_loads(exact_json_text(raw))
        if not isinstance(doc, dict):
            raise UnsupportedError(
                f"Milvus returned the dynamic field ($meta) of a row as {raw[:80]!r}, which is not a JSON "
                "object; the backup cannot store it."
            )
        keys = doc
    drop = [k for k in keys if k in present or k in names or (wanted and k not in wanted)]
    if not drop:
        return raw.decode("utf-8", errors="surrogatepass")
    doc = exact_loads(raw.decode("utf-8", errors="surrogatepass"))
    return exact_dumps({k: v for k, v in doc.items() if k not in drop})


def table_to_rows(
    table: pa.Table,
    fields: list[dict[str, Any]],
    *,
    skip: set[str] | None = None,
    json_text: bool = False,
) -> list[dict[str, Any]]:
    """Convert a data-file table back into rows that ``MilvusClient.insert`` takes, values exact.

    :param skip: field names to leave out (e.g. an auto_id primary key when new keys are accepted).
    :param json_text: JSON values as their stored text (pymilvus sends a text verbatim; a decoded value
        would lose the digits beyond float64) and ``$meta`` as text under its own key instead of merged into
        the row.
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
        elif t == "JSON" and json_text:
            columns[name] = col.to_pylist()
        elif t == "JSON":
            columns[name] = [None if v is None else json.loads(v) for v in col.to_pylist()]
        elif t in BYTE_VECTOR_TYPES:
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
        if json_text and metas is not None:
            row[META_FIELD] = metas[i] or "{}"
        elif metas is not None and metas[i]:
            extra = json.loads(metas[i])
            if isinstance(extra, dict):
                row.update(extra)
        rows.append(row)
    return rows
