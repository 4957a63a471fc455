"""Data safety at the storage seam, on real servers: only our folders are backups and only they are deleted;
the backup root is never the top of a directory or bucket by accident; symbolic links never lead outside the
root; a malformed manifest makes one backup ``corrupt`` and nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pendulum
import pytest
from airflow.sdk import DAG
from pymilvus import MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    InvalidArgumentError,
    LocalStorage,
    ManifestError,
    MilvusBackupError,
    MilvusParams,
    RestoreEngine,
    S3Storage,
    StorageError,
)
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.verify import verify_backup
from tests.support.airflow_env import hello_milvus, run_dag, task_states, xcoms

if TYPE_CHECKING:
    from tests.support.airflow_env import Conns

pytestmark = pytest.mark.timeout(300)

#: What other people keep next to backups on a shared disk or bucket.
FOREIGN = {
    "postgres/db.dump": b"PGDMP the nightly database dump",
    "Photos/2025/cat.jpg": b"\xff\xd8\xff\xe0 a cat",
    "ml_models/model.bin": b"\x00model weights\x00",
    "logs/app.log": b"2025-01-01 started\n",
    "exports/2025.csv": b"a,b\n1,2\n",
}
#: The Go tool Milvus Backup writes the same path with another shape: not ours, never touched.
GO_TOOL_MANIFEST = {
    "id": "0c5a0c4e-0000-0000-0000-000000000000",
    "name": "gobackup",
    "backup_timestamp": 1735689600000,
    "state_code": 2,
    "collection_backups": [{"collection_name": "hello_milvus", "db_name": "default"}],
}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _interrupted(storage: Any, name: str) -> None:
    """Leave what a backup killed halfway leaves: its lock (a dead writer), its marker, one data file."""
    old = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
    lock = {"id": "dead", "host": os.uname().nodename, "pid": _dead_pid(), "ttl": 120.0, "backup": name}
    lock |= {"started_at": old, "heartbeat_at": old}
    storage.put_bytes(f"{name}/meta/locks/dead.json", json.dumps(lock).encode())
    marker = {"format": mf.FORMAT_NAME, "format_version": 1, "name": name, "id": "dead", "created_at": old}
    storage.put_bytes(f"{name}/meta/marker.json", json.dumps(marker).encode())
    storage.put_bytes(f"{name}/data/default/hello_milvus/_default/part-00000.parquet", b"half")


def _put_foreign(storage: Any) -> None:
    for key, data in FOREIGN.items():
        storage.put_bytes(key, data)
    storage.put_bytes("gobackup/meta/backup_meta.json", json.dumps(GO_TOOL_MANIFEST).encode())


def _assert_foreign_intact(storage: Any) -> None:
    for key, data in FOREIGN.items():
        assert storage.get_bytes(key) == data, key
    assert json.loads(storage.get_bytes("gobackup/meta/backup_meta.json")) == GO_TOOL_MANIFEST


@pytest.fixture
def lite_data(lite_uri: str) -> MilvusParams:
    client = MilvusClient(lite_uri)
    hello_milvus(client, rows=300)
    client.close()
    return MilvusParams(uri=lite_uri)


@pytest.fixture(params=["local", "s3"])
def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return LocalStorage(tmp_path / "shared", "backup")
    s3 = request.getfixturevalue("s3_server")
    return S3Storage(s3.client(), request.getfixturevalue("bucket"), "backup")


# ------------------------------------------------------------------------------------------- ownership
def test_only_folders_we_wrote_are_backups_and_only_they_are_deleted(
    any_storage: Any, lite_data: MilvusParams
) -> None:
    engine = BackupEngine(any_storage)
    _put_foreign(any_storage)
    engine.create(lite_data, "ours_1")
    engine.create(lite_data, "ours_2")
    _interrupted(any_storage, "ours_9")
    listed = {b["name"]: b for b in engine.list()}
    assert {n: b["state"] for n, b in listed.items()} == {
        "ours_1": "complete",
        "ours_2": "complete",
        "ours_9": "partial",
        "postgres": "unknown",
        "Photos": "unknown",
        "ml_models": "unknown",
        "logs": "unknown",
        "exports": "unknown",
        "gobackup": "unknown",
    }
    assert "not touched" in listed["Photos"]["reason"]
    assert "another tool" in listed["gobackup"]["reason"]
    assert engine.latest()["name"] == "ours_2"
    for name in ("Photos", "gobackup", "logs"):
        with pytest.raises(MilvusBackupError, match=rf"{name}.*not a backup") as e:
            engine.delete(name)
        assert "force=True" in str(e.value)
        with pytest.raises(MilvusBackupError, match=rf"{name}.*not a backup"):
            engine.create(lite_data, name, overwrite=True)
    _assert_foreign_intact(any_storage)
    assert engine.delete("ours_9")["objects"] == 3  # an interrupted backup of ours is deleted
    assert engine.delete("ours_1")["backup_name"] == "ours_1"
    assert sorted(b["name"] for b in engine.list() if b["state"] == "complete") == ["ours_2"]
    _assert_foreign_intact(any_storage)
    # a new backup carries its marker from its first object on
    assert json.loads(any_storage.get_bytes("ours_2/meta/marker.json"))["format"] == mf.FORMAT_NAME


def test_a_backup_made_by_an_earlier_release_is_still_ours(any_storage: Any, lite_data: MilvusParams) -> None:
    engine = BackupEngine(any_storage)
    engine.create(lite_data, "old_1")
    any_storage.delete(["old_1/meta/marker.json"])  # earlier releases wrote no marker
    _interrupted(any_storage, "old_9")
    any_storage.delete(["old_9/meta/marker.json"])  # an interrupted one of theirs: only its lock
    assert {b["name"]: b["state"] for b in engine.list()} == {"old_1": "complete", "old_9": "partial"}
    engine.delete("old_9")
    engine.delete("old_1")
    assert engine.list() == []


def _dag(dag_id: str) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args={"retries": 0},
    )


def _corrupt_copy(storage: Any, src: str, name: str, manifest: bytes) -> None:
    """Copy backup ``src`` to ``name`` with ``manifest`` as its manifest."""
    for o in storage.list(f"{src}/"):
        rel = o.key[len(src) + 1 :]
        if rel == mf.MANIFEST:
            continue
        storage.put_bytes(f"{name}/{rel}", storage.get_bytes(o.key))
    storage.put_bytes(f"{name}/{mf.MANIFEST}", manifest)


def test_retention_operator_on_a_shared_directory_deletes_only_old_backups(
    airflow_conns: Conns, tmp_path: Path
) -> None:
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
    from airflow_milvus_backup.operators import MilvusBackupRetentionOperator
    from airflow_milvus_backup.sensors import MilvusBackupSensor

    client = MilvusClient(airflow_conns.lite_uri)
    hello_milvus(client, rows=100)
    client.close()
    shared = tmp_path / "shared"
    for key, data in FOREIGN.items():  # at the top of the directory, and inside the backup root
        for where in (shared / key, shared / "backup" / key):
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_bytes(data)
    hook = MilvusBackupHook(local_path=str(shared))
    for i in (1, 2, 3):
        hook.create_backup(f"keep_{i}")
    good = json.loads(hook.storage.get_bytes(mf.manifest_key("keep_3")))
    _corrupt_copy(hook.storage, "keep_3", "keep_deep", b"[" * 100_000 + b"]" * 100_000)
    _corrupt_copy(
        hook.storage, "keep_3", "keep_typed", mf.dumps({**good, "name": "keep_typed", "collections": 7})
    )
    _interrupted(hook.storage, "keep_9")
    with _dag("t_safety_retention") as dag:
        sensor = MilvusBackupSensor(
            task_id="sensor", backup_prefix="keep_", local_path=str(shared), timeout=60
        )
        retention = MilvusBackupRetentionOperator(
            task_id="retention", keep_last=1, partial_grace_period=0, local_path=str(shared)
        )
        sensor >> retention
    dr = run_dag(dag)
    assert task_states(dr) == {"sensor": "success", "retention": "success"}
    x = xcoms("t_safety_retention", dr.run_id)
    assert x[("sensor", "return_value")]["name"] == "keep_3"
    done = x[("retention", "return_value")]
    assert sorted(done["deleted"]) == ["keep_1", "keep_2", "keep_9"]
    assert "corrupt" in done["skipped"]["keep_deep"]
    assert "corrupt" in done["skipped"]["keep_typed"]
    for key, data in FOREIGN.items():
        assert (shared / key).read_bytes() == data, key
        assert (shared / "backup" / key).read_bytes() == data, key
    assert sorted(p.name for p in (shared / "backup").iterdir()) == sorted(
        ["keep_3", "keep_deep", "keep_typed", *{k.split("/")[0] for k in FOREIGN}]
    )


def test_retention_operator_on_a_shared_bucket_deletes_only_old_backups(airflow_conns: Conns) -> None:
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
    from airflow_milvus_backup.operators import MilvusBackupRetentionOperator

    client = MilvusClient(airflow_conns.lite_uri)
    hello_milvus(client, rows=100)
    client.close()
    bucket = airflow_conns.bucket
    s3 = airflow_conns.s3.client()
    for key, data in FOREIGN.items():
        for full in (key, f"backup/{key}"):
            s3.put_object(Bucket=bucket, Key=full, Body=data)
    hook = MilvusBackupHook(bucket_name=bucket)
    hook.create_backup("ret_1")
    hook.create_backup("ret_2")
    with _dag("t_safety_retention_s3") as dag:
        MilvusBackupRetentionOperator(
            task_id="retention", keep_last=1, partial_grace_period=0, bucket_name=bucket
        )
        MilvusBackupRetentionOperator(
            task_id="at_top", keep_last=1, partial_grace_period=0, bucket_name=bucket, root_path=""
        )
        MilvusBackupRetentionOperator(  # asked for: the top of the bucket holds no backup of ours
            task_id="at_top_allowed",
            keep_last=1,
            partial_grace_period=0,
            bucket_name=bucket,
            root_path="",
            allow_root_at_top=True,
        )
    dr = run_dag(dag)
    assert task_states(dr) == {"retention": "success", "at_top": "failed", "at_top_allowed": "success"}
    x = xcoms("t_safety_retention_s3", dr.run_id)
    assert x[("retention", "return_value")]["deleted"] == ["ret_1"]
    top = x[("at_top_allowed", "return_value")]
    assert top["deleted"] == []
    assert {"logs", "exports", "backup"} <= set(top["skipped"])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    for key in FOREIGN:
        assert {key, f"backup/{key}"} <= keys
    assert f"backup/{mf.manifest_key('ret_2')}" in keys


# ------------------------------------------------------------------------------------------------ roots
@pytest.mark.parametrize("root", ["", "/", "//"])
def test_a_root_at_the_top_of_a_directory_or_bucket_needs_an_explicit_flag(
    tmp_path: Path, s3_server: Any, bucket: str, root: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"root_path.*allow_root_at_top=True"):
        LocalStorage(tmp_path / "shared", root)
    with pytest.raises(InvalidArgumentError, match=r"root_path.*allow_root_at_top=True"):
        S3Storage(s3_server.client(), bucket, root)
    local = LocalStorage(tmp_path / "shared", root, allow_root_at_top=True)
    assert local.dir == (tmp_path / "shared").resolve()
    assert S3Storage(s3_server.client(), bucket, root, allow_root_at_top=True).description == f"s3://{bucket}"


def test_the_hook_applies_root_path_to_a_local_directory(airflow_conns: Conns, tmp_path: Path) -> None:
    from airflow_milvus_backup.exceptions import MilvusBackupInvalidArgument
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

    client = MilvusClient(airflow_conns.lite_uri)
    hello_milvus(client, rows=50)
    client.close()
    MilvusBackupHook(local_path=str(tmp_path)).create_backup("b_1")
    assert (tmp_path / "backup" / "b_1" / mf.MANIFEST).is_file()
    MilvusBackupHook(local_path=str(tmp_path), root_path="nightly").create_backup("b_1")
    assert (tmp_path / "nightly" / "b_1" / mf.MANIFEST).is_file()
    with pytest.raises(MilvusBackupInvalidArgument, match="root_path"):
        _ = MilvusBackupHook(local_path=str(tmp_path), root_path="/").storage


# --------------------------------------------------------------------------------------------- symlinks
@pytest.fixture
def linked(tmp_path: Path) -> dict[str, Any]:
    """A local store whose root holds links to an outside directory, and that directory's files."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "secret.txt").write_bytes(b"must never be read or removed")
    (outside / "file.txt").write_bytes(b"must never be read or removed")
    storage = LocalStorage(tmp_path / "store", "backup")
    storage.put_bytes("b1/meta/x.json", b"{}")
    root = storage.dir
    (root / "b1" / "linkdir").symlink_to(outside / "dir")
    (root / "b1" / "linkfile").symlink_to(outside / "file.txt")
    (root / "b2").symlink_to(outside / "dir")
    return {"storage": storage, "outside": outside}


def _outside_intact(outside: Path) -> None:
    assert (outside / "dir" / "secret.txt").read_bytes() == b"must never be read or removed"
    assert (outside / "file.txt").read_bytes() == b"must never be read or removed"
    assert sorted(p.name for p in outside.rglob("*")) == ["dir", "file.txt", "secret.txt"]


@pytest.mark.parametrize(
    "verb",
    [
        "get_bytes",
        "open_read",
        "download",
        "sha256",
        "exists",
        "put_bytes",
        "put_file",
        "put_if_absent",
        "delete",
    ],
)
@pytest.mark.parametrize("key", ["b1/linkdir/secret.txt", "b1/linkfile", "b2/secret.txt", "b1/linkdir/new/x"])
def test_local_storage_never_follows_a_link_out_of_the_root(
    linked: dict[str, Any], tmp_path: Path, verb: str, key: str
) -> None:
    storage, outside = linked["storage"], linked["outside"]
    src = tmp_path / "src.bin"
    src.write_bytes(b"new")
    calls = {
        "get_bytes": lambda: storage.get_bytes(key),
        "open_read": lambda: storage.open_read(key).read(),
        "download": lambda: storage.download(key, tmp_path / "copy.bin"),
        "sha256": lambda: storage.sha256(key),
        "exists": lambda: storage.exists(key),
        "put_bytes": lambda: storage.put_bytes(key, b"new"),
        "put_file": lambda: storage.put_file(key, src),
        "put_if_absent": lambda: storage.put_if_absent(key, b"new"),
        "delete": lambda: storage.delete([key]),
    }
    if verb == "delete" and key == "b1/linkfile":
        storage.delete([key])  # the link itself goes, never what it points to
        assert not (storage.dir / "b1" / "linkfile").is_symlink()
    else:
        link = key.split("/")[0] if key.startswith("b2") else "/".join(key.split("/")[:2])
        with pytest.raises(StorageError, match=rf"{link}.*symbolic link.*outside"):
            calls[verb]()
    _outside_intact(outside)
    assert not (tmp_path / "copy.bin").exists()


def test_listings_do_not_descend_into_links(linked: dict[str, Any]) -> None:
    storage, outside = linked["storage"], linked["outside"]
    # a linked file is listed as itself (so deleting the backup removes the link), a linked folder not at all
    assert [o.key for o in storage.list("")] == ["b1/linkfile", "b1/meta/x.json"]
    assert [o.key for o in storage.list("b2/")] == []
    assert storage.list_dirs("") == ["b1"]
    engine = BackupEngine(storage)
    assert [b["name"] for b in engine.list()] == ["b1"]
    with pytest.raises(MilvusBackupError):
        engine.delete("b2")
    engine.delete("b1", force=True)  # b1 has no marker: it is not ours without force
    assert not (storage.dir / "b1" / "linkfile").is_symlink()
    # a manifest or marker that is a link out of the root: that folder is corrupt or unknown, the rest lists
    for name, key in (("b3", mf.MANIFEST), ("b4", "meta/marker.json")):
        (storage.dir / name / "meta").mkdir(parents=True)
        (storage.dir / name / key).symlink_to(outside / "file.txt")
    storage.put_bytes("b5/meta/marker.json", (storage.dir / ".." / ".." / "x").as_posix().encode())
    states = {b["name"]: (b["state"], b["owned"]) for b in engine.list()}
    assert states == {
        "b1": ("unknown", False),  # what is left: its link to a folder, neither followed nor removed
        "b3": ("corrupt", False),
        "b4": ("unknown", False),
        "b5": ("unknown", False),
    }
    assert (storage.dir / "b1" / "linkdir").is_symlink()
    assert "symbolic link" in next(b for b in engine.list() if b["name"] == "b3")["reason"]
    _outside_intact(outside)


def test_a_linked_backup_folder_or_data_folder_or_data_file_is_refused(
    tmp_path: Path, lite_data: MilvusParams
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage = LocalStorage(tmp_path / "store", "backup")
    engine = BackupEngine(storage)
    engine.create(lite_data, "real")
    # a backup folder that is a link to a copy outside: not listed, not deleted, not read
    shutil.copytree(storage.dir / "real", outside / "copy")
    (storage.dir / "linked").symlink_to(outside / "copy")
    assert [b["name"] for b in engine.list()] == ["real"]
    with pytest.raises(MilvusBackupError):
        engine.delete("linked", force=True)
    with pytest.raises(MilvusBackupError, match="linked"):
        verify_backup(storage, "linked")
    assert (outside / "copy" / mf.MANIFEST).is_file()
    # a data folder that is a link: overwrite=True refuses before writing Parquet outside
    engine.create(lite_data, "b_data")
    shutil.rmtree(storage.dir / "b_data" / "data")
    (outside / "data").mkdir()
    (storage.dir / "b_data" / "data").symlink_to(outside / "data")
    with pytest.raises(StorageError, match=r"b_data/data.*symbolic link"):
        engine.create(lite_data, "b_data", overwrite=True)
    assert list((outside / "data").iterdir()) == []
    # a data file that is a link to an outside file with rows: verify and restore refuse it
    engine.create(lite_data, "b_file")
    m = engine.get("b_file")
    key = m["collections"][0]["data"][0]["files"][0]["key"]
    data_file = storage.dir / "b_file" / key
    shutil.copy(data_file, outside / "rows.parquet")
    data_file.unlink()
    data_file.symlink_to(outside / "rows.parquet")
    with pytest.raises(StorageError, match="symbolic link"):
        verify_backup(storage, "b_file")
    with pytest.raises(MilvusBackupError, match="symbolic link"):
        RestoreEngine(storage).restore(lite_data, "b_file", collection_suffix="_r")
    client = MilvusClient(lite_data.uri)
    try:
        assert (
            "hello_milvus_r" not in client.list_collections()
            or client.query("hello_milvus_r", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
        )
    finally:
        client.close()
    assert (outside / "rows.parquet").is_file()


# ---------------------------------------------------------------------------------------------------- S3
@pytest.mark.parametrize(
    "verb",
    [
        "put_bytes",
        "put_file",
        "put_if_absent",
        "get_bytes",
        "open_read",
        "download",
        "exists",
        "head",
        "sha256",
    ],
)
def test_s3_verbs_build_keys_only_from_valid_parts(moto_server: Any, tmp_path: Path, verb: str) -> None:
    bucket = moto_server.create_bucket(f"v-{uuid.uuid4().hex[:10]}")
    s3 = moto_server.client()
    s3.put_object(Bucket=bucket, Key="logs/app.log", Body=b"keep")
    storage = S3Storage(s3, bucket, "backup")
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    for key in ("../logs/app.log", "b1/../../logs/app.log", "/logs/app.log", "b1//x", "b1/./x"):
        call = {
            "put_bytes": lambda k=key: storage.put_bytes(k, b"x"),
            "put_file": lambda k=key: storage.put_file(k, src),
            "put_if_absent": lambda k=key: storage.put_if_absent(k, b"x"),
            "get_bytes": lambda k=key: storage.get_bytes(k),
            "open_read": lambda k=key: storage.open_read(k),
            "download": lambda k=key: storage.download(k, tmp_path / "out"),
            "exists": lambda k=key: storage.exists(k),
            "head": lambda k=key: storage.head(k),
            "sha256": lambda k=key: storage.sha256(k),
        }[verb]
        with pytest.raises(InvalidArgumentError):
            call()
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["logs/app.log"]


def test_s3_listings_and_deletes_stay_under_the_backup_prefix(
    moto_server: Any, lite_data: MilvusParams
) -> None:
    bucket = moto_server.create_bucket(f"l-{uuid.uuid4().hex[:10]}")
    s3 = moto_server.client()
    storage = S3Storage(s3, bucket, "backup")
    engine = BackupEngine(storage)
    engine.create(lite_data, "b1")
    # keys no backup of ours writes, stored by someone else under the backup's prefix
    hostile = ["backup/b1/../../logs/app.log", "backup/b1//x", "backup/b1/./y", "backup/b1/a b"]
    for key in [*hostile, "backup/b10/meta/x.json", "logs/app.log"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"keep")
    listed = [o.key for o in storage.list("b1/")]
    assert listed
    assert all(k.startswith("b1/") and ".." not in k and "//" not in k for k in listed)
    with pytest.raises(InvalidArgumentError):
        list(storage.list("../"))
    with pytest.raises(InvalidArgumentError):
        storage.list_dirs("b1/../..")
    with pytest.raises(InvalidArgumentError):
        storage.delete(["b1/../../logs/app.log"])
    engine.delete("b1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {*hostile, "backup/b10/meta/x.json", "logs/app.log"}


# ------------------------------------------------------------------------------------ malformed manifests
def _manifests(good: dict[str, Any]) -> dict[str, bytes]:
    deep = b'{"k": ' * 500 + b'"x"' + b"}" * 500  # parses, but far deeper than any manifest
    return {
        "bad_notjson": b'{"format": "airflow-milvus-backup", "collections": [',
        "bad_array": b"[1, 2, 3]",
        "bad_deep": b"[" * 200_000 + b"]" * 200_000,
        "bad_deepobj": mf.dumps({**good, "name": "bad_deepobj", "databases": "DEEP"}).replace(
            b'"DEEP"', deep
        ),
        "bad_huge": mf.dumps({**good, "name": "bad_huge", "padding": "x" * (mf.MAX_MANIFEST_BYTES + 1)}),
        "bad_colls": mf.dumps({**good, "name": "bad_colls", "collections": "hello_milvus"}),
        "bad_coll": mf.dumps({**good, "name": "bad_coll", "collections": [5]}),
        "bad_fields": mf.dumps(
            {**good, "name": "bad_fields", "collections": [{**good["collections"][0], "fields": {"pk": 1}}]}
        ),
        "bad_rows": mf.dumps(
            {
                **good,
                "name": "bad_rows",
                "collections": [
                    {
                        **good["collections"][0],
                        "data": [
                            {**good["collections"][0]["data"][0], "files": [{"key": 7, "rows": "many"}]}
                        ],
                    }
                ],
            }
        ),
        "bad_totals": mf.dumps({**good, "name": "bad_totals", "totals": [1, 2]}),
        "bad_id": mf.dumps({**good, "name": "bad_id", "id": {"x": 1}}),
    }


def test_a_malformed_manifest_makes_one_backup_corrupt_and_nothing_else(
    tmp_path: Path, lite_data: MilvusParams
) -> None:
    storage = LocalStorage(tmp_path / "store", "backup")
    engine = BackupEngine(storage)
    engine.create(lite_data, "good_1")
    good = engine.get("good_1")
    bad = _manifests(good)
    for name, raw in bad.items():
        _corrupt_copy(storage, "good_1", name, raw)
    engine.create(lite_data, "good_2")
    listed = {b["name"]: b for b in engine.list()}
    assert {n: b["state"] for n, b in listed.items()} == {
        "good_1": "complete",
        "good_2": "complete",
        **dict.fromkeys(bad, "corrupt"),
    }
    assert engine.latest()["name"] == "good_2"
    restorer = RestoreEngine(storage)
    for name in bad:
        reason = listed[name]["reason"]
        assert name in reason, reason
        assert "manifest" in reason.lower(), reason
        for call in (
            lambda n=name: engine.get(n),
            lambda n=name: verify_backup(storage, n),
            lambda n=name: restorer.restore(lite_data, n, collection_suffix="_r"),
        ):
            with pytest.raises(ManifestError, match=name):
                call()
    assert "bigger than" in listed["bad_huge"]["reason"]
    assert "nested" in listed["bad_deep"]["reason"]
    assert "nested" in listed["bad_deepobj"]["reason"]
    assert "collections" in listed["bad_colls"]["reason"]
    assert "rows" in listed["bad_rows"]["reason"] or "key" in listed["bad_rows"]["reason"]


def test_manifest_shape_validation_unit() -> None:
    """The pure check, without a server: each wrong shape is named by its path in the document."""
    base: dict[str, Any] = {
        "format": mf.FORMAT_NAME,
        "format_version": 1,
        "name": "b",
        "id": "abc",
        "state": "complete",
        "collections": [
            {
                "name": "c",
                "db_name": "default",
                "auto_id": False,
                "enable_dynamic_field": False,
                "fields": [{"name": "pk", "type": "INT64", "params": {}}],
                "partitions": ["_default"],
                "data": [
                    {
                        "partition": None,
                        "rows": 1,
                        "files": [{"key": "data/x.parquet", "rows": 1, "size": 3, "sha256": "ab"}],
                    }
                ],
            }
        ],
    }
    assert mf.parse_manifest(mf.dumps(base), "b").id == "abc"
    cases = {
        "collections[0].fields[0].name": lambda m: m["collections"][0]["fields"][0].update(name=None),
        "collections[0].data[0].files[0].size": lambda m: m["collections"][0]["data"][0]["files"][0].update(
            size="3"
        ),
        "collections[0].data[0].rows": lambda m: m["collections"][0]["data"][0].update(rows=True),
        "collections[0].partitions[0]": lambda m: m["collections"][0].update(partitions=[1]),
        "format_version": lambda m: m.update(format_version="1"),
        "collections[0].auto_id is missing": lambda m: m["collections"][0].pop("auto_id"),
        "totals.rows": lambda m: m.update(totals={"collections": 1, "rows": 1.5, "files": 1, "bytes": 3}),
    }
    for where, change in cases.items():
        m = json.loads(mf.dumps(base))
        change(m)
        with pytest.raises(ManifestError, match=re.escape(where)):
            mf.parse_manifest(mf.dumps(m), "b")
    with pytest.raises(ManifestError, match="nested"):
        mf.parse_manifest(b"[" * 100 + b"]" * 100, "b")
    with pytest.raises(ManifestError, match="nested"):
        mf.parse_manifest(b"[" * 1_000_000 + b"]" * 1_000_000, "b")
    with pytest.raises(ManifestError, match="another tool"):
        mf.parse_manifest(json.dumps({"name": "b", "id": "x", "collection_backups": []}).encode(), "b")
    with pytest.raises(ManifestError, match="not an object"):
        mf.parse_manifest(b'"just a string"', "b")
