"""Pytest fixtures that start real servers (see :mod:`tests.support`).

Session-scoped servers (each is started on first use and stopped at session end):

* ``s3_server``          - :class:`tests.support.s3.S3Server` (rclone serve s3) shared by the session.
* ``moto_server``        - :class:`tests.support.s3.MotoS3Server` (in-memory moto S3).
* ``milvus_lite_server`` - :class:`tests.support.lite.MilvusLiteServer` (``milvus-lite server`` over gRPC).
* ``milvus25``           - :class:`tests.support.lite25.Lite25Server`, Milvus Lite 2.5.1 (``.venv-milvus25``).
* ``airflow_cluster``    - :class:`tests.support.airflow_server.AirflowCluster`: a real Airflow (api-server,
  scheduler, dag-processor, triggerer) on ``dags/``, ``milvus_default`` on ``milvus_lite_server``,
  ``aws_default`` on ``s3_server``, its own bucket (``.bucket``), users ``admin`` and ``viewer``.
* ``milvus235_auth``     - the same with authorization on (``root:Milvus``), for the RBAC tests.
* ``milvus235``          - :class:`tests.support.milvus235.Milvus235Server`, a real Milvus 2.3.5 standalone.
  It stores its data on its **own** S3Server (``milvus235.s3``, bucket ``milvus235.bucket``, prefix
  ``milvus235.root_path``), not on ``s3_server``: fault tests may stop/restart ``s3_server`` (or
  ``milvus235.s3``) without one breaking the other, and backup buckets stay free of Milvus' own files.

Function-scoped:

* ``bucket``     - name of a fresh, empty bucket on ``s3_server``.
* ``lite_uri``   - ``<tmp_path>/milvus.db`` (str) for embedded Milvus Lite; its in-process server is
  released after the test.
* ``lite_client`` - a ``pymilvus.MilvusClient(lite_uri)``, closed after the test.

Test modules import the servers and helpers from :mod:`tests.support` (``from tests.support.s3 import
S3Server``). The Airflow fixtures (``airflow_db``, ``airflow_conns``) are those of the plugin
:mod:`tests.support.airflow_env`, registered here: that also imports it before any test module is
collected, so ``AIRFLOW_HOME`` points at a temporary directory before anything imports Airflow.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypeVar

import pytest

from tests.support.airflow_server import AirflowCluster
from tests.support.lite import MilvusLiteServer
from tests.support.lite25 import Lite25Server
from tests.support.milvus235 import Milvus235Server
from tests.support.process import ProcessServer
from tests.support.s3 import MotoS3Server, S3Server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pymilvus import MilvusClient

# its fixtures airflow_db and airflow_conns; importing it sets AIRFLOW_HOME before any test imports Airflow
pytest_plugins = ["tests.support.airflow_env"]

_Server = TypeVar("_Server", bound=ProcessServer)


def _serve(server: _Server) -> Iterator[_Server]:
    """Start server, yield it, and stop it afterwards (also when the start fails half way)."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An rclone S3 server on 127.0.0.1 (data in a session temp dir), stopped at session end."""
    yield from _serve(S3Server(tmp_path_factory.mktemp("s3-server")))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    """A moto S3 server on 127.0.0.1, stopped at session end."""
    yield from _serve(MotoS3Server(tmp_path_factory.mktemp("moto-server")))


@pytest.fixture(scope="session")
def milvus_lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    """A ``milvus-lite server`` on 127.0.0.1 (``.uri``), stopped at session end."""
    yield from _serve(MilvusLiteServer(tmp_path_factory.mktemp("milvus-lite-server")))


@pytest.fixture(scope="session")
def milvus25(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lite25Server]:
    """Milvus Lite 2.5.1 (Milvus 2.5 core, from ``.venv-milvus25``) on 127.0.0.1 (``.uri``), per session."""
    yield from _serve(Lite25Server(tmp_path_factory.mktemp("milvus-lite-25")))


@pytest.fixture(scope="session")
def milvus235(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Milvus235Server]:
    """A Milvus 2.3.5 standalone (``.uri``) on its own rclone S3 server (``.s3``); started lazily."""
    base = tmp_path_factory.mktemp("milvus235")
    s3 = S3Server(base / "s3")
    server = Milvus235Server(base / "milvus", s3)
    try:
        s3.start()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            s3.stop()


@pytest.fixture(scope="session")
def milvus235_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Milvus235Server]:
    """A Milvus 2.3.5 with authorization on (log in as ``root:Milvus``: ``.token``), on its own rclone S3
    server (``.s3``); for the RBAC tests. Started lazily, stopped at session end."""
    base = tmp_path_factory.mktemp("milvus235-auth")
    s3 = S3Server(base / "s3")
    server = Milvus235Server(
        base / "milvus",
        s3,
        extra_config={"common.security.authorizationEnabled": "true"},
        token="root:Milvus",
    )
    try:
        s3.start()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            s3.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A fresh, uniquely named, empty bucket on ``s3_server``."""
    s3_server.ensure_started()  # a previous test may have stopped it and failed before restarting
    return s3_server.create_bucket(f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def lite_uri(tmp_path: Path) -> Iterator[str]:
    """A path for embedded Milvus Lite (``MilvusClient(lite_uri)``); its server is released afterwards."""
    uri = str(tmp_path / "milvus.db")
    yield uri
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


@pytest.fixture
def lite_client(lite_uri: str) -> Iterator[MilvusClient]:
    """An embedded Milvus Lite client on ``lite_uri``, closed after the test."""
    from pymilvus import MilvusClient

    client = MilvusClient(lite_uri)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def airflow_cluster(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, milvus_lite_server: MilvusLiteServer
) -> Iterator[AirflowCluster]:
    """A real Airflow cluster on 127.0.0.1 (one per session, started on first use, ~30 s): the repository's
    DAGs, ``milvus_default`` on ``milvus_lite_server``, ``aws_default`` on ``s3_server``, the bucket
    ``.bucket`` (``MILVUS_BACKUP_BUCKET``), the pool ``milvus_lite`` (1 slot); ``.api("admin")`` /
    ``.api("viewer")`` are REST API clients, ``.token(user)`` a JWT."""
    from tests.support.airflow_env import aws_conn_json, milvus_conn_json

    bucket = s3_server.create_bucket(f"airflow-{uuid.uuid4().hex[:8]}")
    env = {
        "AIRFLOW_CONN_MILVUS_DEFAULT": milvus_conn_json(milvus_lite_server.uri),
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_json(s3_server),
        "MILVUS_BACKUP_BUCKET": bucket,
    }
    cluster = AirflowCluster(
        tmp_path_factory.mktemp("airflow-cluster"), env, bucket=bucket, milvus_uri=milvus_lite_server.uri
    )
    try:
        cluster.start()
        cluster.api("admin").ensure_pool("milvus_lite", 1)
        yield cluster
    finally:
        cluster.stop()


#: Modules with the longest tests (a minute or more each: Airflow processes, Milvus 2.3.5 imports), run first:
#: the test command's two workers take whole modules in collection order, and a long module picked up last
#: left one worker idle for minutes at the end.
SLOW_FIRST = (
    "test_dags.py",
    "test_airflow_cluster.py",
    "test_dags_physical.py",
    "test_backup_memory.py",
    "test_airflow_cli.py",
    "test_lite_and_logs.py",
    "test_physical_restore.py",
    "test_filters.py",
    "test_faults.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run :data:`SLOW_FIRST` modules first, every module's tests in their own order."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
