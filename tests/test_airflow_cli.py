"""The provider through the ``airflow`` command: registration; a ``milvus`` connection added and tested."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.airflow_env import MILVUS_PASSWORD, MILVUS_TOKEN, airflow_cli, release_lite


@pytest.mark.timeout(600)
def test_airflow_cli_lists_the_provider_and_adds_and_tests_a_milvus_connection(
    airflow_db: Path, tmp_path: Path
) -> None:
    from pymilvus import MilvusClient

    lite = str(tmp_path / "cli.db")
    MilvusClient(lite).close()  # an empty Milvus Lite database file
    release_lite(lite)
    extra = json.dumps({"token": MILVUS_TOKEN, "timeout": 20})

    def add_then_test() -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        added = airflow_cli(
            "connections",
            "add",
            "milvus_cli",
            "--conn-type",
            "milvus",
            "--conn-host",
            lite,
            "--conn-login",
            "root",
            "--conn-password",
            MILVUS_PASSWORD,
            "--conn-extra",
            extra,
        )
        tested = airflow_cli(
            "connections", "test", "milvus_cli", env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
        )
        return added, tested

    # Independent commands run side by side (each one starts Airflow: seconds).
    with ThreadPoolExecutor(3) as pool:
        providers = pool.submit(airflow_cli, "providers", "list", "-o", "json")
        hooks = pool.submit(airflow_cli, "providers", "hooks", "-o", "json")
        conn = pool.submit(add_then_test)
        providers_r, hooks_r, (added, tested) = providers.result(), hooks.result(), conn.result()

    assert providers_r.returncode == 0, providers_r.stderr[-2000:]
    listed = {p["package_name"]: p for p in json.loads(providers_r.stdout[providers_r.stdout.index("[") :])}
    assert listed["airflow-milvus-backup"]["version"] == "0.1.0"

    assert hooks_r.returncode == 0, hooks_r.stderr[-2000:]
    hook_rows = json.loads(hooks_r.stdout[hooks_r.stdout.index("[") :])
    milvus = [h for h in hook_rows if h["connection_type"] == "milvus"]
    assert milvus
    assert milvus[0]["class"] == "airflow_milvus_backup.hooks.milvus_backup.MilvusBackupHook"
    assert milvus[0]["package_name"] == "airflow-milvus-backup"
    assert milvus[0]["hook_name"] == "Milvus"

    assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
    assert "Successfully added" in added.stdout
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "Connection success!" in tested.stdout
    for r in (added, tested):
        assert MILVUS_PASSWORD not in r.stdout + r.stderr
        assert MILVUS_TOKEN not in r.stdout + r.stderr
