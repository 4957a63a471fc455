"""Real faults: processes killed, servers stopped, bytes changed in the bucket, writers racing.

Each test shows what a user sees (one clear error, naming the thing that failed), what state is left (never a
backup that lists as complete when it is not), and that running again succeeds. FAULTS.md describes each one.

Servers: a private rclone S3 server (stopped and started by the tests here, so no other test is disturbed), a
private Milvus Lite server for the tests that stop Milvus, and the session Milvus Lite server for the rest.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    BackupExistsError,
    BackupNotFoundError,
    IncompleteBackupError,
    IntegrityError,
    ManifestError,
    MilvusConnectionError,
    MilvusParams,
    S3Storage,
    StorageConnectionError,
    TargetExistsError,
    ownership,
)
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import verify_backup
from tests.support.datagen import create_vector_collection
from tests.support.lite import MilvusLiteServer, open_client
from tests.support.process import plain_spawn
from tests.support.s3 import FAST_RCLONE, ROOT, S3Server

pytestmark = pytest.mark.timeout(240)


# ------------------------------------------------------------------------------------------------- fixtures
def start(server: Any) -> None:
    with plain_spawn():
        server.ensure_started()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """A private rclone S3 server: these tests stop and start it."""
    server = S3Server(tmp_path_factory.mktemp("faults-s3"), extra_args=FAST_RCLONE)
    start(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_lite(tmp_path_factory: pytest.TempPathFactory):
    """A private Milvus Lite server (gRPC): these tests stop and start it."""
    server = MilvusLiteServer(tmp_path_factory.mktemp("faults-lite"))
    start(server)
    try:
        yield server
    finally:
        server.stop()


def quick_client(server: S3Server) -> Any:
    """A boto3 client that gives up on a dead endpoint at once (the storage's own retries are tested)."""
    return server.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"})


def new_bucket(server: S3Server) -> str:
    start(server)
    return server.create_bucket(f"faults-{uuid.uuid4().hex[:10]}")


def s3_storage(server: S3Server, bucket: str, cls: type[S3Storage] = S3Storage, **kw: Any) -> S3Storage:
    return cls(quick_client(server), bucket, ROOT, retry_seconds=4, retry_attempts=4, **kw)


def make_collection(
    client: MilvusClient, name: str, rows: int = 1200, partitions: tuple[str, ...] = ("p1",)
) -> None:
    create_vector_collection(client, name, dim=8, fields=[("tag", DataType.VARCHAR, {"max_length": 32})])
    for p in partitions:
        client.create_partition(name, p)
    rng = np.random.default_rng(len(name) + rows)
    data = [{"id": i, "vec": rng.random(8, dtype=np.float32).tolist(), "tag": f"t{i}"} for i in range(rows)]
    targets = ["_default", *partitions]
    for k, p in enumerate(targets):
        client.insert(name, data[k :: len(targets)], partition_name=p)


def count(client: MilvusClient, name: str) -> int:
    client.load_collection(name)
    return int(
        client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    )


def keys_under(storage: S3Storage, name: str) -> set[str]:
    return {o.key for o in storage.list(f"{name}/")}


def assert_clean_complete(storage: S3Storage, name: str, rows: int) -> dict[str, Any]:
    """The backup is complete, verifies, and holds nothing but its manifest and the files it lists."""
    m = BackupEngine(storage).get(name)
    assert m["totals"]["rows"] == rows
    report = verify_backup(storage, name)
    assert report["ok"]
    assert report["rows"] == rows
    assert report["unlisted"] == []
    listed = {f"{name}/{f.key}" for _, _, f in mf.load_manifest(storage, name).files()}
    assert keys_under(storage, name) == listed | {mf.manifest_key(name), ownership.marker_key(name)}
    return m


def assert_not_complete(engine: BackupEngine, name: str) -> None:
    """No list entry of ``name`` says complete; ``get`` refuses it."""
    entries = {b["name"]: b for b in engine.list()}
    assert entries.get(name, {}).get("state") in (None, "partial")
    with pytest.raises((IncompleteBackupError, BackupNotFoundError)) as e:
        engine.get(name)
    assert name in str(e.value)


# -------------------------------------------------------------------------------------------- child process
_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path
    import boto3
    from botocore.config import Config
    from airflow_milvus_backup.engine import BackupEngine, MilvusParams, S3Storage

    cfg = json.loads(sys.argv[1])
    client = boto3.client(
        "s3", endpoint_url=cfg["endpoint"], aws_access_key_id=cfg["key"], aws_secret_access_key=cfg["secret"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=20,
                      retries={"max_attempts": 2, "mode": "standard"}),
    )

    class Faulty(S3Storage):
        data_puts = 0
        data_done = 0

        def put_file(self, key, path):
            data = cfg["mode"] == "kill_in_data" and "/data/" in f"/{key}"
            if data:
                Faulty.data_puts += 1
                if Faulty.data_puts == 2:
                    # Uploads run side by side: let the first one land, then this one stalls (a slow
                    # network) and the parent SIGKILLs the process meanwhile.
                    deadline = time.monotonic() + 60
                    while Faulty.data_done < 1 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    Path(cfg["marker"]).write_text(key)
                    time.sleep(600)
            result = super().put_file(key, path)
            if data:
                Faulty.data_done += 1
            return result

        def put_bytes(self, key, data):
            if cfg["mode"] == "kill_at_manifest" and key.endswith("meta/backup_meta.json"):
                os.kill(os.getpid(), signal.SIGKILL)
            return super().put_bytes(key, data)

    storage = Faulty(client, cfg["bucket"], cfg["root"], retry_seconds=10)
    engine = BackupEngine(storage, batch_bytes=1, file_bytes=1, tmp_dir=cfg["tmp_dir"])
    if cfg["mode"] == "race":
        while not os.path.exists(cfg["go"]):
            time.sleep(0.005)
    try:
        out = {"ok": True, **engine.create(MilvusParams(uri=cfg["milvus"]), cfg["name"], [cfg["collection"]])}
    except Exception as e:
        out = {"ok": False, "type": type(e).__name__, "message": str(e)}
    print(json.dumps(out), flush=True)
    """
)


def child_cmd(tmp_path: Path, cfg: dict[str, Any]) -> list[str]:
    script = tmp_path / "backup_child.py"
    script.write_text(_CHILD)
    return [sys.executable, str(script), json.dumps(cfg)]


def child_cfg(
    s3: S3Server, bucket: str, milvus_uri: str, collection: str, name: str, mode: str, tmp_path: Path
) -> dict[str, Any]:
    tmp_dir = tmp_path / f"tmp-{mode}"
    tmp_dir.mkdir(exist_ok=True)
    return {
        "endpoint": s3.endpoint_url,
        "key": s3.access_key,
        "secret": s3.secret_key,
        "bucket": bucket,
        "root": ROOT,
        "milvus": milvus_uri,
        "collection": collection,
        "name": name,
        "mode": mode,
        "marker": str(tmp_path / f"marker-{mode}"),
        "go": str(tmp_path / "go"),
        "tmp_dir": str(tmp_dir),
    }


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"child exited with {proc.returncode} before {path.name}: {proc.stderr.read()[-3000:]}"
            )
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


# -------------------------------------------------------------------------------------------------- SIGKILL
@pytest.mark.parametrize("mode", ["kill_in_data", "kill_at_manifest"])
def test_backup_killed_leaves_a_partial_backup_that_list_reports_and_delete_or_overwrite_clears(
    mode: str, s3: S3Server, milvus_lite_server: MilvusLiteServer, tmp_path: Path
) -> None:
    client = open_client(milvus_lite_server.uri)
    coll = f"killed_{mode}_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=2000)
    bucket = new_bucket(s3)
    storage = s3_storage(s3, bucket)
    engine = BackupEngine(storage)
    params = MilvusParams(uri=milvus_lite_server.uri)
    engine.create(params, "older_good", [coll])

    cfg = child_cfg(s3, bucket, milvus_lite_server.uri, coll, "nightly", mode, tmp_path)
    proc = subprocess.Popen(
        child_cmd(tmp_path, cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        if mode == "kill_in_data":
            wait_for(Path(cfg["marker"]), proc)
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]

    # What is left: its marker, data objects and the dead writer's lock, no manifest.
    left = keys_under(storage, "nightly")
    data = {k for k in left if k.startswith("nightly/data/")}
    locks = {k for k in left if k.startswith("nightly/meta/locks/")}
    assert data
    assert len(locks) == 1
    assert mf.manifest_key("nightly") not in left
    assert left == data | locks | {ownership.marker_key("nightly")}
    if mode == "kill_at_manifest":  # every data object was written; only the commit marker is missing
        assert len(data) == 8
    # Local temporary files of the killed process are the only thing left outside the storage.
    assert all(p.name.startswith("milvus-backup-") for p in Path(cfg["tmp_dir"]).iterdir())

    entry = {b["name"]: b for b in engine.list()}["nightly"]
    assert entry["state"] == "partial"
    assert entry["objects"] == len(left)
    assert entry["collections"] == []
    assert engine.latest()["name"] == "older_good"
    with pytest.raises(IncompleteBackupError, match="'nightly' .* has no manifest: it was interrupted"):
        engine.get("nightly")
    with pytest.raises(IncompleteBackupError, match="nightly"):
        verify_backup(storage, "nightly")
    with pytest.raises(IncompleteBackupError, match="'nightly' .* has no manifest"):
        RestoreEngine(storage).restore(params, "nightly", collection_suffix="_r")
    with pytest.raises(
        BackupExistsError, match="partial backup 'nightly' .* delete it or pass overwrite=True"
    ):
        engine.create(params, "nightly", [coll])
    assert keys_under(storage, "nightly") == left  # the refusal changed nothing

    if mode == "kill_in_data":
        deleted = engine.delete("nightly")
        assert deleted["objects"] == len(left)
        assert keys_under(storage, "nightly") == set()
        assert "nightly" not in {b["name"] for b in engine.list()}
        engine.create(params, "nightly", [coll])
    else:
        engine.create(params, "nightly", [coll], overwrite=True)
    assert_clean_complete(storage, "nightly", 2000)
    assert engine.latest()["name"] == "nightly"
    client.drop_collection(coll)
    client.close()


# ------------------------------------------------------------------------------------------------ S3 down
class _StopOnFirstData(S3Storage):
    """Stops the S3 server just before the first data object goes up (or comes down)."""

    server: S3Server
    fired = False

    def _fire(self, key: str) -> None:
        if "/data/" in f"/{key}" and not self.fired:
            type(self).fired = True
            self.server.stop()

    def put_file(self, key: str, path: Path) -> None:  # noqa: D102
        self._fire(key)
        super().put_file(key, path)

    def download(self, key: str, path: Path) -> None:  # noqa: D102
        self._fire(key)
        super().download(key, path)


def _stopper(server: S3Server) -> type[_StopOnFirstData]:
    return type("StopS3", (_StopOnFirstData,), {"server": server, "fired": False})


def _retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]


def test_s3_stopped_during_backup_fails_once_clearly_and_a_rerun_succeeds(
    s3: S3Server, milvus_lite_server: MilvusLiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = open_client(milvus_lite_server.uri)
    coll = f"s3down_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=1500)
    bucket = new_bucket(s3)
    params = MilvusParams(uri=milvus_lite_server.uri)
    faulty = s3_storage(s3, bucket, _stopper(s3))
    caplog.set_level(logging.WARNING)
    began = time.monotonic()
    try:
        with pytest.raises(StorageConnectionError) as e:
            BackupEngine(faulty, batch_bytes=1, file_bytes=1).create(params, "during_s3_outage", [coll])
        elapsed = time.monotonic() - began
    finally:
        start(s3)
    msg = str(e.value)
    assert "cannot reach S3" in msg
    assert s3.endpoint_url in msg
    assert "during_s3_outage/data/" in msg
    assert "Check that the endpoint is up" in msg
    # bounded retries with backoff: a few retries per call, then one failure, well under a minute
    retries = _retry_lines(caplog)
    assert retries
    assert all(int(r.rsplit(" ", 1)[1]) < 4 for r in retries)
    assert elapsed < 45, elapsed

    storage = s3_storage(s3, bucket)
    engine = BackupEngine(storage)
    assert_not_complete(engine, "during_s3_outage")
    with pytest.raises(BackupExistsError, match="partial backup 'during_s3_outage'"):
        engine.create(params, "during_s3_outage", [coll])
    engine.create(params, "during_s3_outage", [coll], overwrite=True)
    assert_clean_complete(storage, "during_s3_outage", 1500)
    client.drop_collection(coll)
    client.close()


def test_s3_stopped_during_restore_fails_once_clearly_and_a_rerun_resumes(
    s3: S3Server, milvus_lite_server: MilvusLiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = open_client(milvus_lite_server.uri)
    coll = f"s3down_r_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=1500)
    bucket = new_bucket(s3)
    params = MilvusParams(uri=milvus_lite_server.uri)
    storage = s3_storage(s3, bucket)
    BackupEngine(storage, batch_bytes=1, file_bytes=1).create(params, "src", [coll])
    caplog.set_level(logging.WARNING)
    began = time.monotonic()
    try:
        with pytest.raises(StorageConnectionError) as e:
            RestoreEngine(s3_storage(s3, bucket, _stopper(s3))).restore(
                params, "src", [coll], collection_suffix="_r"
            )
        elapsed = time.monotonic() - began
    finally:
        start(s3)
    msg = str(e.value)
    assert "cannot reach S3" in msg
    assert s3.endpoint_url in msg
    assert "src/data/" in msg
    assert _retry_lines(caplog)
    assert elapsed < 60, elapsed

    engine = RestoreEngine(storage)
    (rec,) = engine.list_restores("src")
    assert rec["state"] != "success"
    assert rec["alive"] is False
    report = engine.restore(params, "src", [coll], collection_suffix="_r")  # same arguments: resumes
    assert report["restore_id"] == rec["restore_id"]
    assert report["state"] == "success"
    assert count(client, f"{coll}_r") == 1500
    client.drop_collection(coll)
    client.drop_collection(f"{coll}_r")
    client.close()


# ---------------------------------------------------------------------------------------------- Milvus down
class _StopMilvusOnData(S3Storage):
    """Stops the Milvus server when the ``nth`` data object goes up (or comes down)."""

    milvus: MilvusLiteServer
    nth = 1
    seen = 0

    def _fire(self, key: str) -> None:
        if "/data/" in f"/{key}":
            type(self).seen += 1
            if type(self).seen == self.nth:
                self.milvus.kill()

    def put_file(self, key: str, path: Path) -> None:  # noqa: D102
        self._fire(key)
        super().put_file(key, path)

    def download(self, key: str, path: Path) -> None:  # noqa: D102
        super().download(key, path)
        self._fire(key)


def test_milvus_stopped_during_backup_fails_naming_milvus_and_a_rerun_succeeds(
    s3: S3Server, own_lite: MilvusLiteServer
) -> None:
    start(own_lite)
    client = open_client(own_lite.uri)
    coll = f"mdown_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=3000)
    client.close()
    bucket = new_bucket(s3)
    params = MilvusParams(uri=own_lite.uri, timeout=5)
    faulty = s3_storage(s3, bucket, type("StopMilvus", (_StopMilvusOnData,), {"milvus": own_lite, "seen": 0}))
    began = time.monotonic()
    try:
        with pytest.raises(MilvusConnectionError) as e:
            BackupEngine(faulty, batch_bytes=1, file_bytes=1).create(params, "during_milvus_outage", [coll])
        elapsed = time.monotonic() - began
    finally:
        start(own_lite)
    msg = str(e.value)
    assert f"Milvus at {own_lite.uri} failed" in msg
    assert "Check that Milvus is running" in msg
    assert coll in msg  # names the collection whose export failed
    assert elapsed < 30, elapsed

    storage = s3_storage(s3, bucket)
    engine = BackupEngine(storage)
    assert_not_complete(engine, "during_milvus_outage")
    # S3 was up: the failed backup removed its own objects, so the name is free again without overwrite.
    assert keys_under(storage, "during_milvus_outage") == set()
    # After its restart Milvus Lite has released the collection; the backup loads it and releases it again.
    engine.create(params, "during_milvus_outage", [coll])
    assert_clean_complete(storage, "during_milvus_outage", 3000)
    client = open_client(own_lite.uri)
    assert str(client.get_load_state(coll)["state"].name) == "NotLoad"
    client.drop_collection(coll)
    client.close()


def test_milvus_stopped_during_restore_fails_naming_milvus_and_a_rerun_resumes(
    s3: S3Server, own_lite: MilvusLiteServer
) -> None:
    start(own_lite)
    client = open_client(own_lite.uri)
    coll = f"mdown_r_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=2000)
    client.close()
    bucket = new_bucket(s3)
    params = MilvusParams(uri=own_lite.uri, timeout=5)
    storage = s3_storage(s3, bucket)
    BackupEngine(storage, batch_bytes=1, file_bytes=1).create(params, "src", [coll])
    faulty = s3_storage(
        s3, bucket, type("StopMilvus", (_StopMilvusOnData,), {"milvus": own_lite, "seen": 0, "nth": 3})
    )
    began = time.monotonic()
    try:
        with pytest.raises(MilvusConnectionError) as e:
            RestoreEngine(faulty, parallelism=1).restore(params, "src", [coll], collection_suffix="_r")
        elapsed = time.monotonic() - began
    finally:
        start(own_lite)
    msg = str(e.value)
    assert f"Milvus at {own_lite.uri}" in msg
    assert "Check that Milvus is running" in msg
    assert elapsed < 60, elapsed

    engine = RestoreEngine(storage)
    (rec,) = engine.list_restores("src")
    assert rec["state"] == "failed"
    assert rec["alive"] is False
    report = engine.restore(params, "src", [coll], collection_suffix="_r")
    assert report["restore_id"] == rec["restore_id"]
    assert report["state"] == "success"
    client = open_client(own_lite.uri)
    assert count(client, f"{coll}_r") == 2000
    ids = sorted(
        r["id"] for r in client.query(f"{coll}_r", filter="id >= 0", output_fields=["id"], limit=16384)
    )
    assert ids == list(range(2000))  # exactly the backup's rows: none lost, none twice
    client.drop_collection(coll)
    client.drop_collection(f"{coll}_r")
    client.close()


# ------------------------------------------------------------------------------------------ damaged backups
def _damage(storage: S3Storage, name: str, how: str) -> str:
    """Damage one object of backup ``name`` through the S3 API; return the key that verify must name."""
    m = BackupEngine(storage).get(name)
    victim = f"{name}/{m['collections'][0]['data'][1]['files'][0]['key']}"
    manifest = mf.manifest_key(name)
    if how == "flipped_byte":
        raw = bytearray(storage.get_bytes(victim))
        raw[len(raw) // 2] ^= 0x10
        storage.put_bytes(victim, bytes(raw))
    elif how == "truncated_data":
        storage.put_bytes(victim, storage.get_bytes(victim)[:-100])
    elif how == "deleted_data":
        storage.delete([victim])
    elif how == "truncated_manifest":
        storage.put_bytes(manifest, storage.get_bytes(manifest)[:300])
        return manifest
    elif how == "invalid_manifest":
        storage.put_bytes(
            manifest, json.dumps({"format_version": 1, "name": name, "state": "complete"}).encode()
        )
        return manifest
    return victim


@pytest.fixture(scope="module")
def damage_source(milvus_lite_server: MilvusLiteServer):
    client = open_client(milvus_lite_server.uri)
    coll = f"damage_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=900)
    yield coll
    client.drop_collection(coll)
    client.close()


@pytest.mark.parametrize(
    "how",
    [
        "flipped_byte",
        "truncated_data",
        "deleted_data",
        "truncated_manifest",
        "invalid_manifest",
    ],
)
def test_damaged_backup_is_refused_by_verify_and_restore_naming_the_object(
    how: str, s3: S3Server, milvus_lite_server: MilvusLiteServer, damage_source: str
) -> None:
    bucket = new_bucket(s3)
    storage = s3_storage(s3, bucket)
    params = MilvusParams(uri=milvus_lite_server.uri)
    BackupEngine(storage, batch_bytes=1, file_bytes=1).create(params, "damaged", [damage_source])
    key = _damage(storage, "damaged", how)
    manifest_damage = key.endswith(mf.MANIFEST)

    with pytest.raises(IntegrityError) as e:
        verify_backup(storage, "damaged")
    assert repr(key) in str(e.value)
    report = verify_backup(storage, "damaged", raise_on_error=False)
    assert report["ok"] is False
    assert report["errors"][0]["key"] == key
    if manifest_damage:
        assert isinstance(e.value, ManifestError)
        assert {b["name"]: b for b in BackupEngine(storage).list()}["damaged"]["state"] == "corrupt"

    target = f"{damage_source}_{how}"
    with pytest.raises(Exception) as e:  # noqa: PT011 - the class is asserted below, with the message
        RestoreEngine(storage, parallelism=1).restore(
            params, "damaged", collection_renames={damage_source: target}
        )
    assert isinstance(e.value, IntegrityError), f"{type(e.value).__name__}: {e.value}"
    assert repr(key) in str(e.value)
    if how in ("truncated_data", "deleted_data"):
        says = ("of backup 'damaged'", "the backup is damaged", "Nothing was restored", "verify_backup")
        assert all(s in str(e.value) for s in says), str(e.value)
    client = open_client(milvus_lite_server.uri)
    try:
        if how != "flipped_byte":  # manifest, listing or sizes wrong: refused before anything was touched
            assert not client.has_collection(target)
            assert not list(storage.list("damaged/restores/"))
        else:  # same size: refused before a single row of the damaged object went in; the failure is recorded
            (rec,) = RestoreEngine(storage).list_restores("damaged")
            assert rec["state"] == "failed"
            assert key in rec["error"]
            if client.has_collection(target):
                client.drop_collection(target)
    finally:
        client.close()


# ------------------------------------------------------------------------------------------- racing writers
def test_two_backups_of_one_name_at_once_exactly_one_wins(
    s3: S3Server, milvus_lite_server: MilvusLiteServer, tmp_path: Path
) -> None:
    client = open_client(milvus_lite_server.uri)
    coll = f"race_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=2000)
    bucket = new_bucket(s3)
    storage = s3_storage(s3, bucket)
    cfg = child_cfg(s3, bucket, milvus_lite_server.uri, coll, "contested", "race", tmp_path)
    procs = [
        subprocess.Popen(child_cmd(tmp_path, cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        time.sleep(0.5)
        Path(cfg["go"]).touch()
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for (out, err), p in zip(outs, procs, strict=False):
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    winners = [r for r in results if r["ok"]]
    losers = [r for r in results if not r["ok"]]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    loser = losers[0]
    assert loser["type"] in ("BackupInProgressError", "BackupExistsError"), loser
    assert "'contested'" in loser["message"]
    assert "being written by another process" in loser["message"] or "already exists" in loser["message"]
    m = assert_clean_complete(storage, "contested", 2000)  # no leftover lock, nothing of the loser
    assert m["id"] == winners[0]["backup_id"]
    client.drop_collection(coll)
    client.close()


# ------------------------------------------------------------------------------------------ existing target
def test_restore_onto_an_existing_collection_is_refused_and_leaves_it_untouched(
    s3: S3Server, milvus_lite_server: MilvusLiteServer
) -> None:
    client = open_client(milvus_lite_server.uri)
    coll = f"existing_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=600)
    bucket = new_bucket(s3)
    storage = s3_storage(s3, bucket)
    params = MilvusParams(uri=milvus_lite_server.uri)
    BackupEngine(storage).create(params, "snap", [coll])
    client.delete(coll, filter="id < 100")  # the live collection moved on since the backup
    client.insert(coll, [{"id": 10_000 + i, "vec": [0.5] * 8, "tag": "new"} for i in range(7)])
    before = sorted(
        r["id"]
        for r in client.query(
            coll, filter="id >= 0", output_fields=["id"], limit=16384, consistency_level="Strong"
        )
    )
    assert len(before) == 507
    schema_before = client.describe_collection(coll)

    with pytest.raises(TargetExistsError) as e:
        RestoreEngine(storage).restore(params, "snap", [coll])
    msg = str(e.value)
    assert f"default.{coll} already exists" in msg
    assert "nothing was changed" in msg
    assert "drop_existing=True" in msg
    after = sorted(
        r["id"]
        for r in client.query(
            coll, filter="id >= 0", output_fields=["id"], limit=16384, consistency_level="Strong"
        )
    )
    assert after == before
    assert count(client, coll) == 507
    assert client.describe_collection(coll) == schema_before
    assert not list(storage.list("snap/restores/"))
    client.drop_collection(coll)
    client.close()


# ------------------------------------------------------------------------------------------------ retention
class _BlockingStorage(S3Storage):
    """Blocks the first data download until ``release`` is set: a restore that is still reading."""

    entered: threading.Event
    release: threading.Event

    def download(self, key: str, path: Path) -> None:  # noqa: D102
        if "/data/" in f"/{key}" and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(120)
        super().download(key, path)


def test_retention_keeps_the_newest_backup_and_any_backup_a_running_restore_reads(
    s3: S3Server, milvus_lite_server: MilvusLiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_backup.operators import MilvusBackupRetentionOperator
    from tests.support import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported

    client = open_client(milvus_lite_server.uri)
    coll = f"retained_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=300)
    bucket = new_bucket(s3)
    storage = s3_storage(s3, bucket)
    params = MilvusParams(uri=milvus_lite_server.uri)
    engine = BackupEngine(storage)
    for name in ("b1_oldest", "b2_read_by_restore", "b3", "b4_newest"):
        engine.create(params, name, [coll])
        time.sleep(0.05)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_FAULTS",
        json.dumps(
            {
                "conn_type": "aws",
                "login": s3.access_key,
                "password": s3.secret_key,
                "extra": {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"},
            }
        ),
    )
    op = MilvusBackupRetentionOperator(
        task_id="retention",
        aws_conn_id="aws_faults",
        bucket_name=bucket,
        root_path=ROOT,
        keep_last=0,
        max_age=timedelta(0),
    )

    blocking = type(
        "Blocking", (_BlockingStorage,), {"entered": threading.Event(), "release": threading.Event()}
    )
    reader = s3_storage(s3, bucket, blocking)
    outcome: dict[str, Any] = {}

    def run_restore() -> None:
        try:
            outcome["report"] = RestoreEngine(reader).restore(
                params, "b2_read_by_restore", [coll], collection_suffix="_ret"
            )
        except BaseException as e:  # noqa: BLE001 - asserted below
            outcome["error"] = e

    t = threading.Thread(target=run_restore, daemon=True)
    t.start()
    try:
        assert blocking.entered.wait(60), outcome
        result = op.execute(context={})  # type: ignore[arg-type]
    finally:
        blocking.release.set()
        t.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert sorted(result["deleted"]) == ["b1_oldest", "b3"]
    assert result["kept"] == ["b4_newest"]
    assert "running restore" in result["skipped"]["b2_read_by_restore"]
    assert sorted(b["name"] for b in engine.list()) == ["b2_read_by_restore", "b4_newest"]
    # the restore that was reading b2 finished from an intact backup
    assert outcome["report"]["state"] == "success"
    assert count(client, f"{coll}_ret") == 300
    verify_backup(storage, "b2_read_by_restore")
    # with nothing reading it any more, b2 goes on the next run; the newest stays even with keep_last=0
    result = op.execute(context={})  # type: ignore[arg-type]
    assert result["deleted"] == ["b2_read_by_restore"]
    assert result["kept"] == ["b4_newest"]
    assert [b["name"] for b in engine.list()] == ["b4_newest"]
    client.drop_collection(coll)
    client.drop_collection(f"{coll}_ret")
    client.close()
