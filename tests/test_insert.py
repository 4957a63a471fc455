"""BatchInserter: float vectors go into insert requests as raw bytes, every other field through pymilvus."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine.arrow import table_to_rows
from airflow_milvus_backup.engine.insert import BatchInserter, _float_vector_bytes
from airflow_milvus_backup.engine.schema import exported_fields

if TYPE_CHECKING:
    from pymilvus.grpc_gen import schema_pb2

DIM = 8


def _vectors(n: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(7).random((n, dim), dtype=np.float32)


def _column(vectors: np.ndarray) -> pa.Array:
    n, dim = vectors.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)), vectors.ravel())


def float_vector_field(
    name: str, dim: int, column: pa.Array | pa.ChunkedArray
) -> schema_pb2.FieldData | None:
    """Return the FieldData BatchInserter sends for a float vector column (None: left to pymilvus)."""
    from pymilvus.grpc_gen import schema_pb2

    vectors = _float_vector_bytes(dim, column)
    if vectors is None:
        return None
    fd = schema_pb2.FieldData(field_name=name, type=DataType.FLOAT_VECTOR)
    fd.vectors.MergeFromString(vectors)
    return fd


def _pymilvus_field_data(vectors: np.ndarray) -> schema_pb2.FieldData:
    """Return the FieldData pymilvus itself packs for the same vectors."""
    from pymilvus.client.prepare import Prepare

    info = [
        {"name": "id", "type": DataType.INT64, "is_primary": True, "auto_id": False, "params": {}},
        {"name": "v", "type": DataType.FLOAT_VECTOR, "params": {"dim": vectors.shape[1]}},
    ]
    rows = [{"id": i, "v": v.tolist()} for i, v in enumerate(vectors)]
    request = Prepare.row_insert_param("c", rows, "", info)
    return next(fd for fd in request.fields_data if fd.field_name == "v")


def test_float_vector_field_encodes_what_pymilvus_encodes() -> None:
    vectors = _vectors(50)
    ours = float_vector_field("v", DIM, _column(vectors))
    assert ours is not None
    assert ours.SerializeToString() == _pymilvus_field_data(vectors).SerializeToString()
    # a slice of a batch (non-zero offset) and a chunked column encode the same rows
    sliced = float_vector_field("v", DIM, _column(vectors).slice(10, 20))
    assert sliced is not None
    assert list(sliced.vectors.float_vector.data) == pytest.approx(vectors[10:30].ravel().tolist())
    chunked = pa.chunked_array([_column(vectors[:20]), _column(vectors[20:])])
    assert float_vector_field("v", DIM, chunked).SerializeToString() == ours.SerializeToString()


def test_float_vector_field_refuses_what_it_cannot_copy() -> None:
    vectors = _vectors(3)
    with_null = pa.array([vectors[0].tolist(), None, vectors[2].tolist()], type=pa.list_(pa.float32()))
    ragged = pa.array([vectors[0].tolist(), vectors[1][:4].tolist()], type=pa.list_(pa.float32()))
    assert float_vector_field("v", DIM, with_null) is None
    assert float_vector_field("v", DIM, ragged) is None
    assert float_vector_field("v", DIM + 1, _column(vectors)) is None
    assert float_vector_field("v", DIM, pa.array([1.0, 2.0], type=pa.float32())) is None


def _schema() -> tuple[object, list[dict[str, object]]]:
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64, nullable=True)
    schema.add_field("doc", DataType.JSON)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.INT32, max_capacity=4)
    fields = [
        {"name": "id", "type": "INT64", "is_primary": True},
        {"name": "v", "type": "FLOAT_VECTOR", "params": {"dim": DIM}},
        {"name": "title", "type": "VARCHAR", "nullable": True},
        {"name": "doc", "type": "JSON"},
        {"name": "tags", "type": "ARRAY", "element_type": "INT32"},
    ]
    return schema, exported_fields({"fields": fields, "enable_dynamic_field": True})


def _table(n: int) -> pa.Table:
    vectors = _vectors(n)
    return pa.table(
        {
            "id": pa.array(range(n), type=pa.int64()),
            "v": _column(vectors),
            "title": pa.array([None if i % 3 == 0 else f"t{i}" for i in range(n)], type=pa.string()),
            "doc": pa.array([json.dumps({"i": i, "s": "é"}) for i in range(n)], type=pa.string()),
            "tags": pa.array([[i, i + 1] for i in range(n)], type=pa.list_(pa.int32())),
            "$meta": pa.array([json.dumps({"extra": i}) if i % 2 else "{}" for i in range(n)], pa.string()),
        }
    )


@pytest.mark.parametrize("fast", [True, False], ids=["raw-bytes", "client-insert"])
def test_batch_inserter_round_trips_every_field(lite_client: MilvusClient, fast: bool) -> None:
    """Rows read back equal the table, with the fast path and with the public fallback."""
    schema, fields = _schema()
    lite_client.create_collection("c", schema=schema)
    table = _table(300)
    inserter = BatchInserter(lite_client, "c", fields, skip=set())
    assert inserter.fast
    if not fast:
        inserter._fast = None  # what a pymilvus without the internals gets
    assert inserter.insert(table.slice(0, 120), None) == 120
    # nullable VARCHAR and ARRAY go through pymilvus' row packing, the rest column-wise
    assert inserter.columnar == (["id", "v", "doc"] if fast else [])
    assert inserter.insert(table.slice(120), None) == 180
    got = lite_client.query("c", filter="id >= 0", output_fields=["*"], limit=1000)
    got.sort(key=lambda r: r["id"])
    want = table_to_rows(table, fields)
    assert len(got) == len(want) == 300
    for g, w in zip(got, want, strict=True):
        assert g["v"] == pytest.approx(list(w["v"]), abs=0)
        assert {k: g.get(k) for k in ("id", "title", "doc", "tags")} == {
            k: w.get(k) for k in ("id", "title", "doc", "tags")
        }
        assert g.get("extra") == w.get("extra")


def test_sparse_vectors_are_packed_by_pymilvus_beside_columnar_keys(
    lite_client: MilvusClient,
) -> None:
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("s", DataType.SPARSE_FLOAT_VECTOR)
    lite_client.create_collection("sparse", schema=schema)
    fields = [
        {"name": "id", "type": "INT64", "is_primary": True},
        {"name": "s", "type": "SPARSE_FLOAT_VECTOR"},
    ]
    inserter = BatchInserter(lite_client, "sparse", fields, skip=set())
    sparse = pa.array([[(1, 0.5), (7, 1.25)], [(3, 2.0)]], type=pa.map_(pa.uint32(), pa.float32()))
    assert inserter.insert(pa.table({"id": pa.array([1, 2], type=pa.int64()), "s": sparse}), None) == 2
    assert inserter.columnar == ["id"]
    got = sorted(lite_client.query("sparse", filter="id > 0", output_fields=["s"]), key=lambda r: r["id"])
    assert [dict(r["s"]) for r in got] == [{1: 0.5, 7: 1.25}, {3: 2.0}]


def test_batch_inserter_builds_a_request_of_columns_only(lite_client: MilvusClient) -> None:
    """No nullable or composite field: no row is built at all; the rows read back are equal."""
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("ok", DataType.BOOL)
    schema.add_field("doc", DataType.JSON)
    lite_client.create_collection("cols", schema=schema)
    n = 50
    table = pa.table(
        {
            "id": pa.array(range(n), type=pa.int64()),
            "v": _column(_vectors(n)),
            "title": pa.array([f"t{i} é" for i in range(n)], type=pa.string()),
            "score": pa.array([i / 3 for i in range(n)], type=pa.float64()),
            "ok": pa.array([i % 2 == 0 for i in range(n)], type=pa.bool_()),
            "doc": pa.array([json.dumps([i, {"k": None}]) for i in range(n)], type=pa.string()),
        }
    )
    fields = [
        {"name": "id", "type": "INT64", "is_primary": True},
        {"name": "v", "type": "FLOAT_VECTOR"},
        {"name": "title", "type": "VARCHAR"},
        {"name": "score", "type": "DOUBLE"},
        {"name": "ok", "type": "BOOL"},
        {"name": "doc", "type": "JSON"},
    ]
    inserter = BatchInserter(lite_client, "cols", fields, skip=set())
    assert inserter.insert(table, None) == n
    assert inserter.columnar == ["id", "v", "title", "score", "ok", "doc"]
    got = sorted(lite_client.query("cols", filter="id >= 0", output_fields=["*"]), key=lambda r: r["id"])
    want = table_to_rows(table, fields)
    assert [{k: r[k] for k in ("id", "title", "score", "ok", "doc")} for r in got] == [
        {k: r[k] for k in ("id", "title", "score", "ok", "doc")} for r in want
    ]
    assert [r["v"] for r in got] == [pytest.approx(list(r["v"]), abs=0) for r in want]


def test_dynamic_values_for_a_collection_without_a_dynamic_field_are_refused(
    lite_client: MilvusClient,
) -> None:
    schema = MilvusClient.create_schema(enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    lite_client.create_collection("static", schema=schema)
    fields = [{"name": "id", "type": "INT64", "is_primary": True}, {"name": "v", "type": "FLOAT_VECTOR"}]
    table = pa.table(
        {
            "id": pa.array([1], type=pa.int64()),
            "v": _column(_vectors(1)),
            "$meta": pa.array(['{"color":"red"}'], type=pa.string()),
        }
    )
    with pytest.raises(Exception, match="color"):
        BatchInserter(lite_client, "static", fields, skip=set()).insert(table, None)
    assert lite_client.query("static", filter="id >= 0") == []
