"""The test servers carry real traffic: S3 objects, Milvus collections, Milvus 2.3.5 storage on S3."""

from __future__ import annotations

import io
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pymilvus import DataType, MilvusClient

from tests.support.lite import MilvusLiteServer, open_client
from tests.support.process import port_is_open
from tests.support.s3 import S3Server

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.milvus235 import Milvus235Server
    from tests.support.s3 import MotoS3Server

DIM = 8
N_ROWS = 100


def _rows(n: int = N_ROWS) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [i + j / 10 for j in range(DIM)], "name": f"row-{i}"} for i in range(n)]


def _create_collection(client: MilvusClient, name: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("name", DataType.VARCHAR, max_length=64)
    index_params = client.prepare_index_params()
    index_params.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params, consistency_level="Strong")


def _count(client: MilvusClient, name: str) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def _assert_rows(client: MilvusClient, name: str, n: int = N_ROWS) -> None:
    got = client.query(name, filter="id >= 0", output_fields=["id", "vector", "name"], limit=n + 10)
    assert sorted(row["id"] for row in got) == list(range(n))
    by_id = {row["id"]: row for row in got}
    for expected in _rows(n):
        row = by_id[expected["id"]]
        assert row["name"] == expected["name"]
        assert list(row["vector"]) == pytest.approx(expected["vector"], rel=1e-6)
    assert _count(client, name) == n


def _insert_and_check(client: MilvusClient, name: str) -> None:
    _create_collection(client, name)
    assert client.insert(name, _rows())["insert_count"] == N_ROWS
    _assert_rows(client, name)
    hits = client.search(name, data=[_rows()[7]["vector"]], limit=1, output_fields=["name"])
    assert hits[0][0]["entity"]["name"] == "row-7"


def _collection_name() -> str:
    return f"c_{uuid.uuid4().hex[:10]}"


# -- S3 ----------------------------------------------------------------------------------------------


def test_s3_put_get(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    assert s3_server.endpoint_url == f"http://127.0.0.1:{s3_server.port}"
    client.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello world")

    assert client.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == b"hello world"
    assert client.head_object(Bucket=bucket, Key="dir/hello.txt")["ContentLength"] == 11
    listed = client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [obj["Key"] for obj in listed["Contents"]] == ["dir/hello.txt"]
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    # a bucket is a directory on disk
    assert (s3_server.bucket_path(bucket) / "dir" / "hello.txt").read_bytes() == b"hello world"
    # plain CopyObject works on rclone
    client.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "dir/hello.txt"})
    assert client.get_object(Bucket=bucket, Key="copy.txt")["Body"].read() == b"hello world"
    with pytest.raises(ClientError):
        client.get_object(Bucket=bucket, Key="missing")


def test_s3_rejects_wrong_secret(s3_server: S3Server, bucket: str) -> None:
    import boto3
    from botocore.config import Config

    bad = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="wrongsecretkey999",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError):
        bad.put_object(Bucket=bucket, Key="x", Body=b"x")


def test_s3_stop_start_restart_same_port_keeps_data(tmp_path: Path) -> None:
    with S3Server(tmp_path / "s3") as server:
        port = server.port
        server.create_bucket("keep-me")
        server.client().put_object(Bucket="keep-me", Key="a/b.bin", Body=b"\x00\x01payload")

        server.stop()
        server.stop()  # idempotent
        assert not server.running
        assert not port_is_open(port)
        with pytest.raises(EndpointConnectionError):
            server.client(retries={"max_attempts": 1}, connect_timeout=1).list_buckets()

        server.start()
        assert server.port == port
        assert (
            server.client().get_object(Bucket="keep-me", Key="a/b.bin")["Body"].read() == b"\x00\x01payload"
        )

        server.restart()
        assert server.port == port
        client = server.client()
        assert client.get_object(Bucket="keep-me", Key="a/b.bin")["Body"].read() == b"\x00\x01payload"
        client.put_object(Bucket="keep-me", Key="after-restart", Body=b"ok")
    assert not port_is_open(port)
    assert (tmp_path / "s3" / "keep-me" / "after-restart").read_bytes() == b"ok"


def test_moto_put_get(moto_server: MotoS3Server) -> None:
    name = moto_server.create_bucket(f"moto-{uuid.uuid4().hex[:8]}")
    client = moto_server.client()
    client.put_object(Bucket=name, Key="k/v.json", Body=b'{"a": 1}')
    assert client.get_object(Bucket=name, Key="k/v.json")["Body"].read() == b'{"a": 1}'
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")


# -- Milvus Lite -------------------------------------------------------------------------------------


def test_milvus_lite_embedded(lite_client: MilvusClient, lite_uri: str) -> None:
    assert lite_uri.endswith("milvus.db")
    _insert_and_check(lite_client, "embedded")
    assert lite_client.list_collections() == ["embedded"]


def test_milvus_lite_server(milvus_lite_server: MilvusLiteServer) -> None:
    assert milvus_lite_server.uri == f"http://127.0.0.1:{milvus_lite_server.port}"
    client = open_client(milvus_lite_server.uri)
    try:
        name = _collection_name()
        _insert_and_check(client, name)
        assert name in client.list_collections()
    finally:
        client.close()


@pytest.mark.slow
def test_milvus_lite_server_restart_same_port_keeps_data(tmp_path: Path) -> None:
    with MilvusLiteServer(tmp_path / "lite") as server:
        port = server.port
        client = open_client(server.uri)
        try:
            _insert_and_check(client, "persisted")
        finally:
            client.close()

        server.restart()
        assert server.port == port
        client = open_client(server.uri)
        try:
            assert client.list_collections() == ["persisted"]
            client.load_collection("persisted")  # the Lite server does not keep the load state
            _assert_rows(client, "persisted")
        finally:
            client.close()
    assert not port_is_open(port)


# -- Milvus 2.3.5 ------------------------------------------------------------------------------------


@pytest.mark.milvus235
def test_milvus235_insert_query(milvus235: Milvus235Server) -> None:
    assert milvus235.version == "2.3.5"
    client = open_client(milvus235.uri)
    try:
        assert client.get_server_version().startswith("v2.3.5")
        name = _collection_name()
        _insert_and_check(client, name)
    finally:
        client.close()


@pytest.mark.milvus235
def test_milvus235_flush_writes_binlogs_to_s3(milvus235: Milvus235Server) -> None:
    client = open_client(milvus235.uri)
    try:
        name = _collection_name()
        _insert_and_check(client, name)
        client.flush(name)
        collection_id = client.describe_collection(name)["collection_id"]
    finally:
        client.close()

    s3 = milvus235.s3.client()
    prefix = f"{milvus235.root_path}/insert_log/{collection_id}/"
    keys = [
        obj["Key"] for obj in s3.list_objects_v2(Bucket=milvus235.bucket, Prefix=prefix).get("Contents", [])
    ]
    assert keys, f"no binlogs under s3://{milvus235.bucket}/{prefix}"
    on_disk = (
        milvus235.s3.bucket_path(milvus235.bucket) / milvus235.root_path / "insert_log" / str(collection_id)
    )
    assert any(path.is_file() for path in on_disk.rglob("*"))


@pytest.mark.milvus235
@pytest.mark.filterwarnings("ignore:.*ORM-style PyMilvus API")  # do_bulk_insert is ORM-only
def test_milvus235_bulk_import_parquet(milvus235: Milvus235Server) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pymilvus import BulkInsertState, connections, utility

    rows = _rows(50)
    table = pa.table(
        {
            "id": pa.array([r["id"] for r in rows], type=pa.int64()),
            "vector": pa.array([r["vector"] for r in rows], type=pa.list_(pa.float32())),
            "name": pa.array([r["name"] for r in rows], type=pa.string()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    key = f"bulk/{uuid.uuid4().hex[:8]}/rows.parquet"  # relative to the bucket, not to root_path
    milvus235.s3.client().put_object(Bucket=milvus235.bucket, Key=key, Body=buf.getvalue())

    name = _collection_name()
    client = open_client(milvus235.uri)
    alias = f"bulk-{uuid.uuid4().hex[:8]}"
    connections.connect(alias, uri=milvus235.uri)
    try:
        _create_collection(client, name)
        task_id = utility.do_bulk_insert(name, files=[key], using=alias)
        deadline = time.monotonic() + 120
        while True:
            state = utility.get_bulk_insert_state(task_id, using=alias)
            if state.state in (BulkInsertState.ImportFailed, BulkInsertState.ImportFailedAndCleaned):
                pytest.fail(f"bulk insert failed: {state.failed_reason}")
            if state.state == BulkInsertState.ImportCompleted:
                break
            assert time.monotonic() < deadline, f"bulk insert not completed in time: {state}"
            time.sleep(1)
        assert state.row_count == 50
        client.release_collection(name)
        client.load_collection(name)
        _assert_rows(client, name, n=50)
    finally:
        connections.disconnect(alias)
        client.close()


@pytest.mark.milvus235
@pytest.mark.slow
def test_milvus235_kill_and_restart_keeps_data_and_uri(milvus235: Milvus235Server) -> None:
    client = open_client(milvus235.uri)
    try:
        name = _collection_name()
        _insert_and_check(client, name)
        client.flush(name)
    finally:
        client.close()

    uri, milvus_pid = milvus235.uri, milvus235.milvus_pid
    milvus235.kill()  # SIGKILL: a crash
    assert not milvus235.running
    assert milvus_pid is not None
    assert not port_is_open(milvus235.port)
    milvus235.start()
    assert milvus235.uri == uri
    assert milvus235.milvus_pid != milvus_pid

    client = open_client(milvus235.uri)
    try:
        assert name in client.list_collections()
        client.load_collection(name, timeout=120)
        _assert_rows(client, name)
    finally:
        client.close()


def test_milvus_lite_25_serves_float16_and_binary_vectors_and_reports_no_version(milvus25):
    """The milvus-lite 2.5.1 fixture is a real Milvus 2.5 core: vector types Lite 3 lacks, no GetVersion."""
    import numpy as np
    from pymilvus import DataType

    from airflow_milvus_backup.engine.client import server_version
    from tests.support.lite import open_client

    client = open_client(milvus25.uri)
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("f16", DataType.FLOAT16_VECTOR, dim=8)
        schema.add_field("bin", DataType.BINARY_VECTOR, dim=16)
        ip = client.prepare_index_params()
        ip.add_index("f16", index_type="FLAT", metric_type="L2", index_name="f16_flat")
        ip.add_index("bin", index_type="BIN_FLAT", metric_type="HAMMING", index_name="bin_flat")
        client.create_collection("lite25_types", schema=schema, index_params=ip)
        rows = [
            {"id": i, "f16": np.full(8, i, dtype=np.float16), "bin": bytes([i % 256, 255 - i % 256])}
            for i in range(20)
        ]
        client.insert("lite25_types", rows)
        got = client.query("lite25_types", filter="id >= 0", output_fields=["id"], consistency_level="Strong")
        assert sorted(r["id"] for r in got) == list(range(20))
        assert {client.describe_index("lite25_types", n)["index_type"] for n in ("f16_flat", "bin_flat")} == {
            "FLAT",
            "BIN_FLAT",
        }
        assert server_version(client, milvus25.uri) == ""  # GetVersion is unimplemented: assumed recent
    finally:
        client.drop_collection("lite25_types")
        client.close()
