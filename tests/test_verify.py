"""verify_backup finds every kind of damage by key; verify_restore finds rows that differ from the backup."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    IntegrityError,
    LocalStorage,
    ManifestError,
    MilvusParams,
    S3Storage,
)
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import verify_backup, verify_restore


def make_collection(client: MilvusClient, name: str, rows: int = 400) -> None:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("score", DataType.FLOAT)
    s.add_field("meta", DataType.JSON)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip)
    client.create_partition(name, "p1")
    rng = np.random.default_rng(7)
    data = [
        {
            "id": i,
            "vec": rng.random(8, dtype=np.float32).tolist(),
            "score": float(np.float32(i / 7)),
            "meta": {"i": i, "s": "é" * (i % 3)},
            "dyn": i % 5,
        }
        for i in range(rows)
    ]
    client.insert(name, data[: rows // 2])
    client.insert(name, data[rows // 2 :], partition_name="p1")


def test_verify_backup_finds_each_damage_by_key(lite_uri, s3_server, bucket):
    client = MilvusClient(lite_uri)
    make_collection(client, "c", rows=1200)
    storage = S3Storage(s3_server.client(), bucket, "backup")
    BackupEngine(storage, file_bytes=1, batch_bytes=1).create(
        MilvusParams(uri=lite_uri), "v1"
    )  # 256 rows a file
    manifest = BackupEngine(storage).get("v1")
    files = [f for p in manifest["collections"][0]["data"] for f in p["files"]]
    assert len(files) >= 4

    good = verify_backup(storage, "v1")
    assert good["ok"]
    assert good["errors"] == []
    assert good["unlisted"] == []
    assert good["files_checked"] == manifest["totals"]["files"] == len(files)
    assert good["rows"] == 1200
    assert good["bytes"] == manifest["totals"]["bytes"]

    def key(i: int) -> str:
        return f"v1/{files[i]['key']}"

    # a flipped byte
    raw = bytearray(storage.get_bytes(key(0)))
    raw[len(raw) // 3] ^= 0x10
    storage.put_bytes(key(0), bytes(raw))
    with pytest.raises(IntegrityError, match=rf"{key(0)}.*sha256"):
        verify_backup(storage, "v1")
    # a truncated object, a missing one, and a foreign object that is not in the manifest
    storage.put_bytes(key(1), storage.get_bytes(key(1))[:-100])
    storage.delete([key(2)])
    storage.put_bytes("v1/data/default/c/p1/part-99999.parquet", b"stray")
    report = verify_backup(storage, "v1", raise_on_error=False)
    assert not report["ok"]
    errors: dict[str, str] = {}
    for e in report["errors"]:
        errors[e["key"]] = errors.get(e["key"], "") + e["error"] + "; "
    assert set(errors) == {key(0), key(1), key(2)}
    assert "sha256" in errors[key(0)]
    assert "size" in errors[key(1)]
    assert "truncated" in errors[key(1)]
    assert "missing" in errors[key(2)]
    assert report["unlisted"] == ["v1/data/default/c/p1/part-99999.parquet"]
    assert json.loads(json.dumps(report)) == report

    # an invalid manifest fails naming the manifest's key
    storage.put_bytes("v1/meta/backup_meta.json", storage.get_bytes("v1/meta/backup_meta.json")[:200])
    with pytest.raises(ManifestError, match="v1/meta/backup_meta.json"):
        verify_backup(storage, "v1")
    bad = verify_backup(storage, "v1", raise_on_error=False)
    assert not bad["ok"]
    assert bad["errors"][0]["key"] == "v1/meta/backup_meta.json"
    client.close()


def test_verify_backup_checks_parquet_schema_and_rows(lite_uri, tmp_path):
    client = MilvusClient(lite_uri)
    make_collection(client, "c", rows=100)
    storage = LocalStorage(tmp_path / "b")
    BackupEngine(storage).create(MilvusParams(uri=lite_uri), "s1")
    m = BackupEngine(storage).get("s1")
    f = m["collections"][0]["data"][0]["files"][0]
    # a valid Parquet file whose checksum is recorded, but whose columns are not the collection's
    table = pq.read_table(io.BytesIO(storage.get_bytes(f"s1/{f['key']}")))
    table = table.set_column(
        table.schema.get_field_index("score"), "score", pa.array([1.0] * table.num_rows, pa.float64())
    )
    buf = io.BytesIO()
    pq.write_table(table.slice(0, table.num_rows - 1), buf)
    raw = buf.getvalue()
    storage.put_bytes(f"s1/{f['key']}", raw)
    import hashlib

    f.update(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    from airflow_milvus_backup.engine import manifest as mf

    storage.put_bytes("s1/meta/backup_meta.json", mf.dumps(m))
    report = verify_backup(storage, "s1", raise_on_error=False)
    errors = " ".join(e["error"] for e in report["errors"] if e["key"] == f"s1/{f['key']}")
    assert "rows, the manifest says" in errors
    assert "column 'score' is double" in errors
    assert "sha256" not in errors
    assert not report["ok"]
    client.close()


def test_verify_restore_finds_changed_missing_and_extra_rows(lite_uri, tmp_path):
    client = MilvusClient(lite_uri)
    make_collection(client, "c")
    storage = LocalStorage(tmp_path / "b")
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "r1")
    report = RestoreEngine(storage).restore(params, "r1", collection_suffix="_r")

    ok = verify_restore(params, storage, "r1", report, sample_searches=5, top_k=5)
    assert ok["ok"]
    assert ok["collections"][0]["data_equal"]
    assert ok["collections"][0]["search_overlap"] == 1.0
    assert {p["partition"]: p["rows_found"] for p in ok["collections"][0]["partitions"]} == {
        "_default": 200,
        "p1": 200,
    }

    # one float changed by one ulp, one row gone, one row too many in another partition
    row = client.query("c_r", filter="id == 5", output_fields=["*"])[0]
    row["score"] = float(np.nextafter(np.float32(row["score"]), np.float32(10)))
    client.upsert("c_r", [row])
    client.delete("c_r", ids=[250], partition_name="p1")
    client.insert("c_r", [{"id": 9999, "vec": [0.0] * 8, "score": 0.0, "meta": {}}])
    bad = verify_restore(params, storage, "r1", {"c": "c_r"}, sample_searches=0)
    assert not bad["ok"]
    [c] = bad["collections"]
    assert c["mismatches"] == [5]
    assert c["missing"] == [250]
    assert not c["data_equal"]
    assert {p["partition"]: p["rows_found"] for p in c["partitions"]} == {"_default": 201, "p1": 199}
    assert c["rows_found"] == 400
    assert c["rows_expected"] == 400
    assert "default.c_r" in bad["errors"][0]
    assert json.loads(json.dumps(bad)) == bad
    client.close()


def test_verify_backup_and_a_restore_judge_an_objects_digest_by_one_check():
    from airflow_milvus_backup.engine import integrity

    entry = {"key": "data/c/p/part-00000.parquet", "size": 2048, "sha256": "ab" * 32}
    integrity.check_digest("b1", "b1/data/x", "ab" * 32, 2048, entry, "/backups")  # equal: passes
    # a truncated object: verify_backup's report and the restore's refusal name the same difference
    assert integrity.digest_problems("ab" * 32, 1024, entry) == [
        "size 1024 bytes, the manifest says 2048 (truncated or replaced)"
    ]
    with pytest.raises(IntegrityError) as e:
        integrity.check_digest("b1", "b1/data/x", "ab" * 32, 1024, entry, "/backups")
    assert str(e.value) == (
        "Data object 'b1/data/x' of backup 'b1' in /backups does not match its manifest (sha256 "
        f"{'ab' * 8}... vs {'ab' * 8}..., 1.0 KB vs 2.0 KB): it is corrupt or was changed. None of its "
        "rows were restored; restore another backup (verify_backup checks them all)."
    )
    # a changed byte keeps the size: the sha256 tells
    assert [p.split(" ")[0] for p in integrity.digest_problems("cd" * 32, 2048, entry)] == ["sha256"]
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        integrity.check_digest("b1", "b1/data/x", "cd" * 32, 2048, entry, "/backups")
