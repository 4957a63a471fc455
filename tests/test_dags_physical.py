"""The example DAGs on a physical backup (issue 10, item 4).

The nightly DAG with ``MILVUS_BACKUP_MODE=physical`` backs Milvus 2.3.5 up by copying its segment files, and
``milvus_restore_drill``, unchanged, drills that backup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_env import airflow_cli, aws_conn_json, hello_milvus, milvus_conn_json, xcoms

DB = "drill_physical"


@pytest.mark.milvus235
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_drill_drills_a_physical_backup(
    airflow_db: Path, milvus235: Any, s3_server: Any, bucket: str
) -> None:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine import BackupEngine, S3Storage

    root = MilvusClient(milvus235.uri)
    if DB not in root.list_databases():
        root.create_database(DB)
    root.close()
    client = MilvusClient(milvus235.uri, db_name=DB)
    try:
        for name in client.list_collections():
            client.drop_collection(name)
        hello_milvus(client, rows=1500)
        client.delete("hello_milvus", filter="pk < 100")
    finally:
        client.close()
    conn = json.loads(milvus_conn_json(milvus235.uri, db_name=DB))
    conn["extra"].update(
        milvus_bucket=milvus235.bucket,
        milvus_root_path=milvus235.root_path,
        milvus_storage_conn_id="milvus_s3",
    )
    env = {
        "AIRFLOW_CONN_MILVUS_DEFAULT": json.dumps(conn),
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_json(s3_server),
        "AIRFLOW_CONN_MILVUS_S3": aws_conn_json(milvus235.s3),
        "AIRFLOW_VAR_MILVUS_BACKUP_DB": DB,
        "MILVUS_BACKUP_BUCKET": bucket,
        "MILVUS_BACKUP_MODE": "physical",
    }
    for dag_id in ("milvus_nightly_backup", "milvus_restore_drill"):
        result = airflow_cli("dags", "test", dag_id, env=env, timeout=600)
        text = result.stdout + result.stderr
        assert result.returncode == 0, f"{dag_id} failed:\n{text[-6000:]}"
        assert "state=success" in text, f"{dag_id} failed:\n{text[-6000:]}"

    storage = S3Storage(s3_server.client(), bucket, "backup")
    (listed,) = [b for b in BackupEngine(storage).list() if b["name"].startswith("milvus_nightly_backup_")]
    assert listed["kind"] == "physical"
    report = xcoms("milvus_restore_drill")[("drill_report", "return_value")]
    assert report["backup_name"] == listed["name"]
    assert report["verified"] is True
    (drilled,) = report["collections"]
    assert (drilled["source"], drilled["target"]) == (f"{DB}.hello_milvus", f"{DB}.hello_milvus_drill")
    assert drilled["rows"] == 1400  # the deletes carried over
    assert drilled["data_equal"] is True
