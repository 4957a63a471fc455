"""Data safety: where a restore goes, deleting a backup a restore reads, empty backups.

* The target database of a restore is the connection's database (``MilvusParams.db_name``, the Airflow
  connection's Schema) unless ``target_db_name`` says otherwise: never the source database behind the user's
  back (Milvus 2.3.5 and Milvus Lite, engine and operator).
* A backup a live restore reads is not deleted without ``force=True``; a forced delete makes the restore fail
  with "deleted while restoring", and its status never re-creates the deleted backup's folder.
* Backing up zero collections is an error unless allowed; a Milvus Lite path that does not exist is refused
  before Milvus Lite creates an empty database there; ``latest`` skips backups without collections; a
  verification with nothing to compare does not pass.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pendulum
import pytest
from airflow.sdk import DAG
from pymilvus import MilvusClient

from airflow_milvus_backup.engine import BackupEngine, BackupNotFoundError, LocalStorage, MilvusParams
from airflow_milvus_backup.engine.names import map_target
from airflow_milvus_backup.engine.restore import RestoreEngine
from tests.support import airflow_env
from tests.support.airflow_env import Conns, milvus_conn_json, run_dag, task_states, xcoms
from tests.support.datagen import create_vector_collection
from tests.support.lite import open_client

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------------------------ helpers
def make_collection(client: MilvusClient, name: str, rows: int, first_pk: int = 0) -> None:
    create_vector_collection(client, name, dim=4)
    add_rows(client, name, first_pk, rows)


def add_rows(client: MilvusClient, name: str, first_pk: int, rows: int) -> None:
    rng = np.random.default_rng(first_pk + rows)
    data = [{"id": first_pk + i, "vec": rng.random(4, dtype=np.float32).tolist()} for i in range(rows)]
    client.insert(name, data)
    client.flush(name)


def pks(client: MilvusClient, name: str) -> list[int]:
    client.load_collection(name)
    rows = client.query(name, filter="id >= 0", output_fields=["id"], consistency_level="Strong", limit=16384)
    return sorted(int(r["id"]) for r in rows)


def db_client(uri: str, db: str) -> MilvusClient:
    # one client per database: MilvusClient.use_database needs describe_database (not in Milvus 2.3)
    return open_client(uri, db_name=db)


# ------------------------------------------------------------------------------------- target database
@pytest.mark.parametrize(
    ("target_db_name", "connection_db", "expected"),
    [
        (None, "staging", ("staging", "c1")),
        (None, "default", ("default", "c1")),
        ("prod", "staging", ("prod", "c1")),
    ],
)
def test_map_target_goes_to_the_connection_database_unless_target_db_name_says_otherwise(
    target_db_name: str | None, connection_db: str, expected: tuple[str, str]
) -> None:
    from airflow_milvus_backup.engine.names import restore_database

    db = restore_database(target_db_name, connection_db)
    assert map_target("default", "c1", target_db=db) == expected
    # an explicit database in a rename rule still wins; a bare rename target is in the target database
    assert map_target("default", "c1", renames={"c1": "other.c9"}, target_db=db) == ("other", "c9")
    assert map_target("default", "c1", renames={"c1": "c9"}, target_db=db) == (expected[0], "c9")


def _staging_setup(uri: str, coll: str, tmp_path: Path) -> tuple[LocalStorage, MilvusParams]:
    """default.<coll> with 30 rows backed up, then 10 rows more; staging.<coll> with 5 other rows."""
    default = db_client(uri, "default")
    try:
        if "staging" not in default.list_databases():
            default.create_database("staging")
        make_collection(default, coll, 30)
    finally:
        default.close()
    staging = db_client(uri, "staging")
    try:
        make_collection(staging, coll, 5, first_pk=1000)
    finally:
        staging.close()
    storage = LocalStorage(tmp_path / "backups")
    BackupEngine(storage).create(MilvusParams(uri=uri), "b_default", [coll])
    default = db_client(uri, "default")
    try:
        add_rows(default, coll, 100, 10)  # written after the backup: a restore must never lose them
    finally:
        default.close()
    return storage, MilvusParams(uri=uri, db_name="staging")


def _assert_restored_into_staging(uri: str, coll: str, report: dict[str, Any]) -> None:
    default = db_client(uri, "default")
    staging = db_client(uri, "staging")
    try:
        assert pks(staging, coll) == list(range(30)), "staging.<coll> is the backup's copy"
        assert pks(default, coll) == [*range(30), *range(100, 110)], "default.<coll> is untouched"
    finally:
        default.close()
        staging.close()
    assert [(c["source"], c["target"]) for c in report["collections"]] == [
        (f"default.{coll}", f"staging.{coll}")
    ]
    assert report["target"]["db_name"] == "staging"
    assert report["arguments"]["target"]["db_name"] == "staging"


def _drop_everywhere(uri: str, coll: str) -> None:
    for db in ("default", "staging"):
        c = db_client(uri, db)
        try:
            if c.has_collection(coll):
                c.drop_collection(coll)
        finally:
            c.close()


@pytest.mark.milvus235
def test_restore_with_drop_existing_replaces_the_connection_databases_collection_on_235(
    milvus235: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coll = f"c1_{uuid.uuid4().hex[:6]}"
    storage, staging_params = _staging_setup(milvus235.uri, coll, tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="airflow_milvus_backup"):
            report = RestoreEngine(storage).restore(staging_params, "b_default", drop_existing=True)
        _assert_restored_into_staging(milvus235.uri, coll, report)
        # the log names the fully qualified collection it drops, before it drops it
        assert f"Dropping existing collection staging.{coll}" in caplog.text
        assert f"default.{coll} -> staging.{coll}" in caplog.text
        # target_db_name still says otherwise: the source database, explicitly
        report = RestoreEngine(storage).restore(
            staging_params, "b_default", target_db_name="default", collection_suffix="_copy"
        )
        assert [c["target"] for c in report["collections"]] == [f"default.{coll}_copy"]
        assert report["target"]["db_name"] == "default"
        c = db_client(milvus235.uri, "default")
        try:
            assert pks(c, f"{coll}_copy") == list(range(30))
            c.drop_collection(f"{coll}_copy")
        finally:
            c.close()
    finally:
        _drop_everywhere(milvus235.uri, coll)


def _dag(dag_id: str) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args={"retries": 0},
    )


def test_restore_operator_with_a_staging_connection_restores_into_staging(
    airflow_conns: Conns,
    lite_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_milvus_backup.operators import MilvusRestoreOperator

    coll = "c1"
    storage, _ = _staging_setup(lite_uri, coll, tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_STAGING", milvus_conn_json(lite_uri, db_name="staging"))
    with _dag("t_restore_staging") as dag:
        MilvusRestoreOperator(
            task_id="restore",
            milvus_conn_id="milvus_staging",
            backup_name="b_default",
            drop_existing=True,
            local_path=str(storage.base),
        )
    dr = run_dag(dag)
    assert task_states(dr) == {"restore": "success"}
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert "Restoring every collection of backup b_default into database staging" in text
    assert f"Dropping existing collection staging.{coll}" in text
    result = xcoms("t_restore_staging", dr.run_id)[("restore", "return_value")]
    _assert_restored_into_staging(lite_uri, coll, result["restore"])
    assert result["verify"]["ok"]
    assert [c["target"] for c in result["verify"]["collections"]] == [f"staging.{coll}"]


# ---------------------------------------------------------------------------- delete vs a live restore
_RESTORE_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import boto3
    from airflow_milvus_backup.engine import LocalStorage, MilvusParams, S3Storage
    from airflow_milvus_backup.engine.restore import RestoreEngine

    cfg = json.loads(sys.argv[1])
    base = LocalStorage if cfg["kind"] == "local" else S3Storage

    class Blocking(base):
        # the first data download waits for the test: the restore is live and reading the backup
        def download(self, key, path):
            if "/data/" in key and not os.path.exists(cfg["marker"]):
                open(cfg["marker"], "w").close()
                deadline = time.monotonic() + 120
                while not os.path.exists(cfg["go"]) and time.monotonic() < deadline:
                    time.sleep(0.05)
            super().download(key, path)

    if cfg["kind"] == "local":
        storage = Blocking(cfg["path"])
    else:
        client = boto3.client(
            "s3", endpoint_url=cfg["endpoint"], aws_access_key_id=cfg["key"],
            aws_secret_access_key=cfg["secret"], region_name="us-east-1",
        )
        storage = Blocking(client, cfg["bucket"], "backup")
    try:
        r = RestoreEngine(storage, status_ttl=8.0).restore(
            MilvusParams(uri=cfg["milvus"]), cfg["name"], collection_suffix="_live"
        )
        out = {"ok": True, "state": r["state"]}
    except Exception as e:
        out = {"ok": False, "type": type(e).__name__, "message": str(e)}
    print(json.dumps(out), flush=True)
    """
)


class LiveRestore:
    """A real restore in a child process, stopped inside its first data download until :meth:`go`."""

    def __init__(self, tmp_path: Path, cfg: dict[str, Any]) -> None:
        script = tmp_path / "restore_child.py"
        script.write_text(_RESTORE_CHILD)
        self.marker = tmp_path / "marker"
        self.go_file = tmp_path / "go"
        cfg = {**cfg, "marker": str(self.marker), "go": str(self.go_file)}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_reading(self) -> None:
        deadline = time.monotonic() + 120
        while not self.marker.exists():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"restore child exited early: {err[-3000:]}")
            assert time.monotonic() < deadline, "the restore never started reading"
            time.sleep(0.05)

    def go(self) -> dict[str, Any]:
        self.go_file.touch()
        out, err = self.proc.communicate(timeout=180)
        assert self.proc.returncode == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["local", "s3"])
def live_backup(request: pytest.FixtureRequest, milvus_lite_server: Any, tmp_path: Path) -> Any:
    """A backup ``b_live`` of 300 rows, its storage (a directory or a bucket) and the child's config."""
    client = open_client(milvus_lite_server.uri)
    coll = f"live_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, 300)
    cfg: dict[str, Any] = {"kind": request.param, "milvus": milvus_lite_server.uri, "name": "b_live"}
    if request.param == "local":
        storage: Any = LocalStorage(tmp_path / "backups")
        cfg["path"] = str(tmp_path / "backups")
    else:
        from airflow_milvus_backup.engine import S3Storage

        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("bucket")
        storage = S3Storage(s3.client(), bucket, "backup")
        cfg.update(endpoint=s3.endpoint_url, key=s3.access_key, secret=s3.secret_key, bucket=bucket)
    BackupEngine(storage).create(MilvusParams(uri=milvus_lite_server.uri), "b_live", [coll])
    yield storage, cfg, client, coll
    for name in (coll, f"{coll}_live"):
        if client.has_collection(name):
            client.drop_collection(name)
    client.close()


def test_delete_refuses_a_backup_a_live_restore_reads_naming_the_restore(
    live_backup: Any, tmp_path: Path
) -> None:
    from airflow_milvus_backup.engine.errors import BackupInProgressError
    from airflow_milvus_backup.exceptions import MilvusBackupException
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

    storage, cfg, client, coll = live_backup
    engine = BackupEngine(storage)
    child = LiveRestore(tmp_path, cfg)
    try:
        child.wait_reading()
        [restore] = RestoreEngine(storage).list_restores("b_live")
        with pytest.raises(BackupInProgressError) as e:
            engine.delete("b_live")
        for part in (restore["restore_id"], f"pid {child.proc.pid}", socket.gethostname(), "force=True"):
            assert part in str(e.value)
        # overwriting it would delete it just the same
        with pytest.raises(BackupInProgressError, match=restore["restore_id"]):
            engine.create(MilvusParams(uri=cfg["milvus"]), "b_live", [coll], overwrite=True)
        if cfg["kind"] == "local":
            hook = MilvusBackupHook(local_path=cfg["path"])
            with pytest.raises(MilvusBackupException, match=restore["restore_id"]):
                hook.delete_backup("b_live")
        assert engine.get("b_live")["totals"]["rows"] == 300, "the backup is intact"
        out = child.go()
    finally:
        child.kill()
    assert out == {"ok": True, "state": "success"}
    assert pks(client, f"{coll}_live") == list(range(300))


def test_forced_delete_fails_the_live_restore_clearly_and_its_status_never_recreates_the_backup(
    live_backup: Any, tmp_path: Path
) -> None:
    storage, cfg, client, coll = live_backup
    engine = BackupEngine(storage)
    child = LiveRestore(tmp_path, cfg)
    try:
        child.wait_reading()
        [restore] = RestoreEngine(storage).list_restores("b_live")
        engine.delete("b_live", force=True)
        time.sleep(5)  # the restore's heartbeat (every 2 s) runs meanwhile
        assert list(storage.list("b_live/")) == [], "the heartbeat re-created the deleted backup's folder"
        out = child.go()
    finally:
        child.kill()
    assert out["ok"] is False
    assert out["type"] == "BackupDeletedError"
    assert "Backup 'b_live'" in out["message"]
    assert "was deleted while restore" in out["message"]
    assert restore["restore_id"] in out["message"]
    assert "damaged" not in out["message"]
    assert list(storage.list("b_live/")) == []
    assert "b_live" not in [b["name"] for b in engine.list()], "no phantom partial backup"


def test_live_readers_and_the_refusal_message_are_pure_decisions() -> None:
    from airflow_milvus_backup.engine.readers import live_readers, reader_problem

    bodies = [
        {"restore_id": "r_done", "state": "success", "host": "h1", "pid": 1},
        {"restore_id": "r_dead", "state": "executing", "host": "h1", "pid": 2},
        {"restore_id": "r_live", "state": "executing", "host": "h2", "pid": 77, "started_at": "t0"},
    ]
    live = live_readers(bodies, alive=lambda b: b["restore_id"] != "r_dead")
    assert [b["restore_id"] for b in live] == ["r_live"]
    assert reader_problem("b1", "s3://x/backup", []) is None
    msg = reader_problem("b1", "s3://x/backup", live)
    assert msg is not None
    for part in ("'b1'", "s3://x/backup", "restore r_live", "host h2", "pid 77", "force=True"):
        assert part in msg
    detached = reader_problem("b1", "d", [{"restore_id": "r9", "detached": True, "host": "h"}])
    assert detached is not None
    assert "detached restore" in detached


# ------------------------------------------------------------------------------------------ empty backups
def test_backing_up_zero_collections_is_refused_unless_allowed(lite_uri: str, tmp_path: Path) -> None:
    from airflow_milvus_backup.engine.errors import MilvusBackupError

    MilvusClient(lite_uri).close()  # an existing Milvus Lite database without collections
    storage = LocalStorage(tmp_path / "backups")
    engine = BackupEngine(storage)
    params = MilvusParams(uri=lite_uri)
    with pytest.raises(MilvusBackupError, match=r"database 'default'.*no collections.*allow_empty=True") as e:
        engine.create(params, "empty")
    assert type(e.value).__name__ == "EmptyBackupError"
    assert lite_uri in str(e.value)
    assert list(storage.list("empty/")) == [], "a refused backup writes nothing"
    summary = engine.create(params, "empty", allow_empty=True)
    assert (summary["collections"], summary["rows"]) == ([], 0)
    assert engine.get("empty")["totals"]["collections"] == 0


def test_empty_selection_rule_is_a_pure_decision() -> None:
    from airflow_milvus_backup.engine.errors import EmptyBackupError
    from airflow_milvus_backup.engine.names import check_not_empty

    check_not_empty([("default", "c1")], "default", "Milvus at x")
    check_not_empty([], "default", "Milvus at x", allow_empty=True)
    with pytest.raises(EmptyBackupError, match=r"database 'staging' of Milvus at x has no collections"):
        check_not_empty([], "staging", "Milvus at x")


def test_verify_restore_with_nothing_to_compare_does_not_pass(lite_uri: str, tmp_path: Path) -> None:
    from airflow_milvus_backup.engine.verify import verify_restore

    MilvusClient(lite_uri).close()
    storage = LocalStorage(tmp_path / "backups")
    params = MilvusParams(uri=lite_uri)
    BackupEngine(storage).create(params, "empty", allow_empty=True)
    report = RestoreEngine(storage).restore(params, "empty")
    assert report["collections"] == []
    v = verify_restore(params, storage, "empty", report)
    assert v["ok"] is False
    assert "'empty'" in v["errors"][0]
    assert "nothing was restored" in v["errors"][0]


def test_latest_is_the_newest_complete_backup_with_data(lite_uri: str, tmp_path: Path) -> None:
    client = MilvusClient(lite_uri)
    make_collection(client, "c1", 20)
    client.create_database("nothing")
    client.close()
    storage = LocalStorage(tmp_path / "backups")
    engine = BackupEngine(storage)
    engine.create(MilvusParams(uri=lite_uri), "b1_data")
    time.sleep(0.05)
    engine.create(MilvusParams(uri=lite_uri, db_name="nothing"), "b2_empty", allow_empty=True)
    assert engine.latest()["name"] == "b1_data"
    assert engine.latest(allow_empty=True)["name"] == "b2_empty"
    with pytest.raises(BackupNotFoundError, match=r"b2\*.*1 complete backup\(s\) without collections"):
        engine.latest("b2")


def test_operators_refuse_a_missing_lite_path_and_empty_backups_and_latest_skips_empty_ones(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
    from airflow_milvus_backup.operators import MilvusBackupOperator, MilvusRestoreOperator, backup_asset
    from airflow_milvus_backup.sensors import MilvusBackupSensor

    make_collection(lite_client, "c1", 40)
    bucket = airflow_conns.bucket
    MilvusBackupHook(bucket_name=bucket).create_backup("b1_data")
    typo = tmp_path / "milvsu.db"  # a typo of a Milvus Lite path: Milvus Lite would create an empty db there
    empty = tmp_path / "empty.db"
    MilvusClient(str(empty)).close()
    airflow_env.release_lite(str(empty))
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_TYPO", json.dumps({"conn_type": "milvus", "host": str(typo)}))
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_EMPTY", json.dumps({"conn_type": "milvus", "host": str(empty)}))
    asset = backup_asset(bucket, "backup")
    with _dag("t_empty") as dag:
        common: dict[str, Any] = {"bucket_name": bucket}
        MilvusBackupOperator(task_id="typo_backup", milvus_conn_id="milvus_typo", outlets=[asset], **common)
        MilvusRestoreOperator(task_id="typo_restore", milvus_conn_id="milvus_typo", **common)
        MilvusBackupOperator(task_id="empty_backup", milvus_conn_id="milvus_empty", outlets=[asset], **common)
        allowed = MilvusBackupOperator(
            task_id="empty_allowed",
            milvus_conn_id="milvus_empty",
            backup_name="b2_empty",
            allow_empty=True,
            **common,
        )
        latest = MilvusRestoreOperator(task_id="restore_latest", collection_suffix="_l", **common)
        named = MilvusRestoreOperator(task_id="restore_empty", backup_name="b2_empty", **common)
        newest = MilvusBackupSensor(
            task_id="newest", backup_prefix="b", poke_interval=1, timeout=30, **common
        )
        allowed >> [latest, named, newest]
    dr = run_dag(dag)
    assert task_states(dr) == {
        "typo_backup": "failed",
        "typo_restore": "failed",
        "empty_backup": "failed",
        "empty_allowed": "success",
        "restore_latest": "success",
        "restore_empty": "failed",
        "newest": "success",
    }
    assert not typo.exists(), "no Milvus Lite database was created at the mistyped path"
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert f"Milvus Lite database file {typo} does not exist here; check Host or URI." in text
    assert "database 'default' of Milvus at" in text
    assert "allow_empty=True" in text
    assert "nothing was restored" in text
    x = xcoms("t_empty", dr.run_id)
    assert x[("restore_latest", "return_value")]["backup_name"] == "b1_data"
    assert x[("newest", "return_value")]["name"] == "b1_data"
    assert pks(lite_client, "c1_l") == list(range(40))
    # no Asset event for a backup that did not happen
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == asset.uri)
            .count()
        )
    assert events == 0
