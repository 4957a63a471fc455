"""The storage seam on a real S3 server and a local directory: verbs, multipart, SSE, key rules."""

from __future__ import annotations

import hashlib
import os

import pytest

from airflow_milvus_backup.engine import (
    InvalidArgumentError,
    LocalStorage,
    S3Storage,
    StorageAccessError,
    StorageConnectionError,
    StorageNotFoundError,
)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "store", "root")
    s3 = request.getfixturevalue("s3_server")
    return S3Storage(
        s3.client(),
        request.getfixturevalue("bucket"),
        "root",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
    )


def test_verbs(storage, tmp_path):
    storage.check()
    storage.put_bytes("b1/meta/x.json", b"{}")
    storage.put_bytes("b1/data/a/p/part-00000.parquet", b"abc")
    storage.put_bytes("b2/meta/x.json", b"{}")
    assert storage.get_bytes("b1/meta/x.json") == b"{}"
    assert sorted(o.key for o in storage.list("b1/")) == ["b1/data/a/p/part-00000.parquet", "b1/meta/x.json"]
    assert storage.list_dirs("") == ["b1", "b2"]
    assert storage.exists("b1/meta/x.json")
    assert not storage.exists("b1/meta/nope.json")
    assert storage.sha256("b1/data/a/p/part-00000.parquet") == (hashlib.sha256(b"abc").hexdigest(), 3)
    assert storage.put_if_absent("b3/lock", b"1") is True
    assert storage.put_if_absent("b3/lock", b"2") is False
    assert storage.get_bytes("b3/lock") == b"1"
    storage.delete(["b1/meta/x.json", "b1/data/a/p/part-00000.parquet", "b1/never"])
    assert storage.list_dirs("") == ["b2", "b3"]
    with pytest.raises(StorageNotFoundError, match="b1/meta/x.json"):
        storage.get_bytes("b1/meta/x.json")
    # a large file goes up (multipart on S3) and comes back identical
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    storage.put_file("b4/big.bin", big)
    out = tmp_path / "back.bin"
    storage.download("b4/big.bin", out)
    assert out.read_bytes() == big.read_bytes()
    with storage.open_read("b4/big.bin") as fh:
        assert fh.read(10) == big.read_bytes()[:10]


@pytest.mark.parametrize("key", ["../x", "a/../../b", "/abs", "a//b", "a/./b", "a b", "ü", ""])
def test_keys_cannot_escape_the_root(tmp_path, key):
    storage = LocalStorage(tmp_path / "store", "root")
    with pytest.raises(InvalidArgumentError):
        storage.put_bytes(key, b"x")
    assert not (tmp_path / "x").exists()


def test_sse_reaches_uploads(s3_server, bucket, tmp_path):
    storage = S3Storage(
        s3_server.client(),
        bucket,
        "enc",
        sse="AES256",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
    )
    storage.put_bytes("a/small", b"x")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    storage.put_file("a/big", big)
    assert storage.head("a/small")["ServerSideEncryption"] == "AES256"
    assert storage.head("a/big")["ServerSideEncryption"] == "AES256"
    assert storage.extra_args() == {"ServerSideEncryption": "AES256"}
    kms = S3Storage(s3_server.client(), bucket, "enc", sse="aws:kms", sse_kms_key_id="key-123")
    assert kms.extra_args() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "key-123"}
    with pytest.raises(InvalidArgumentError):
        S3Storage(s3_server.client(), bucket, "x", sse="rot13")


def test_s3_errors_are_clear(s3_server, bucket):
    import boto3

    missing = S3Storage(s3_server.client(), "no-such-bucket-here", "root")
    with pytest.raises(StorageNotFoundError, match="Bucket 'no-such-bucket-here' does not exist"):
        missing.check()
    bad_client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="wrong-secret-value",
        region_name="us-east-1",
    )
    with pytest.raises(StorageAccessError, match="Check the AWS connection") as e:
        S3Storage(bad_client, bucket, "root").check()
    assert "wrong-secret-value" not in str(e.value)
    from botocore.config import Config

    dead = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        region_name="us-east-1",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    with pytest.raises(StorageConnectionError, match="cannot reach S3"):
        S3Storage(dead, bucket, "root", retry_seconds=3, retry_attempts=2).check()


class _NoClient:
    """Stands in for a boto3 client where no request is made (the location is known without asking S3)."""


def test_s3_storage_says_where_milvus_can_import_from_and_local_storage_that_it_cannot(tmp_path):
    from airflow_milvus_backup.engine.storage import ImportLocation

    s3 = S3Storage(_NoClient(), "bkt", "team/backups")
    assert s3.import_location() == ImportLocation("bkt", "team/backups")
    assert S3Storage(_NoClient(), "bkt", "", allow_root_at_top=True).import_location() == ImportLocation(
        "bkt", ""
    )
    assert LocalStorage(tmp_path, "backup").import_location() is None


def test_import_path_is_relative_to_bulk_import_root():
    from airflow_milvus_backup.engine.storage import ImportLocation

    loc = ImportLocation("bkt", "team/backups")
    key = "b1/data/db/c/p/part-00000.parquet"
    assert loc.import_path(key) == "team/backups/b1/data/db/c/p/part-00000.parquet"
    assert loc.import_path(key, "team") == "backups/b1/data/db/c/p/part-00000.parquet"
    assert loc.import_path(key, "/team/") == "backups/b1/data/db/c/p/part-00000.parquet"
    assert loc.import_path(key, "team/backups") == "b1/data/db/c/p/part-00000.parquet"
    assert ImportLocation("bkt", "").import_path(key) == key
    with pytest.raises(InvalidArgumentError, match="outside bulk_import_root 'tea'"):
        loc.import_path(key, "tea")  # a prefix of the name, not a folder above it
    with pytest.raises(InvalidArgumentError, match="segment '..'"):
        loc.import_path("b1/../x")


@pytest.mark.parametrize(
    ("bucket", "root", "blocker"),
    [
        ("bkt", None, None),
        ("bkt", "team", None),
        ("bkt", "team/backups", None),
        (None, None, "bulk_import_bucket (the bucket of the target Milvus) is not given"),
        ("milvus", None, "the backup is in bucket 'bkt', the target Milvus reads bucket 'milvus'"),
        ("bkt", "other", "the backup's prefix 'team/backups' is outside bulk_import_root 'other'"),
        ("bkt", "team/back", "the backup's prefix 'team/backups' is outside bulk_import_root 'team/back'"),
    ],
)
def test_bulk_import_blocker_of_s3_storage(bucket, root, blocker):
    s3 = S3Storage(_NoClient(), "bkt", "team/backups")
    assert s3.bulk_import_blocker(bucket, root) == blocker


def test_bulk_import_blocker_of_a_local_directory(tmp_path):
    local = LocalStorage(tmp_path, "backup")
    assert local.bulk_import_blocker("bkt", None) == f"the backup is not in S3 ({tmp_path.resolve()}/backup)"


def test_the_storage_module_still_exports_the_seam():
    from airflow_milvus_backup.engine import storage, storage_base, storage_local, storage_s3

    assert storage.Storage is storage_base.Storage
    assert storage.LocalStorage is storage_local.LocalStorage
    assert storage.S3Storage is storage_s3.S3Storage
    for name in ("validate_key", "validate_root", "file_sha256", "ObjectInfo", "ImportLocation", "CHUNK"):
        assert getattr(storage, name) is getattr(storage_base, name)
