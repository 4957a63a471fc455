"""The restore status model and its writer, without a server: JSON compatibility, resume, verbs, list/cancel.

A status written by the previous layout (no ``format_version``; built here exactly as the 2,400-line
``engine/restore.py`` wrote it, then changed as its steps changed it) must read, keep its fingerprint and
resume; one written by a later minor version must keep what it added through a read-modify-write.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import InvalidArgumentError, RestoreError
from airflow_milvus_backup.engine.restore import RestoreEngine, RestoreOptions
from airflow_milvus_backup.engine.restore.status import Status, status_key
from airflow_milvus_backup.engine.restore.status_model import (
    FORMAT_VERSION,
    CollectionState,
    FileState,
    RestoreStatus,
    RunState,
    public,
    same_arguments,
)
from airflow_milvus_backup.engine.restore.status_store import find_prior, open_status, read_status
from airflow_milvus_backup.engine.storage import LocalStorage

BACKUP = "nightly_1"
FP = "0123456789abcdef0123456789abcdef"
DEAD = "2026-01-01T00:00:00+00:00"  # a heartbeat long gone


def old_arguments() -> dict[str, Any]:
    """The arguments of a restore as the previous layout stored them (``asdict`` of every option)."""
    return {
        "backup_name": BACKUP,
        "backup_id": "b-1",
        "target": {"address": "http://127.0.0.1:19530", "db_name": "default"},
        "collections": [["default.c", "default.c_r"]],
        "options": {**RestoreOptions().fingerprint_fields(), "collection_suffix": "_r"},
    }


def old_entry(target: str, action: str, files: dict[str, dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """A collection entry as the previous ``_open_status`` built it (then recounted, as ``_recount`` did)."""
    entry = {
        "source": "default.c",
        "target": target,
        "action": action,
        "created": True,
        "keys": "kept",
        "state": "pending",
        "rows_expected": sum(f["rows"] for f in files.values()),
        "rows_restored": 0,
        "files_total": len(files),
        "files_done": 0,
        "files": files,
        "temp_properties": [],
        "indexes": [
            {
                "index_name": "v",
                "field_name": "v",
                "index_type": "HNSW",
                "metric_type": "L2",
                "params": {"M": 8},
                "status": "created",
            }
        ],
        "aliases": {"restored": [], "skipped": []},
        "load_state": {},
        "database_created": False,
        "seconds": 1.5,
        "resumed": False,
        "error": None,
        **kw,
    }
    entry["files_done"] = sum(1 for f in files.values() if f.get("state") == "done")
    entry["rows_restored"] = sum(int(f.get("inserted", 0)) for f in files.values())
    return entry


def pending(part: str = "_default") -> dict[str, Any]:
    return {"partition": part, "rows": 100, "state": "pending", "inserted": 0}


def old_body(method: str = "insert", state: str = "executing") -> dict[str, Any]:
    """A status as the previous layout wrote it, with files in each state its steps left them in."""
    d = "data/default/c"
    if method == "insert":
        files = {
            f"{d}/_default/0.parquet": {**pending(), "state": "done", "inserted": 100, "attempts": 1},
            f"{d}/_default/1.parquet": {**pending(), "state": "started", "inserted": 40, "attempts": 2},
            f"{d}/_default/2.parquet": pending(),
            f"{d}/p1/0.parquet": {**pending("p1"), "task_id": None},  # reset by _reset_files
        }
    else:
        files = {
            f"{d}/_default/0.parquet": {**pending(), "state": "submitting", "task_id": None, "error": None},
            f"{d}/_default/1.parquet": {**pending(), "state": "importing", "task_id": 7, "progress": 40},
            f"{d}/_default/2.parquet": {
                **pending(),
                "state": "done",
                "inserted": 100,
                "task_id": 8,
                "progress": 100,
            },
            f"{d}/p1/0.parquet": {
                **pending("p1"),
                "state": "failed",
                "task_id": 9,
                "progress": 0,
                "error": "file is broken",
            },
        }
    collections = [
        old_entry("default.c_r", "resume", files, state="restoring", dropped_aliases=[]),
        old_entry(
            "default.d_r", "done", {}, state="success", rows_found=None, load_state={"action": "loaded"}
        ),
    ]
    return {
        "id": "r1",
        "host": socket.gethostname(),
        "pid": 999_999_999,
        "started_at": DEAD,
        "ttl": 120.0,
        "restore_id": "r1",
        "kind": "restore",
        "backup_name": BACKUP,
        "backup_id": "b-1",
        "state": state,
        "method": method,
        "method_reason": "asked for",
        "meta_only": False,
        "fingerprint": FP,
        "arguments": old_arguments(),
        "target": {
            "address": "http://127.0.0.1:19530",
            "db_name": "default",
            "server_version": "v2.3.5",
            "lite": False,
        },
        "storage": "/tmp/x/backup",
        "first_started_at": "2026-01-01T00:00:00+00:00",
        "attempts": 1,
        "finished_at": None,
        "detached": False,
        "databases_created": [],
        "collections": collections,
        "error": None,
        "errors": [],
        "heartbeat_at": DEAD,
    }


def without_null_file_keys(body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for c in out["collections"]:
        for f in c["files"].values():
            for k in [k for k, v in f.items() if v is None and k != "partition"]:
                del f[k]
    return out


@pytest.fixture
def storage(tmp_path):
    s = LocalStorage(tmp_path)
    s.put_bytes(mf.manifest_key(BACKUP), b"{}")  # the backup exists: its status may be written
    return s


def put(storage: LocalStorage, body: dict[str, Any]) -> None:
    storage.put_bytes(status_key(BACKUP, body["restore_id"]), json.dumps(body).encode())


def stored(storage: LocalStorage, restore_id: str = "r1") -> dict[str, Any]:
    return dict(json.loads(storage.get_bytes(status_key(BACKUP, restore_id))))


# ------------------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("method", ["insert", "bulk_import"])
def test_previous_layout_reads_and_writes_back_every_key(method):
    body = old_body(method)
    doc = RestoreStatus.from_json(copy.deepcopy(body))
    assert doc.format_version == FORMAT_VERSION
    assert doc.fingerprint == FP
    assert doc.arguments == body["arguments"]
    assert doc.to_json() == {**without_null_file_keys(body), "format_version": 1}
    # and the model's own JSON reads back equal
    again = RestoreStatus.from_json(json.loads(json.dumps(doc.to_json())))
    assert again.to_json() == doc.to_json()
    assert public(doc) == {**public(body), "format_version": 1}


def test_states_are_enums_with_the_same_strings():
    doc = RestoreStatus.from_json(old_body("bulk_import"))
    c = doc.of("default.c_r")
    assert doc.state is RunState.EXECUTING
    assert c.state is CollectionState.RESTORING
    assert {f.state for f in c.files.values()} == {
        FileState.SUBMITTING,
        FileState.IMPORTING,
        FileState.DONE,
        FileState.FAILED,
    }
    assert json.dumps([RunState.SUCCESS, FileState.DONE]) == '["success", "done"]'
    assert f"{CollectionState.FAILED}" == str(CollectionState.FAILED) == "failed"


def test_the_model_says_which_files_are_done_and_which_to_redo():
    c = RestoreStatus.from_json(old_body()).of("default.c_r")
    assert c.done_keys() == ["data/default/c/_default/0.parquet"]
    assert c.to_redo() == [
        "data/default/c/_default/1.parquet",
        "data/default/c/_default/2.parquet",
        "data/default/c/p1/0.parquet",
    ]
    assert (c.files_done, c.rows_restored) == (1, 140)


def test_a_later_minor_version_reads_and_keeps_what_it_added():
    body = old_body()
    body |= {"format_version": "1.4", "checkpoint": {"x": 1}}
    body["collections"][0]["shard_map"] = [1, 2]
    body["collections"][0]["files"]["data/default/c/_default/2.parquet"]["crc"] = "ab12"
    out = RestoreStatus.from_json(body).to_json()
    assert out["format_version"] == "1.4"
    assert out["checkpoint"] == {"x": 1}
    assert out["collections"][0]["shard_map"] == [1, 2]
    assert out["collections"][0]["files"]["data/default/c/_default/2.parquet"]["crc"] == "ab12"


@pytest.mark.parametrize("version", [2, "2.0", "x"])
def test_a_newer_major_version_or_a_bad_one_is_refused(version):
    with pytest.raises(RestoreError, match="format_version|format version") as e:
        RestoreStatus.from_json({**old_body(), "format_version": version}, "'k.json'")
    if version != "x":
        assert "Upgrade airflow-milvus-backup" in str(e.value)


def test_resume_matches_by_arguments_when_a_release_computes_the_fingerprint_otherwise():
    doc = RestoreStatus.from_json(old_body())
    args = old_arguments()
    assert doc.resumes(FP)
    assert doc.resumes("another-release-hash", args)
    # a status written before an option existed means that option at its default
    earlier = copy.deepcopy(args)
    del earlier["options"]["bulk_import_root"]
    assert same_arguments(earlier, args)
    assert RestoreStatus.from_json({**old_body(), "arguments": earlier}).resumes("another-release-hash", args)
    for change in ({"collection_suffix": "_x"}, {"drop_existing": True}, {"new_option": 5}):
        other = copy.deepcopy(args)
        other["options"].update(change)
        assert not doc.resumes("another-release-hash", other), change


# ------------------------------------------------------------------------------------------- in storage
def test_a_previous_layout_restore_is_found_and_resumed_with_its_done_files(storage):
    put(storage, old_body())
    ctx = RestoreEngine(storage, status_interval=0).ctx
    prior = find_prior(ctx, BACKUP, None, "another-release-hash", old_arguments())
    assert prior is not None
    assert prior["restore_id"] == "r1"
    assert find_prior(ctx, BACKUP, "r1", FP) is not None
    with pytest.raises(InvalidArgumentError, match="started with other arguments"):
        find_prior(ctx, BACKUP, "r1", "x", {**old_arguments(), "collections": []})

    status = open_status(
        ctx, fake_plan(prior), SimpleNamespace(address="http://127.0.0.1:19530", db_name=None)
    )
    try:
        c = status.of("default.c_r")
        assert c.resumed
        assert c.created
        assert c.done_keys() == ["data/default/c/_default/0.parquet"]
        assert c.files["data/default/c/_default/1.parquet"].state == FileState.STARTED
        assert c.indexes == old_body()["collections"][0]["indexes"]
        body = stored(storage)
        assert body["format_version"] == 1
        assert body["attempts"] == 2
        assert body["first_started_at"] == "2026-01-01T00:00:00+00:00"
        assert body["fingerprint"] == FP  # the plan's (same arguments), kept for the next release
        assert body["pid"] == os.getpid()
        assert body["heartbeat_at"] != DEAD
        assert body["collections"][0]["files_done"] == 1
    finally:
        status.stop()


def test_verbs_record_what_happened_and_recount(storage):
    status = Status(storage, status_key(BACKUP, "r1"), RestoreStatus.from_json(old_body()), 60.0, 3600.0)
    t = SimpleNamespace(target="default.c_r")
    k0, k1, k2 = (f"data/default/c/_default/{i}.parquet" for i in range(3))
    status.save()

    status.file_started(t, k2)
    assert status.of(t).files[k2].attempts == 1
    assert stored(storage)["collections"][0]["files"][k2]["state"] == "pending"  # kept keys: not yet
    status.file_progress(t, k2, 60)
    assert (status.of(t).rows_restored, status.of(t).files_done) == (200, 1)
    status.file_done(t, k2, 100)
    assert (status.of(t).rows_restored, status.of(t).files_done) == (240, 2)

    status.of(t).keys = "new"  # with new keys a started file is written at once
    status.file_started(t, k1)
    assert stored(storage)["collections"][0]["files"][k1] | {"attempts": 3} == {
        "partition": "_default",
        "rows": 100,
        "state": "started",
        "inserted": 0,
        "attempts": 3,
    }

    status.collection_created(t, ["allow_insert_auto_id"], anew=True)
    c = stored(storage)["collections"][0]
    assert c["created"]
    assert c["temp_properties"] == ["allow_insert_auto_id"]
    assert {f["state"] for f in c["files"].values()} == {"pending"}
    assert (c["files_done"], c["rows_restored"]) == (0, 0)

    status.job_submitted(t, k0, 41)
    status.job_done(t, k0, 100)
    status.file_submitting(t, k1)
    status.job_submitted(t, k1, 42)
    status.job_progress(t, k1, 55)
    status.job_failed(t, k2, "no such file")
    c = stored(storage)["collections"][0]
    assert c["state"] == "restoring"
    assert (c["files_done"], c["rows_restored"]) == (1, 100)
    assert c["files"][k1] == {
        "partition": "_default",
        "rows": 100,
        "state": "importing",
        "inserted": 0,
        "attempts": 3,
        "task_id": 42,
        "progress": 55,
    }
    assert c["files"][k2]["error"] == "no such file"
    assert c["files"][k2]["state"] == "failed"

    status.database_created("default")
    assert stored(storage)["databases_created"] == ["default"]
    assert all(c["database_created"] for c in stored(storage)["collections"])
    status.indexes_built(t, [])
    status.collection_succeeded(t, None, 2.0)
    status.succeeded()
    body = stored(storage)
    assert body["state"] == "success"
    assert body["finished_at"]
    assert body["detached"] is False
    assert body["collections"][0]["rows_found"] is None  # counted: the target is not loaded
    assert body["collections"][0]["seconds"] == 3.5
    assert body["collections"][0]["indexes"] == []


def test_setup_undo_finish_and_detach_verbs(storage):
    status = Status(storage, status_key(BACKUP, "r1"), RestoreStatus.from_json(old_body()), 60.0, 3600.0)
    t = SimpleNamespace(target="default.c_r")
    status.database_created("default")
    status.existing_dropped(t, ["a1"])
    status.temp_property_set(t, "allow_insert_auto_id")
    c = stored(storage)["collections"][0]
    assert c["dropped_aliases"] == ["a1"]
    assert c["temp_properties"] == ["allow_insert_auto_id"]
    # a rollback: written with the next write
    status.collection_undone(t)
    status.database_dropped("default")
    assert stored(storage)["databases_created"] == ["default"]
    status.save()
    body = stored(storage)
    assert body["databases_created"] == []
    assert (body["collections"][0]["created"], body["collections"][0]["indexes"]) == (False, [])
    # finish
    status.temp_property_set(t, "allow_insert_auto_id")
    status.temp_property_dropped(t, "allow_insert_auto_id")
    status.load_state_restored(t, {"source": "Loaded", "action": "loaded", "target": "Loaded"})
    status.aliases_restored(t, ["a1_r"], [{"alias": "a2_r", "reason": "taken"}])
    status.time_spent(t, 0.25)
    status.collection_succeeded(t, 300, 0.25)
    status.jobs_imported()
    status.took(12.3456)
    body = stored(storage)
    c = body["collections"][0]
    assert c["temp_properties"] == []
    assert c["load_state"]["action"] == "loaded"
    assert c["aliases"] == {"restored": ["a1_r"], "skipped": [{"alias": "a2_r", "reason": "taken"}]}
    assert (c["state"], c["rows_found"], c["seconds"]) == ("success", 300, 2.0)
    assert (body["imported"], body["seconds"]) == (True, 12.346)
    status.detach(3600.0)
    body = stored(storage)
    assert (body["detached"], body["pid"], body["ttl"]) == (True, None, 3600.0)


def test_fail_marks_unfinished_collections_failed_and_records_the_error(storage):
    status = Status(storage, status_key(BACKUP, "r1"), RestoreStatus.from_json(old_body()), 60.0)
    status.fail(RestoreError("Milvus went away"))
    body = stored(storage)
    assert body["state"] == "failed"
    assert body["error"] == "Milvus went away"
    assert body["errors"] == ["Milvus went away"]
    assert body["finished_at"]
    assert [c["state"] for c in body["collections"]] == ["failed", "success"]
    assert read_status(RestoreEngine(storage).ctx, BACKUP, "r1")["error"] == "Milvus went away"


def test_list_status_and_cancel_of_a_dead_previous_layout_restore(storage):
    put(storage, old_body())
    storage.put_bytes(f"{BACKUP}/{mf.RESTORES}lock.json", b'{"id": "x", "state": "executing"}')  # no status
    engine = RestoreEngine(storage)
    [listed] = engine.list_restores(BACKUP)
    assert (listed["restore_id"], listed["state"], listed["alive"]) == ("r1", "executing", False)
    assert listed["totals"] == {
        "collections": 2,
        "rows_expected": 400,
        "rows_restored": 140,
        "files": 4,
        "files_done": 1,
    }
    shown = engine.status(BACKUP, "r1")
    assert shown["alive"] is False
    assert len(shown["collections"][0]["files"]) == 4
    cancelled = engine.cancel(None, BACKUP, "r1")  # type: ignore[arg-type]  # Milvus is not needed
    assert cancelled["state"] == "failed"
    assert cancelled["cancelled"] is True
    assert cancelled["error"] == f"Restore r1 of backup {BACKUP!r} was cancelled."
    assert stored(storage)["cancelled"] is True
    # a cancelled restore is never picked up again by a restore with the same arguments
    assert find_prior(engine.ctx, BACKUP, None, FP, old_arguments()) is None
    assert engine.cancel(None, BACKUP, "r1")["state"] == "failed"  # type: ignore[arg-type]


def test_a_running_restore_with_the_same_arguments_is_refused(storage):
    live = old_body() | {"pid": os.getpid(), "host": "elsewhere", "heartbeat_at": time_now()}
    put(storage, live)
    with pytest.raises(RestoreError, match="is running in process"):
        find_prior(RestoreEngine(storage).ctx, BACKUP, None, FP)


# ------------------------------------------------------------------------------------------- helpers
def time_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()


@dataclass
class FakeTarget:
    """The part of a planned target the status reads (its manifest entry's data typed, as a restore's)."""

    target: str
    action: str
    parts: list[mf.PartitionData] = field(default_factory=list)
    keep_keys: bool = True
    source: str = "default.c"

    @property
    def meta(self) -> Any:
        return SimpleNamespace(row_count=sum(f.rows for p in self.parts for f in p.files), data=self.parts)

    def files(self) -> Any:
        for p in self.parts:
            for f in p.files:
                yield p, f


def fake_plan(prior: dict[str, Any]) -> Any:
    d = "data/default/c"

    def file(key: str) -> mf.DataFile:
        return mf.DataFile(key=key, rows=100, size=0, sha256="")

    parts = [
        mf.PartitionData(
            partition="_default", rows=300, files=tuple(file(f"{d}/_default/{i}.parquet") for i in range(3))
        ),
        mf.PartitionData(partition="p1", rows=100, files=(file(f"{d}/p1/0.parquet"),)),
    ]
    return SimpleNamespace(
        restore_id=prior["restore_id"],
        backup=BACKUP,
        manifest=SimpleNamespace(id="b-1"),
        method=prior["method"],
        method_reason="resumed with the method it started with",
        opts=RestoreOptions(collection_suffix="_r"),
        fingerprint=FP,
        arguments=old_arguments(),
        server=SimpleNamespace(version="v2.3.5", lite=False),
        targets=[FakeTarget("default.c_r", "resume", parts), FakeTarget("default.d_r", "done")],
        prior=prior,
    )
