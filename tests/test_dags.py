"""The example DAGs import, and ``airflow dags test`` runs each against Milvus Lite and the S3 server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_env import (
    DAGS_FOLDER,
    MILVUS_PASSWORD,
    MILVUS_TOKEN,
    airflow_cli,
    assert_no_secrets,
    aws_conn_json,
    hello_milvus,
    log_files_text,
    milvus_conn_json,
    release_lite,
    xcoms,
)

EXAMPLE_DAGS = {"milvus_nightly_backup", "milvus_restore_drill", "milvus_restore"}


def test_every_example_dag_imports_without_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXAMPLE_DAGS
    nightly = bag.dags["milvus_nightly_backup"]
    assert [t.task_id for t in nightly.topological_sort()] == ["backup", "retention"]
    assert nightly.task_dict["retention"].keep_last == 7
    assert nightly.task_dict["backup"].verify
    drill = bag.dags["milvus_restore_drill"]
    # The drill runs after each nightly backup: scheduled on the Asset the backup task updates.
    assert list(drill.timetable.asset_condition.objects) == nightly.task_dict["backup"].outlets
    assert drill.task_dict["drop_drill_collections"].is_teardown
    params = bag.dags["milvus_restore"].params
    assert set(params.keys()) == {
        "backup_name",
        "collections",
        "collection_suffix",
        "collection_renames",
        "target_db_name",
        "drop_existing",
        "skip_create",
        "restore_index",
        "method",
    }
    assert params.get_param("method").schema["enum"] == ["auto", "insert", "bulk_import", "binlog_import"]
    # Every task that opens Milvus shares one pool: one task at a time on a Milvus Lite file.
    tasks = [(dag_id, t) for dag_id in EXAMPLE_DAGS for t in bag.dags[dag_id].tasks]
    in_pool = {(dag_id, t.task_id) for dag_id, t in tasks if t.pool == "milvus_lite"}
    assert in_pool == {
        ("milvus_nightly_backup", "backup"),
        ("milvus_restore_drill", "restore"),
        ("milvus_restore_drill", "drop_drill_collections"),
        ("milvus_restore", "restore"),
    }


@pytest.fixture
def example_env(airflow_db: Path, tmp_path: Path, s3_server: Any, bucket: str) -> dict[str, str]:
    """A Milvus Lite file with ``hello_milvus`` (3,000 rows), released for the ``airflow`` processes."""
    from pymilvus import MilvusClient

    lite = str(tmp_path / "milvus.db")
    client = MilvusClient(lite)
    try:
        hello_milvus(client, rows=3000)
    finally:
        client.close()
        release_lite(lite)
    return {
        "AIRFLOW_CONN_MILVUS_DEFAULT": milvus_conn_json(lite),
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_json(s3_server),
        "MILVUS_BACKUP_BUCKET": bucket,
        "LITE": lite,
        "S3_SECRET": s3_server.secret_key,
    }


def _dags_test(dag_id: str, env: dict[str, str], *extra: str) -> str:
    result = airflow_cli("dags", "test", dag_id, *extra, env=env, timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow dags test {dag_id} failed:\n{text[-6000:]}"
    assert f"DagRun Finished: dag_id={dag_id}" in text, text[-3000:]
    assert "state=success" in text, text[-3000:]
    return text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_airflow_dags_test_runs_the_three_example_dags(example_env: dict[str, str]) -> None:
    from pymilvus import MilvusClient

    outputs = [_dags_test("milvus_nightly_backup", example_env)]
    outputs.append(_dags_test("milvus_restore_drill", example_env))
    conf = {"backup_name": "latest", "collection_suffix": "_restored", "method": "insert"}
    outputs.append(_dags_test("milvus_restore", example_env, "-c", json.dumps(conf)))

    nightly, drill, restore = outputs
    assert "Backup milvus_nightly_backup_2" in nightly
    assert "Verified backup" in nightly
    assert "Drill report:" in drill
    report = xcoms("milvus_restore_drill")[("drill_report", "return_value")]
    assert report["verified"] is True
    (drilled,) = report["collections"]
    assert (drilled["source"], drilled["target"]) == ("default.hello_milvus", "default.hello_milvus_drill")
    assert drilled["rows"] == 3000
    assert drilled["data_equal"] is True
    # Milvus Lite forgets a file's load state between processes: verify_restore loads the source for the
    # search comparison and releases it again.
    assert drilled["search_overlap"] == 1.0
    assert "Restore" in restore
    assert "verified" in restore

    client = MilvusClient(example_env["LITE"])
    try:
        assert not client.has_collection("hello_milvus_drill")  # the teardown dropped it
        client.load_collection("hello_milvus_restored")
        assert (
            client.query("hello_milvus_restored", filter="", output_fields=["count(*)"])[0]["count(*)"]
            == 3000
        )
    finally:
        client.close()
        release_lite(example_env["LITE"])
    all_xcoms = json.dumps([list(xcoms(d).values()) for d in EXAMPLE_DAGS], default=str)
    assert_no_secrets(
        [MILVUS_PASSWORD, MILVUS_TOKEN, example_env["S3_SECRET"]], *outputs, log_files_text(), all_xcoms
    )
