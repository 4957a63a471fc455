"""The physical copier against real S3 servers: rclone (``s3_server``), moto (``moto_server``), a fault proxy.

rclone copies whole objects server-side but answers UploadPartCopy without an ETag (it cannot copy parts);
moto does both and computes SHA-256 checksums on copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from airflow_milvus_backup.engine.errors import InvalidArgumentError, StorageNotFoundError
from airflow_milvus_backup.engine.physical.copier import (
    BinlogCopier,
    CopyIntegrityError,
    CopyItem,
    CopyOptions,
    SourceVanishedError,
    copy_objects,
    multipart_etag,
    plan_parts,
    same_endpoint,
)
from airflow_milvus_backup.engine.physical.copy_model import check_items, etag_md5, sha256_hex_from_checksum
from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
from airflow_milvus_backup.engine.storage import LocalStorage, S3Storage
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.s3 import MotoS3Server, S3Server, boto_client

MiB = 1 << 20
ROOT = "files"
LOG = "insert_log/448/449/450/100"


def _put(client: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=f"{ROOT}/{key}", Body=data)


def _items(objects: dict[str, bytes], prefix: str = "nightly") -> list[CopyItem]:
    return [CopyItem(k, f"{prefix}/binlogs/{k}", len(v)) for k, v in objects.items()]


def _fresh(server: S3Server | MotoS3Server) -> str:
    server.ensure_started()
    return server.create_bucket(f"cp-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def rclone_pair(s3_server: S3Server) -> tuple[S3Storage, S3Storage]:
    """Milvus' bucket and a backup bucket on the same rclone server."""
    client = s3_server.client()
    return (
        open_milvus_bucket(client, _fresh(s3_server), ROOT),
        S3Storage(client, _fresh(s3_server), "backups"),
    )


@pytest.fixture
def moto_pair(moto_server: MotoS3Server) -> tuple[S3Storage, S3Storage]:
    client = moto_server.client()
    return (
        open_milvus_bucket(client, _fresh(moto_server), ROOT),
        S3Storage(client, _fresh(moto_server), "backups"),
    )


# ------------------------------------------------------------------------------------------------ pure
def test_plan_parts_cover_the_object_exactly() -> None:
    assert plan_parts(10, 4) == [(0, 3), (4, 7), (8, 9)]
    assert plan_parts(8, 4) == [(0, 3), (4, 7)]
    assert plan_parts(0, 4) == [(0, -1)]


def test_multipart_etag_is_md5_of_part_md5s() -> None:
    parts = [b"a" * 10, b"b" * 3]
    md5s = [hashlib.md5(p).digest() for p in parts]
    assert multipart_etag(md5s) == hashlib.md5(b"".join(md5s)).hexdigest() + "-2"


def test_checksum_conversion_refuses_composites() -> None:
    assert sha256_hex_from_checksum("oc2Pb4pyVA/Pexydep+ONmGd3ve/yueZPJu/ITsvrkY=") is not None
    assert sha256_hex_from_checksum("oc2Pb4pyVA/Pexydep+ONmGd3ve/yueZPJu/ITsvrkY=-3") is None
    assert sha256_hex_from_checksum(None) is None


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (CopyItem(f"{LOG}/1", "other/binlogs/1"), "outside the backup's prefix"),
        (CopyItem(f"{LOG}/1", "nightly/../x/1"), "not allowed"),
        (CopyItem(f"{LOG}/../../x", "nightly/x"), "not allowed"),
        (CopyItem(f"{LOG}/1", "nightly"), "outside the backup's prefix"),
    ],
)
def test_keys_outside_the_prefix_are_refused(item: CopyItem, words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        check_items([item], "nightly")


def test_two_sources_for_one_destination_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="Two source objects"):
        check_items([CopyItem("a/1", "n/x"), CopyItem("a/2", "n/x")], "n")


def test_same_endpoint_compares_normalised_urls(s3_server: S3Server, tmp_path: Path) -> None:
    a = S3Storage(boto_client("http://127.0.0.1:9000/", "k", "s"), "b", "r")
    b = S3Storage(boto_client("http://127.0.0.1:9000", "k2", "s2"), "c", "r")
    c = S3Storage(boto_client("http://127.0.0.1:9001", "k", "s"), "b", "r")
    assert same_endpoint(a, b)
    assert not same_endpoint(a, c)
    assert not same_endpoint(a, LocalStorage(tmp_path))


# ------------------------------------------------------------------------------------------ server-side
def test_server_side_copy_on_one_endpoint(rclone_pair: tuple[S3Storage, S3Storage]) -> None:
    src, dst = rclone_pair
    objects = {f"{LOG}/{i}": os.urandom(1000 + i) for i in range(6)}
    _put(src.client, src.bucket, objects)
    items = _items(objects)
    report = copy_objects(src, dst, items, "nightly", CopyOptions(concurrency=3))
    assert report.by_method() == {"server-copy": 6}
    # reported in the items' order
    assert [r.source_key for r in report.results] == [it.source_key for it in items]
    assert not report.vanished
    assert report.bytes == sum(len(v) for v in objects.values())
    for r in report.results:
        data = objects[r.source_key]
        assert dst.get_bytes(r.dest_key) == data
        assert r.etag == hashlib.md5(data).hexdigest()
        assert r.size == len(data)
        assert r.sha256 is None  # rclone computes no SHA-256 on copy, and its ETag is the MD5: nothing read
        assert r.md5 == hashlib.md5(data).hexdigest()
    assert sorted(o.key for o in dst.list("")) == sorted(f"nightly/binlogs/{k}" for k in objects)


def test_server_copy_hashes_back_only_without_a_digest(rclone_pair: tuple[S3Storage, S3Storage]) -> None:
    src, dst = rclone_pair
    objects = {f"{LOG}/1": os.urandom(5000), f"{LOG}/2": os.urandom((5 << 20) // 2)}  # 2.5 MiB: 3 reads
    _put(src.client, src.bucket, objects)
    # the defaults of a physical backup: the MD5 ETag is the digest, nothing is read back
    report = copy_objects(src, dst, _items(objects), "nightly", CopyOptions(hash_server_copies=True))
    for r in report.results:
        assert (r.sha256, r.md5) == (None, hashlib.md5(objects[r.source_key]).hexdigest())
        assert r.has_digest
    # a store whose ETags are not to be taken for MD5s: read back for the SHA-256
    opts = CopyOptions(hash_server_copies=True, etag_md5=False)
    report = copy_objects(src, dst, _items(objects), "nightly", opts)
    for r in report.results:
        assert (r.sha256, r.md5) == (hashlib.sha256(objects[r.source_key]).hexdigest(), None)
    # neither: ETag and size only (the copy is still checked by them)
    opts = CopyOptions(etag_md5=False)
    assert not any(r.has_digest for r in copy_objects(src, dst, _items(objects), "nightly", opts).results)


@pytest.mark.parametrize(
    ("head", "etag", "matching", "want"),
    [
        ({}, "0cc175b9c0f1b6a831c399e269772661", ["0cc175b9c0f1b6a831c399e269772661"], True),
        (
            {"ServerSideEncryption": "AES256"},
            "0CC175B9C0F1B6A831C399E269772661",
            ["0CC175B9C0F1B6A831C399E269772661"],
            True,
        ),
        ({}, "0cc175b9c0f1b6a831c399e269772661", ["92eb5ffee6ae2fec3ad71c777531578f"], False),
        ({}, "0cc175b9c0f1b6a831c399e269772661", [None], False),
        ({}, "0cc175b9c0f1b6a831c399e269772661-2", ["0cc175b9c0f1b6a831c399e269772661-2"], False),
        (
            {"ServerSideEncryption": "aws:kms"},
            "0cc175b9c0f1b6a831c399e269772661",
            ["0cc175b9c0f1b6a831c399e269772661"],
            False,
        ),
        (
            {"SSECustomerAlgorithm": "AES256"},
            "0cc175b9c0f1b6a831c399e269772661",
            ["0cc175b9c0f1b6a831c399e269772661"],
            False,
        ),
    ],
)
def test_an_etag_is_an_md5_only_when_plain_matching_and_unencrypted(
    head: dict[str, str], etag: str, matching: list[str | None], want: bool
) -> None:
    assert etag_md5(head, etag, *matching) == (etag.lower() if want else None)


def test_moto_reports_the_servers_sha256(moto_pair: tuple[S3Storage, S3Storage]) -> None:
    src, dst = moto_pair
    objects = {f"{LOG}/1": os.urandom(7000)}
    _put(src.client, src.bucket, objects)
    (r,) = copy_objects(src, dst, _items(objects), "nightly").results
    assert r.method == "server-copy"
    assert r.sha256 == hashlib.sha256(objects[f"{LOG}/1"]).hexdigest()
    assert r.checksum is not None
    assert r.checksum.startswith("SHA256:")
    assert r.md5 == hashlib.md5(objects[f"{LOG}/1"]).hexdigest()  # and moto's ETag is the MD5


def test_multipart_copy_above_the_threshold(moto_pair: tuple[S3Storage, S3Storage]) -> None:
    src, dst = moto_pair
    big, small = os.urandom(12 * MiB), os.urandom(100)
    objects = {f"{LOG}/1": big, f"{LOG}/2": small}
    _put(src.client, src.bucket, objects)
    opts = CopyOptions(multipart_threshold=5 * MiB, part_size=5 * MiB)
    report = copy_objects(src, dst, _items(objects), "nightly", opts)
    by_key = {r.source_key: r for r in report.results}
    assert by_key[f"{LOG}/1"].method == "multipart"
    assert by_key[f"{LOG}/2"].method == "server-copy"
    parts = [big[a : b + 1] for a, b in plan_parts(len(big), 5 * MiB)]
    assert by_key[f"{LOG}/1"].etag == multipart_etag([hashlib.md5(p).digest() for p in parts])
    assert dst.get_bytes(f"nightly/binlogs/{LOG}/1") == big
    # a composite ETag is no digest of the bytes: the copy has none unless it is read back
    assert (by_key[f"{LOG}/1"].sha256, by_key[f"{LOG}/1"].md5) == (None, None)
    report = copy_objects(src, dst, _items(objects), "nightly", replace(opts, hash_server_copies=True))
    by_key = {r.source_key: r for r in report.results}
    assert (by_key[f"{LOG}/1"].sha256, by_key[f"{LOG}/1"].md5) == (hashlib.sha256(big).hexdigest(), None)
    assert by_key[f"{LOG}/2"].sha256 == hashlib.sha256(small).hexdigest()  # moto's ChecksumSHA256


def test_rclone_cannot_copy_parts_so_the_copier_streams(
    rclone_pair: tuple[S3Storage, S3Storage], caplog: pytest.LogCaptureFixture
) -> None:
    src, dst = rclone_pair
    big = os.urandom(6 * MiB + 5)
    objects = {f"{LOG}/1": big, f"{LOG}/2": os.urandom(6 * MiB)}
    _put(src.client, src.bucket, objects)
    opts = CopyOptions(
        multipart_threshold=5 * MiB,
        max_single_copy=6 * MiB,
        part_size=5 * MiB,
        stream_part_size=5 * MiB,
        concurrency=1,
    )
    copier = BinlogCopier(src, dst, "nightly", opts)
    with caplog.at_level(logging.WARNING, "airflow_milvus_backup"):
        report = copier.copy(_items(objects))
    # the first, larger than one CopyObject may copy here, is streamed; the second is copied whole
    assert [r.method for r in report.results] == ["stream", "server-copy"]
    assert not copier.part_copy
    assert "cannot copy parts" in caplog.text
    assert dst.get_bytes(f"nightly/binlogs/{LOG}/1") == big
    assert report.results[0].sha256 == hashlib.sha256(big).hexdigest()
    # the aborted part copy left no upload behind
    assert not dst.client.list_multipart_uploads(Bucket=dst.bucket).get("Uploads")


# ------------------------------------------------------------------------------------------- streaming
def test_cross_endpoint_streams_with_bounded_memory(s3_server: S3Server, moto_server: MotoS3Server) -> None:
    src = open_milvus_bucket(s3_server.client(), _fresh(s3_server), ROOT)
    dst = S3Storage(moto_server.client(), _fresh(moto_server), "backups")
    big = os.urandom(40 * MiB)
    objects = {f"{LOG}/1": big}
    _put(src.client, src.bucket, objects)
    opts = CopyOptions(stream_part_size=5 * MiB, concurrency=1)
    tracemalloc.start()
    try:
        report = copy_objects(src, dst, _items(objects), "nightly", opts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (r,) = report.results
    assert r.method == "stream"
    assert r.sha256 == hashlib.sha256(big).hexdigest()
    assert r.md5 == hashlib.md5(big).hexdigest()  # computed on the way
    assert r.etag.endswith("-8")  # eight streamed parts of 5 MiB
    assert dst.get_bytes(f"nightly/binlogs/{LOG}/1") == big
    # a few parts in flight at most, never the 40 MiB object (which the test itself holds untraced)
    assert peak < 24 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


def test_stream_into_a_directory(s3_server: S3Server, tmp_path: Path) -> None:
    src = open_milvus_bucket(s3_server.client(), _fresh(s3_server), ROOT)
    dst = LocalStorage(tmp_path, "backups")
    objects = {f"{LOG}/{i}": os.urandom(3 * MiB + i) for i in range(3)}
    _put(src.client, src.bucket, objects)
    report = copy_objects(src, dst, _items(objects), "nightly", CopyOptions(stream_part_size=MiB))
    assert report.by_method() == {"stream": 3}
    for r in report.results:
        data = objects[r.source_key]
        assert (tmp_path / "backups" / r.dest_key).read_bytes() == data
        assert r.sha256 == hashlib.sha256(data).hexdigest()
        assert r.etag == hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize("pair", ["rclone_pair", "stream"])
def test_a_vanished_source_is_reported_not_failed(
    pair: str, request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path
) -> None:
    if pair == "stream":
        src = open_milvus_bucket(s3_server.client(), _fresh(s3_server), ROOT)
        dst: S3Storage | LocalStorage = LocalStorage(tmp_path, "backups")
    else:
        src, dst = request.getfixturevalue(pair)
    objects = {f"{LOG}/1": b"x" * 100, f"{LOG}/2": b"y" * 100}
    _put(src.client, src.bucket, objects)
    items = [*_items(objects), CopyItem(f"{LOG}/3", f"nightly/binlogs/{LOG}/3", 100)]
    report = copy_objects(src, dst, items, "nightly")
    assert [it.source_key for it in report.vanished] == [f"{LOG}/3"]
    assert len(report.results) == 2
    with pytest.raises(SourceVanishedError, match="compacted") as e:
        report.raise_for_vanished()
    assert e.value.source_key == f"{LOG}/3"
    with pytest.raises(SourceVanishedError):
        BinlogCopier(src, dst, "nightly").copy_one(items[2])


def test_a_size_other_than_expected_is_an_integrity_error(rclone_pair: tuple[S3Storage, S3Storage]) -> None:
    src, dst = rclone_pair
    _put(src.client, src.bucket, {f"{LOG}/1": b"z" * 100})
    with pytest.raises(CopyIntegrityError, match="is 100 bytes, expected 99"):
        copy_objects(src, dst, [CopyItem(f"{LOG}/1", f"nightly/binlogs/{LOG}/1", 99)], "nightly")
    assert not dst.exists(f"nightly/binlogs/{LOG}/1")


def test_a_missing_destination_bucket_is_no_vanished_source(s3_server: S3Server) -> None:
    client = s3_server.client()
    src = open_milvus_bucket(client, _fresh(s3_server), ROOT)
    dst = S3Storage(client, f"gone-{uuid.uuid4().hex[:8]}", "backups")
    _put(client, src.bucket, {f"{LOG}/1": b"q" * 10})
    with pytest.raises(StorageNotFoundError, match="does not exist") as e:
        copy_objects(src, dst, [CopyItem(f"{LOG}/1", f"nightly/binlogs/{LOG}/1")], "nightly")
    assert not isinstance(e.value, SourceVanishedError)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    s3_server.ensure_started()
    with FaultProxy(s3_server.endpoint_url) as p:
        yield p


@pytest.mark.parametrize(
    ("method", "path", "action", "stream"),
    [
        ("PUT", r"/cp-[0-9a-f]+/backups/", "slowdown", False),  # CopyObject throttled
        ("PUT", r"/cp-[0-9a-f]+/backups/", "500", False),
        ("GET", r"/cp-[0-9a-f]+/files/", "reset", True),  # the streamed read cut off
        ("GET", r"/cp-[0-9a-f]+/files/", "throttle", True),
        ("GET", r"/cp-[0-9a-f]+/files/", "truncate", True),  # the body cut short half way
        ("PUT", r"/cp-[0-9a-f]+/backups/", "429", True),  # the streamed upload throttled
    ],
)
def test_throttling_and_resets_are_retried(
    proxy: FaultProxy, s3_server: S3Server, method: str, path: str, action: str, stream: bool
) -> None:
    client = boto_client(
        proxy.url, s3_server.access_key, s3_server.secret_key, retries={"max_attempts": 1, "mode": "standard"}
    )
    direct = s3_server.client()
    # through the proxy both (one endpoint: server-side copy), or one of them (two endpoints: streamed)
    src_client, dst_client = client, client
    if stream:
        src_client, dst_client = (client, direct) if method == "GET" else (direct, client)
    src = open_milvus_bucket(src_client, _fresh(s3_server), ROOT)
    dst = S3Storage(dst_client, _fresh(s3_server), "backups")
    objects = {f"{LOG}/1": os.urandom(2000), f"{LOG}/2": os.urandom(3000)}
    _put(s3_server.client(), src.bucket, objects)
    proxy.add(Fault(method, path, action, times=3))
    report = copy_objects(src, dst, _items(objects), "nightly", CopyOptions(concurrency=1))
    assert report.by_method() == {"stream" if stream else "server-copy": 2}
    assert proxy.pending() == 0, proxy.hits
    assert len(report.results) == 2
    for r in report.results:
        assert dst.get_bytes(r.dest_key) == objects[r.source_key]


def test_progress_reports_objects_and_bytes(rclone_pair: tuple[S3Storage, S3Storage]) -> None:
    src, dst = rclone_pair
    objects = {f"{LOG}/{i}": b"p" * 1000 for i in range(4)}
    _put(src.client, src.bucket, objects)
    seen: list[dict[str, Any]] = []
    opts = CopyOptions(progress_interval=0.0, concurrency=2)
    copy_objects(src, dst, _items(objects), "nightly", opts, progress_callback=seen.append)
    last = seen[-1]
    assert last["objects"] == last["total_objects"] == 4
    assert last["bytes"] == last["total_bytes"] == 4000
    assert last["mb_per_second"] >= 0
