"""The one table of field types: what restore, verify and the Arrow mapping each ask of it."""

from __future__ import annotations

import pyarrow as pa

from airflow_milvus_backup.engine import fieldtypes as ft
from airflow_milvus_backup.engine.arrow import arrow_type

DENSE = {"FLOAT_VECTOR", "BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR"}


def test_vector_sets_restore_and_verify_use() -> None:
    # restore counts and indexes every vector field, sparse too; verify searches only the dense ones
    assert ft.VECTOR_TYPES == DENSE | {"SPARSE_FLOAT_VECTOR"}
    assert ft.DENSE_VECTOR_TYPES == DENSE
    assert ft.BYTE_VECTOR_TYPES == {"BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR"}
    assert [t for t in ft.FIELD_TYPES if ft.is_vector(t)] == [
        t for t in ft.FIELD_TYPES if t.endswith("_VECTOR")
    ]


def test_what_a_server_holds() -> None:
    assert ft.LITE_UNSUPPORTED == {"BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR"}
    assert ft.TYPE_SINCE["JSON"] == (2, 2)
    assert ft.TYPE_SINCE["SPARSE_FLOAT_VECTOR"] == (2, 4)
    assert "INT64" not in ft.TYPE_SINCE
    # bulk import reads the scalar columns and the float and binary vectors as written, nothing else
    assert ft.BULK_IMPORT_TYPES == {
        "BOOL", "INT8", "INT16", "INT32", "INT64", "FLOAT", "DOUBLE", "VARCHAR", "JSON", "ARRAY",
        "FLOAT_VECTOR", "BINARY_VECTOR",
    }  # fmt: skip


def test_vector_width_and_arrow_type_follow_the_table() -> None:
    def f(t: str, dim: int | None = 16) -> dict:
        return {"name": "v", "type": t, "params": {} if dim is None else {"dim": dim}}

    assert [ft.vector_width(f(t)) for t in sorted(DENSE)] == [32, 2, 32, 16, 16]
    assert ft.vector_width(f("SPARSE_FLOAT_VECTOR")) is None
    assert ft.vector_width(f("FLOAT_VECTOR", None)) is None
    assert arrow_type(f("FLOAT16_VECTOR")) == pa.list_(pa.uint8())
    assert arrow_type(f("INT8_VECTOR")) == pa.list_(pa.int8())
    assert arrow_type(f("SPARSE_FLOAT_VECTOR")) == pa.map_(pa.uint32(), pa.float32())
    assert arrow_type({"name": "s", "type": "INT8"}) == pa.int8()
