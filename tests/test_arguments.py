"""Bad arguments are refused before any work, with one message naming the argument; Airflow does not retry.

Real parts: Milvus Lite, a local backup directory, the rclone S3 server and a real Airflow (``dag.test()``)
for the operators. Each test checks what is left: no target collection, no backup folder, no backup deleted.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pendulum
import pytest
from airflow.sdk import DAG
from pymilvus import MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    InvalidArgumentError,
    LocalStorage,
    MilvusParams,
    S3Storage,
)
from airflow_milvus_backup.engine.arguments import count, directory, duration, seconds
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from airflow_milvus_backup.operators import MilvusBackupRetentionOperator, MilvusRestoreOperator
from tests.support import airflow_env
from tests.support.airflow_env import Conns, hello_milvus, run_dag
from tests.support.datagen import create_vector_collection

if TYPE_CHECKING:
    from tests.support.s3 import S3Server

pytestmark = pytest.mark.timeout(300)


# -------------------------------------------------------------------------------------------- pure checks
@pytest.mark.parametrize(
    ("value", "minimum", "ok"),
    [(3, 1, 3), ("7", 0, 7), (2.0, 1, 2), (0, 0, 0), (2.7, 1, None), (0, 1, None), (-1, 0, None)]
    + [(math.inf, 1, None), (math.nan, 1, None), ("x", 1, None), (True, 1, None), (10**12, 1, None)],
)
def test_count(value: Any, minimum: int, ok: int | None) -> None:
    if ok is None:
        with pytest.raises(InvalidArgumentError, match="^n must be"):
            count(value, "n", minimum=minimum)
    else:
        assert count(value, "n", minimum=minimum) == ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [(None, None), ("", None), (0, timedelta(0)), ("86400", timedelta(days=1)), (timedelta(hours=2), None)]
    + [(math.inf, "x"), (1e15, "x"), (-1, "x"), ("soon", "x"), (timedelta(days=-1), "x"), (1e300, "x")],
)
def test_duration(value: Any, ok: Any) -> None:
    if ok == "x":
        with pytest.raises(InvalidArgumentError, match="^max_age must"):
            duration(value, "max_age")
    else:
        assert duration(value, "max_age") == (value if isinstance(value, timedelta) else ok)


def test_seconds_and_directory(tmp_path: Path) -> None:
    assert seconds("2.5", "t") == 2.5
    for bad in (math.inf, -1, "nan", None):
        with pytest.raises(InvalidArgumentError, match="^t must be"):
            seconds(bad, "t")
    assert directory(str(tmp_path), "tmp_dir") == str(tmp_path)
    assert directory(None, "tmp_dir") is None
    with pytest.raises(InvalidArgumentError, match="tmp_dir .*/nope' is not an existing directory"):
        directory(str(tmp_path / "nope"), "tmp_dir")


# -------------------------------------------------------------------------------------------- the engine
def make_collection(client: MilvusClient, name: str) -> None:
    create_vector_collection(client, name, dim=4)
    client.insert(name, [{"id": i, "vec": [0.1, 0.2, 0.3, float(i)]} for i in range(50)])


def test_a_missing_tmp_dir_is_refused_before_a_target_or_a_backup_exists(
    lite_uri: str, tmp_path: Path
) -> None:
    client = MilvusClient(lite_uri)
    make_collection(client, "c")
    params = MilvusParams(uri=lite_uri)
    storage = LocalStorage(tmp_path / "backups")
    BackupEngine(storage, progress_interval=0).create(params, "ok")
    missing = str(tmp_path / "no-such-dir")
    with pytest.raises(InvalidArgumentError, match=r"tmp_dir '.*no-such-dir' is not an existing directory"):
        RestoreEngine(storage, tmp_dir=missing).restore(params, "ok", collection_suffix="_r")
    assert not client.has_collection("c_r"), "the target was created before the argument was checked"
    assert RestoreEngine(storage).list_restores("ok") == []
    with pytest.raises(InvalidArgumentError, match="tmp_dir"):
        BackupEngine(storage, tmp_dir=missing).create(params, "never")
    assert sorted(b["name"] for b in BackupEngine(storage).list()) == ["ok"]
    client.close()


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda st: BackupEngine(st, parallelism=0), "parallelism"),
        (lambda st: BackupEngine(st, parallelism=2.5), "parallelism"),
        (lambda st: BackupEngine(st, file_bytes=-1), "file_bytes"),
        (lambda st: BackupEngine(st, batch_bytes=0), "batch_bytes"),
        (lambda st: BackupEngine(st, progress_interval=math.inf), "progress_interval"),
        (lambda st: RestoreEngine(st, parallelism=-3), "parallelism"),
        (lambda st: RestoreEngine(st, insert_batch_rows=2.5), "insert_batch_rows"),
        (lambda st: RestoreEngine(st, insert_batch_bytes=-1), "insert_batch_bytes"),
        (lambda st: RestoreEngine(st, poll_interval=math.inf), "poll_interval"),
        (lambda st: RestoreEngine(st, poll_interval=0), "poll_interval"),
    ],
)
def test_engine_arguments_are_refused_naming_them(tmp_path: Path, make: Any, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"^{name} must"):
        make(LocalStorage(tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"retry_attempts": 2.5}, "retry_attempts"),
        ({"retry_seconds": math.inf}, "retry_seconds"),
        ({"retry_seconds": -1}, "retry_seconds"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_s3_arguments_are_refused_naming_them(s3_server: S3Server, kwargs: dict[str, Any], name: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
    )
    with pytest.raises(InvalidArgumentError, match=rf"^{name} must"):
        S3Storage(client, "b", **kwargs)


@pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan])
def test_milvus_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(InvalidArgumentError, match="the Milvus timeout must be"):
        MilvusParams(uri="http://127.0.0.1:19530", timeout=timeout)


# ------------------------------------------------------------------------------------ operators, in Airflow
def test_bad_operator_arguments_fail_the_task_at_once_and_change_nothing(
    airflow_conns: Conns,
    lite_client: MilvusClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello_milvus(lite_client, rows=50)
    bucket = airflow_conns.bucket
    hook = MilvusBackupHook(bucket_name=bucket)
    for i in range(1, 4):
        hook.create_backup(f"arg_{i}")
    bad_retention = {
        "keep_fraction": {"keep_last": 2.7},
        "keep_text": {"keep_last": "two"},
        "age_inf": {"max_age": math.inf},
        "age_huge": {"max_age": 1e15},
        "age_nan": {"max_age": "nan"},
        "grace_negative": {"keep_last": 1, "partial_grace_period": -5},
    }
    bad_restore = {
        "top_k_fraction": {"top_k": 2.5},
        "searches_inf": {"sample_searches": math.inf},
        "poll_inf": {"poll_interval": math.inf},
    }
    with DAG(
        f"t_arguments_{uuid.uuid4().hex[:6]}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    ) as dag:
        for task_id, kw in bad_retention.items():
            MilvusBackupRetentionOperator(task_id=task_id, bucket_name=bucket, **kw)
        for task_id, kw in bad_restore.items():
            MilvusRestoreOperator(
                task_id=task_id,
                backup_name="arg_1",
                collection_suffix=f"_{task_id}",
                bucket_name=bucket,
                **kw,
            )
    dr = run_dag(dag)
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = {ti.task_id: ti for ti in dr.get_task_instances(session=session)}
        states = {t: str(ti.state) for t, ti in tis.items()}
        tries = {t: ti.try_number for t, ti in tis.items()}
    assert set(states.values()) == {"failed"}, states
    assert set(tries.values()) == {1}, f"Airflow retried a bad argument: {tries}"
    assert sorted(b["name"] for b in hook.list_backups()) == ["arg_1", "arg_2", "arg_3"]
    assert not [c for c in lite_client.list_collections() if c != "hello_milvus"]
    out = capfd.readouterr()
    logs = out.out + out.err + caplog.text + airflow_env.log_files_text()
    for text in (
        "keep_last must be a whole number, got 2.7",
        "keep_last must be a whole number from 0",
        "max_age must be a timedelta or a number of seconds",
        "partial_grace_period must not be negative",
        "top_k must be a whole number, got 2.5",
        "sample_searches must be a whole number from 0",
        "poll_interval must be a number of seconds",
    ):
        assert text in logs, f"no {text!r} in the task logs"
    assert "OverflowError" not in logs
