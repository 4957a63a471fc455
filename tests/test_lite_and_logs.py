"""Milvus Lite's file lock, pymilvus' log lines in task logs, and progress bytes (issue 12, section 4).

* A Milvus Lite file is locked by one process: the Test button must not keep it, and a backup of a file
  another process holds names the lock, the process and the fix.
* Successful runs log no ERROR line: pymilvus' warnings reach the log at their real level, explained once,
  and our code never calls what the server lacks (AllocTimestamp on Milvus Lite).
* The first progress line of a backup counts the Parquet bytes encoded so far.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams, RestoreEngine
from airflow_milvus_backup.engine.errors import MilvusConnectionError, MilvusLiteLockedError
from airflow_milvus_backup.engine.indexes import index_state
from airflow_milvus_backup.engine.lite import lock_holders_from_proc_locks, locked_message
from airflow_milvus_backup.engine.pymilvus_logs import PymilvusLogRouter, route
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from tests.support.airflow_env import (
    ENV,
    airflow_cli,
    hello_milvus,
    milvus_conn_json,
    release_lite,
)
from tests.support.lite import open_client

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parent.parent


def make_lite(path: str, rows: int = 300) -> None:
    """Create ``hello_milvus`` with ``rows`` rows in a Milvus Lite file and release it."""
    from pymilvus import MilvusClient

    client = MilvusClient(path)
    try:
        hello_milvus(client, rows=rows)
    finally:
        client.close()
        release_lite(path)


class Holder:
    """A child Python process that runs ``code`` (which opens the Lite file), prints READY and waits."""

    def __init__(self, code: str, env: dict[str, str] | None = None) -> None:
        script = textwrap.dedent(code) + "\nprint('READY', flush=True)\nsys.stdin.read()\n"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys\n" + script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=str(REPO),
        )
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            if line.strip() == "READY":
                break
            lines.append(line)
        else:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"holder process died: {''.join(lines)} {err[-3000:]}")
        self.output = "".join(lines)

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def backup_to(tmp_path: Path, lite: str, name: str = "b1") -> dict[str, Any]:
    storage = LocalStorage(str(tmp_path / "backups"))
    return BackupEngine(storage).create(MilvusParams(uri=lite), name, ["hello_milvus"])


# ----------------------------------------------------------------------------------------- the lock
def test_backup_of_a_lite_file_another_process_holds_names_the_lock_the_process_and_the_fix(
    tmp_path: Path,
) -> None:
    lite = str(tmp_path / "held.db")
    make_lite(lite)
    holder = Holder(f"from pymilvus import MilvusClient\nc = MilvusClient({lite!r})\n")
    try:
        with pytest.raises(MilvusConnectionError) as caught:
            backup_to(tmp_path, lite)
    finally:
        holder.stop()
    message = str(caught.value)
    assert isinstance(caught.value, MilvusLiteLockedError)
    assert f"Milvus Lite file {lite} is locked by another process (pid {holder.proc.pid})" in message
    assert "one task at a time" in message
    assert "milvus-lite server" in message
    assert "Check that Milvus is running" not in message
    # Once the other process is gone the same backup works.
    assert backup_to(tmp_path, lite)["rows"] == 300


def test_test_connection_then_a_backup_in_the_same_process_works(
    airflow_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lite = str(tmp_path / "same.db")
    make_lite(lite)
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", milvus_conn_json(lite))
    ok, message = MilvusBackupHook().test_connection()
    assert ok, message
    assert "1 collection(s)" in message
    assert MilvusBackupHook(local_path=str(tmp_path / "bk")).create_backup("b1")["rows"] == 300
    release_lite(lite)


def test_test_connection_in_a_process_that_stays_leaves_the_file_free_for_a_backup_elsewhere(
    airflow_db: Any, tmp_path: Path
) -> None:
    """The API server lives on after the Test button: the file must be free for the task processes."""
    lite = str(tmp_path / "api.db")
    make_lite(lite)
    code = """
        from tests.support import airflow_env
        from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
        print(MilvusBackupHook().test_connection(), flush=True)
    """
    holder = Holder(code, env={**ENV, "AIRFLOW_CONN_MILVUS_DEFAULT": milvus_conn_json(lite)})
    try:
        assert "(True, " in holder.output, holder.output
        assert "Connected to Milvus" in holder.output, holder.output
        assert backup_to(tmp_path, lite)["rows"] == 300
    finally:
        holder.stop()
        release_lite(lite)


def test_lock_holders_are_read_from_proc_locks() -> None:
    text = (
        "1: POSIX  ADVISORY  WRITE 4242 fd:01:123 0 EOF\n"
        "2: FLOCK  ADVISORY  WRITE 1717 08:02:98765 0 EOF\n"
        "3: FLOCK  ADVISORY  WRITE 1818 08:02:555 0 EOF\n"
        "4: -> FLOCK  ADVISORY  WRITE 1919 08:02:98765 0 EOF\n"
        "garbage\n"
    )
    dev = os.makedev(8, 2)
    assert lock_holders_from_proc_locks(text, dev, 98765) == [1717]
    assert lock_holders_from_proc_locks(text, dev, 1) == []
    assert lock_holders_from_proc_locks(text, os.makedev(0xFD, 1), 123) == []  # POSIX locks are not Lite's


def test_locked_message_names_the_file_the_pid_and_both_fixes() -> None:
    assert locked_message("Backup 'b1'", "/data/m.db", [77]) == (
        "Backup 'b1': Milvus Lite file /data/m.db is locked by another process (pid 77). Run one task at a "
        "time on a Lite file (the example DAGs put their Milvus tasks in the Airflow pool 'milvus_lite'), or "
        "serve it with `milvus-lite server` and use its URI for shared use."
    )
    assert "locked by another process." in locked_message("Connect", "/data/m.db", [])


# ----------------------------------------------------------------------------------------- the logs
def _record(name: str, level: int, msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise NotImplementedError("Method not implemented!")
        except NotImplementedError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, "x.py", 1, msg, None, exc_info)


def test_route_downgrades_and_explains_the_known_pymilvus_lines() -> None:
    mvcc = _record(
        "pymilvus.client.iterator.query_iterator",
        logging.WARNING,
        "failed to get mvccTs from milvus server, use client-side ts instead",
    )
    assert route(mvcc) == (logging.INFO, "no_mvcc")
    rpc = _record("pymilvus.decorators", logging.ERROR, "RPC error: [describe_database], <...>")
    assert route(rpc) == (logging.INFO, None)  # the exception reaches the caller, which decides
    grpc_server = _record(
        "grpc._server", logging.ERROR, "Exception calling application: Method not implemented!", exc=True
    )
    assert route(grpc_server) == (logging.INFO, None)
    other = _record("pymilvus.milvus_client", logging.WARNING, "something else")
    assert route(other) == (logging.WARNING, None)
    assert route(_record("grpc._server", logging.ERROR, "Exception calling application: boom")) is None
    assert route(_record("botocore", logging.ERROR, "x")) is None


def test_router_sends_pymilvus_lines_to_the_task_logger_and_explains_once(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    target = logging.getLogger("test.task")
    router = PymilvusLogRouter(target, "/data/m.db")
    pylog = logging.getLogger("pymilvus.client.iterator.query_iterator")
    with caplog.at_level(logging.DEBUG, logger="test.task"):
        for _ in range(2):
            with router:
                pylog.warning("failed to get mvccTs from milvus server, use client-side ts instead")
    records = [r for r in caplog.records if r.name == "test.task"]
    explained = [r for r in records if "has no MVCC timestamps" in r.getMessage()]
    assert len(explained) == 1
    assert explained[0].getMessage() == (
        "Milvus at /data/m.db has no MVCC timestamps: each page is read as of when it is read "
        "(see FORMAT.md, consistency)"
    )
    assert all(r.levelno <= logging.WARNING for r in records)
    assert "failed to get mvccTs" not in capfd.readouterr().err  # not on stderr (ERROR under Airflow)


def test_index_state_reads_describe_index() -> None:
    assert index_state({"state": "Finished", "index_name": "v"}) == "done"
    assert index_state({"state": "Failed"}) == "failed"
    assert index_state({"state": "InProgress"}) == "building"
    assert index_state(None) == "building"  # not visible yet


def test_a_restore_to_milvus_lite_never_calls_alloc_timestamp(
    lite_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pymilvus' create_index waits through AllocTimestamp, which Milvus Lite's (in-process) server lacks."""
    make_lite(lite_uri, rows=500)
    storage = LocalStorage(str(tmp_path / "bk"))
    BackupEngine(storage).create(MilvusParams(uri=lite_uri), "b1", ["hello_milvus"])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        report = RestoreEngine(storage).restore(
            MilvusParams(uri=lite_uri), "b1", collection_suffix="_r", method="insert"
        )
    assert [c["rows_restored"] for c in report["collections"]] == [500]
    assert [i["status"] for c in report["collections"] for i in c["indexes"]] == ["created"]
    grpc_errors = [r for r in caplog.records if r.name == "grpc._server"]
    assert grpc_errors == [], [r.getMessage() for r in grpc_errors]
    client = open_client(lite_uri)
    try:
        assert client.describe_index("hello_milvus_r", "embeddings")["state"] == "Finished"
    finally:
        client.close()


DAG_FILE = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus_backup.operators import MilvusBackupOperator, MilvusRestoreOperator

with DAG("t_lite_logs", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    backup = MilvusBackupOperator(task_id="backup", local_path={bk!r}, backup_name="b1", verify=True)
    restore = MilvusRestoreOperator(
        task_id="restore", local_path={bk!r}, backup_name="b1", collection_suffix="_r", method="insert",
        verify=True,
    )
    backup >> restore
"""

ERROR_LINE = re.compile(r"\[error\s*\]|\bERROR\b|\[ERROR\]|Traceback")


@pytest.mark.slow
def test_airflow_backup_and_restore_of_milvus_lite_log_no_error_line_and_explain_once(
    airflow_db: Any, tmp_path: Path
) -> None:
    lite = str(tmp_path / "logs.db")
    make_lite(lite, rows=2000)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "t_lite_logs.py").write_text(DAG_FILE.format(bk=str(tmp_path / "bk")))
    env = {"AIRFLOW_CONN_MILVUS_DEFAULT": milvus_conn_json(lite), "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    result = airflow_cli("dags", "test", "t_lite_logs", env=env, timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-5000:]
    assert "state=success" in text, text[-3000:]
    assert "Backup b1 complete" in text
    errors = [line for line in text.splitlines() if ERROR_LINE.search(line)]
    assert errors == [], "\n".join(errors[:20])
    # pymilvus' own stderr handler would print this; under Airflow's supervisor stderr lines are ERRORs.
    assert "[WARNING][__setup_ts_by_request]" not in text
    explained = [line for line in text.splitlines() if "has no MVCC timestamps" in line]
    # once per task that pages through Milvus: the backup always; the restore's verification pages by
    # primary key without pymilvus' iterator, so it may not need the explanation at all
    backup_lines = [line for line in explained if "MilvusBackupOperator" in line]
    assert len(backup_lines) == 1, explained
    assert len(explained) - len(backup_lines) <= 1, explained
    assert all(f"Milvus at {lite} has no MVCC timestamps" in line for line in explained)
    client = open_client(lite)
    try:
        assert client.get_collection_stats("hello_milvus_r")["row_count"] == 2000
    finally:
        client.close()
        release_lite(lite)


@pytest.mark.milvus235
@pytest.mark.slow
def test_milvus235_backup_and_restore_log_no_pymilvus_error(
    airflow_db: Any,
    milvus235: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", milvus_conn_json(milvus235.uri))
    source = f"logs_{uuid.uuid4().hex[:8]}"
    client = open_client(milvus235.uri)
    try:
        hello_milvus(client, name=source, rows=1500)
        capfd.readouterr()
        with caplog.at_level(logging.DEBUG):
            hook = MilvusBackupHook(local_path=str(tmp_path / "bk"))
            hook.create_backup("b1", [source])
            report = hook.restore("b1", [source], collection_suffix="_r", method="insert")
            assert hook.verify_restore("b1", report)["ok"]
        assert client.get_collection_stats(f"{source}_r")["row_count"] == 1500
    finally:
        for name in (source, f"{source}_r"):
            if client.has_collection(name):
                client.drop_collection(name)
        client.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [f"{r.name}: {r.getMessage()}" for r in errors]
    # Nor calls the server lacks (DescribeDatabase before 2.4), even at a lower level.
    assert "UNIMPLEMENTED" not in caplog.text
    err = capfd.readouterr().err
    assert "[ERROR]" not in err, err[-3000:]
    assert "[WARNING]" not in err, err[-3000:]


# ------------------------------------------------------------------------------------------ progress
def test_first_progress_line_of_a_backup_counts_encoded_bytes(
    lite_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = open_client(lite_uri)
    try:
        hello_milvus(client, rows=4000)
    finally:
        client.close()
    engine = BackupEngine(
        LocalStorage(str(tmp_path / "bk")),
        batch_bytes=256 * 40,  # 256-row pages: 16 pages
        progress_interval=0,
        logger=logging.getLogger("test.progress"),
    )
    figures: list[dict[str, Any]] = []
    engine.progress_callback = figures.append
    with caplog.at_level(logging.INFO, logger="test.progress"):
        summary = engine.create(MilvusParams(uri=lite_uri), "b1", ["hello_milvus"])
    lines = [r.getMessage() for r in caplog.records if "rows/s" in r.getMessage()]
    assert len(lines) >= 3, lines
    first = lines[0]
    shown = re.search(r" rows(?: \([\d.]+%\))?, ([\d.]+) (B|KB|MB), .* rows/s, ([\d.]+) (B|KB|MB)/s", first)
    assert shown, first
    assert float(shown.group(1)) > 0, first  # bytes encoded so far
    assert float(shown.group(3)) > 0, first  # their rate
    assert figures[0]["bytes"] > 0
    # The running total ends at exactly the bytes of the data files.
    assert figures[-1]["bytes"] == summary["bytes"]
    assert json.dumps(figures)  # plain figures for callbacks
