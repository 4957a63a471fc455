"""engine.client: which connection failures are worth connecting again for."""

from __future__ import annotations

from pymilvus.exceptions import MilvusException

from airflow_milvus_backup.engine.client import _goaway


class _RpcError(Exception):
    """Stands in for grpc's _InactiveRpcError (its text is what pymilvus and we look at)."""


def _wrapped(details: str) -> MilvusException:
    try:
        try:
            raise _RpcError(f"status = StatusCode.UNAVAILABLE details = {details!r}")
        except _RpcError as rpc:
            raise MilvusException(
                code=2, message="Fail connecting to server on 127.0.0.1:1, illegal connection params"
            ) from rpc
    except MilvusException as e:
        return e


def test_goaway_is_recognised_through_the_pymilvus_wrapper() -> None:
    assert _goaway(_wrapped("Too many pings"))
    assert _goaway(_RpcError("GOAWAY received; Error code: 11; too_many_pings"))


def test_other_connection_failures_are_not_goaway() -> None:
    assert not _goaway(_wrapped("failed to connect to all addresses; connection refused"))
    assert not _goaway(MilvusException(code=1800, message="user hasn't authenticated"))
