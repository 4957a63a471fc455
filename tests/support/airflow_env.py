"""Shared Airflow test setup: a temporary AIRFLOW_HOME with SQLite, migrated once per session.

Import this module before anything imports Airflow (it sets ``AIRFLOW_HOME`` and friends in ``os.environ``
at import time; Airflow reads them once, when it is first imported). ``tests/conftest.py`` registers it as a
plugin (``pytest_plugins``), so its fixtures ``airflow_db`` and ``airflow_conns`` serve every test module and
it is imported before any of them; a child process imports it first itself::

    from tests.support import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported

Connections are ``AIRFLOW_CONN_*`` environment variables (JSON): outside a running task, and in triggers
run by ``dag.test()``, they are the only place Airflow looks.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pymilvus import MilvusClient

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")

# Real-looking secrets: Milvus Lite ignores credentials, so any value works, and the tests search every log
# and XCom for them.
MILVUS_USER = "backup_operator"
MILVUS_PASSWORD = "Mv-pw-7f3a9c1e5b2d4f60a8"
MILVUS_TOKEN = "mvtok-9b8c7d6e5f4a3b2c1d0e-f1a2"

if "airflow.configuration" in sys.modules and "AIRFLOW_TEST_HOME_OWNER" not in os.environ:
    raise RuntimeError(
        "Airflow was imported before tests/support/airflow_env.py could point AIRFLOW_HOME at a temporary "
        "directory; import tests.support.airflow_env first."
    )

_HOME = Path(os.environ.get("AIRFLOW_TEST_HOME") or tempfile.mkdtemp(prefix="airflow-home-"))
ENV: dict[str, str] = {
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_HOME / "logs"),
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW_TEST_HOME_OWNER": "airflow_env",
}
os.environ.update(ENV)
AIRFLOW_HOME = _HOME

_migrated = threading.Lock()
_migrated_done: list[bool] = []


def airflow_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command with the test AIRFLOW_HOME (and ``env`` on top); return the result."""
    full_env = {**os.environ, **ENV, **(env or {})}
    return subprocess.run(
        [AIRFLOW_BIN, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def migrate_db() -> None:
    """Run ``airflow db migrate`` once per session."""
    with _migrated:
        if _migrated_done:
            return
        result = airflow_cli("db", "migrate")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        _migrated_done.append(True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The migrated SQLite metadata database of this session's AIRFLOW_HOME."""
    migrate_db()
    return AIRFLOW_HOME


def milvus_conn_json(uri: str, *, db_name: str | None = None) -> str:
    """The ``milvus_default`` connection (JSON) for a URI or a Milvus Lite path, with real-looking secrets."""
    conn: dict[str, Any] = {
        "conn_type": "milvus",
        "host": uri,
        "login": MILVUS_USER,
        "password": MILVUS_PASSWORD,
        "extra": {"token": MILVUS_TOKEN, "timeout": 30},
    }
    if db_name:
        conn["schema"] = db_name
    return json.dumps(conn)


def aws_conn_json(s3_server: Any) -> str:
    """The ``aws_default`` connection (JSON) for the rclone S3 test server."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": s3_server.access_key,
            "password": s3_server.secret_key,
            "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
        }
    )


@dataclass
class Conns:
    """What ``airflow_conns`` set up: the Milvus Lite path, the bucket and the S3 server."""

    lite_uri: str
    bucket: str
    s3: Any
    env: dict[str, str]

    @property
    def secrets(self) -> list[str]:
        """Every secret value that must never appear in a log or an XCom."""
        return [MILVUS_PASSWORD, MILVUS_TOKEN, self.s3.secret_key]


@pytest.fixture
def airflow_conns(
    airflow_db: Path, lite_uri: str, bucket: str, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Conns:
    """``AIRFLOW_CONN_MILVUS_DEFAULT`` (Milvus Lite file) and ``AIRFLOW_CONN_AWS_DEFAULT`` (rclone S3), and
    ``MILVUS_BACKUP_BUCKET`` (a fresh bucket)."""
    env = {
        "AIRFLOW_CONN_MILVUS_DEFAULT": milvus_conn_json(lite_uri),
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_json(s3_server),
        "MILVUS_BACKUP_BUCKET": bucket,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Conns(lite_uri=lite_uri, bucket=bucket, s3=s3_server, env=env)


def hello_milvus(client: MilvusClient, name: str = "hello_milvus", rows: int = 3000, seed: int = 7) -> None:
    """Create Milvus Backup's ``hello_milvus``: int64 pk, double ``random``, varchar ``comment``, 8-d
    ``embeddings``, with an index, and ``rows`` rows."""
    import numpy as np
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="hello_milvus")
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("random", DataType.DOUBLE)
    schema.add_field("comment", DataType.VARCHAR, max_length=200)
    schema.add_field("embeddings", DataType.FLOAT_VECTOR, dim=8)
    index = client.prepare_index_params()
    index.add_index("embeddings", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    rng = np.random.default_rng(seed)
    vectors = rng.random((rows, 8), dtype=np.float32)
    data = [
        {"pk": i, "random": float(rng.random()), "comment": f"comment {i}", "embeddings": vectors[i].tolist()}
        for i in range(rows)
    ]
    for start in range(0, rows, 1000):
        client.insert(name, data[start : start + 1000])
    client.flush(name)


def release_lite(uri: str) -> None:
    """Stop this process' embedded Milvus Lite server of ``uri`` (so another process may open the file)."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


def register_dag(dag: Any) -> None:
    """Write a DAG defined in a test into the metadata DB, as the DAG processor would (``dag.test()`` needs
    the DAG serialized; test DAGs live in no bundle)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.commit()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """Register and ``dag.test()`` a DAG; return the DagRun."""
    register_dag(dag)
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    """Return ``{task_id: state}`` of a DagRun."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def xcoms(dag_id: str, run_id: str | None = None) -> dict[tuple[str, str], Any]:
    """Return every XCom of a DAG (one run, or all) as ``{(task_id, key): value}``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        q = session.query(XComModel).filter(XComModel.dag_id == dag_id)
        if run_id:
            q = q.filter(XComModel.run_id == run_id)
        return {(x.task_id, x.key): XComModel.deserialize_value(x) for x in q.all()}


def log_files_text() -> str:
    """Return the text of every file under AIRFLOW_HOME/logs."""
    out = []
    logs = AIRFLOW_HOME / "logs"
    if logs.exists():
        for p in logs.rglob("*"):
            if p.is_file():
                out.append(p.read_text(errors="replace"))
    return "\n".join(out)


def assert_no_secrets(secrets: list[str], *texts: str) -> None:
    """Fail if any secret value appears in any text."""
    for text in texts:
        for s in secrets:
            assert s not in text, (
                f"secret {s[:4]}... leaked: ...{text[max(0, text.find(s) - 300) : text.find(s) + 50]}"
            )


def cleanup_home() -> None:
    """Remove the temporary AIRFLOW_HOME (called at interpreter exit)."""
    if "AIRFLOW_TEST_HOME" not in os.environ:
        shutil.rmtree(_HOME, ignore_errors=True)


atexit.register(cleanup_home)
