"""Milvus Lite for the tests, and the client the tests open on any Milvus.

* :class:`MilvusLiteServer` - ``milvus-lite server`` (gRPC Milvus Lite over a data directory) on 127.0.0.1
  and a free port.
* :func:`open_client` - a ``MilvusClient`` opened as the engine opens one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tests.support.process import HOST, ProcessServer, find_executable, port_is_open

if TYPE_CHECKING:
    from pathlib import Path

    from pymilvus import MilvusClient


def milvus_answers(uri: str, timeout: float = 5.0, token: str = "") -> bool:
    """True if a pymilvus MilvusClient at uri (logged in with ``token`` when given) can list collections."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=timeout, token=token)
    try:
        client.list_collections(timeout=timeout)
    finally:
        client.close()
    return True


def open_client(uri: str, **kwargs: Any) -> MilvusClient:
    """Open a ``MilvusClient`` as the engine does (``engine.client.connect``): a channel of its own, and
    connecting again when the server answers with GOAWAY ("too many pings" on a shared idle connection).

    :param kwargs: other :class:`MilvusParams` fields (``token``, ``timeout``, ...).
    """
    from airflow_milvus_backup.engine.client import MilvusParams, connect

    return connect(MilvusParams(uri=uri, **kwargs))


class MilvusLiteServer(ProcessServer):
    """``milvus-lite server``: Milvus Lite over gRPC; data in ``data_dir/data``.

    It ignores SIGINT, so it is stopped with SIGTERM (then SIGKILL).
    """

    name = "milvus-lite"
    default_start_timeout = 60.0

    def __init__(self, data_dir: Path | str, port: int | None = None, max_workers: int = 10) -> None:
        super().__init__(data_dir, port)
        self.max_workers = max_workers

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _command(self) -> list[str]:
        return [
            find_executable("milvus-lite"),
            "server",
            "--data-dir",
            str(self.db_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--max-workers",
            str(self.max_workers),
        ]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def _is_ready(self) -> bool:
        return port_is_open(self.port) and milvus_answers(self.uri, timeout=3)
