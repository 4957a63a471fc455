"""Operators, sensor and triggers through ``dag.test()`` against Milvus Lite and the rclone S3 server.

Connections come from ``AIRFLOW_CONN_*`` variables with real-looking secrets; every test checks that no log
line and no XCom shows them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from airflow_milvus_backup.operators import (
    MilvusBackupOperator,
    MilvusBackupRetentionOperator,
    MilvusRestoreOperator,
    backup_asset,
)
from airflow_milvus_backup.sensors import MilvusBackupSensor
from tests.support import airflow_env
from tests.support.airflow_env import (
    AIRFLOW_HOME,
    Conns,
    assert_no_secrets,
    aws_conn_json,
    hello_milvus,
    log_files_text,
    milvus_conn_json,
    run_dag,
    task_states,
    xcoms,
)
from tests.support.lite import open_client

if TYPE_CHECKING:
    from pymilvus import MilvusClient

pytestmark = pytest.mark.timeout(300)


def make_dag(dag_id: str, **kwargs: Any) -> DAG:
    kwargs.setdefault("default_args", {"retries": 0})
    return DAG(
        dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, **kwargs
    )


def check_secrets(
    conns: Conns, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, dag_id: str
) -> str:
    """Assert that no secret is in the captured output and log records, the log files or the DAG's XComs;
    return the captured text."""
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    values = json.dumps(list(xcoms(dag_id).values()), default=str)
    assert_no_secrets(conns.secrets, text, log_files_text(), values)
    return text


def asset_events(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .all()
        )
        return [dict(r.extra or {}) for r in rows]


def test_backup_verifies_emits_an_asset_event_and_the_sensor_finds_it(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello_milvus(lite_client, rows=1500)
    bucket = airflow_conns.bucket
    asset = backup_asset(bucket, "backup")
    with make_dag("t_backup") as dag:
        backup = MilvusBackupOperator(task_id="backup", bucket_name=bucket, verify=True, outlets=[asset])
        by_name = MilvusBackupSensor(
            task_id="by_name",
            backup_name="{{ ti.xcom_pull(task_ids='backup')['backup_name'] }}",
            bucket_name=bucket,
            poke_interval=1,
            timeout=60,
        )
        newest = MilvusBackupSensor(
            task_id="newest", backup_prefix="t_backup_", bucket_name=bucket, deferrable=True, timeout=60
        )
        backup >> [by_name, newest]
    dr = run_dag(dag)
    assert task_states(dr) == {"backup": "success", "by_name": "success", "newest": "success"}
    x = xcoms("t_backup", dr.run_id)
    summary = x[("backup", "return_value")]
    name = summary["backup_name"]
    assert name.startswith("t_backup_2")  # dag_id + run_after
    assert (summary["collections"], summary["rows"]) == (["default.hello_milvus"], 1500)
    assert summary["bytes"] > 0
    assert summary["verify"]["ok"]
    assert summary["verify"]["rows"] == 1500
    assert x[("by_name", "return_value")]["name"] == name
    assert x[("newest", "return_value")]["name"] == name
    assert x[("newest", "return_value")]["rows"] == 1500
    events = asset_events(asset.uri)
    assert [e["backup_name"] for e in events] == [name]
    assert events[0]["rows"] == 1500
    # The backup is really in the bucket, complete.
    listed = MilvusBackupHook(bucket_name=bucket).list_backups()
    assert [(b["name"], b["state"], b["rows"]) for b in listed] == [(name, "complete", 1500)]
    text = check_secrets(airflow_conns, capfd, caplog, "t_backup")
    assert f"Backup {name}: 1,500/1,500 rows" in text  # progress with rows, bytes, rate
    assert "rows/s" in text
    assert "Verified backup" in text


def test_deferrable_sensor_waits_in_its_trigger_until_the_backup_is_complete(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello_milvus(lite_client, rows=300)
    bucket = airflow_conns.bucket

    def back_up_later() -> None:
        time.sleep(3)
        MilvusBackupHook(bucket_name=bucket).create_backup("late_backup_1")

    with make_dag("t_sensor_deferred") as dag:
        MilvusBackupSensor(
            task_id="wait",
            backup_name="late_backup_1",
            bucket_name=bucket,
            deferrable=True,
            poke_interval=0.5,
            timeout=120,
        )
    writer = threading.Thread(target=back_up_later)
    writer.start()
    try:
        dr = run_dag(dag)
    finally:
        writer.join()
    assert task_states(dr) == {"wait": "success"}
    found = xcoms("t_sensor_deferred", dr.run_id)[("wait", "return_value")]
    assert (found["name"], found["rows"], found["collections"]) == (
        "late_backup_1",
        300,
        ["default.hello_milvus"],
    )
    text = check_secrets(airflow_conns, capfd, caplog, "t_sensor_deferred")
    assert "Waiting for backup late_backup_1: not complete yet" in text  # the trigger polled


def test_restore_latest_with_suffix_and_renames_verified_against_source(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello_milvus(lite_client, rows=1200)
    bucket = airflow_conns.bucket
    MilvusBackupHook(bucket_name=bucket).create_backup("src_1")
    with make_dag("t_restore") as dag:
        restore = MilvusRestoreOperator(
            task_id="restore",
            backup_name="latest",
            collection_suffix="_r",
            source_milvus_conn_id="milvus_default",
            bucket_name=bucket,
        )
        renamed = MilvusRestoreOperator(
            task_id="restore_renamed",
            backup_name="src_1",
            collection_renames='{"hello_milvus": "hello_copy"}',
            deferrable=True,  # Milvus Lite restores by insert: the work is done at submit, nothing to defer
            bucket_name=bucket,
        )
        restore >> renamed
    dr = run_dag(dag)
    assert task_states(dr) == {"restore": "success", "restore_renamed": "success"}
    for target in ("hello_milvus_r", "hello_copy"):
        lite_client.load_collection(target)
        assert lite_client.query(target, filter="", output_fields=["count(*)"])[0]["count(*)"] == 1200
    x = xcoms("t_restore", dr.run_id)
    result = x[("restore", "return_value")]
    assert result["backup_name"] == "src_1"
    assert result["restore"]["state"] == "success"
    assert [(c["source"], c["target"]) for c in result["restore"]["collections"]] == [
        ("default.hello_milvus", "default.hello_milvus_r")
    ]
    assert result["verify"]["ok"]
    assert result["verify"]["collections"][0]["data_equal"]
    assert result["verify"]["collections"][0]["search_overlap"] is not None  # compared with the source
    assert x[("restore_renamed", "return_value")]["verify"]["ok"]
    text = check_secrets(airflow_conns, capfd, caplog, "t_restore")
    assert "Newest complete backup: src_1" in text
    assert "Verifying restore" in text


def test_retention_keeps_newest_and_backups_a_restore_reads(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_milvus_backup.engine import lease, ownership

    hello_milvus(lite_client, rows=50)
    bucket = airflow_conns.bucket
    hook = MilvusBackupHook(bucket_name=bucket)
    for i in range(1, 5):
        hook.create_backup(f"ret_{i}")
    hook.create_backup("other_1")
    hook.create_backup("other_2")
    # An interrupted backup: its marker (written first) and objects, no manifest, no live writer.
    hook.storage.put_bytes(ownership.marker_key("ret_9"), ownership.marker_body("ret_9", "x"))
    hook.storage.put_bytes("ret_9/data/default/hello_milvus/=all/part-00000.parquet", b"partial")
    # A restore of ret_1 running right now (live lease, state executing).
    reader = lease.Lease(hook.storage, "ret_1/restores/r1.json", {"state": "executing", "restore_id": "r1"})
    reader.write()
    try:
        with make_dag("t_retention") as dag:
            dry = MilvusBackupRetentionOperator(
                task_id="dry_run",
                keep_last=1,
                backup_prefix="ret_",
                partial_grace_period=0,
                dry_run=True,
                bucket_name=bucket,
            )
            real = MilvusBackupRetentionOperator(
                task_id="retention",
                keep_last=1,
                backup_prefix="ret_",
                partial_grace_period=0,
                bucket_name=bucket,
            )
            young = MilvusBackupRetentionOperator(
                task_id="by_age_day", max_age=timedelta(days=1), backup_prefix="other_", bucket_name=bucket
            )
            by_age = MilvusBackupRetentionOperator(
                task_id="by_age_zero", max_age=0, backup_prefix="other_", bucket_name=bucket
            )
            dry >> real >> young >> by_age
        dr = run_dag(dag)
    finally:
        reader.release()
    assert set(task_states(dr).values()) == {"success"}
    x = xcoms("t_retention", dr.run_id)
    planned = x[("dry_run", "return_value")]
    assert planned["dry_run"]
    assert sorted(planned["deleted"]) == ["ret_2", "ret_3", "ret_9"]
    assert planned["kept"] == ["ret_4"]
    assert "running restore" in planned["skipped"]["ret_1"]
    done = x[("retention", "return_value")]
    assert sorted(done["deleted"]) == ["ret_2", "ret_3", "ret_9"]
    assert not done["dry_run"]
    assert sorted(b["name"] for b in hook.list_backups()) == ["other_2", "ret_1", "ret_4"]
    assert x[("by_age_day", "return_value")]["deleted"] == []  # both younger than a day
    assert x[("by_age_zero", "return_value")]["deleted"] == ["other_1"]  # the newest one always stays
    text = check_secrets(airflow_conns, capfd, caplog, "t_retention")
    assert "Dry run: would delete backup ret_2" in text


def test_failures_name_the_thing_and_are_not_retried_when_retrying_cannot_help(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello_milvus(lite_client, rows=100)
    bucket = airflow_conns.bucket
    hook = MilvusBackupHook(bucket_name=bucket)
    hook.create_backup("damaged_1")
    manifest = hook.get_backup("damaged_1")
    key = manifest["collections"][0]["data"][0]["files"][0]["key"]
    hook.storage.put_bytes(f"damaged_1/{key}", b"not the parquet file the manifest describes")
    with make_dag("t_failures", default_args={"retries": 2, "retry_delay": timedelta(seconds=1)}) as dag:
        MilvusRestoreOperator(
            task_id="restore_damaged", backup_name="damaged_1", collection_suffix="_x", bucket_name=bucket
        )
        MilvusBackupOperator(task_id="bad_name", backup_name="nightly-2026", bucket_name=bucket)
        MilvusBackupOperator(task_id="no_bucket", bucket_name="no-such-bucket-x1")
    dr = run_dag(dag)
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = {ti.task_id: ti for ti in dr.get_task_instances(session=session)}
        assert {t: str(ti.state) for t, ti in tis.items()} == {
            "restore_damaged": "failed",
            "bad_name": "failed",
            "no_bucket": "failed",
        }
        # Integrity errors and bad arguments fail at once; a missing bucket may appear: it is retried.
        tries = {t: ti.try_number for t, ti in tis.items()}
        assert tries == {"restore_damaged": 1, "bad_name": 1, "no_bucket": 3}
    text = check_secrets(airflow_conns, capfd, caplog, "t_failures")
    assert "of backup 'damaged_1'" in text
    assert "does not match its manifest" in text
    assert "Invalid backup name 'nightly-2026'" in text
    assert "Bucket 'no-such-bucket-x1' does not exist" in text


def test_hook_test_connection(
    airflow_conns: Conns, lite_client: MilvusClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = MilvusBackupHook().test_connection()
    assert ok, message
    assert message.startswith("Connected to Milvus")
    assert "database 'default'" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_DOWN",
        json.dumps(
            {
                "conn_type": "milvus",
                "host": "127.0.0.1",
                "port": 1,
                "login": "root",
                "password": airflow_env.MILVUS_PASSWORD,
                "extra": {"timeout": 2},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_TYPO", json.dumps({"conn_type": "milvus", "host": "/nope/milvus.db"})
    )
    ok, message = MilvusBackupHook(milvus_conn_id="milvus_typo").test_connection()
    assert not ok
    assert message == "Milvus Lite database file /nope/milvus.db does not exist here; check Host or URI."
    ok, message = MilvusBackupHook(milvus_conn_id="milvus_down").test_connection()
    assert not ok
    assert "http://127.0.0.1:1" in message
    assert airflow_env.MILVUS_PASSWORD not in message


@pytest.mark.milvus235
@pytest.mark.slow
def test_deferrable_bulk_import_restore_polls_in_its_trigger(
    airflow_db: Any,
    milvus235: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Milvus 2.3.5 bulk import: submit, defer to MilvusRestoreTrigger, finish in execute_complete."""
    import uuid

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", milvus_conn_json(milvus235.uri))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn_json(milvus235.s3))
    suffix = uuid.uuid4().hex[:8]
    source, backup = f"hello_af_{suffix}", f"bulk_af_{suffix}"
    bucket = milvus235.bucket  # bulk import reads the backup from Milvus' own bucket
    client = open_client(milvus235.uri)
    try:
        hello_milvus(client, name=source, rows=2000)
        MilvusBackupHook(bucket_name=bucket).create_backup(backup, [source])
        with make_dag("t_bulk_restore") as dag:
            MilvusRestoreOperator(
                task_id="restore",
                backup_name=backup,
                collection_suffix="_bulk",
                method="bulk_import",
                deferrable=True,
                poll_interval=1,
                bulk_import_bucket=bucket,
                bucket_name=bucket,
            )
        dr = run_dag(dag)
        assert task_states(dr) == {"restore": "success"}
        result = xcoms("t_bulk_restore", dr.run_id)[("restore", "return_value")]
        assert result["restore"]["method"] == "bulk_import"
        assert result["verify"]["ok"]
        count = client.query(f"{source}_bulk", filter="", output_fields=["count(*)"])[0]["count(*)"]
        assert count == 2000
    finally:
        for name in (source, f"{source}_bulk"):
            if client.has_collection(name):
                client.drop_collection(name)
        client.close()
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert "[DAG TEST] running trigger in line" in text
    # MilvusRestoreTrigger polled the import jobs: "executing" while they run, "success" on the last poll
    # (a fast import may already be done at the first poll, so only the final line is certain).
    final = f"of backup '{backup}': success, 1 of 1 files done, 2000 of 2000 rows"
    assert final in text, text[-3000:]
    assert_no_secrets([airflow_env.MILVUS_PASSWORD, airflow_env.MILVUS_TOKEN, milvus235.s3.secret_key], text)


def test_airflow_home_is_the_temporary_one() -> None:
    assert os.environ["AIRFLOW_HOME"] == str(AIRFLOW_HOME)
