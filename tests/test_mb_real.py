"""Milvus Backup's backups, every meta version, with real binlogs of Milvus 2.3.5: listed, verified, restored.

One collection (1,500 rows in two partitions, 30 deletes, the dynamic field) is backed up physically once
(module fixture); :func:`tests.support.mb_real.make_mb_backup` rewrites that backup as Milvus Backup's current
format (no sidecar), v0.5 and v0.4 would have stored it, in Milvus' own bucket under a root of its own (where
Milvus Backup keeps its backups by default). The restore tests need the physical restore
(``engine/physical/restore.py``); they are skipped until it is there.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine.backup import BackupEngine
from airflow_milvus_backup.engine.catalog import Catalog
from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.errors import IntegrityError
from airflow_milvus_backup.engine.physical import layout, mbread, mbwrite
from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
from airflow_milvus_backup.engine.storage_s3 import S3Storage
from airflow_milvus_backup.engine.verify import verify_backup
from tests.support.mb_real import VERSIONS, as_written_by, make_mb_backup
from tests.support.mbfixtures import sample_info

NAMES = {mbwrite.CURRENT: "mb_current", mbwrite.V05: "mb_v05", mbwrite.V04: "mb_v04"}
DIM = 8
ROWS = {"_default": range(0, 800), "p1": range(1000, 1700)}
DELETED = [*range(0, 20), *range(1000, 1010)]


# ------------------------------------------------------------------------------------ pure (no server)
def test_as_written_by_gives_each_versions_shapes() -> None:
    info = sample_info("b")
    v04 = as_written_by(info, mbwrite.V04, started_ms=1_700_000_000_000, ended_ms=1_700_000_005_000)
    assert (v04.state_code, v04.progress, v04.start_time, v04.error_message) == (
        2,
        100,
        1_700_000_000_000,
        "",
    )
    assert v04.legacy
    assert all(c.state_code == 2 and not c.aliases and not c.properties for c in v04.collection_backups)
    assert all(s.group_id == 0 for s in v04.segments())
    assert all(b.log_id == 0 for s in v04.segments() for fb in s.binlogs for b in fb.binlogs)
    keys = [b.key for b in layout.backup_binlogs("b", v04)]
    assert [b.source for b in layout.backup_binlogs("b", v04)] == [
        b.source for b in layout.backup_binlogs("b", info)
    ]
    assert all(re.fullmatch(r"b/binlogs/insert_log/\d+/\d+/\d+/\d+/\d+", k) for k in keys if "insert" in k)
    v05 = as_written_by(info, mbwrite.V05, started_ms=1, ended_ms=2)
    assert all(s.group_id == s.segment_id for s in v05.segments())
    assert v05.size == info.size == sum(s.size for s in info.segments())
    assert as_written_by(info, mbwrite.CURRENT, started_ms=1, ended_ms=2) == info
    with pytest.raises(ValueError, match="unknown Milvus Backup version"):
        as_written_by(info, "v0.3", started_ms=1, ended_ms=2)


# ------------------------------------------------------------------------------------ Milvus 2.3.5
def _rows(client: MilvusClient, coll: str) -> list[dict[str, Any]]:
    got = client.query(coll, filter="id >= 0", output_fields=["*"], limit=16384)
    return sorted(got, key=lambda r: r["id"])


def _make_collection(client: MilvusClient, coll: str) -> None:
    rng = np.random.default_rng(11)
    s = client.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("tag", DataType.VARCHAR, max_length=16)
    client.create_collection(coll, schema=s)
    client.create_partition(coll, "p1")
    for part, ids in ROWS.items():
        vecs = rng.random((len(ids), DIM), dtype=np.float32).tolist()
        rows = [{"id": i, "vec": v, "tag": part, "extra": i % 5} for i, v in zip(ids, vecs, strict=True)]
        client.insert(coll, rows, partition_name=part)
        if part == "_default":
            client.flush(coll)  # deletes of a segment flushed before (delta logs written after a flush)
    client.delete(coll, ids=DELETED)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_index(coll, ip)
    client.load_collection(coll)


@pytest.fixture(scope="module")
def real(milvus235: Any) -> Any:
    tag = uuid.uuid4().hex[:6]
    client = MilvusClient(milvus235.uri)
    coll = f"mbreal_{tag}"
    _make_collection(client, coll)
    # in Milvus' own bucket, under a root of its own: where Milvus Backup keeps its backups by default
    storage = S3Storage(milvus235.s3.client(), milvus235.bucket, f"mbreal_backup_{tag}")
    milvus_storage = open_milvus_bucket(milvus235.s3.client(), milvus235.bucket, milvus235.root_path)
    params = MilvusParams(uri=milvus235.uri)
    BackupEngine(storage).create(params, "src", [coll], mode="physical", milvus_storage=milvus_storage)
    infos = {v: make_mb_backup(storage, NAMES[v], v, source="src") for v in VERSIONS}
    try:
        yield {
            "client": client,
            "coll": coll,
            "storage": storage,
            "milvus_storage": milvus_storage,
            "params": params,
            "infos": infos,
            "rows": _rows(client, coll),
        }
    finally:
        client.drop_collection(coll)
        client.close()
        storage.delete([o.key for o in storage.list("")])


@pytest.mark.milvus235
def test_each_version_is_listed_and_verified_with_real_binlogs(real: Any) -> None:
    storage, coll = real["storage"], real["coll"]
    assert len(real["rows"]) == 1500 - len(DELETED)
    entries = {e["name"]: e for e in Catalog(storage).list()}
    assert entries["src"]["kind"] == "physical"
    src_info = mbread.read_meta(storage, "src")
    src_bodies = {
        b.source: hashlib.sha256(storage.get_bytes(b.key)).hexdigest()
        for b in layout.backup_binlogs("src", src_info)
    }
    # the deletes are in it: delta logs in each partition's segment, the one flushed before them too
    deltas = {s.segment_id: sum(len(fb.binlogs) for fb in s.deltalogs) for s in src_info.segments()}
    assert len(deltas) == 2
    assert all(deltas.values()), deltas
    assert {p.partition_name for c in src_info.collection_backups for p in c.partition_backups} == set(ROWS)
    for version, name in NAMES.items():
        e = entries[name]
        assert (e["kind"], e["meta_version"], e["state"], e["owned"]) == (
            "milvus-backup",
            version,
            "complete",
            False,
        ), name
        assert e["collections"] == [f"default.{coll}"]
        assert e["rows"] == 1500  # the segments' num_of_rows: deletes are not subtracted
        keys = {o.key for o in storage.list(f"{name}/")}
        assert layout.sidecar_key(name) not in keys
        assert f"{name}/meta/marker.json" not in keys
        assert (layout.meta_key(name, layout.FULL_META) in keys) == (version != mbwrite.V04)
        assert (layout.meta_key(name, layout.CHANNEL_CP_META) in keys) == (version == mbwrite.V05)
        info = mbread.read_meta(storage, name)
        assert info.legacy == (version != mbwrite.CURRENT)
        binlogs = layout.backup_binlogs(name, info)
        assert {b.key for b in binlogs} == {k for k in keys if k.startswith(f"{name}/binlogs/")}
        depth = {len(b.key.split("/")) for b in binlogs if b.field_id is not None}
        assert depth == ({8} if version == mbwrite.V04 else {9}), name  # no group folder in v0.4
        for b in binlogs:  # Milvus' own bytes, where this version keeps them
            assert hashlib.sha256(storage.get_bytes(b.key)).hexdigest() == src_bodies[b.source]
        report = verify_backup(storage, name)
        assert report["ok"], report
        assert report["files_checked"] == len(binlogs)


@pytest.mark.milvus235
def test_verify_names_a_missing_or_truncated_binlog_in_each_version(real: Any) -> None:
    storage = real["storage"]
    for version in VERSIONS:
        name = f"broken_{version.replace('.', '')}"
        info = make_mb_backup(storage, name, version, source="src")
        keys = [b.key for b in layout.backup_binlogs(name, info)]
        storage.delete([keys[0]])
        with pytest.raises(IntegrityError, match=re.escape(keys[0])):
            verify_backup(storage, name)
        storage.put_bytes(keys[-1], storage.get_bytes(keys[-1])[:-1])
        report = verify_backup(storage, name, raise_on_error=False)
        errors = {err["key"]: err["error"] for err in report["errors"]}
        assert not report["ok"]
        assert errors[keys[0]].startswith("missing")
        assert errors[keys[-1]].startswith("truncated")
        assert len(errors) == 2, errors


@pytest.mark.milvus235
def test_make_mb_backup_rewrites_a_backup_in_place(real: Any) -> None:
    storage = real["storage"]
    make_mb_backup(storage, "in_place", mbwrite.CURRENT, source="src")
    info = make_mb_backup(storage, "in_place", mbwrite.V04)
    meta = {layout.meta_key("in_place", f) for f in mbwrite.meta_files(info, mbwrite.V04)}
    binlogs = {b.key for b in layout.backup_binlogs("in_place", info)}
    assert {o.key for o in storage.list("in_place/")} == meta | binlogs  # nothing stale left
    entry = {e["name"]: e for e in Catalog(storage).list()}["in_place"]
    assert (entry["kind"], entry["meta_version"], entry["state"]) == ("milvus-backup", "v0.4", "complete")
    assert verify_backup(storage, "in_place")["ok"]


@pytest.mark.milvus235
@pytest.mark.parametrize("version", VERSIONS)
def test_restore_of_each_version_gives_every_row_back(real: Any, version: str) -> None:
    from airflow_milvus_backup.engine.restore import RestoreEngine

    client, target = real["client"], f"{real['coll']}_r"
    try:
        engine = RestoreEngine(real["storage"], milvus_storage=real["milvus_storage"])
        report = engine.restore(real["params"], NAMES[version], collection_suffix="_r")
        assert report["state"] == "success", report
        client.load_collection(target)
        assert sorted(client.list_partitions(target)) == sorted(client.list_partitions(real["coll"]))
        assert _rows(client, target) == real["rows"]  # deletes carried over, $meta kept
    finally:
        client.drop_collection(target)
