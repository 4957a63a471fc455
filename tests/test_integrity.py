"""One integrity check of data against the manifest, used by verify_backup and by a restore.

Real backups of Milvus Lite whose Parquet files or manifest are then tampered with (the sha256 and size
fixed up so that only the disagreement is left): verify_backup names the file, the field and what the
manifest expects, and a restore fails without leaving a target (or a restore status) behind.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import BackupEngine, IntegrityError, LocalStorage, MilvusParams, S3Storage
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.integrity import content_problems, footer_problems, vector_width
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import verify_backup

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

ROWS = 60


def make_collection(client: MilvusClient) -> None:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("i8", DataType.INT8)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("title", DataType.VARCHAR, max_length=16)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=3, max_length=5)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("c", schema=s, index_params=ip)
    client.insert(
        "c",
        [
            {
                "id": i,
                "i8": i - 30,
                "vec": [float(i) / (k + 1) for k in range(8)],
                "title": "ééééé title" if i % 2 else "t",  # 11 characters, 16 bytes
                "tags": ["a", "ü" * 5, "c"][: 1 + i % 3],
            }
            for i in range(ROWS)
        ],
    )


def coll_and_file(storage: Storage) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    m = mf.load_manifest(storage, "t1").to_json()
    coll = m["collections"][0]
    return m, coll, coll["data"][0]["files"][0]


def rewrite(storage: Storage, change: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite the first data file with ``change`` applied, and fix its sha256 and size in the manifest."""
    m, _, f = coll_and_file(storage)
    table = change(pq.read_table(io.BytesIO(storage.get_bytes(f"t1/{f['key']}"))))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    raw = buf.getvalue()
    storage.put_bytes(f"t1/{f['key']}", raw)
    f.update(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    storage.put_bytes(mf.manifest_key("t1"), mf.dumps(m))


def edit_field(storage: Storage, name: str, **params: Any) -> None:
    m, coll, _ = coll_and_file(storage)
    field = next(x for x in coll["fields"] if x["name"] == name)
    field["params"].update(params)
    storage.put_bytes(mf.manifest_key("t1"), mf.dumps(m))


def column(name: str, values: pa.Array) -> Callable[[pa.Table], pa.Table]:
    def change(t: pa.Table) -> pa.Table:
        return t.set_column(t.schema.get_field_index(name), name, values)

    return change


def _vec64(t: pa.Table) -> pa.Table:
    vec = t.column("vec").cast(pa.list_(pa.float64()))
    return t.set_column(t.schema.get_field_index("vec"), "vec", vec)


def _i8_as_int64(t: pa.Table) -> pa.Table:
    return t.set_column(t.schema.get_field_index("i8"), "i8", t.column("i8").cast(pa.int64()))


def _null_title(t: pa.Table) -> pa.Table:
    titles = t.column("title").to_pylist()
    titles[3] = None
    return t.set_column(t.schema.get_field_index("title"), "title", pa.array(titles, pa.string()))


def _short_vectors(t: pa.Table) -> pa.Table:
    vecs = [v[:4] for v in t.column("vec").to_pylist()]
    return t.set_column(t.schema.get_field_index("vec"), "vec", pa.array(vecs, pa.list_(pa.float32())))


CASES: dict[str, tuple[Callable[[Storage], None], str]] = {
    "int64 data for an INT8 field": (
        lambda s: rewrite(s, _i8_as_int64),
        r"column 'i8' is int64, the field needs int8",
    ),
    "float64 vectors": (
        lambda s: rewrite(s, _vec64),
        r"column 'vec' is list<element: double>, the field needs list<(item|element): float>",
    ),
    "vectors shorter than the manifest's dim": (
        lambda s: rewrite(s, _short_vectors),
        r"field 'vec'.*4 values.*dim 8 in the manifest needs 8",
    ),
    "a manifest whose dim differs": (
        lambda s: edit_field(s, "vec", dim=16),
        r"field 'vec'.*8 values.*dim 16 in the manifest needs 16",
    ),
    "a manifest whose max_length is shorter": (
        lambda s: edit_field(s, "title", max_length=8),
        r"field 'title': a string of 11 characters, its max_length in the manifest is 8",
    ),
    "a manifest whose max_capacity is smaller": (
        lambda s: edit_field(s, "tags", max_capacity=2),
        r"field 'tags': an array of 3 elements, its max_capacity in the manifest is 2",
    ),
    "an array element longer than max_length": (
        lambda s: edit_field(s, "tags", max_length=4),
        r"field 'tags': an element of 5 characters, its max_length in the manifest is 4",
    ),
    "a null in a field that is not nullable": (
        lambda s: rewrite(s, _null_title),
        r"field 'title': 1 null value\(s\), the field is not nullable",
    ),
}


@pytest.fixture
def backed_up(lite_uri: str) -> MilvusParams:
    client = MilvusClient(lite_uri)
    make_collection(client)
    client.close()
    return MilvusParams(uri=lite_uri)


@pytest.mark.parametrize("case", list(CASES))
def test_backup_disagreeing_with_its_manifest_is_refused_by_verify_and_restore(
    case: str, backed_up: MilvusParams, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "b")
    BackupEngine(storage).create(backed_up, "t1")
    assert verify_backup(storage, "t1")["ok"]
    tamper, expected = CASES[case]
    tamper(storage)
    _, _, f = coll_and_file(storage)
    key = f"t1/{f['key']}"

    report = verify_backup(storage, "t1", raise_on_error=False)
    assert not report["ok"]
    problems = " ".join(e["error"] for e in report["errors"] if e["key"] == key)
    assert problems, report["errors"]
    assert re.search(expected, problems), problems
    with pytest.raises(IntegrityError, match=expected):
        verify_backup(storage, "t1")

    with pytest.raises(IntegrityError, match=expected) as e:
        RestoreEngine(storage).restore(backed_up, "t1", collection_suffix="_r", method="insert")
    assert key in str(e.value)
    client = MilvusClient(backed_up.uri)
    try:
        assert not client.has_collection("c_r")  # nothing created, or dropped again
        assert client.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == ROWS
    finally:
        client.close()
    # refused before anything was created (no status), or while reading the file (the failure is recorded)
    for rec in RestoreEngine(storage).list_restores("t1"):
        assert rec["state"] == "failed"
        assert key in rec["error"]


def test_footer_check_on_s3_refuses_before_creating(
    backed_up: MilvusParams, s3_server: Any, bucket: str
) -> None:
    """The restore reads only the footers of the objects on S3 (range reads) before creating anything."""
    storage = S3Storage(s3_server.client(), bucket, "backup")
    BackupEngine(storage).create(backed_up, "t1")
    edit_field(storage, "vec", dim=16)
    with pytest.raises(IntegrityError, match=r"field 'vec'.*dim 16.*Nothing was restored"):
        RestoreEngine(storage).restore(backed_up, "t1", collection_suffix="_r", method="insert")
    client = MilvusClient(backed_up.uri)
    try:
        assert not client.has_collection("c_r")
    finally:
        client.close()
    assert list(storage.list(f"t1/{mf.RESTORES}")) == []


# ------------------------------------------------------------------------------------------------ pure
FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True, "params": {}},
    {"name": "v", "type": "FLOAT_VECTOR", "params": {"dim": 4}},
    {"name": "b", "type": "BINARY_VECTOR", "params": {"dim": 16}},
    {"name": "s", "type": "VARCHAR", "params": {"max_length": "3"}, "nullable": True},
]
COLL = {"db_name": "default", "name": "c", "fields": FIELDS, "enable_dynamic_field": False}


def _parquet(v: list[Any], b: list[Any], s: list[Any]) -> pq.ParquetFile:
    table = pa.table(
        {
            "id": pa.array(range(len(v)), pa.int64()),
            "v": pa.array(v, pa.list_(pa.float32())),
            "b": pa.array(b, pa.list_(pa.uint8())),
            "s": pa.array(s, pa.string()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    buf.seek(0)
    return pq.ParquetFile(buf)


def test_vector_width_follows_the_type() -> None:
    assert [vector_width(f) for f in FIELDS] == [None, 4, 2, None]
    assert vector_width({"name": "h", "type": "FLOAT16_VECTOR", "params": {"dim": 8}}) == 16


def test_footer_and_content_checks_without_a_server() -> None:
    entry = {"rows": 2, "min_pk": 0, "max_pk": 1}
    good = _parquet([[1.0] * 4, [2.0] * 4], [[1, 2], [3, 4]], ["abc", None])
    assert footer_problems(good.metadata, good.schema_arrow, COLL, entry) == []
    assert content_problems(good, COLL, entry) == []
    # the footer shows a wrong dim (no nulls: values = rows x dim) and a wrong row count
    short = _parquet([[1.0] * 3, [2.0] * 3], [[1, 2], [3, 4]], ["a", "b"])
    assert footer_problems(short.metadata, short.schema_arrow, COLL, {"rows": 3}) == [
        "2 rows, the manifest says 3"
    ]
    assert footer_problems(short.metadata, short.schema_arrow, COLL, entry) == [
        "field 'v' holds 3 values a row, its dim 4 in the manifest needs 4"
    ]
    # characters, not bytes: "äöü" is 3 characters (6 bytes) and fits max_length 3; "abcd" does not
    long = _parquet([[1.0] * 4, [2.0] * 4], [[1, 2], [3]], ["äöü", "abcd"])
    assert content_problems(long, COLL, {"rows": 2, "min_pk": 0, "max_pk": 5}) == [
        "field 'b': vectors of 1 to 2 values, its dim 16 in the manifest needs 2",
        "field 's': a string of 4 characters, its max_length in the manifest is 3",
        "primary keys 0..1, the manifest says 0..5",
    ]
