"""The example DAGs on a real Airflow cluster (``airflow_cluster``): the scheduler runs the restore drill on
Asset events posted through the REST API, and the drill restores the backup the events name.

Backups A (one collection) and B (two collections, made later, so the newest) are made with the engine on the
cluster's ``milvus_default`` (a ``milvus-lite server``: the test and Airflow's workers both open it) into the
cluster's bucket; the events carry the extra the backup operator's outlet event carries.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.airflow_env import hello_milvus
from tests.support.airflow_server import AirflowError
from tests.support.lite import open_client

if TYPE_CHECKING:
    from tests.support.airflow_server import AirflowApi, AirflowCluster  # noqa: F401

DRILL = "milvus_restore_drill"


def make_backup(cluster: AirflowCluster, s3: Any, name: str, collections: list[str]) -> dict[str, Any]:
    """Back up ``collections`` of the cluster's Milvus into its bucket; return the outlet event's extra."""
    from airflow_milvus_backup.engine.backup import BackupEngine
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.storage import S3Storage

    assert cluster.milvus_uri
    assert cluster.bucket
    summary = BackupEngine(S3Storage(s3.client(), cluster.bucket, "backup")).create(
        MilvusParams(uri=cluster.milvus_uri), name, collections
    )
    # the keys of MilvusBackupOperator._emit_asset_events
    return {
        k: summary.get(k) for k in ("backup_name", "backup_id", "storage", "collections", "rows", "bytes")
    }


def finished_runs_consuming(
    api: AirflowApi, event_ids: set[int], known: set[str], timeout: float = 240
) -> tuple[list[str], set[int]]:
    """Wait until the new drill runs (not in ``known``) are finished, none is queued for the Asset, and
    (as far as Airflow will) they consumed ``event_ids``; return their run ids (oldest first) and the ids
    consumed."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [r for r in api.runs(DRILL) if r["dag_run_id"] not in known]
        try:
            consumed = {e["id"] for r in runs for e in api.upstream_asset_events(DRILL, r["dag_run_id"])}
        except AirflowError as exc:  # a run being created: Airflow 3.3 answers 500 for a moment
            if exc.status != 500:
                raise
            time.sleep(1)
            continue
        finished = all(r["state"] in ("success", "failed") for r in runs)
        if finished and (event_ids <= consumed or (runs and not api.queued_asset_events(DRILL))):
            return [r["dag_run_id"] for r in runs], consumed
        time.sleep(1)
    raise TimeoutError(
        f"drill runs not finished after {timeout:.0f}s: {[(r['dag_run_id'], r['state']) for r in runs]}"
    )


@pytest.mark.timeout(600)
def test_the_scheduler_drills_the_backup_the_asset_events_name(
    airflow_cluster: AirflowCluster, s3_server: Any
) -> None:
    cluster = airflow_cluster
    api = cluster.api("admin")
    tag = uuid.uuid4().hex[:6]
    first, second = f"drill_src_{tag}_a", f"drill_src_{tag}_b"
    assert cluster.milvus_uri
    client = open_client(cluster.milvus_uri)
    try:
        hello_milvus(client, first, rows=300, seed=1)
        hello_milvus(client, second, rows=200, seed=2)
    finally:
        client.close()
    a = make_backup(cluster, s3_server, f"drill_a_{tag}", [first])
    b = make_backup(cluster, s3_server, f"drill_b_{tag}", [first, second])  # newer, and more collections
    asset = f"milvus-backup://{cluster.bucket}/backup"

    cluster.wait_dags(DRILL)
    api.set_paused(DRILL, False)
    known = {r["dag_run_id"] for r in api.runs(DRILL)}

    # 1. one event naming A, although B is the newest backup: the drill restores and reports A
    event_a = api.post_asset_event(asset, a)
    (run_a,), _ = finished_runs_consuming(api, {event_a["id"]}, known)
    known.add(run_a)
    assert api.run(DRILL, run_a)["state"] == "success", api.task_states(DRILL, run_a)
    report = api.xcom(DRILL, run_a, "drill_report")
    assert (report["backup_name"], report["backup_id"]) == (a["backup_name"], a["backup_id"])
    assert report["chosen_because"] == "triggering Asset event"
    assert report["verified"] is True
    assert [(c["source"], c["target"], c["rows"]) for c in report["collections"]] == [
        (f"default.{first}", f"default.{first}_drill", 300)
    ]

    # 2. events for A and B back to back. Airflow 3.3 (SQLite and Postgres alike) keeps one queue row per
    #    Asset and DAG, stamped by the *first* waiting event, and a run consumes the events up to that stamp:
    #    unless the scheduler created A's run between the two posts, B's event waits for the next event.
    #    Then an event for C (backup A again) starts a run that consumes B and C: it drills C, logs B.
    events = [api.post_asset_event(asset, a), api.post_asset_event(asset, b)]
    runs, consumed_ids = finished_runs_consuming(api, {e["id"] for e in events}, known)
    stranded = events[1]["id"] not in consumed_ids
    if stranded:
        events.append(api.post_asset_event(asset, a))
        more, consumed_later = finished_runs_consuming(
            api, {events[1]["id"], events[2]["id"]}, known | set(runs)
        )
        runs, consumed_ids = runs + more, consumed_ids | consumed_later
    assert {e["id"] for e in events} <= consumed_ids, (events, consumed_ids)
    named = {e["id"]: e["extra"]["backup_name"] for e in events}
    drilled = []
    for run_id in runs:
        assert api.run(DRILL, run_id)["state"] == "success", api.task_states(DRILL, run_id)
        consumed = sorted(api.upstream_asset_events(DRILL, run_id), key=lambda e: (e["timestamp"], e["id"]))
        report = api.xcom(DRILL, run_id, "drill_report")
        assert report["backup_name"] == named[consumed[-1]["id"]]
        assert report["backup_id"] == consumed[-1]["extra"]["backup_id"]
        assert report["chosen_because"] == "triggering Asset event"
        drilled.append((len(consumed), report["backup_name"]))
        if len(consumed) > 1:
            # the task's log file (the REST API's text/plain log is not checked here)
            log = "\n".join(
                f.read_text(errors="replace")
                for f in (cluster.home / "logs" / f"dag_id={DRILL}" / f"run_id={run_id}").rglob("*.log")
                if "task_id=backup_to_drill" in str(f)
            )
            assert f"Not drilled: {', '.join(named[e['id']] for e in consumed[:-1])}" in log, log[-3000:]
    if stranded:  # A's run, then one run of B and C that drills C (backup A) and names B as not drilled
        assert drilled == [(1, a["backup_name"]), (2, a["backup_name"])], drilled
    else:  # one run each
        assert drilled == [(1, a["backup_name"]), (1, b["backup_name"])], drilled
        last = api.xcom(DRILL, runs[-1], "drill_report")
        assert sorted(c["source"] for c in last["collections"]) == [f"default.{first}", f"default.{second}"]
    # the drill's teardown dropped what it restored
    client = open_client(cluster.milvus_uri)
    try:
        assert not [c for c in client.list_collections() if c.endswith("_drill") and tag in c]
    finally:
        client.close()


def test_the_test_button_sends_port_0_and_airflow_refuses_it(airflow_cluster: AirflowCluster) -> None:
    """Airflow 3.3's Test button posts ``port: Number(null)`` = 0 and the masked password; the API server
    takes 0 for another endpoint than the stored NULL and answers 400 before our hook runs. Port null (or the
    stored port) tests fine."""
    api = airflow_cluster.api("admin")
    conn_id = f"milvus_ui_{uuid.uuid4().hex[:6]}"
    stored = {
        "connection_id": conn_id,
        "conn_type": "milvus",
        "host": airflow_cluster.milvus_uri,
        "login": "root",
        "password": "Milvus",
        "extra": "{}",
    }
    api.call("POST", "/api/v2/connections", stored)
    as_ui = {**stored, "password": "***", "port": 0, "schema": "", "description": ""}
    refused = api.request("POST", "/api/v2/connections/test", as_ui)
    assert refused.status == 400, refused.body
    assert "host or port to test differs" in refused.body
    tested = api.call("POST", "/api/v2/connections/test", {**as_ui, "port": None})
    assert tested["status"] is True, tested
