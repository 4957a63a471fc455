"""Backups of real collections (Milvus Lite embedded and server, Milvus 2.3.5 on S3) read back exactly."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    BackupExistsError,
    BackupNameError,
    BackupNotFoundError,
    CollectionNotFoundError,
    DatabaseNotFoundError,
    IncompleteBackupError,
    LocalStorage,
    MilvusParams,
    S3Storage,
    ownership,
)
from airflow_milvus_backup.engine.schema import capture_field
from tests.support.datagen import (
    canon_rows,
    create_vector_collection,
    full_lite_collection,
    read_backup_rows,
    source_rows,
)
from tests.support.lite import open_client


def simple_collection(
    client: MilvusClient, name: str, rows: int = 100, dim: int = 8, partitions: tuple[str, ...] = ()
) -> None:
    create_vector_collection(client, name, dim=dim, fields=[("name", DataType.VARCHAR, {"max_length": 64})])
    for p in partitions:
        client.create_partition(name, p)
    targets = ["_default", *partitions]
    rng = np.random.default_rng(0)
    data = [
        {"id": i, "vec": rng.random(dim, dtype=np.float32).tolist(), "name": f"n{i}"} for i in range(rows)
    ]
    for k, p in enumerate(targets):
        chunk = data[k :: len(targets)]
        if chunk:
            client.insert(name, chunk, partition_name=p)


def assert_backup_equals_source(
    client: MilvusClient, storage: Any, backup: str, manifest: dict[str, Any], coll: str
) -> None:
    meta = next(c for c in manifest["collections"] if c["name"] == coll)
    pk = next(f["name"] for f in meta["fields"] if f.get("is_primary"))
    dyn = meta["enable_dynamic_field"]
    src = canon_rows(source_rows(client, coll, meta["fields"], dyn), meta["fields"], pk, dyn)
    got = canon_rows(read_backup_rows(storage, backup, meta), meta["fields"], pk, dyn)
    assert len(got) == len(src) == meta["row_count"]
    assert got.keys() == src.keys()
    diffs = [k for k in src if src[k] != got[k]]
    assert not diffs, f"rows differ, e.g. pk {diffs[0]}: {src[diffs[0]]} != {got[diffs[0]]}"


def assert_checksums(storage: Any, backup: str, manifest: dict[str, Any]) -> None:
    n = 0
    for coll in manifest["collections"]:
        for part in coll["data"]:
            for f in part["files"]:
                raw = storage.get_bytes(f"{backup}/{f['key']}")
                assert hashlib.sha256(raw).hexdigest() == f["sha256"]
                assert len(raw) == f["size"]
                assert pq.read_metadata(io.BytesIO(raw)).num_rows == f["rows"]
                n += 1
    assert n == manifest["totals"]["files"]


@pytest.fixture
def local_storage(tmp_path):
    return LocalStorage(tmp_path / "backups", "backup")


def test_every_lite_type_round_trips_bit_for_bit(lite_uri, local_storage):
    client = MilvusClient(lite_uri)
    full_lite_collection(client, "everything", rows=600)
    engine = BackupEngine(
        local_storage, file_bytes=32 * 1024, batch_bytes=16 * 1024
    )  # several files a partition
    summary = engine.create(MilvusParams(uri=lite_uri), "all_types")
    assert summary["rows"] == 600
    assert summary["collections"] == ["default.everything"]
    m = engine.get("all_types")
    meta = m["collections"][0]
    assert sum(len(p["files"]) for p in meta["data"]) > 2
    assert {p["partition"]: p["rows"] for p in meta["data"]} == {"_default": 300, "p1": 300}
    assert_backup_equals_source(client, local_storage, "all_types", m, "everything")
    assert_checksums(local_storage, "all_types", m)
    # the schema captured equals describe_collection field by field
    described = client.describe_collection("everything")
    assert [capture_field(f) for f in described["fields"]] == meta["fields"]
    assert meta["functions"][0]["type"] == "BM25"
    assert meta["functions"][0]["output_field_names"] == ["bm25"]
    assert meta["properties"]["collection.ttl.seconds"] == "86400"
    assert meta["enable_dynamic_field"] is True
    assert meta["load_state"] == "Loaded"
    assert {i["field_name"]: i["metric_type"] for i in meta["indexes"]} == {
        "vec": "COSINE",
        "sp": "IP",
        "bm25": "BM25",
    }
    # the files are plain Parquet whose columns are the field names (function outputs are regenerated)
    first = meta["data"][0]["files"][0]
    table = pq.read_table(io.BytesIO(local_storage.get_bytes(f"all_types/{first['key']}")))
    assert table.column_names == [f["name"] for f in meta["fields"] if f["name"] != "bm25"] + ["$meta"]
    assert str(table.schema.field("vec").type) == "list<element: float>"
    ids = table.column("id").to_pylist()
    assert ids == sorted(ids)
    assert ids[0] == first["min_pk"]
    assert ids[-1] == first["max_pk"]
    client.close()


def test_partition_key_dynamic_and_empty_collections(lite_uri, local_storage):
    client = MilvusClient(lite_uri)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=36)
    s.add_field("tenant", DataType.INT64, is_partition_key=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection("tenants", schema=s, num_partitions=4)
    client.insert(
        "tenants", [{"pk": f"k{i:04d}", "tenant": i % 5, "vec": [i, 0, 1, 2], "note": i} for i in range(300)]
    )
    simple_collection(client, "empty", rows=0)
    engine = BackupEngine(local_storage)
    summary = engine.create(MilvusParams(uri=lite_uri), "mixed", ["tenants", "empty"])
    assert summary["rows"] == 300
    m = engine.get("mixed")
    tenants = next(c for c in m["collections"] if c["name"] == "tenants")
    empty = next(c for c in m["collections"] if c["name"] == "empty")
    assert [f["name"] for f in tenants["fields"] if f.get("is_partition_key")] == ["tenant"]
    assert tenants["num_partitions"] >= 4
    assert len(tenants["data"]) == 1
    assert empty["row_count"] == 0
    assert all(p["files"] == [] for p in empty["data"])
    assert_backup_equals_source(client, local_storage, "mixed", m, "tenants")
    client.close()


def test_selection_wildcards_databases_and_missing_collection(lite_uri, tmp_path):
    client = MilvusClient(lite_uri)
    simple_collection(client, "alpha", rows=10)
    simple_collection(client, "alpine", rows=10)
    simple_collection(client, "beta", rows=10)
    client.create_database("db2")
    client.use_database("db2")
    simple_collection(client, "gamma", rows=7)
    client.close()
    storage = LocalStorage(tmp_path / "b")
    engine = BackupEngine(storage)
    s = engine.create(MilvusParams(uri=lite_uri), "sel", ["al*", "db2.*"])
    assert s["collections"] == ["default.alpha", "default.alpine", "db2.gamma"]
    assert s["rows"] == 27
    assert engine.create(MilvusParams(uri=lite_uri), "every")["collections"] == [
        "default.alpha",
        "default.alpine",
        "default.beta",
    ]
    with pytest.raises(CollectionNotFoundError, match="'nope'.*database 'default'"):
        engine.create(MilvusParams(uri=lite_uri), "missing", ["alpha", "nope"])
    with pytest.raises(DatabaseNotFoundError, match="'db9'"):
        engine.create(MilvusParams(uri=lite_uri), "missing", ["db9.x"])
    assert not list(storage.list("missing/")), "a failed selection must write nothing"


def test_list_get_delete_names_and_overwrite(lite_uri, local_storage):
    client = MilvusClient(lite_uri)
    simple_collection(client, "c1", rows=50, partitions=("p1", "p2"))
    client.close()
    engine = BackupEngine(local_storage)
    params = MilvusParams(uri=lite_uri)
    first = engine.create(params, "b_one")
    engine.create(params, "b_two")
    # a partial backup: its marker (written first) and objects, but no manifest
    local_storage.put_bytes(ownership.marker_key("b_partial"), ownership.marker_body("b_partial", "x"))
    local_storage.put_bytes("b_partial/data/default/c1/_default/part-00000.parquet", b"half")
    listed = engine.list()
    assert [b["name"] for b in listed] == ["b_partial", "b_two", "b_one"]  # newest first
    states = {b["name"]: b["state"] for b in listed}
    assert states == {"b_one": "complete", "b_two": "complete", "b_partial": "partial"}
    one = next(b for b in listed if b["name"] == "b_one")
    assert one["id"] == first["backup_id"]
    assert one["collections"] == ["default.c1"]
    assert one["size"] > 0
    with pytest.raises(IncompleteBackupError, match="b_partial"):
        engine.get("b_partial")
    with pytest.raises(BackupNotFoundError, match="nothing_here"):
        engine.get("nothing_here")
    for bad in ["../x", "a/b", "", "x" * 129, "1abc", "bаckup", "a b", "a.b"]:  # 'а' is Cyrillic
        with pytest.raises(BackupNameError):
            engine.create(params, bad)
        with pytest.raises(BackupNameError):
            engine.get(bad)
    with pytest.raises(BackupExistsError, match="b_one.*overwrite=True"):
        engine.create(params, "b_one")
    with pytest.raises(BackupExistsError, match="partial"):
        engine.create(params, "b_partial")
    again = engine.create(params, "b_one", overwrite=True)
    assert again["backup_id"] != first["backup_id"]
    assert engine.get("b_one")["id"] == again["backup_id"]
    engine.create(params, "b_partial", overwrite=True)
    assert engine.get("b_partial")["totals"]["rows"] == 50
    assert engine.delete("b_two")["objects"] >= 2
    local_storage.put_bytes(ownership.marker_key("b_half"), ownership.marker_body("b_half", "x"))
    local_storage.put_bytes("b_half/data/x.parquet", b"x")
    engine.delete("b_half")
    assert {b["name"] for b in engine.list()} == {"b_one", "b_partial"}
    with pytest.raises(BackupNotFoundError):
        engine.delete("b_two")


def test_lite_server_to_s3_with_progress(milvus_lite_server, s3_server, bucket):
    client = open_client(milvus_lite_server.uri)
    for c in client.list_collections():
        client.drop_collection(c)
    simple_collection(client, "hello", rows=3000, dim=32, partitions=("p1",))
    storage = S3Storage(s3_server.client(), bucket, "backup", sse="AES256")
    seen: list[dict[str, Any]] = []
    engine = BackupEngine(
        storage, progress_callback=seen.append, progress_interval=0.0, file_bytes=256 * 1024
    )
    s = engine.create(MilvusParams(uri=milvus_lite_server.uri), "lite_server", ["hello"])
    assert s["rows"] == 3000
    assert s["files"] >= 2
    m = engine.get("lite_server")
    assert_backup_equals_source(client, storage, "lite_server", m, "hello")
    assert_checksums(storage, "lite_server", m)
    assert seen
    assert seen[-1]["rows"] == 3000
    assert seen[-1]["total_rows"] == 3000
    assert {"bytes", "rows_per_second", "mb_per_second", "eta_seconds"} <= seen[-1].keys()
    key = m["collections"][0]["data"][0]["files"][0]["key"]
    assert storage.head(f"lite_server/{key}").get("ServerSideEncryption") == "AES256"
    client.close()


@pytest.mark.milvus235
def test_milvus_235_on_s3_float_and_binary_vectors(milvus235, s3_server, bucket):
    client = open_client(milvus235.uri)
    for c in ("fv", "bv"):
        if client.has_collection(c):
            client.drop_collection(c)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    s.add_field("i8", DataType.INT8)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32)
    s.add_field("b", DataType.BOOL)
    s.add_field("f", DataType.FLOAT)
    s.add_field("d", DataType.DOUBLE)
    s.add_field("v", DataType.VARCHAR, max_length=64)
    s.add_field("j", DataType.JSON)
    s.add_field("arr", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=16)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 8}, index_name="vec_ivf")
    client.create_collection("fv", schema=s, index_params=ip)
    client.create_partition("fv", "p1")
    rng = np.random.default_rng(1)
    rows = [
        {
            "id": i,
            "vec": rng.random(16, dtype=np.float32).tolist(),
            "i8": i % 100,
            "i16": i,
            "i32": -i,
            "b": bool(i % 2),
            "f": float(np.float32(i / 3)),
            "d": i / 7,
            "v": f"v{i}",
            "j": {"i": i, "s": "é"},
            "arr": ["a", str(i)],
            "dyn": i,
        }
        for i in range(2000)
    ]
    client.insert("fv", rows[:1000])
    client.insert("fv", rows[1000:], partition_name="p1")
    s2 = MilvusClient.create_schema(auto_id=True)
    s2.add_field("id", DataType.INT64, is_primary=True)
    s2.add_field("bin", DataType.BINARY_VECTOR, dim=64)
    ip2 = client.prepare_index_params()
    ip2.add_index("bin", index_type="BIN_FLAT", metric_type="HAMMING")
    client.create_collection("bv", schema=s2, index_params=ip2)
    client.insert("bv", [{"bin": rng.integers(0, 256, 8, dtype=np.uint8).tobytes()} for _ in range(500)])
    client.flush("fv")
    client.flush("bv")
    storage = S3Storage(s3_server.client(), bucket, "backup")
    engine = BackupEngine(storage)
    s = engine.create(MilvusParams(uri=milvus235.uri), "on_235", ["fv", "bv"])
    assert s["rows"] == 2500
    m = engine.get("on_235")
    assert m["server_version"].startswith("v2.3.5")
    assert_backup_equals_source(client, storage, "on_235", m, "fv")
    assert_backup_equals_source(client, storage, "on_235", m, "bv")
    assert_checksums(storage, "on_235", m)
    fv = next(c for c in m["collections"] if c["name"] == "fv")
    assert fv["indexes"] == [
        {
            "index_name": "vec_ivf",
            "field_name": "vec",
            "index_type": "IVF_FLAT",
            "metric_type": "L2",
            "params": {"nlist": "8"},
        }
    ]
    bv = next(c for c in m["collections"] if c["name"] == "bv")
    assert bv["auto_id"] is True
    client.close()


def test_manifest_is_plain_json_written_last(lite_uri, local_storage):
    client = MilvusClient(lite_uri)
    simple_collection(client, "c", rows=20)
    client.close()
    BackupEngine(local_storage).create(MilvusParams(uri=lite_uri), "order")
    objs = sorted(local_storage.list("order/"), key=lambda o: o.last_modified)
    assert objs[-1].key == "order/meta/backup_meta.json"
    raw = json.loads(local_storage.get_bytes("order/meta/backup_meta.json"))
    assert raw["format_version"] == 1
    assert raw["state"] == "complete"
    assert raw["name"] == "order"
    assert {"started_at", "finished_at", "server_version", "id", "collections", "totals"} <= raw.keys()
    assert not list(local_storage.list("order/meta/locks/")), "the lock is released after commit"
