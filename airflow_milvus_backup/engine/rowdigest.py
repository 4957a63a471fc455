"""Exact, comparable forms of row values and digests of rows, and the backup side of the rows compared.

A restore is verified row by row (:mod:`~.verify_rows`): a digest of each row over every stored field, exact
to the bit (float32 by its bytes, JSON as canonical text with numbers as exact decimals, the dynamic fields
included), computed the same way over the backup's rows and the target's.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.arrow import META_FIELD, _bytes_of
from airflow_milvus_backup.engine.fieldtypes import BYTE_VECTOR_TYPES
from airflow_milvus_backup.engine.jsontext import canonical_json, canonical_json_text

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

#: Rows per table read from a data object (and per ``pk in [...]`` query of the same rows).
QUERY_CHUNK = 512


def _f32(v: float) -> bytes:
    return struct.pack("<f", float(v))


def _f64(v: float) -> bytes:
    return struct.pack("<d", float(v))


def canonical_value(value: Any, field: dict[str, Any], json_as_float: bool = False) -> Any:
    """Return an exact, comparable form of one value of a field (float32 by its bytes, JSON canonical)."""
    import numpy as np

    if value is None:
        return None
    t = field["type"]
    if t == "FLOAT_VECTOR":
        return np.asarray(value, dtype=np.float32).tobytes().hex()
    if t == "INT8_VECTOR":
        return np.asarray(value, dtype=np.int8).tobytes().hex()
    if t in BYTE_VECTOR_TYPES:
        b = _bytes_of(value)
        return b.hex() if b is not None else None
    if t == "SPARSE_FLOAT_VECTOR":
        items = value.items() if isinstance(value, dict) else value
        return sorted((int(k), _f32(x).hex()) for k, x in items)
    if t == "FLOAT":
        return _f32(value).hex()
    if t == "DOUBLE":
        return _f64(value).hex()
    if t == "JSON":
        # exact: two numbers that differ in any digit differ here (a float64 would merge them)
        if isinstance(value, (bytes, str)):
            return canonical_json_text(value, json_as_float)
        return canonical_json(value, json_as_float)
    if t == "ARRAY":
        et = field.get("element_type")
        if et == "FLOAT":
            return [_f32(x).hex() for x in value]
        if et == "DOUBLE":
            return [_f64(x).hex() for x in value]
        return [x.item() if hasattr(x, "item") else x for x in value]
    if t == "BOOL":
        return bool(value)
    if t in ("INT8", "INT16", "INT32", "INT64"):
        return int(value)
    return value


def row_digest(
    row: Mapping[str, Any],
    fields: list[dict[str, Any]],
    all_names: set[str],
    dynamic: bool,
    skip: str | None = None,
    json_as_float: bool = False,
) -> str:
    """Return a digest of one row over every stored field (and the dynamic fields), exact to the bit.

    :param row: a row as ``query`` returns it or as :func:`~.arrow.table_to_rows` builds it.
    :param fields: the stored fields (function outputs excluded).
    :param all_names: every field name of the collection (other keys are dynamic fields).
    :param dynamic: whether the collection has a dynamic field.
    :param skip: a field to leave out (the primary key, when keys were regenerated).
    :param json_as_float: JSON numbers as float64 (where one side's rows only come decoded by pymilvus).
    """
    canon: dict[str, Any] = {}
    for f in fields:
        if f["name"] != skip:
            canon[f["name"]] = canonical_value(row.get(f["name"]), f, json_as_float)
    if dynamic:
        extra = row.get(META_FIELD)
        if isinstance(extra, (str, bytes)):
            canon[META_FIELD] = canonical_json_text(extra, json_as_float)
        else:
            if not isinstance(extra, dict):
                extra = {k: v for k, v in row.items() if k not in all_names and k != META_FIELD}
            canon[META_FIELD] = canonical_json(extra, json_as_float)
    raw = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def iter_file_tables(storage: Storage, key: str, tmp_dir: str | None) -> Iterator[Any]:
    """Yield a data object of a backup as Arrow tables of at most 512 rows (downloaded to ``tmp_dir``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fd, name = tempfile.mkstemp(prefix="milvus-verify-", suffix=".parquet", dir=tmp_dir)
    os.close(fd)
    path = Path(name)
    try:
        storage.download(key, path)
        pf = pq.ParquetFile(str(path))
        for batch in pf.iter_batches(batch_size=QUERY_CHUNK):
            yield pa.Table.from_batches([batch])
    finally:
        path.unlink(missing_ok=True)
