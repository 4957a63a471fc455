"""Sample collections and exact comparison of rows, shared by the backup tests."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient

from airflow_milvus_backup.engine.arrow import table_to_rows

if TYPE_CHECKING:
    from collections.abc import Sequence


def create_vector_collection(
    client: MilvusClient,
    name: str,
    *,
    dim: int,
    dynamic: bool = False,
    fields: Sequence[tuple[str, DataType, dict[str, Any]]] = (),
) -> None:
    """Create collection ``name``: INT64 key ``id``, FLOAT_VECTOR ``vec`` (FLAT index, L2), then ``fields``.

    :param dim: the dimension of ``vec``.
    :param dynamic: whether the collection has the dynamic field.
    :param fields: more fields, in order, each ``(name, DataType, add_field keyword arguments)``.
    """
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=dynamic)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    for field_name, dtype, kwargs in fields:
        schema.add_field(field_name, dtype, **kwargs)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)


def full_lite_collection(
    client: MilvusClient, name: str, rows: int = 600, seed: int = 1
) -> list[dict[str, Any]]:
    """Every field type Milvus Lite supports, with nulls, defaults, dynamic keys and two partitions."""
    rng = random.Random(seed)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True, description="all lite types")
    s.add_field("id", DataType.INT64, is_primary=True, description="pk")
    s.add_field("b", DataType.BOOL)
    s.add_field("i8", DataType.INT8)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32, default_value=7)
    s.add_field("f", DataType.FLOAT)
    s.add_field("d", DataType.DOUBLE, nullable=True)
    s.add_field("text", DataType.VARCHAR, max_length=512, enable_analyzer=True)
    s.add_field("j", DataType.JSON, nullable=True)
    s.add_field("ai", DataType.ARRAY, element_type=DataType.INT64, max_capacity=8)
    s.add_field("af", DataType.ARRAY, element_type=DataType.DOUBLE, max_capacity=4, nullable=True)
    s.add_field("av", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=3, max_length=20)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    s.add_field("sp", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(
        Function(
            name="text_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["bm25"],
        )
    )
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="COSINE")
    ip.add_index("sp", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    ip.add_index("bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=s, index_params=ip, properties={"collection.ttl.seconds": "86400"})
    client.create_partition(name, "p1")
    data = []
    for i in range(rows):
        row: dict[str, Any] = {
            "id": i * 3 - 500,
            "b": i % 2 == 0,
            "i8": rng.randint(-128, 127),
            "i16": rng.randint(-32768, 32767),
            "f": float(np.float32(rng.uniform(-1e6, 1e6))),
            "d": None if i % 5 == 0 else rng.uniform(-1e300, 1e300),
            "text": f"row {i} ünïcødé 字 "
            + " ".join(rng.choice(["milvus", "backup", "airflow", "s3"]) for _ in range(5)),
            "j": None if i % 7 == 0 else {"k": i, "nested": {"list": [1, 2.5, "x"], "u": "é"}, "f": 0.1},
            "ai": [rng.randint(-(2**62), 2**62) for _ in range(rng.randint(0, 8))],
            "af": None if i % 4 == 0 else [rng.random() for _ in range(3)],
            "av": ["a", "bé", "c"][: rng.randint(0, 3)],
            "vec": np.random.default_rng(i).random(16, dtype=np.float32).tolist(),
            "sp": {rng.randint(0, 10000): float(np.float32(rng.random())) for _ in range(rng.randint(1, 5))},
        }
        if i % 3:
            row["i32"] = rng.randint(-(2**31), 2**31 - 1)
        if i % 2:
            row["extra_key"] = {"dyn": i}
            row["tag"] = f"t{i % 4}"
        data.append(row)
    half = rows // 2
    client.insert(name, data[:half])
    client.insert(name, data[half:], partition_name="p1")
    return data


def canon(value: Any, ftype: str) -> Any:
    """Return a comparable, exact form of one value."""
    if value is None:
        return None
    if ftype == "FLOAT_VECTOR":
        return np.asarray(value, dtype=np.float32).tobytes()
    if ftype == "FLOAT":
        return np.float32(value).tobytes()
    if ftype in ("BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR"):
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], bytes):
            value = value[0]
        return bytes(value)
    if ftype == "SPARSE_FLOAT_VECTOR":
        return tuple(sorted((int(k), np.float32(v).tobytes()) for k, v in dict(value).items()))
    if ftype == "JSON":
        return json.dumps(value, sort_keys=True)
    if ftype == "ARRAY":
        return tuple(value)
    return value


def canon_rows(
    rows: list[dict[str, Any]], fields: list[dict[str, Any]], pk: str, dynamic: bool = False
) -> dict[Any, dict[str, Any]]:
    """Key rows by primary key, each value in its exact comparable form (function outputs left out)."""
    names = {f["name"] for f in fields}
    out = {}
    for r in rows:
        c = {f["name"]: canon(r.get(f["name"]), f["type"]) for f in fields if not f.get("is_function_output")}
        if dynamic:
            extra = {k: v for k, v in r.items() if k not in names and k != "$meta"}
            c["$meta"] = json.dumps(extra, sort_keys=True)
        out[r[pk]] = c
    return out


def read_backup_rows(storage: Any, backup: str, coll_meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Read every data file of one backed-up collection back into rows, straight from Parquet."""
    import io

    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    fields = [f for f in coll_meta["fields"] if not f.get("is_function_output")]
    for part in coll_meta["data"]:
        for f in part["files"]:
            table = pq.read_table(io.BytesIO(storage.get_bytes(f"{backup}/{f['key']}")))
            rows.extend(table_to_rows(table, fields))
    return rows


def source_rows(
    client: MilvusClient, name: str, fields: list[dict[str, Any]], dynamic: bool
) -> list[dict[str, Any]]:
    """Read every row of a collection with query_iterator (all stored fields)."""
    out_fields = ["*"] if dynamic else [f["name"] for f in fields if not f.get("is_function_output")]
    it = client.query_iterator(name, batch_size=1000, output_fields=out_fields)
    rows: list[dict[str, Any]] = []
    while batch := it.next():
        rows.extend(dict(r) for r in batch)
    it.close()
    return rows
