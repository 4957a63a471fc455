"""Physical restore (issue 10, part 3): binlog import of backups in Milvus Backup's format.

Pure checks of the import units first (every layout Milvus Backup writes); then a real Milvus 2.3.5 (session
fixture ``milvus235``): one set of collections is backed up physically once (module fixture) and restored
under suffixes, straight from Milvus' bucket, staged from another S3 server, and with faults.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from pymilvus import MilvusClient

from airflow_milvus_backup.engine.backup import BackupEngine
from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.errors import IntegrityError, InvalidArgumentError
from airflow_milvus_backup.engine.physical import importer, kinds, layout
from airflow_milvus_backup.engine.physical import mbmodel as mb
from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
from airflow_milvus_backup.engine.physical.restore_meta import as_manifest, field_entry
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.restore.status import status_key
from airflow_milvus_backup.engine.storage_s3 import S3Storage
from tests.test_physical_backup import _make_collections


# --------------------------------------------------------------------------------------------- pure checks
def _seg(sid: int, part: int, group: int, *, l0: bool = False, delta: bool = False, rows: int = 10) -> Any:
    binlogs = () if l0 else (mb.FieldBinlog(field_id=100, binlogs=(mb.Binlog(log_id=sid * 10, log_size=5),)),)
    deltas = (mb.FieldBinlog(binlogs=(mb.Binlog(log_id=sid * 10 + 1, log_size=3),)),) if (delta or l0) else ()
    return mb.SegmentBackupInfo(
        segment_id=sid,
        collection_id=1,
        partition_id=part,
        num_of_rows=0 if l0 else rows,
        binlogs=binlogs,
        deltalogs=deltas,
        group_id=group,
        is_l0=l0,
    )


def _coll(parts: dict[int, list[Any]], l0: list[Any] = ()) -> mb.CollectionBackupInfo:  # type: ignore[assignment]
    return mb.CollectionBackupInfo(
        collection_id=1,
        collection_name="c",
        schema=mb.CollectionSchema(
            name="c",
            fields=(
                mb.FieldSchema(field_id=100, name="id", is_primary_key=True, data_type=5),
                mb.FieldSchema(
                    field_id=101,
                    name="vec",
                    data_type=101,
                    type_params=(mb.KeyValuePair(key="dim", value="8"),),
                ),
                mb.FieldSchema(field_id=102, name="$meta", data_type=23, is_dynamic=True),
            ),
            enable_dynamic_field=True,
        ),
        partition_backups=tuple(
            mb.PartitionBackupInfo(
                partition_id=p, partition_name=f"p{p}", collection_id=1, segment_backups=tuple(s)
            )
            for p, s in parts.items()
        ),
        l0_segments=tuple(l0),
        backup_timestamp=123,
    )


def test_current_format_one_unit_per_group_folder() -> None:
    coll = _coll({2: [_seg(7, 2, 7), _seg(8, 2, 8, delta=True)], 3: [_seg(9, 3, 9)]})
    units = importer.import_units("b", coll)
    assert [u.key for u in units] == [
        "binlogs/insert_log/1/2/7",
        "binlogs/insert_log/1/2/8",
        "binlogs/insert_log/1/3/9",
    ]
    assert units[0].insert_dir == "b/binlogs/insert_log/1/2/7/"
    assert units[0].delta_dir == ""  # no delta logs: Milvus Backup passes ""
    assert units[1].delta_dir == "b/binlogs/delta_log/1/2/8/"
    assert [b.key for b in units[1].binlogs] == [
        "b/binlogs/insert_log/1/2/8/8/100/80",
        "b/binlogs/delta_log/1/2/8/8/81",
    ]
    assert [(u.partition_name, u.rows, u.segments) for u in units] == [
        ("p2", 10, (7,)),
        ("p2", 10, (8,)),
        ("p3", 10, (9,)),
    ]
    assert importer.import_options(units[0], 123) == {
        "backup": "true",
        "skip_disk_quota_check": "true",
        "end_ts": "123",
    }


def test_v04_v05_format_one_unit_per_partition_folder() -> None:
    coll = _coll({2: [_seg(7, 2, 0), _seg(8, 2, 0, delta=True)]})
    (unit,) = importer.import_units("b", coll)
    assert unit.insert_dir == "b/binlogs/insert_log/1/2/"
    assert unit.delta_dir == "b/binlogs/delta_log/1/2/"
    assert unit.segments == (7, 8)
    assert unit.rows == 20
    assert {b.key for b in unit.binlogs} == {
        "b/binlogs/insert_log/1/2/7/100/70",
        "b/binlogs/insert_log/1/2/8/100/80",
        "b/binlogs/delta_log/1/2/8/81",
    }


def test_l0_segments_one_unit_each_with_l0_import_last() -> None:
    coll = _coll({2: [_seg(7, 2, 7)]}, l0=[_seg(12, -1, 0, l0=True), _seg(11, -1, 0, l0=True)])
    units = importer.import_units("b", coll)
    assert [u.key for u in units] == [
        "binlogs/insert_log/1/2/7",
        "binlogs/delta_log/1/-1/11",
        "binlogs/delta_log/1/-1/12",
    ]
    l0 = units[1]
    assert (l0.l0, l0.insert_dir, l0.partition_name) == (True, "", "")
    assert importer.import_files("", "x/") == ["", "x/"]
    assert importer.import_options(l0, 5)["l0_import"] == "true"


def test_meta_as_manifest_skips_meta_field_and_keeps_field_ids() -> None:
    info = mb.BackupInfo(name="b", id="i", collection_backups=(_coll({2: [_seg(7, 2, 7)]}),))
    m = as_manifest("b", info, None, "milvus-backup")
    (c,) = m.collections
    assert [f["name"] for f in c.fields] == ["id", "vec"]
    assert [f["field_id"] for f in c.fields] == [100, 101]
    assert c.fields[1]["type"] == "FLOAT_VECTOR"
    assert c.fields[1]["params"] == {"dim": 8}
    assert c.enable_dynamic_field
    assert [(p.partition, [f.key for f in p.files]) for p in c.data] == [("p2", ["binlogs/insert_log/1/2/7"])]
    assert field_entry(mb.FieldSchema(name="s", data_type=21))["type"] == "VARCHAR"
    jobs = {
        3: importer.JobState("failed", 0, 0, "x", ("a/", "")),
        4: importer.JobState("completed", 9, 100, "", ("a/", "")),
        5: importer.JobState("running", 0, 10, "", ("b/", "")),
    }
    assert importer.adoptable(jobs, ["a/", ""]) == 4
    assert importer.adoptable(jobs, ["c/", ""]) is None


# --------------------------------------------------------------------------------------------- Milvus 2.3.5
@pytest.fixture(scope="module")
def penv(milvus235: Any) -> Any:
    """One collection set backed up physically into Milvus' own bucket (under ``backups/``)."""
    client = MilvusClient(milvus235.uri)
    names = _make_collections(client, uuid.uuid4().hex[:6])
    params = MilvusParams(uri=milvus235.uri)
    ms = open_milvus_bucket(milvus235.s3.client(), milvus235.bucket, milvus235.root_path)
    storage = S3Storage(milvus235.s3.client(), milvus235.bucket, f"backups-{uuid.uuid4().hex[:6]}")
    BackupEngine(storage).create(params, "phys", list(names.values()), mode="physical", milvus_storage=ms)
    made: list[str] = []
    yield {
        "client": client,
        "names": names,
        "params": params,
        "ms": ms,
        "storage": storage,
        "made": made,
        "m": milvus235,
    }
    for a in client.list_aliases()["aliases"] if hasattr(client, "list_aliases") else []:
        client.drop_alias(a)
    for n in [*names.values(), *made]:
        client.drop_collection(n)
    client.close()


def _rows(client: MilvusClient, coll: str, pk: str) -> list[dict[str, Any]]:
    if not client.list_indexes(coll):
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index(coll, ip)
    client.load_collection(coll)
    rows = client.query(coll, filter="", output_fields=["*"], limit=16384, consistency_level="Strong")
    out = []
    for r in rows:
        r = dict(r)
        r["vec"] = [round(float(x), 6) for x in r["vec"]]
        out.append(r)
    return sorted(out, key=lambda r: r[pk])


PKS = {"parts": "id", "pkey": "k", "auto": "id", "empty": "id"}


@pytest.mark.milvus235
def test_physical_restore_under_a_suffix_restores_every_row(penv: Any) -> None:
    client, names = penv["client"], penv["names"]
    engine = RestoreEngine(penv["storage"], milvus_storage=penv["ms"], poll_interval=0.2)
    report = engine.restore(penv["params"], "phys", collection_suffix="_r")
    assert report["state"] == "success"
    assert report["method"] == "binlog_import"
    penv["made"].extend(f"{n}_r" for n in names.values())
    by_target = {c["target"]: c for c in report["collections"]}
    # the loaded target's partitions were counted against the rows its import jobs reported
    assert by_target[f"default.{names['auto']}_r"]["partition_rows"] == {
        "_default": {"imported": 250, "found": 250}
    }
    parts = f"{names['parts']}_r"
    # load state: 'auto' was loaded, the others not; aliases with the suffix; indexes rebuilt
    assert client.get_load_state(f"{names['auto']}_r")["state"].name == "Loaded"
    assert client.get_load_state(parts)["state"].name == "NotLoad"
    assert client.describe_alias(f"{names['parts']}_alias_r")["collection_name"] == parts
    assert client.describe_index(parts, client.list_indexes(parts)[0])["index_type"] == "FLAT"
    assert set(client.list_partitions(parts)) == {"_default", "p1", "p2"}
    assert len(client.list_partitions(f"{names['pkey']}_r")) == 4
    assert client.describe_collection(f"{names['auto']}_r")["auto_id"]
    for key, coll in names.items():
        src, dst = _rows(client, coll, PKS[key]), _rows(client, f"{coll}_r", PKS[key])
        assert src == dst, key
    got = _rows(client, parts, "id")
    assert len(got) == 890  # 900 inserted, 10 deleted: the deletes were carried over
    assert got[0]["id"] == 10
    assert got[0]["extra"] == 10  # the dynamic field
    for p in ("_default", "p1", "p2"):
        n = client.query(parts, filter="", output_fields=["count(*)"], partition_names=[p])[0]["count(*)"]
        src = client.query(names["parts"], filter="", output_fields=["count(*)"], partition_names=[p])
        assert n == src[0]["count(*)"]
    assert _rows(client, f"{names['empty']}_r", "id") == []
    # run again by its id: the restore is done, nothing is imported twice
    again = engine.restore(penv["params"], "phys", collection_suffix="_r", restore_id=report["restore_id"])
    assert again["restore_id"] == report["restore_id"]
    jobs = importer.list_jobs(client, parts)
    assert len(jobs) == 3  # one per group (one segment per partition)


@pytest.mark.milvus235
def test_physical_restore_needs_milvus_storage(penv: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="milvus_bucket"):
        RestoreEngine(penv["storage"]).restore(penv["params"], "phys", collection_suffix="_nos")
    assert not penv["client"].has_collection(f"{penv['names']['parts']}_nos")


@pytest.mark.milvus235
def test_milvus_backups_own_backup_from_another_s3_server_staged_deferrable(
    penv: Any, s3_server: Any
) -> None:
    """A backup without our sidecar (Milvus Backup's), on another S3 server: staged into Milvus' bucket, the
    restore submitted and polled as the deferrable operator's trigger does, the staged copies deleted."""
    client, names = penv["client"], penv["names"]
    bucket = s3_server.create_bucket(f"pr-{uuid.uuid4().hex[:8]}")
    remote = S3Storage(s3_server.client(), bucket, "bk")
    BackupEngine(remote).create(
        penv["params"], "far", [names["auto"]], mode="physical", milvus_storage=penv["ms"]
    )
    remote.delete([layout.sidecar_key("far")])
    assert kinds.sniff_folder(remote, "far").kind == kinds.MILVUS_BACKUP
    engine = RestoreEngine(remote, milvus_storage=lambda: penv["ms"], poll_interval=0.2)
    sub = engine.submit(penv["params"], "far", collection_suffix="_st")
    penv["made"].append(f"{names['auto']}_st")
    rid = sub["restore_id"]
    assert sub["state"] == "executing"
    staged = f"restore-temp-{rid}/"
    assert list(penv["ms"].list(staged))  # the binlogs went through Milvus' bucket
    deadline = time.monotonic() + 60
    while (state := engine.import_state(penv["params"], "far", rid)["state"]) == "executing":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert state == "imported"
    report = engine.complete(penv["params"], "far", rid)
    assert report["state"] == "success"
    assert _rows(client, f"{names['auto']}_st", "id") == _rows(client, names["auto"], "id")
    assert list(penv["ms"].list(staged)) == []  # the staged copies were deleted


@pytest.mark.milvus235
def test_meta_only_physical_restore_needs_no_milvus_bucket(penv: Any) -> None:
    client, names = penv["client"], penv["names"]
    report = RestoreEngine(penv["storage"]).restore(
        penv["params"], "phys", [names["parts"]], meta_only=True, collection_suffix="_m"
    )
    target = f"{names['parts']}_m"
    penv["made"].append(target)
    assert report["state"] == "success"
    assert set(client.list_partitions(target)) == {"_default", "p1", "p2"}
    assert client.describe_collection(target)["enable_dynamic_field"]
    assert client.describe_index(target, client.list_indexes(target)[0])["index_type"] == "FLAT"
    assert client.describe_alias(f"{names['parts']}_alias_m")["collection_name"] == target
    assert _rows(client, target, "id") == []


def _first_binlog(storage: S3Storage, name: str) -> str:
    return sorted(o.key for o in storage.list(f"{name}/binlogs/insert_log/"))[0]


@pytest.mark.milvus235
@pytest.mark.parametrize("fault", ["missing", "truncated"])
def test_a_damaged_binlog_is_named_and_nothing_is_imported(penv: Any, fault: str) -> None:
    names = penv["names"]
    storage = S3Storage(penv["m"].s3.client(), penv["m"].bucket, f"dmg-{uuid.uuid4().hex[:6]}")
    BackupEngine(storage).create(
        penv["params"], "b", [names["auto"]], mode="physical", milvus_storage=penv["ms"]
    )
    key = _first_binlog(storage, "b")
    if fault == "missing":
        storage.delete([key])
    else:
        storage.put_bytes(key, storage.get_bytes(key)[:-1])
    word = "missing" if fault == "missing" else "bytes"
    with pytest.raises(IntegrityError, match=rf"{key}.*{word}.*nothing was imported"):
        RestoreEngine(storage, milvus_storage=penv["ms"]).restore(penv["params"], "b", collection_suffix="_d")
    assert not penv["client"].has_collection(f"{names['auto']}_d")


@pytest.mark.milvus235
def test_an_interrupted_restore_adopts_its_jobs(penv: Any) -> None:
    """Job ids persisted, the process gone: a re-run adopts them (by id, or by files), none twice."""
    client, names = penv["client"], penv["names"]
    engine = RestoreEngine(penv["storage"], milvus_storage=penv["ms"], poll_interval=0.2, detached_ttl=1.0)
    sub = engine.submit(penv["params"], "phys", [names["parts"]], collection_suffix="_k")
    penv["made"].append(f"{names['parts']}_k")
    rid = sub["restore_id"]
    key = status_key("phys", rid)
    body = json.loads(penv["storage"].get_bytes(key))
    files = body["collections"][0]["files"]
    assert all(f["task_id"] for f in files.values())
    # as if killed between the Import call and recording its id: one job only Milvus knows
    lost = sorted(files)[0]
    files[lost].update(state="submitting", task_id=None)
    penv["storage"].put_bytes(key, json.dumps(body).encode())
    time.sleep(1.2)  # the detached restore is no longer polled: dead
    report = engine.restore(penv["params"], "phys", [names["parts"]], collection_suffix="_k")
    assert report["restore_id"] == rid
    assert report["state"] == "success"
    assert len(importer.list_jobs(client, f"{names['parts']}_k")) == 3  # no group imported twice
    assert _rows(client, f"{names['parts']}_k", "id") == _rows(client, names["parts"], "id")
    assert layout.BACKUP_META  # the backup itself untouched


def test_physical_method_refuses_what_cannot_read_binlogs() -> None:
    from airflow_milvus_backup.engine.errors import UnsupportedError
    from airflow_milvus_backup.engine.restore.capabilities import ServerInfo
    from airflow_milvus_backup.engine.restore.options import RestoreOptions
    from airflow_milvus_backup.engine.restore.plan import physical_method

    server = ServerInfo.detect("v2.3.5")
    assert physical_method(RestoreOptions(), server, "a")[0] == "binlog_import"
    with pytest.raises(UnsupportedError, match="method='insert' cannot restore a physical backup"):
        physical_method(RestoreOptions(method="insert"), server, "a")
    with pytest.raises(UnsupportedError, match="a.db is Milvus Lite"):
        physical_method(RestoreOptions(), ServerInfo.detect("v2.4.0", True), "a.db")
