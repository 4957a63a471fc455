"""A server that does not answer GetVersion (Milvus Lite 2.5.1) is assumed recent, and the log says so."""

from __future__ import annotations

import logging

import pytest
from pymilvus.exceptions import MilvusException

from airflow_milvus_backup.engine.client import server_version
from airflow_milvus_backup.engine.restore.capabilities import ServerInfo


class _Client:
    def __init__(self, error: Exception | None, version: str = "v2.3.5") -> None:
        self.error, self.version = error, version

    def get_server_version(self) -> str:
        if self.error:
            raise self.error
        return self.version


def test_unimplemented_get_version_is_assumed_recent_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    error = MilvusException(message="<_InactiveRpcError: status = StatusCode.UNIMPLEMENTED>")
    with caplog.at_level(logging.WARNING):
        version = server_version(_Client(error), "127.0.0.1:19530")  # type: ignore[arg-type]
    assert version == ""
    assert "Milvus at 127.0.0.1:19530 does not report its version (GetVersion unimplemented)" in caplog.text
    server = ServerInfo.detect(version)
    assert server.at_least(2, 5)
    assert not server.lite


def test_other_errors_are_not_swallowed_and_versions_pass_through() -> None:
    assert server_version(_Client(None, "v2.3.5"), "a") == "v2.3.5"  # type: ignore[arg-type]
    with pytest.raises(MilvusException, match="UNAVAILABLE"):
        server_version(_Client(MilvusException(message="UNAVAILABLE")), "a")  # type: ignore[arg-type]
