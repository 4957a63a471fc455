"""The choice of the newest complete backup (:func:`catalog.choose_latest`), without a server."""

from __future__ import annotations

from airflow_milvus_backup.engine.catalog import choose_latest

ENTRIES = [  # newest first, as BackupEngine.list returns them
    {"name": "nightly_3", "state": "in_progress", "collections": []},
    {"name": "nightly_2", "state": "complete", "collections": []},
    {"name": "weekly_1", "state": "complete", "collections": ["default.c1"]},
    {"name": "nightly_1", "state": "complete", "collections": ["default.c1"]},
    {"name": "nightly_0", "state": "corrupt", "collections": []},
]


def test_the_newest_complete_backup_with_data_wins_and_empty_ones_are_counted() -> None:
    assert choose_latest(ENTRIES) == (ENTRIES[2], 1)
    assert choose_latest(ENTRIES, "nightly") == (ENTRIES[3], 1)
    assert choose_latest(ENTRIES, "nightly", allow_empty=True) == (ENTRIES[1], 0)
    assert choose_latest(ENTRIES, "monthly") == (None, 0)
    assert choose_latest(ENTRIES[:2], "nightly") == (None, 1)
