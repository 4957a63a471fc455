"""S3 throttling, 5xx, reset connections and slow answers are retried by every verb, however boto wraps them.

Real parts: the session rclone S3 server behind tests/faultproxy.py, a reverse proxy that answers scripted
requests with ``503 SlowDown``, ``500``, ``400 Throttling``, ``429``, a reset connection, half a body or a
late answer. The boto3 client gives up after two attempts of its own, so the storage seam's retries are what
carries each verb through; a backup and a restore of a real Milvus Lite collection run through it too.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import BackupEngine, MilvusParams, S3Storage, StorageNotFoundError
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.s3errors import is_retryable_answer
from airflow_milvus_backup.engine.verify import verify_backup
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.s3 import ROOT, boto_client

if TYPE_CHECKING:
    from tests.support.s3 import S3Server

pytestmark = pytest.mark.timeout(300)

MB = 1024 * 1024
READ_TIMEOUT = 2.0


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url) as p:
        yield p


def storage_via(proxy: FaultProxy, s3: S3Server, bucket: str, **kwargs: Any) -> S3Storage:
    client = boto_client(
        proxy.url,
        s3.access_key,
        s3.secret_key,
        connect_timeout=2,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": 2, "mode": "standard"},
    )
    return S3Storage(
        client,
        bucket,
        ROOT,
        multipart_threshold=5 * MB,
        multipart_chunksize=5 * MB,
        max_concurrency=2,
        retry_attempts=10,
        retry_seconds=120,
        **kwargs,
    )


def big_file(tmp_path: Path, size: int) -> Path:
    p = tmp_path / f"f{size}.bin"
    p.write_bytes(os.urandom(size))
    return p


# every verb: (what it does, the request to fail, a check that it did its work)
Verb = tuple[Callable[[S3Storage, Path], Any], str, str, Callable[[S3Storage, Path, Any], None]]


def _put_file(size: int) -> Callable[[S3Storage, Path], Any]:
    def run(st: S3Storage, tmp: Path) -> Any:
        src = big_file(tmp, size)
        st.put_file("b1/data/f.parquet", src)
        return src

    return run


def _check_put_file(st: S3Storage, tmp: Path, src: Any) -> None:
    assert st.get_bytes("b1/data/f.parquet") == src.read_bytes()


def _seed(st: S3Storage) -> bytes:
    data = os.urandom(300_000)
    st.put_bytes("b1/manifest.json", data)
    return data


VERBS: dict[str, Verb] = {
    "put_file_multipart": (_put_file(11 * MB), "PUT", r"partNumber=2", _check_put_file),
    "put_file_single": (_put_file(MB), "PUT", r"/f\.parquet", _check_put_file),
    "put_bytes": (
        lambda st, tmp: st.put_bytes("b1/x.json", b"{}"),
        "PUT",
        r"/x\.json",
        lambda st, tmp, r: st.get_bytes("b1/x.json") == b"{}" or pytest.fail("not stored"),
    ),
    "get_bytes": (
        lambda st, tmp: (st.get_bytes("b1/manifest.json"), st.get_bytes("b1/manifest.json"))[1],
        "GET",
        r"/manifest\.json",
        lambda st, tmp, r: r == st.get_bytes("b1/manifest.json") or pytest.fail("wrong bytes"),
    ),
    "download": (
        lambda st, tmp: st.download("b1/manifest.json", tmp / "dl.bin"),
        "GET",
        r"/manifest\.json",
        lambda st, tmp, r: (
            (tmp / "dl.bin").read_bytes() == st.get_bytes("b1/manifest.json") or pytest.fail("wrong bytes")
        ),
    ),
    "list": (
        lambda st, tmp: list(st.list("b1/")),
        "GET",
        r"list-type=2",
        lambda st, tmp, r: sorted(o.key for o in r) == ["b1/manifest.json"] or pytest.fail(str(r)),
    ),
    "list_dirs": (
        lambda st, tmp: st.list_dirs(""),
        "GET",
        r"delimiter=",
        lambda st, tmp, r: r == ["b1"] or pytest.fail(str(r)),
    ),
    "delete": (
        lambda st, tmp: st.delete(["b1/manifest.json"]),
        "POST",
        r"delete",
        lambda st, tmp, r: not st.exists("b1/manifest.json") or pytest.fail("still there"),
    ),
    "exists": (
        lambda st, tmp: (st.exists("b1/manifest.json"), st.exists("b1/none.json")),
        "HEAD",
        r"/b1/",
        lambda st, tmp, r: r == (True, False) or pytest.fail(str(r)),
    ),
    "put_if_absent": (
        lambda st, tmp: (st.put_if_absent("b1/lock.json", b"1"), st.put_if_absent("b1/lock.json", b"2")),
        "*",
        r"/lock\.json",
        lambda st, tmp, r: (
            (r == (True, False) and st.get_bytes("b1/lock.json") == b"1") or pytest.fail(str(r))
        ),
    ),
}

FAULTS = ("slowdown", "500", "throttle", "429", "reset", "delay", "truncate")


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_retries_throttling_5xx_resets_and_slow_answers(
    proxy: FaultProxy, s3_server: S3Server, bucket: str, tmp_path: Path, verb: str, fault: str
) -> None:
    run, method, path, check = VERBS[verb]
    if fault == "truncate" and method in ("HEAD", "PUT", "*"):
        pytest.skip("HEAD and PUT answers have no body to cut short")
    if fault == "throttle" and method in ("HEAD", "*"):
        pytest.skip("a throttling answer without a body (HEAD) is a plain 400: not told from a bad request")
    st = storage_via(proxy, s3_server, bucket)
    _seed(st)
    # three failures in a row: more than boto's own two attempts, fewer than the seam's ten
    proxy.add(Fault(method, path, fault, times=3, delay=READ_TIMEOUT + 1.5))
    began = time.monotonic()
    result = run(st, tmp_path)
    took = time.monotonic() - began
    assert proxy.hits, f"no request matched {method} {path}: {proxy.requests}"
    assert proxy.pending() == 0, f"only {len(proxy.hits)} of 3 faults happened: {proxy.hits}"
    proxy.clear()
    check(st, tmp_path, result)
    assert took < 90


def test_a_missing_object_is_not_retried_through_the_proxy(
    proxy: FaultProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    st = storage_via(proxy, s3_server, bucket)
    began = time.monotonic()
    with pytest.raises(StorageNotFoundError):
        st.get_bytes("b1/nothing.json")
    with pytest.raises(StorageNotFoundError):
        st.download("b1/nothing.json", tmp_path / "x")
    assert time.monotonic() - began < 5
    assert len(proxy.requests) <= 3


def test_backup_and_restore_through_a_throttling_s3(
    proxy: FaultProxy, s3_server: S3Server, bucket: str, lite_uri: str, tmp_path: Path
) -> None:
    client = MilvusClient(lite_uri)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=64)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    coll = f"thr_{uuid.uuid4().hex[:6]}"
    client.create_collection(coll, schema=s, index_params=ip)
    rng = np.random.default_rng(9)
    rows = [{"id": i, "vec": rng.random(64, dtype=np.float32).tolist()} for i in range(30_000)]
    for i in range(0, len(rows), 10_000):
        client.insert(coll, rows[i : i + 10_000])
    st = storage_via(proxy, s3_server, bucket)
    params = MilvusParams(uri=lite_uri)
    proxy.add(
        Fault("PUT", r"/data/", "slowdown", times=3),  # data files (and their parts)
        Fault("PUT", r"/backup_meta\.json", "500", times=2),
        Fault("GET", r"list-type=2", "reset", times=2),
        Fault("GET", r"/backup_meta\.json", "slowdown", times=3),
        Fault("GET", r"/data/", "truncate", times=2),
        Fault("HEAD", r".", "delay", times=2, delay=READ_TIMEOUT + 1.5),
    )
    summary = BackupEngine(st, progress_interval=0, file_bytes=2 * MB).create(params, "thr", [coll])
    assert summary["rows"] == 30_000
    assert verify_backup(st, "thr")["ok"]
    report = RestoreEngine(st, progress_interval=0).restore(params, "thr", collection_suffix="_r")
    assert report["collections"][0]["rows_restored"] == 30_000
    got = client.query(f"{coll}_r", filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert got == 30_000
    actions = {a for _, _, a in proxy.hits}
    assert {"slowdown", "500", "reset", "truncate", "delay"} <= actions, json.dumps(proxy.hits)
    client.close()


@pytest.mark.parametrize(
    ("code", "status", "retry"),
    [
        ("SlowDown", 503, True),
        ("Throttling", 400, True),
        ("RequestLimitExceeded", 400, True),
        ("", 429, True),
        ("InternalError", 500, True),
        ("", 502, True),
        ("NoSuchKey", 404, False),
        ("AccessDenied", 403, False),
        ("InvalidArgument", 400, False),
    ],
)
def test_which_s3_answers_are_retried(code: str, status: int, retry: bool) -> None:
    assert is_retryable_answer(code, status) is retry
