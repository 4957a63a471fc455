"""Physical backups (issue 10): flush, segments, binlogs copied server-side, Milvus Backup's meta, faults.

Pure checks first; then a real Milvus 2.3.5 (session fixture ``milvus235``) whose binlogs live in its rclone
S3 server, backed up into another bucket of that server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine.backup import BackupEngine
from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.errors import InvalidArgumentError, StorageError, UnsupportedError
from airflow_milvus_backup.engine.physical import layout, mbread, sidecar
from airflow_milvus_backup.engine.physical import mbmodel as mb
from airflow_milvus_backup.engine.physical import segments as sg
from airflow_milvus_backup.engine.physical.backup import PhysicalOptions
from airflow_milvus_backup.engine.physical.describe import with_dynamic_field
from airflow_milvus_backup.engine.physical.digests import checksum_dict
from airflow_milvus_backup.engine.physical.milvus_storage import StorageCheck, open_milvus_bucket
from airflow_milvus_backup.engine.physical.mode import choose_mode
from airflow_milvus_backup.engine.storage_base import ObjectInfo
from airflow_milvus_backup.engine.storage_s3 import S3Storage
from airflow_milvus_backup.engine.verify import verify_backup

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SEG = sg.SegmentRef(segment_id=7, collection_id=1, partition_id=2, num_rows=10, state="Flushed")


def _obj(key: str, size: int = 5) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, last_modified=NOW)


# --------------------------------------------------------------------------------------------- pure checks
def test_segment_files_group_binlogs_by_field_and_sort_them() -> None:
    inserts = [_obj(f"insert_log/1/2/7/{f}/{log}") for f in (100, 0, 1, 101) for log in (31, 30)]
    files = sg.segment_files(SEG, inserts, [_obj("delta_log/1/2/7/40", 9)])
    assert sorted(files.insert_logs) == [0, 1, 100, 101]
    assert [b.log_id for b in files.insert_logs[100]] == [30, 31]
    assert [b.log_id for b in files.delta_logs] == [40]
    assert files.size == 8 * 5 + 9
    sg.check_fields(files, [100, 101])
    with pytest.raises(sg.SegmentError, match=r"no binlogs of field\(s\) \[102\]"):
        sg.check_fields(files, [100, 101, 102])


def test_fields_with_different_binlog_counts_fail_as_milvus_backup_checks() -> None:
    inserts = [
        _obj("insert_log/1/2/7/100/30"),
        _obj("insert_log/1/2/7/100/31"),
        _obj("insert_log/1/2/7/101/32"),
    ]
    with pytest.raises(sg.SegmentError, match="different numbers of binlogs.*field 100: 2, field 101: 1"):
        sg.segment_files(SEG, inserts, [])


def test_a_segment_without_insert_logs_fails_unless_it_is_l0() -> None:
    with pytest.raises(sg.SegmentError, match="has no insert logs under 'insert_log/1/2/7/'"):
        sg.segment_files(SEG, [], [])
    l0 = sg.SegmentRef(
        segment_id=8, collection_id=1, partition_id=-1, num_rows=0, state="Flushed", level="L0"
    )
    files = sg.segment_files(l0, [], [_obj("delta_log/1/-1/8/50")])
    assert l0.group_id == 0
    assert SEG.group_id == 7
    assert [b.key for b in files.binlogs()] == ["delta_log/1/-1/8/50"]


def test_an_object_of_another_segment_is_refused() -> None:
    with pytest.raises(sg.SegmentError, match="not one of its binlogs"):
        sg.segment_files(SEG, [_obj("insert_log/1/2/8/100/30")], [])


def test_only_flushed_segments_are_kept() -> None:
    refs = [
        sg.SegmentRef(segment_id=i, collection_id=1, partition_id=2, num_rows=1, state=st)
        for i, st in ((3, "Flushed"), (1, "Flushing"), (2, "Flushed"), (4, "Growing"))
    ]
    assert [s.segment_id for s in sg.flushed_only(refs)] == [2, 3]


def test_choose_mode() -> None:
    ok, bad = StorageCheck(True, "readable"), StorageCheck(False, "cannot read s3://mb at http://x: refused")
    assert choose_mode("logical", address="a", is_lite=False, check=ok)[0] == "logical"
    assert choose_mode("physical", address="a", is_lite=False, check=ok) == ("physical", "readable")
    assert choose_mode("auto", address="a", is_lite=False, check=ok)[0] == "physical"
    assert choose_mode("auto", address="a", is_lite=False, check=bad) == (
        "logical",
        "Milvus' own bucket cannot be read: cannot read s3://mb at http://x: refused",
    )
    assert "not configured" in choose_mode("auto", address="a", is_lite=False, check=None)[1]
    assert "Milvus Lite" in choose_mode("auto", address="a.db", is_lite=True, check=ok)[1]
    with pytest.raises(UnsupportedError, match="a.db is Milvus Lite.*mode='logical'"):
        choose_mode("physical", address="a.db", is_lite=True, check=ok)
    with pytest.raises(InvalidArgumentError, match="milvus_bucket"):
        choose_mode("physical", address="a", is_lite=False, check=None)
    with pytest.raises(StorageError, match="s3://mb at http://x.*mode='logical'"):
        choose_mode("physical", address="a", is_lite=False, check=bad)
    with pytest.raises(InvalidArgumentError, match="mode must be one of"):
        choose_mode("fast", address="a", is_lite=False, check=ok)


def test_dynamic_field_takes_the_id_of_its_binlogs() -> None:
    pk = mb.FieldSchema(field_id=100, name="id", is_primary_key=True, data_type=5)
    schema = mb.CollectionSchema(name="c", fields=(pk,), enable_dynamic_field=True)
    got = with_dynamic_field(schema, [0, 1, 100, 102])
    assert [(f.field_id, f.name, f.is_dynamic) for f in got.fields][-1] == (102, "$meta", True)
    assert with_dynamic_field(schema, []).fields[-1].field_id == 101
    static = mb.CollectionSchema(name="c", fields=(pk,))
    assert with_dynamic_field(static, [102]) is static
    assert checksum_dict("SHA256:abc=") == {"sha256": "abc="}
    assert checksum_dict(None) is None


# --------------------------------------------------------------------------------------------- Milvus 2.3.5
DIM = 8


def _vecs(rng: np.random.Generator, n: int) -> list[list[float]]:
    return rng.random((n, DIM), dtype=np.float32).tolist()


def _flat_index(client: MilvusClient, coll: str, field: str = "vec") -> None:
    ip = client.prepare_index_params()
    ip.add_index(field, index_type="FLAT", metric_type="L2")
    client.create_index(coll, ip)


def _make_collections(client: MilvusClient, tag: str) -> dict[str, str]:
    rng = np.random.default_rng(7)
    names = {k: f"pb_{k}_{tag}" for k in ("parts", "pkey", "auto", "empty")}
    s = client.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("tag", DataType.VARCHAR, max_length=16)
    client.create_collection(names["parts"], schema=s)
    client.create_partition(names["parts"], "p1")
    client.create_partition(names["parts"], "p2")
    for j, p in enumerate(("_default", "p1", "p2")):
        rows = [{"id": j * 1000 + i, "vec": v, "tag": p, "extra": i} for i, v in enumerate(_vecs(rng, 300))]
        client.insert(names["parts"], rows, partition_name=p)
    client.delete(names["parts"], ids=list(range(10)))
    _flat_index(client, names["parts"])
    client.create_alias(names["parts"], f"{names['parts']}_alias")

    s = client.create_schema(auto_id=False)
    s.add_field("k", DataType.VARCHAR, max_length=32, is_primary=True)
    s.add_field("grp", DataType.INT64, is_partition_key=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(names["pkey"], schema=s, num_partitions=4)
    client.insert(
        names["pkey"], [{"k": f"k{i}", "grp": i % 7, "vec": v} for i, v in enumerate(_vecs(rng, 400))]
    )

    s = client.create_schema(auto_id=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(names["auto"], schema=s)
    client.insert(names["auto"], [{"vec": v} for v in _vecs(rng, 250)])
    _flat_index(client, names["auto"])
    client.load_collection(names["auto"])

    s = client.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(names["empty"], schema=s)
    return names


@pytest.fixture(scope="module")
def env(milvus235: Any) -> Any:
    client = MilvusClient(milvus235.uri)
    names = _make_collections(client, uuid.uuid4().hex[:6])
    yield {
        "client": client,
        "names": names,
        "params": MilvusParams(uri=milvus235.uri),
        "milvus_storage": open_milvus_bucket(milvus235.s3.client(), milvus235.bucket, milvus235.root_path),
        "s3": milvus235.s3,
    }
    client.drop_alias(f"{names['parts']}_alias")
    for n in names.values():
        client.drop_collection(n)
    client.close()


def _backup_storage(env: Any) -> S3Storage:
    bucket = env["s3"].create_bucket(f"pb-{uuid.uuid4().hex[:10]}")
    return S3Storage(env["s3"].client(), bucket, "backup")


def _sha(storage: S3Storage, key: str) -> str:
    return hashlib.sha256(storage.get_bytes(key)).hexdigest()


@pytest.mark.milvus235
def test_physical_backup_in_milvus_backups_format(env: Any) -> None:
    storage = _backup_storage(env)
    names = env["names"]
    seen_during_copy: list[bool] = []

    def after_round(coll: str, round_no: int) -> None:
        seen_during_copy.append(storage.exists(layout.meta_key("nightly", layout.BACKUP_META)))

    engine = BackupEngine(storage)
    summary = engine.create(
        env["params"],
        "nightly",
        list(names.values()),
        mode="physical",
        milvus_storage=env["milvus_storage"],
        physical=PhysicalOptions(after_round=after_round),
    )
    assert summary["mode"] == "physical"
    assert seen_during_copy == [False] * 4
    info = mbread.read_meta(storage, "nightly")
    colls = {c.collection_name: c for c in info.collection_backups}
    assert set(colls) == set(names.values())
    parts = colls[names["parts"]]
    assert {p.partition_name for p in parts.partition_backups} == {"_default", "p1", "p2"}
    assert sum(s.num_of_rows for s in parts.segments()) == 900  # deletes live in delta logs
    assert any(fb.binlogs for s in parts.segments() for fb in s.deltalogs)
    assert parts.schema is not None
    assert parts.schema.fields[-1].name == "$meta"
    assert parts.has_index
    assert parts.index_infos[0].index_type == "FLAT"
    assert f"{names['parts']}_alias" in parts.aliases
    assert colls[names["auto"]].load_state == "Loaded"
    assert parts.load_state == "NotLoad"
    assert colls[names["auto"]].schema.fields[0].auto_id  # type: ignore[union-attr]
    pkey = colls[names["pkey"]]
    assert len(pkey.partition_backups) == 4
    assert sum(s.num_of_rows for s in pkey.segments()) == 400
    assert colls[names["empty"]].segments() == []
    for seg in info.segments():
        assert seg.group_id == seg.segment_id
        assert len({len(fb.binlogs) for fb in seg.binlogs}) == 1
    # every binlog copied, with the size the meta records and the SHA-256 the sidecar records
    sc = sidecar.read_sidecar(storage, "nightly")
    assert sc is not None
    assert sc.producer
    assert sc.producer["package"]
    digests = sc.by_key()
    listed = {o.key: o.size for o in storage.list("nightly/binlogs/")}
    expected = layout.backup_binlogs("nightly", info)
    assert {b.key for b in expected} == set(listed)
    for b in expected:
        assert listed[b.key] == b.size
        # rclone computes no S3 checksum: each server-side copy's MD5 ETag, equal to its source's, is its
        # digest, and nothing was read back
        obj = digests[sidecar.relative_key("nightly", b.key)]
        assert sidecar.expected_digest(obj) == ("md5", hashlib.md5(storage.get_bytes(b.key)).hexdigest())
        assert obj.sha256 is None
    for meta_file in (layout.FULL_META, layout.SEGMENT_META, layout.COLLECTION_META, layout.PARTITION_META):
        key = layout.meta_key("nightly", meta_file)
        assert digests[sidecar.relative_key("nightly", key)].sha256 == _sha(storage, key)
    assert summary["rows"] == 900 + 400 + 250
    assert summary["files"] == len(expected)
    # verify reads every binlog for its MD5; a binlog changed in place (same size) is named
    assert verify_backup(storage, "nightly")["md5_checked"] == len(expected)
    changed = expected[len(expected) // 2].key
    body = bytearray(storage.get_bytes(changed))
    body[len(body) // 2] ^= 1
    storage.put_bytes(changed, bytes(body))
    report = verify_backup(storage, "nightly", raise_on_error=False)
    assert report["errors"] == [{"key": changed, "error": "changed: its MD5 differs from the sidecar's"}]


def _segment_ids(client: MilvusClient, coll: str) -> set[int]:
    return {s.segment_id for s in sg.list_segments(client, coll)}


def _compact_and_wait(client: MilvusClient, coll: str, timeout: float = 60) -> None:
    from pymilvus.grpc_gen import milvus_pb2

    before = _segment_ids(client, coll)
    cid = client.describe_collection(coll)["collection_id"]
    # pymilvus 3 sends the name only; Milvus 2.3.5 compacts by collection id
    client._get_connection()._stub.ManualCompaction(milvus_pb2.ManualCompactionRequest(collectionID=cid))
    deadline = time.monotonic() + timeout
    while _segment_ids(client, coll) & before == before:
        assert time.monotonic() < deadline, "Milvus did not compact"
        time.sleep(0.5)


@pytest.mark.milvus235
def test_a_segment_compacted_during_the_copy_is_redone(env: Any) -> None:
    client = env["client"]
    coll = f"pb_compact_{uuid.uuid4().hex[:6]}"
    s = client.create_schema(auto_id=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(coll, schema=s)
    rng = np.random.default_rng(3)
    for _ in range(3):  # three small flushed segments: Milvus merges them
        client.insert(coll, [{"vec": v} for v in _vecs(rng, 100)])
        client.flush(coll)
    _flat_index(client, coll)  # 2.3.5 compacts indexed segments only
    time.sleep(2)
    first = _segment_ids(client, coll)
    assert len(first) == 3
    rounds: list[int] = []

    def after_round(name: str, round_no: int) -> None:
        rounds.append(round_no)
        if round_no == 0:
            _compact_and_wait(client, coll)

    storage = _backup_storage(env)
    try:
        summary = BackupEngine(storage).create(
            env["params"],
            "nightly",
            [coll],
            mode="physical",
            milvus_storage=env["milvus_storage"],
            physical=PhysicalOptions(after_round=after_round),
        )
    finally:
        now = _segment_ids(client, coll)
        client.drop_collection(coll)
    assert rounds == [0, 1]
    assert set(summary["redone_segments"]) == first
    info = mbread.read_meta(storage, "nightly")
    assert {s.segment_id for s in info.segments()} == now
    assert not now & first
    assert sum(s.num_of_rows for s in info.segments()) == 300
    listed = {o.key for o in storage.list("nightly/binlogs/")}
    assert listed == {b.key for b in layout.backup_binlogs("nightly", info)}  # old copies deleted
    assert not any(f"/{seg}/" in k for k in listed for seg in first)


@pytest.mark.milvus235
def test_milvus_bucket_unreachable(env: Any) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from tests.support.s3 import boto_client

    dead = boto_client(
        f"http://127.0.0.1:{port}", "k", "s", connect_timeout=1, retries={"total_max_attempts": 1}
    )
    unreachable = open_milvus_bucket(dead, "milvus-data", "files", retry_seconds=1, retry_attempts=1)
    storage = _backup_storage(env)
    engine = BackupEngine(storage)
    coll = env["names"]["auto"]
    with pytest.raises(
        StorageError, match=rf"milvus-data.*127.0.0.1:{port}.*milvus_storage_conn_id.*logical"
    ):
        engine.create(env["params"], "nightly", [coll], mode="physical", milvus_storage=unreachable)
    assert list(storage.list("nightly/")) == []  # refused before anything was written
    summary = engine.create(env["params"], "nightly", [coll], mode="auto", milvus_storage=unreachable)
    assert summary["mode"] == "logical"


CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from airflow_milvus_backup.engine.backup import BackupEngine
from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.physical.backup import PhysicalOptions
from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
from airflow_milvus_backup.engine.storage_s3 import S3Storage
from tests.support.s3 import boto_client
cfg = json.loads(sys.argv[1])
client = boto_client(cfg["endpoint"], cfg["ak"], cfg["sk"])
def after_round(coll, n):
    open(cfg["marker"], "w").write("copied")
    time.sleep(600)
BackupEngine(S3Storage(client, cfg["bucket"], "backup")).create(
    MilvusParams(uri=cfg["uri"]), "nightly", [cfg["coll"]], mode="physical",
    milvus_storage=open_milvus_bucket(client, cfg["milvus_bucket"], cfg["root"]),
    physical=PhysicalOptions(after_round=after_round))
"""


@pytest.mark.milvus235
def test_killed_during_the_copy_is_never_complete_and_a_rerun_succeeds(
    env: Any, milvus235: Any, tmp_path: Path
) -> None:
    storage = _backup_storage(env)
    s3 = env["s3"]
    cfg = {
        "endpoint": s3.endpoint_url,
        "ak": s3.access_key,
        "sk": s3.secret_key,
        "bucket": storage.bucket,
        "uri": milvus235.uri,
        "coll": env["names"]["parts"],
        "milvus_bucket": milvus235.bucket,
        "root": milvus235.root_path,
        "marker": str(tmp_path / "copied"),
    }
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(Path(__file__).resolve().parents[1])))
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not Path(cfg["marker"]).exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = {o.key for o in storage.list("nightly/")}
    assert any(k.startswith("nightly/binlogs/insert_log/") for k in left)  # copied, never committed
    assert layout.meta_key("nightly", layout.BACKUP_META) not in left
    engine = BackupEngine(storage)
    entry = {b["name"]: b for b in engine.list()}.get("nightly", {})
    assert entry.get("state") != "complete"
    summary = engine.create(
        env["params"],
        "nightly",
        [cfg["coll"]],
        mode="physical",
        milvus_storage=env["milvus_storage"],
        overwrite=True,
    )
    assert summary["rows"] == 900
    info = mbread.read_meta(storage, "nightly")
    assert {o.key for o in storage.list("nightly/binlogs/")} == {
        b.key for b in layout.backup_binlogs("nightly", info)
    }
