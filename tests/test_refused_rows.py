"""Rows Milvus refuses fail a restore at once, naming the data file and the field; they are not retried.

Real servers: Milvus Lite (embedded, and the Milvus 2.3.5 standalone where marked). The backups are
hand-edited: a data file is rewritten with values of the wrong type or too long for the field, and the
manifest's size and sha256 are updated, as a buggy writer or a hostile bucket could do.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusConnectionError, MilvusParams
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import MilvusBackupError
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.storage import file_sha256
from airflow_milvus_backup.exceptions import to_airflow_error
from tests.support.datagen import create_vector_collection
from tests.support.lite import open_client

pytestmark = pytest.mark.timeout(300)


def make_collection(client: MilvusClient, name: str, rows: int = 100) -> None:
    # a field name with "auth" in it: the old classifier read any message naming it as a refused login
    fields = [
        ("auth_code", DataType.VARCHAR, {"max_length": 8}),
        ("title", DataType.VARCHAR, {"max_length": 64}),
    ]
    create_vector_collection(client, name, dim=4, fields=fields)
    rng = np.random.default_rng(5)
    client.insert(
        name,
        [
            {"id": i, "vec": rng.random(4, dtype=np.float32).tolist(), "auth_code": "ok", "title": f"t{i}"}
            for i in range(rows)
        ],
    )
    client.flush(name)


def tamper(storage: LocalStorage, backup: str, column: str, values: pa.Array) -> str:
    """Rewrite the first data file with ``column`` replaced; fix its manifest entry; return its key."""
    m = json.loads(storage.get_bytes(mf.manifest_key(backup)))
    entry = next(f for d in m["collections"][0]["data"] for f in d["files"])
    path = storage.dir / backup / entry["key"]
    table = pq.read_table(path)
    i = table.column_names.index(column)
    table = table.set_column(i, pa.field(column, values.type), values)
    pq.write_table(table, path)
    entry["sha256"], entry["size"] = file_sha256(path)
    storage.put_bytes(mf.manifest_key(backup), mf.dumps(m))
    return f"{backup}/{entry['key']}"


CASES: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    # a type mismatch: pymilvus raises DataNotMatchException (code 1, the old "connection failure" code)
    # (refused by the integrity check while planning, before Milvus sees the rows)
    "int_for_varchar": (
        "title",
        lambda n: pa.array(list(range(n)), pa.int64()),
        ("title", "int64", "string"),
    ),
    # a value the server refuses, in a field whose name holds "auth"
    "too_long": ("auth_code", lambda n: pa.array(["x" * 30] * n), ("auth_code", "max_length")),
}


def run_case(client: MilvusClient, params: MilvusParams, tmp_path: Path, case: str) -> None:
    column, values, names = CASES[case]
    coll = f"refused_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll)
    storage = LocalStorage(tmp_path / "backups")
    BackupEngine(storage, progress_interval=0).create(params, "b", [coll])
    key = tamper(storage, "b", column, values(100))
    began = time.monotonic()
    with pytest.raises(MilvusBackupError) as e:
        RestoreEngine(storage, progress_interval=0).restore(params, "b", collection_suffix="_r")
    took = time.monotonic() - began
    err = e.value
    msg = str(err)
    assert not isinstance(err, MilvusConnectionError), msg
    assert "Check that Milvus is running" not in msg
    assert key in msg, msg
    for name in names:
        assert name in msg, msg
    assert not err.retryable
    assert isinstance(to_airflow_error(err), AirflowFailException), "Airflow must not retry it"
    assert took < 5, f"a refused row took {took:.1f} s (retried?)"
    # the status names the failure too, where the restore got as far as writing one (a file whose columns
    # do not fit the manifest is refused by the integrity check while planning, before any status)
    statuses = RestoreEngine(storage).list_restores("b")
    assert [(s["state"], key in s["error"]) for s in statuses] in ([], [("failed", True)])
    assert not [n for n in client.list_collections() if n == f"{coll}_r"], "no target is left behind"
    for name in client.list_collections():
        if name.startswith(coll):
            client.drop_collection(name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_rows_on_milvus_lite(lite_uri: str, tmp_path: Path, case: str) -> None:
    client = MilvusClient(lite_uri)
    try:
        run_case(client, MilvusParams(uri=lite_uri), tmp_path, case)
    finally:
        client.close()


@pytest.mark.milvus235
@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_rows_on_milvus_235(milvus235: Any, tmp_path: Path, case: str) -> None:
    client = open_client(milvus235.uri)
    try:
        run_case(client, MilvusParams(uri=milvus235.uri), tmp_path, case)
    finally:
        client.close()


@pytest.mark.milvus235
def test_a_row_milvus_235_refuses_raises_row_rejected_at_once(milvus235: Any, tmp_path: Path) -> None:
    """A value only Milvus refuses (a NaN in a float vector passes the integrity check): RowRejectedError."""
    from airflow_milvus_backup.engine.errors import RowRejectedError

    client = open_client(milvus235.uri)
    params = MilvusParams(uri=milvus235.uri)
    coll = f"nan_{uuid.uuid4().hex[:6]}"
    try:
        make_collection(client, coll)
        storage = LocalStorage(tmp_path / "backups")
        BackupEngine(storage, progress_interval=0).create(params, "b", [coll])
        m = json.loads(storage.get_bytes(mf.manifest_key("b")))
        entry = m["collections"][0]["data"][0]["files"][0]
        vec_type = pq.read_table(storage.dir / "b" / entry["key"]).schema.field("vec").type
        key = tamper(storage, "b", "vec", pa.array([[float("nan")] * 4] * 100, vec_type))
        began = time.monotonic()
        with pytest.raises(RowRejectedError) as e:
            RestoreEngine(storage, progress_interval=0).restore(params, "b", collection_suffix="_r")
        took = time.monotonic() - began
        msg = str(e.value)
        assert key in msg, msg
        assert "field 'vec'" in msg, msg
        assert "FLOAT_VECTOR" in msg, msg
        assert "Check that Milvus is running" not in msg
        assert took < 5, f"a refused row took {took:.1f} s (retried?)"
        assert isinstance(to_airflow_error(e.value), AirflowFailException), "Airflow must not retry it"
        [status] = RestoreEngine(storage).list_restores("b")
        assert status["state"] == "failed"
        assert key in status["error"]
    finally:
        for name in client.list_collections():
            if name.startswith(coll):
                client.drop_collection(name)
        client.close()


# ---------------------------------------------------------------------------------------------- pure logic
def test_classify_by_kind_not_by_words_in_names() -> None:
    import grpc
    from pymilvus.exceptions import (
        ConnectError,
        DataNotMatchException,
        MilvusException,
        MilvusUnavailableException,
        ParamError,
    )

    from airflow_milvus_backup.engine.failures import FailureKind, classify, retry_worthy

    class Rpc(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return "details"

    assert classify(DataNotMatchException(message="field {auth} should be int64")) is FailureKind.REFUSED
    assert classify(ParamError(message="timeout must be positive")) is FailureKind.REFUSED
    # Milvus Lite's code for it; unknown codes are neither retried nor read as a connection failure
    lite = MilvusException(6, "VARCHAR field 'auth_code' value length 8 exceeds")
    assert classify(lite) is FailureKind.OTHER
    assert not retry_worthy(lite)
    assert classify(MilvusException(1100, "length of varchar field timeout_ms exceeds max length")) is (
        FailureKind.REFUSED
    )
    assert classify(MilvusException(8, "rate limit exceeded[rate=10]")) is FailureKind.TRANSIENT
    assert classify(MilvusException(9, "deny to write, reason: memory quota exhausted")) is (
        FailureKind.TRANSIENT
    )
    assert classify(MilvusException(2, "Fail connecting to server on 127.0.0.1:1")) is FailureKind.UNREACHABLE
    assert classify(ConnectError(message="x")) is FailureKind.UNREACHABLE
    assert classify(MilvusUnavailableException(message="x")) is FailureKind.UNREACHABLE
    assert classify(Rpc(grpc.StatusCode.UNAVAILABLE)) is FailureKind.UNREACHABLE
    assert classify(Rpc(grpc.StatusCode.DEADLINE_EXCEEDED)) is FailureKind.UNREACHABLE
    assert classify(Rpc(grpc.StatusCode.RESOURCE_EXHAUSTED)) is FailureKind.TRANSIENT
    assert classify(Rpc(grpc.StatusCode.UNAUTHENTICATED)) is FailureKind.AUTH
    assert classify(Rpc(grpc.StatusCode.INVALID_ARGUMENT)) is FailureKind.REFUSED
    wrapped = MilvusException(14, "UNAVAILABLE: details")
    wrapped.__cause__ = Rpc(grpc.StatusCode.UNAVAILABLE)
    assert classify(wrapped) is FailureKind.UNREACHABLE
    assert classify(ValueError("timeout")) is FailureKind.OTHER
