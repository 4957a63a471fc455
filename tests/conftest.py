"""Pytest fixtures that start real servers (see servers.py).

Session-scoped servers (each is started on first use and stopped at session end):

* ``s3_server``          - :class:`servers.S3Server` (rclone serve s3) shared by the session.
* ``moto_server``        - :class:`servers.MotoS3Server` (in-memory moto S3).
* ``milvus_lite_server`` - :class:`servers.MilvusLiteServer` (``milvus-lite server`` over gRPC).
* ``milvus235``          - :class:`servers.Milvus235Server`, a real Milvus 2.3.5 standalone. It stores its
  data on its **own** S3Server (``milvus235.s3``, bucket ``milvus235.bucket``, prefix
  ``milvus235.root_path``), not on ``s3_server``: fault tests may stop/restart ``s3_server`` (or
  ``milvus235.s3``) without one breaking the other, and backup buckets stay free of Milvus' own files.

Function-scoped:

* ``bucket``     - name of a fresh, empty bucket on ``s3_server``.
* ``lite_uri``   - ``<tmp_path>/milvus.db`` (str) for embedded Milvus Lite; its in-process server is
  released after the test.
* ``lite_client`` - a ``pymilvus.MilvusClient(lite_uri)``, closed after the test.

Test modules can ``import servers`` (this directory is on sys.path).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from servers import Milvus235Server, MilvusLiteServer, MotoS3Server, S3Server  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymilvus import MilvusClient


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An rclone S3 server on 127.0.0.1 (data in a session temp dir), stopped at session end."""
    server = S3Server(tmp_path_factory.mktemp("s3-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    """A moto S3 server on 127.0.0.1, stopped at session end."""
    server = MotoS3Server(tmp_path_factory.mktemp("moto-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus_lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    """A ``milvus-lite server`` on 127.0.0.1 (``.uri``), stopped at session end."""
    server = MilvusLiteServer(tmp_path_factory.mktemp("milvus-lite-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


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
