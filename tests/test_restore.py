"""Restores into Milvus Lite: every type back bit for bit, naming, existing targets, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    CollectionNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    LocalStorage,
    MilvusParams,
    S3Storage,
    SchemaMismatchError,
    TargetExistsError,
)
from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.schema import capture_collection, primary_field
from airflow_milvus_backup.engine.verify import verify_restore
from tests.support.datagen import canon_rows, full_lite_collection, source_rows
from tests.support.lite import open_client

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------ helpers
def simple(
    client: MilvusClient,
    name: str,
    rows: int = 300,
    dim: int = 8,
    partitions: tuple[str, ...] = (),
    index: str = "FLAT",
    start: int = 0,
) -> list[dict[str, Any]]:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("name", DataType.VARCHAR, max_length=64)
    ip = client.prepare_index_params()
    ip.add_index(
        "vec", index_type=index, metric_type="L2", params={"nlist": 4} if index == "IVF_FLAT" else {}
    )
    client.create_collection(name, schema=s, index_params=ip)
    for p in partitions:
        client.create_partition(name, p)
    rng = np.random.default_rng(rows + dim)
    data = [
        {"id": start + i, "vec": rng.random(dim, dtype=np.float32).tolist(), "name": f"n{i}"}
        for i in range(rows)
    ]
    targets = ["_default", *partitions]
    for k, p in enumerate(targets):
        if data[k :: len(targets)]:
            client.insert(name, data[k :: len(targets)], partition_name=p)
    return data


def rows_of(client: MilvusClient, name: str, meta: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    pk = primary_field(meta)["name"]
    dyn = meta["enable_dynamic_field"]
    return canon_rows(source_rows(client, name, meta["fields"], dyn), meta["fields"], pk, dyn)


def count(client: MilvusClient, name: str) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def comparable(meta: dict[str, Any]) -> dict[str, Any]:
    """The parts of a captured collection a restore must reproduce (not its name, id, aliases, time)."""
    keys = (
        "description",
        "auto_id",
        "enable_dynamic_field",
        "num_shards",
        "num_partitions",
        "consistency_level",
        "properties",
        "fields",
        "functions",
        "partitions",
        "load_state",
    )
    out = {k: meta[k] for k in keys}
    out["indexes"] = sorted(meta["indexes"], key=lambda i: i["field_name"])
    return out


def by_target(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["target"]: c for c in report["collections"]}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "backups", "backup")


# ------------------------------------------------------------------------------------------------ round trip
def test_every_lite_type_schema_index_alias_and_load_state_round_trip(lite_uri, s3_server, bucket):
    client = MilvusClient(lite_uri)
    full_lite_collection(client, "full", rows=600)
    client.create_alias("full", "full_alias")
    # partition key (varchar pk, dynamic field), released
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=36)
    s.add_field("tenant", DataType.INT64, is_partition_key=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("f32s", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=4)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="IVF_FLAT", metric_type="IP", params={"nlist": 8})
    ip.add_index("tenant", index_type="INVERTED")
    client.create_collection("tenants", schema=s, index_params=ip, num_partitions=16)
    client.insert(
        "tenants",
        [
            {
                "pk": f"k{i:04d}é",
                "tenant": i % 7,
                "vec": [i / 3.0] * 8,
                "note": {"i": i},
                "f32s": [float(np.float32(i / 7.0))] * (i % 5),
            }
            for i in range(300)
        ],
    )
    # auto_id: the generated keys come back as they were
    s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True, auto_id=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("tag", DataType.VARCHAR, max_length=16, nullable=True)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("auto", schema=s, index_params=ip)
    client.insert(
        "auto", [{"vec": [float(i)] * 8, "tag": None if i % 3 == 0 else f"t{i}"} for i in range(200)]
    )
    simple(client, "empty", rows=0)

    storage = S3Storage(s3_server.client(), bucket, "backup")
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "every_type")
    # The backup engine reads a collection with query_iterator, which needs it loaded; record "tenants" as a
    # released collection (as a backup taken while it was released would): it must come back released.
    raw = json.loads(storage.get_bytes("every_type/meta/backup_meta.json"))
    next(c for c in raw["collections"] if c["name"] == "tenants")["load_state"] = "NotLoad"
    storage.put_bytes("every_type/meta/backup_meta.json", json.dumps(raw).encode())
    client.release_collection("tenants")
    manifest = BackupEngine(storage).get("every_type")
    engine = RestoreEngine(storage, parallelism=3)
    report = engine.restore(params, "every_type", collection_suffix="_recover")

    assert report["state"] == "success"
    assert report["method"] == "insert"
    assert "Milvus Lite has no bulk import" in report["method_reason"]
    cols = by_target(report)
    assert set(cols) == {f"default.{n}_recover" for n in ("full", "tenants", "auto", "empty")}
    for meta in manifest["collections"]:
        src, dst = meta["name"], meta["name"] + "_recover"
        entry = cols[f"default.{dst}"]
        assert entry["rows_expected"] == entry["rows_restored"] == meta["row_count"]
        # data: bit for bit, keyed by primary key (auto_id keys kept)
        if meta["load_state"] == "Loaded":
            assert rows_of(client, dst, meta) == rows_of(client, src, meta)
        # schema, functions, partitions, properties, indexes and load state as captured
        assert comparable(capture_collection(client, dst, "default")) == comparable(meta), dst
        assert client.list_aliases(dst)["aliases"] == [a + "_recover" for a in meta["aliases"]]
    # the released source stays released on the target (Lite loads a new collection by itself: released again)
    assert cols["default.tenants_recover"]["load_state"]["action"] == "released"
    assert client.get_load_state("tenants_recover")["state"].name == "NotLoad"
    client.load_collection("tenants")
    client.load_collection("tenants_recover")
    tenants = next(c for c in manifest["collections"] if c["name"] == "tenants")
    assert rows_of(client, "tenants_recover", tenants) == rows_of(client, "tenants", tenants)
    assert client.query("auto_recover", filter="", output_fields=["id"], limit=5) == client.query(
        "auto", filter="", output_fields=["id"], limit=5
    )
    assert client.describe_collection("auto_recover")["properties"] == {}, "the temporary property is removed"
    # BM25 output regenerated by Milvus: full-text search finds matching rows (scores depend on segment
    # statistics, so their order may differ from the source's)
    hits = client.search(
        "full_recover", data=["airflow"], anns_field="bm25", limit=10, output_fields=["text"]
    )[0]
    assert len(hits) == 10
    assert all("airflow" in h["entity"]["text"] for h in hits)
    # the status outlives the engine: another engine reads it back
    other = RestoreEngine(storage)
    assert other.status("every_type", report["restore_id"])["state"] == "success"
    listed = other.list_restores("every_type")
    assert [(r["restore_id"], r["state"], r["alive"]) for r in listed] == [
        (report["restore_id"], "success", False)
    ]
    # and verify_restore agrees: rows per partition, data, schema, searches identical to the source
    v = verify_restore(params, storage, "every_type", report)
    assert v["ok"], v["errors"]
    full = next(c for c in v["collections"] if c["target"] == "default.full_recover")
    assert full["search_overlap"] == 1.0
    assert {p["partition"]: p["rows_found"] for p in full["partitions"]} == {"_default": 300, "p1": 300}
    client.close()


# ------------------------------------------------------------------------------------------------ naming
def test_renames_other_databases_and_selection_errors(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "c1", rows=40)
    client.create_database("db1", properties={"database.max.collections": "50"})
    client.use_database("db1")
    simple(client, "c1", rows=30, partitions=("p1",))
    simple(client, "c3", rows=20)
    client.use_database("default")
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "dbs", ["c1", "db1.*"])
    engine = RestoreEngine(storage)

    # nothing is touched by a bad request: unknown collection or rename source, two sources on one target
    before = (sorted(client.list_databases()), sorted(client.list_collections()))
    with pytest.raises(CollectionNotFoundError, match="'nope'"):
        engine.restore(params, "dbs", ["c1", "nope"], collection_suffix="_x")
    with pytest.raises(CollectionNotFoundError, match="'c9'"):
        engine.restore(params, "dbs", collection_renames={"c9": "c10"})
    with pytest.raises(InvalidArgumentError, match=r"default\.c1 and db1\.c1.*db1\.same"):
        engine.restore(
            params,
            "dbs",
            ["default.c1", "db1.c1"],
            collection_renames={"default.c1": "db1.same", "db1.c1": "db1.same"},
        )
    with pytest.raises(InvalidArgumentError, match="collection_suffix"):
        engine.restore(params, "dbs", collection_suffix="-bad")
    assert (sorted(client.list_databases()), sorted(client.list_collections())) == before
    assert engine.list_restores("dbs") == []

    r = engine.restore(params, "dbs", ["c1"], collection_renames={"c1": "c2"})
    assert [(c["source"], c["target"]) for c in r["collections"]] == [("default.c1", "default.c2")]
    assert count(client, "c2") == 40
    r = engine.restore(params, "dbs", ["db1.c1"], collection_renames={"db1.c1": "db2.c2"})
    assert [(c["source"], c["target"]) for c in r["collections"]] == [("db1.c1", "db2.c2")]
    assert r["databases_created"] == ["db2"]
    # a created database gets the source database's properties
    assert client.describe_database("db2")["database.max.collections"] == "50"
    r = engine.restore(params, "dbs", ["db1.*"], collection_renames={"db1.*": "db3.*"})
    assert sorted(c["target"] for c in r["collections"]) == ["db3.c1", "db3.c3"]
    r = engine.restore(params, "dbs", ["db1.c3"], target_db_name="db4", collection_suffix="_v2")
    assert [c["target"] for c in r["collections"]] == ["db4.c3_v2"]
    client.use_database("db3")
    assert sorted(client.list_collections()) == ["c1", "c3"]
    assert count(client, "c1") == 30
    assert sorted(client.list_partitions("c1")) == ["_default", "p1"]
    client.use_database("db2")
    assert count(client, "c2") == 30
    client.close()


# ---------------------------------------------------------------------------------------- existing targets
def test_existing_target_refused_then_drop_existing_skip_create_and_meta_only(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "hello_milvus", rows=300, partitions=("p1",))
    client.create_alias("hello_milvus", "hello")
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "hm")
    meta = BackupEngine(storage).get("hm")["collections"][0]
    engine = RestoreEngine(storage)
    client.insert("hello_milvus", [{"id": 10_000, "vec": [0.5] * 8, "name": "after the backup"}])

    # an existing target is refused by default, and left untouched
    with pytest.raises(
        TargetExistsError, match=r"default\.hello_milvus.*drop_existing=True.*skip_create=True"
    ):
        engine.restore(params, "hm")
    assert count(client, "hello_milvus") == 301

    with pytest.raises(InvalidArgumentError, match="drop_existing=True and skip_create=True"):
        engine.restore(params, "hm", drop_existing=True, skip_create=True)

    # drop_existing replaces it with exactly the backup's rows
    simple(client, "hello_milvus_recover", rows=5, start=50_000)
    r = engine.restore(params, "hm", collection_suffix="_recover", drop_existing=True)
    assert by_target(r)["default.hello_milvus_recover"]["action"] == "replace"
    got = rows_of(client, "hello_milvus_recover", meta)
    want = {k: v for k, v in rows_of(client, "hello_milvus", meta).items() if k != 10_000}
    assert got == want
    assert len(got) == 300

    # skip_create: rows go into an existing, compatible collection (its extra nullable field is fine)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("name", DataType.VARCHAR, max_length=200)
    s.add_field("extra", DataType.INT32, nullable=True)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="IP")
    client.create_collection("hm_into", schema=s, index_params=ip)
    r = engine.restore(params, "hm", collection_renames={"hello_milvus": "hm_into"}, skip_create=True)
    assert by_target(r)["default.hm_into"]["rows_restored"] == 300
    assert count(client, "hm_into") == 300
    assert client.describe_index("hm_into", "vec")["metric_type"] == "IP", "its own index is kept"
    assert client.list_partitions("hm_into") == ["_default", "p1"]

    # skip_create onto an incompatible collection: refused before any row, naming the field
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("name", DataType.INT64)
    client.create_collection("hm_bad", schema=s)
    with pytest.raises(SchemaMismatchError, match=r"field 'name' of target default\.hm_bad.*INT64.*VARCHAR"):
        engine.restore(params, "hm", collection_renames={"hello_milvus": "hm_bad"}, skip_create=True)
    assert count(client, "hm_bad") == 0
    assert client.list_partitions("hm_bad") == ["_default"]
    with pytest.raises(CollectionNotFoundError, match="skip_create=True needs the target"):
        engine.restore(params, "hm", collection_suffix="_nothere", skip_create=True)

    # meta_only: schema, partitions, index, alias and load state without a row
    r = engine.restore(params, "hm", collection_suffix="_meta", meta_only=True)
    assert r["meta_only"]
    assert by_target(r)["default.hello_milvus_meta"]["rows_expected"] == 0
    assert count(client, "hello_milvus_meta") == 0
    assert comparable(capture_collection(client, "hello_milvus_meta", "default")) == comparable(meta)
    assert client.list_aliases("hello_milvus_meta")["aliases"] == ["hello_meta"]
    client.close()


def test_index_options_and_taken_alias(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "c", rows=100, index="IVF_FLAT")
    client.create_alias("c", "live")
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "idx")
    engine = RestoreEngine(storage)

    r = engine.restore(params, "idx", collection_suffix="_auto", use_auto_index=True)
    assert client.describe_index("c_auto", "vec")["index_type"] == "AUTOINDEX"
    assert client.describe_index("c_auto", "vec")["metric_type"] == "L2"
    assert by_target(r)["default.c_auto"]["indexes"][0]["index_type"] == "AUTOINDEX"

    r = engine.restore(params, "idx", collection_suffix="_noidx", restore_index=False)
    assert client.list_indexes("c_noidx") == []
    assert by_target(r)["default.c_noidx"]["indexes"] == []

    # an alias already taken is reported and never moved
    r = engine.restore(params, "idx", collection_renames={"c": "c_copy"})
    aliases = by_target(r)["default.c_copy"]["aliases"]
    assert aliases["restored"] == []
    assert aliases["skipped"][0]["alias"] == "live"
    assert "default.c" in aliases["skipped"][0]["reason"]
    assert client.describe_alias("live")["collection_name"] == "c"
    with pytest.raises(InvalidArgumentError, match="use_auto_index=True needs restore_index=True"):
        engine.restore(params, "idx", collection_suffix="_x", use_auto_index=True, restore_index=False)
    client.close()


# ------------------------------------------------------------------------------------------------ integrity
def test_flipped_byte_refused_naming_the_object(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "c", rows=400, partitions=("p1",))
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage, file_bytes=8 * 1024).create(params, "flip")
    meta = BackupEngine(storage).get("flip")["collections"][0]
    victim = meta["data"][1]["files"][0]
    path = storage.dir / "flip" / victim["key"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    key = f"flip/{victim['key']}"
    with pytest.raises(IntegrityError, match=rf"{key}.*does not match its manifest"):
        RestoreEngine(storage, parallelism=1).restore(params, "flip", collection_suffix="_r")
    # none of the damaged object's rows were inserted; the failure is recorded in the status
    got = client.query(
        "c_r",
        filter=f"id >= {victim['min_pk']} and id <= {victim['max_pk']}",
        output_fields=["id"],
        partition_names=["p1"],
    )
    assert got == []
    [failed] = RestoreEngine(storage).list_restores("flip")
    assert failed["state"] == "failed"
    assert key in failed["error"]
    client.close()


def _edited_copy(storage: LocalStorage, src: str, dst: str, edit: Any) -> None:
    """Copy backup ``src`` to ``dst`` with its manifest changed by ``edit`` (a hand-edited backup)."""
    for o in storage.list(f"{src}/data/"):
        storage.put_bytes(dst + o.key[len(src) :], storage.get_bytes(o.key))
    m = json.loads(storage.get_bytes(mf.manifest_key(src)))
    m["name"] = dst
    edit(m["collections"][0])
    storage.put_bytes(mf.manifest_key(dst), mf.dumps(m))


def test_manifest_names_and_keys_are_refused_before_anything_is_created(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "c", rows=40, partitions=("p1",))
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "src", ["c"])

    def bad_partition(c: dict[str, Any]) -> None:
        c["partitions"] = ["_default", "p1;drop"]
        c["data"][1]["partition"] = "p1;drop"

    def bad_source_name(c: dict[str, Any]) -> None:
        c["name"] = "c-1"

    def key_up(c: dict[str, Any]) -> None:
        c["data"][1]["files"][0]["key"] = "data/default/c/p1/../../../../src/meta/backup_meta.json"

    def key_outside_data(c: dict[str, Any]) -> None:
        c["data"][0]["files"][0]["key"] = "meta/backup_meta.json"

    cases = [
        (bad_partition, "Invalid partition name 'p1;drop'"),
        (bad_source_name, "Invalid collection name 'c-1'"),
        (key_up, "Invalid storage key 'bad/data/default/c/p1/../"),
        (key_outside_data, "data objects are under 'data/'"),
    ]
    engine = RestoreEngine(storage)
    for edit, says in cases:
        _edited_copy(storage, "src", "bad", edit)
        with pytest.raises(InvalidArgumentError) as e:
            engine.restore(params, "bad", collection_suffix="_bad")
        assert says in str(e.value)
        assert "manifest of backup 'bad'" in str(e.value)
        assert not client.has_collection("c_bad"), edit.__name__
        assert not list(storage.list("bad/restores/")), edit.__name__
    client.close()


def test_data_object_deleted_while_the_restore_runs_is_an_integrity_error(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "c", rows=60)
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "gone")
    key = f"gone/{BackupEngine(storage).get('gone')['collections'][0]['data'][0]['files'][0]['key']}"

    class DeletedUnderneath(LocalStorage):
        def download(self, k: str, path: Path) -> None:
            self.delete([k])  # another process deletes the object after the restore listed it
            super().download(k, path)

    with pytest.raises(IntegrityError) as e:
        RestoreEngine(DeletedUnderneath(storage.base, "backup")).restore(
            params, "gone", collection_suffix="_r"
        )
    assert f"Data object {key!r} of backup 'gone' is missing" in str(e.value)
    assert "the backup is damaged" in str(e.value)
    [failed] = RestoreEngine(storage).list_restores("gone")
    assert failed["state"] == "failed"
    client.close()


# ------------------------------------------------------------------------------------------------ resume
_KILLED_RESTORE = textwrap.dedent(
    """
    import sys, time
    from airflow_milvus_backup.engine import LocalStorage, MilvusParams
    from airflow_milvus_backup.engine.restore import RestoreEngine

    def slow(_figures):
        time.sleep(0.03)

    storage = LocalStorage(sys.argv[1], "backup")
    engine = RestoreEngine(storage, parallelism=2, insert_batch_rows=40, progress_interval=0,
                           progress_callback=slow, status_interval=0)
    engine.restore(MilvusParams(uri=sys.argv[2]), "big", [sys.argv[3]], collection_suffix="_r")
    """
)


def test_killed_restore_run_again_ends_with_exactly_the_backup(milvus_lite_server, tmp_path):
    # the server is shared with other modules: name this test's collection, never "every collection"
    client = open_client(milvus_lite_server.uri)
    coll = f"big_{uuid.uuid4().hex[:8]}"
    target = f"{coll}_r"
    simple(client, coll, rows=2000, partitions=("p1",))
    params = MilvusParams(uri=milvus_lite_server.uri)
    storage = LocalStorage(tmp_path / "b", "backup")
    BackupEngine(storage, file_bytes=1, batch_bytes=1).create(params, "big", [coll])  # 256 rows per file
    meta = BackupEngine(storage).get("big")["collections"][0]
    n_files = sum(len(p["files"]) for p in meta["data"])
    assert n_files >= 8

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RESTORE, str(tmp_path / "b"), milvus_lite_server.uri, coll],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            bodies = leases.read_leases(storage, "big/restores/")
            if bodies:
                status = bodies[0]["collections"][0]
                states = [f["state"] for f in status["files"].values()]
                if states.count("done") >= 2 and "started" in states:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = count(client, target)
    assert 0 < partial < 2000
    status = leases.read_leases(storage, "big/restores/")[0]["collections"][0]  # as the killed run left it
    [killed] = RestoreEngine(storage).list_restores("big")
    assert killed["state"] == "executing"
    assert killed["alive"] is False
    # polling a restore whose process is gone records it as failed (it stays resumable)
    polled = RestoreEngine(storage).poll(params, "big", killed["restore_id"])
    assert polled["state"] == "failed"
    assert "interrupted" in polled["error"]

    report = RestoreEngine(storage).restore(params, "big", [coll], collection_suffix="_r")
    assert report["restore_id"] == killed["restore_id"]
    assert report["attempts"] == 2
    assert report["state"] == "success"
    assert report["totals"]["rows_restored"] == 2000
    # the files recorded done were not inserted again; the half-inserted one was (its keys deleted first)
    files = RestoreEngine(storage).status("big", report["restore_id"])["collections"][0]["files"]
    done_before = [k for k, f in status["files"].items() if f["state"] == "done"]
    started_before = [k for k, f in status["files"].items() if f["state"] == "started"]
    assert all(files[k]["attempts"] == 1 for k in done_before)
    assert all(files[k]["attempts"] == 2 for k in started_before)
    ids = [r["id"] for r in source_rows(client, target, meta["fields"], False)]
    assert len(ids) == len(set(ids)) == 2000
    assert count(client, target) == 2000
    assert rows_of(client, target, meta) == rows_of(client, coll, meta)
    v = verify_restore(params, storage, "big", report, sample_searches=3)
    assert v["ok"], v["errors"]
    client.drop_collection(coll)
    client.drop_collection(target)
    client.close()


def test_resume_by_id_and_arguments_must_match(lite_uri, storage):
    client = MilvusClient(lite_uri)
    simple(client, "c", rows=50)
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "ids")
    engine = RestoreEngine(storage)
    r = engine.restore(params, "ids", collection_suffix="_a", restore_id="my_restore_1")
    assert r["restore_id"] == "my_restore_1"
    # the same id again is already done: nothing happens, the stored report comes back
    again = engine.restore(params, "ids", collection_suffix="_a", restore_id="my_restore_1")
    assert again["state"] == "success"
    assert again["finished_at"] == r["finished_at"]
    with pytest.raises(InvalidArgumentError, match="my_restore_1.*other arguments"):
        engine.restore(params, "ids", collection_suffix="_b", restore_id="my_restore_1")
    # submit() of an insert restore does the work and returns the final status
    s = engine.submit(params, "ids", collection_suffix="_c")
    assert s["state"] == "success"
    assert count(client, "c_c") == 50
    assert engine.poll(params, "ids", s["restore_id"])["state"] == "success"
    assert json.loads(json.dumps(s)) == s
    client.close()
