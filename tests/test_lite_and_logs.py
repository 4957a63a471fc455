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
from pathlib import Path
from typing import Any

import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported
import pytest
from airflow_env import (
    ENV,
    hello_milvus,
    milvus_conn_json,
    release_lite,
)
from servers import open_client

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams
from airflow_milvus_backup.engine.errors import MilvusConnectionError, MilvusLiteLockedError
from airflow_milvus_backup.engine.lite import lock_holders_from_proc_locks, locked_message
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

pytest_plugins = ["airflow_env"]  # its fixtures: airflow_db, airflow_conns

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
            cwd=str(REPO / "tests"),
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
        import airflow_env
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
