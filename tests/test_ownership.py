"""The ownership decision (:func:`ownership.classify`) and marker/lock recognition, without a server."""

from __future__ import annotations

import json

import pytest

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import ownership
from airflow_milvus_backup.engine.ownership import BackupState, ManifestVerdict

V = ManifestVerdict


@pytest.mark.parametrize(
    ("manifest", "marker", "lock", "live", "state", "owned"),
    [
        (V.VALID, False, False, False, BackupState.COMPLETE, True),  # earlier releases: manifest only
        (V.VALID, True, False, False, BackupState.COMPLETE, True),
        (V.MALFORMED, False, False, False, BackupState.CORRUPT, True),  # our format, wrong shape
        (V.UNREADABLE, True, False, False, BackupState.CORRUPT, True),
        (V.UNREADABLE, False, True, False, BackupState.CORRUPT, True),
        (V.UNREADABLE, False, False, False, BackupState.CORRUPT, False),  # cannot tell whose: never deleted
        (V.FOREIGN, False, False, False, BackupState.UNKNOWN, False),  # the Go tool's backup
        (V.FOREIGN, True, False, False, BackupState.CORRUPT, True),  # ours, manifest replaced
        (V.ABSENT, False, True, True, BackupState.IN_PROGRESS, True),
        (V.ABSENT, True, True, True, BackupState.IN_PROGRESS, True),
        (V.ABSENT, True, False, False, BackupState.PARTIAL, True),
        (V.ABSENT, False, True, False, BackupState.PARTIAL, True),  # earlier releases: a dead writer's lock
        (V.ABSENT, False, False, False, BackupState.UNKNOWN, False),  # postgres/, Photos/, logs/
    ],
)
def test_classify(
    manifest: ManifestVerdict, marker: bool, lock: bool, live: bool, state: BackupState, owned: bool
) -> None:
    got = ownership.classify("x", manifest=manifest, marker=marker, lock=lock, live_lock=live, error="why")
    assert (got.state, got.owned) == (state, owned)
    if state is BackupState.UNKNOWN:
        assert got.reason
        assert "not touched" in got.reason
    if state is BackupState.CORRUPT:
        assert got.reason == "why"


def test_only_our_marker_and_our_locks_count() -> None:
    assert ownership.is_our_marker(ownership.marker_body("b1", "id1"), "b1")
    assert ownership.is_our_marker(ownership.marker_body("b1", "id1"), "b1_copy")  # a backup copied by hand
    for raw in (b"", b"[", b"[]", b'{"format": "milvus-backup", "name": "b1"}', b"[" * 100_000):
        assert not ownership.is_our_marker(raw, "b1")
    body = json.loads(ownership.marker_body("b1", "id1"))
    assert body["format"] == mf.FORMAT_NAME
    assert body["id"] == "id1"
    lock = {"id": "abc", "host": "h", "pid": 1, "backup": "b1", "heartbeat_at": "2026-01-01T00:00:00+00:00"}
    assert ownership.is_our_lock(lock, "b1")
    assert not ownership.is_our_lock({**lock, "backup": "b2"}, "b1")
    assert not ownership.is_our_lock({"id": "abc", "note": "someone's json"}, "b1")
