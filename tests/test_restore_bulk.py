"""Restores on a real Milvus 2.3.5 (storage on S3): bulk import (submit + poll) and insert, bit for bit."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    MilvusParams,
    S3Storage,
    UnsupportedError,
)
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.schema import primary_field
from airflow_milvus_backup.engine.verify import verify_restore
from tests.support.datagen import canon_rows, source_rows
from tests.support.lite import open_client

pytestmark = pytest.mark.milvus235


def rows_of(client: MilvusClient, name: str, meta: dict[str, Any], skip_pk: bool = False) -> Any:
    pk = primary_field(meta)["name"]
    dyn = meta["enable_dynamic_field"]
    rows = canon_rows(source_rows(client, name, meta["fields"], dyn), meta["fields"], pk, dyn)
    if skip_pk:
        return sorted(repr(sorted((k, v) for k, v in r.items() if k != pk)) for r in rows.values())
    return rows


def indexes(client: MilvusClient, name: str) -> dict[str, dict[str, Any]]:
    out = {}
    for n in client.list_indexes(name):
        d = dict(client.describe_index(name, n))
        for k in ("total_rows", "indexed_rows", "pending_index_rows", "state"):
            d.pop(k, None)
        out[d["index_name"]] = d
    return out


@pytest.fixture(scope="module")
def src(milvus235) -> Any:
    """Three collections on Milvus 2.3.5 and their backups in Milvus' own bucket."""
    client = open_client(milvus235.uri)
    for name in client.list_collections():
        if name.startswith(("scal", "bins", "autos")):
            client.drop_collection(name)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("b", DataType.BOOL)
    s.add_field("i8", DataType.INT8)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32)
    s.add_field("f", DataType.FLOAT)
    s.add_field("d", DataType.DOUBLE)
    s.add_field("s", DataType.VARCHAR, max_length=64)
    s.add_field("j", DataType.JSON)
    s.add_field("ai", DataType.ARRAY, element_type=DataType.INT64, max_capacity=5)
    s.add_field("av", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=3, max_length=10)
    s.add_field("af", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=3)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    ip = client.prepare_index_params()
    ip.add_index(
        "vec",
        index_type="HNSW",
        metric_type="L2",
        params={"M": 8, "efConstruction": 32},
        index_name="vec_hnsw",
    )
    ip.add_index("i32", index_type="STL_SORT", index_name="i32_sort")
    # Strong: the backup reads right after the inserts (Bounded would hide the newest rows)
    client.create_collection("scal", schema=s, index_params=ip, consistency_level="Strong")
    client.create_partition("scal", "p1")
    rng = random.Random(3)
    rows = [
        {
            "id": i * 7 - 3000,
            "b": i % 2 == 0,
            "i8": rng.randint(-128, 127),
            "i16": rng.randint(-30000, 30000),
            "i32": rng.randint(-(2**31), 2**31 - 1),
            "f": float(np.float32(rng.uniform(-1e5, 1e5))),
            "d": rng.uniform(-1e300, 1e300),
            "s": f"s{i}é字",
            "j": {"i": i, "n": {"x": [1, 2.5, "y"]}, "u": "ü"},
            "ai": [rng.randint(-(2**60), 2**60) for _ in range(i % 5)],
            "av": ["a", "bé"][: i % 3],
            "af": [float(np.float32(rng.random())) for _ in range(i % 4)][:3],
            "vec": np.random.default_rng(i).random(16, dtype=np.float32).tolist(),
            **({"extra": i, "tag": "t"} if i % 2 else {}),
        }
        for i in range(600)
    ]
    client.insert("scal", rows[:250])
    client.insert("scal", rows[250:], partition_name="p1")
    client.create_alias("scal", "scal_alias")

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=20)
    s.add_field("bv", DataType.BINARY_VECTOR, dim=32)
    s.add_field("n", DataType.INT64)
    ip = client.prepare_index_params()
    ip.add_index("bv", index_type="BIN_IVF_FLAT", metric_type="HAMMING", params={"nlist": 4})
    client.create_collection("bins", schema=s, index_params=ip, consistency_level="Strong")
    client.insert(
        "bins",
        [
            {
                "key": f"k{i:05d}",
                "bv": bytes(np.random.default_rng(i).integers(0, 256, 4, dtype=np.uint8)),
                "n": i,
            }
            for i in range(200)
        ],
    )

    s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True, auto_id=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("label", DataType.VARCHAR, max_length=16)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="IP")
    client.create_collection("autos", schema=s, index_params=ip, consistency_level="Strong")
    client.insert("autos", [{"vec": [float(i % 13)] * 8, "label": f"l{i}"} for i in range(150)])
    for name in ("scal", "bins", "autos"):
        client.load_collection(name)

    storage = S3Storage(milvus235.s3.client(), milvus235.bucket, "backup")
    params = MilvusParams(uri=milvus235.uri)
    engine = BackupEngine(storage)
    engine.create(params, "b235", ["scal", "bins"], overwrite=True)
    engine.create(params, "b235_auto", ["autos"], overwrite=True)
    metas = {c["name"]: c for c in engine.get("b235")["collections"] + engine.get("b235_auto")["collections"]}
    assert {n: m["row_count"] for n, m in metas.items()} == {"scal": 600, "bins": 200, "autos": 150}
    yield SimpleNamespace(client=client, storage=storage, params=params, metas=metas, bucket=milvus235.bucket)
    client.close()


def test_bulk_import_submit_then_poll_round_trip(src):
    engine = RestoreEngine(src.storage)
    # "auto" chooses bulk import: the target Milvus reads the backup's bucket
    status = engine.submit(src.params, "b235", collection_suffix="_bulk", bulk_import_bucket=src.bucket)
    assert status["state"] == "executing"
    assert status["method"] == "bulk_import"
    jobs = [j for c in status["collections"] for j in c["jobs"]]
    assert len(jobs) == 3
    assert all(j["task_id"] for j in jobs)
    # the submitted restore is alive (retention must keep the backup) although no process owns it
    [listed] = engine.list_restores("b235")
    assert listed["state"] == "executing"
    assert listed["alive"] is True
    deadline = time.monotonic() + 240
    while status["state"] == "executing" and time.monotonic() < deadline:
        time.sleep(2)
        status = RestoreEngine(src.storage).poll(src.params, "b235", status["restore_id"])
    assert status["state"] == "success", status.get("error")
    assert status["totals"]["rows_restored"] == 800
    assert status["detached"] is False
    c = src.client
    for name in ("scal", "bins"):
        meta = src.metas[name]
        assert rows_of(c, f"{name}_bulk", meta) == rows_of(c, name, meta), name
        assert indexes(c, f"{name}_bulk") == indexes(c, name)
        assert c.get_load_state(f"{name}_bulk")["state"].name == "Loaded"
    assert indexes(c, "scal_bulk")["vec_hnsw"]["M"] == "8"
    assert sorted(c.list_partitions("scal_bulk")) == ["_default", "p1"]
    assert c.list_aliases("scal_bulk")["aliases"] == ["scal_alias_bulk"]
    v = verify_restore(src.params, src.storage, "b235", status, sample_searches=5)
    assert v["ok"], v["errors"]
    assert all(x["search_overlap"] is not None and x["search_overlap"] >= 0.8 for x in v["collections"])


def test_insert_path_when_bulk_import_cannot_work(src):
    engine = RestoreEngine(src.storage)
    with pytest.raises(UnsupportedError, match="bulk_import_bucket"):
        engine.restore(src.params, "b235", collection_suffix="_forced", method="bulk_import")
    assert not src.client.has_collection("scal_forced")
    report = engine.restore(src.params, "b235", ["scal"], collection_suffix="_ins")
    assert report["method"] == "insert"
    assert "bulk_import_bucket" in report["method_reason"]
    meta = src.metas["scal"]
    assert rows_of(src.client, "scal_ins", meta) == rows_of(src.client, "scal", meta)
    assert indexes(src.client, "scal_ins") == indexes(src.client, "scal")
    assert report["collections"][0]["rows_found"] == 600


def test_auto_id_keys_cannot_be_kept_on_235(src):
    engine = RestoreEngine(src.storage)
    with pytest.raises(UnsupportedError, match=r"auto_id primary key 'id'.*accept_new_primary_keys=True"):
        engine.restore(src.params, "b235_auto", collection_suffix="_new", bulk_import_bucket=src.bucket)
    assert not src.client.has_collection("autos_new")
    report = engine.restore(
        src.params,
        "b235_auto",
        collection_suffix="_new",
        bulk_import_bucket=src.bucket,
        accept_new_primary_keys=True,
    )
    assert report["method"] == "insert"
    assert "new primary keys" in report["method_reason"]
    assert report["collections"][0]["keys"] == "new"
    meta = src.metas["autos"]
    assert rows_of(src.client, "autos_new", meta, skip_pk=True) == rows_of(
        src.client, "autos", meta, skip_pk=True
    )
    v = verify_restore(src.params, src.storage, "b235_auto", report)
    assert v["ok"]
    assert v["collections"][0]["keys"] == "new"


def test_235_backup_into_lite_needs_an_index_fallback(src, lite_uri):
    lite = MilvusParams(uri=lite_uri)
    engine = RestoreEngine(src.storage)
    with pytest.raises(UnsupportedError, match=r"'i32_sort' \(STL_SORT.*auto_index_fallback=True"):
        engine.restore(lite, "b235", ["scal"])
    client = MilvusClient(lite_uri)
    assert client.list_collections() == [], "a failed setup leaves nothing behind"
    report = engine.restore(lite, "b235", ["scal"], auto_index_fallback=True)
    got = {i["field_name"]: (i["index_type"], i["status"]) for i in report["collections"][0]["indexes"]}
    assert got == {"vec": ("HNSW", "created"), "i32": ("INVERTED", "fallback")}
    meta = src.metas["scal"]
    assert rows_of(client, "scal", meta) == rows_of(src.client, "scal", meta)
    assert client.describe_index("scal", "vec")["index_type"] == "HNSW"
    client.close()


_CRASHING_SUBMIT = """
import json, os, signal, sys

import boto3
from pymilvus import utility

from airflow_milvus_backup.engine import MilvusParams, S3Storage
from airflow_milvus_backup.engine.restore import RestoreEngine

cfg = json.loads(sys.argv[1])
submit = utility.do_bulk_insert
submitted = []


def submit_then_crash(*args, **kwargs):
    task_id = submit(*args, **kwargs)
    submitted.append(task_id)
    if len(submitted) == 2:
        # Milvus runs this job, but the process dies before the status records its id.
        os.kill(os.getpid(), signal.SIGKILL)
    return task_id


utility.do_bulk_insert = submit_then_crash
s3 = boto3.client(
    "s3", endpoint_url=cfg["endpoint"], aws_access_key_id=cfg["key"], aws_secret_access_key=cfg["secret"],
    region_name="us-east-1",
)
RestoreEngine(S3Storage(s3, cfg["bucket"], "backup")).submit(
    MilvusParams(uri=cfg["milvus"]),
    "b235",
    ["scal"],
    collection_suffix="_crash",
    bulk_import_bucket=cfg["bucket"],
)
"""


def test_bulk_import_resumed_after_the_submitting_process_died(src, milvus235, tmp_path):
    """A job submitted just before a crash is adopted on resume, not submitted twice: rows are not doubled."""
    import json
    import signal
    import subprocess
    import sys

    engine = RestoreEngine(src.storage)
    before = {r["restore_id"] for r in engine.list_restores("b235")}
    script = tmp_path / "crashing_submit.py"
    script.write_text(_CRASHING_SUBMIT)
    s3 = milvus235.s3
    cfg = {
        "endpoint": s3.endpoint_url,
        "key": s3.access_key,
        "secret": s3.secret_key,
        "bucket": src.bucket,
        "milvus": milvus235.uri,
    }
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(cfg)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    [crashed] = [r for r in engine.list_restores("b235") if r["restore_id"] not in before]
    assert crashed["state"] == "executing"
    assert crashed["alive"] is False  # its process is gone: a new run may take it over
    files = {
        k: f["state"]
        for c in engine.status("b235", crashed["restore_id"])["collections"]
        for k, f in c["files"].items()
    }
    assert sorted(files.values()) == ["importing", "submitting"]  # scal: one file per partition

    report = RestoreEngine(src.storage).restore(
        src.params,
        "b235",
        ["scal"],
        collection_suffix="_crash",
        bulk_import_bucket=src.bucket,
        restore_id=crashed["restore_id"],
    )
    assert report["state"] == "success"
    assert report["method"] == "bulk_import"
    c = src.client
    count = c.query("scal_crash", filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert count == 600  # the adopted job's rows are there once
    assert rows_of(c, "scal_crash", src.metas["scal"]) == rows_of(c, "scal", src.metas["scal"])
    assert verify_restore(src.params, src.storage, "b235", report)["ok"]
    # Milvus ran one import job per data file: the one submitted before the crash was adopted, not repeated
    # (Milvus 2.3 has no MilvusClient import API: the ORM one, deprecated in pymilvus 3, is the only one)
    import warnings

    from pymilvus import connections, utility

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connections.connect(alias="crash-check", uri=milvus235.uri)
        try:
            jobs = utility.list_bulk_insert_tasks(collection_name="scal_crash", using="crash-check")
            assert len(jobs) == len(files) == 2, jobs
        finally:
            connections.disconnect("crash-check")
