"""engine.retention.prune: every decision of the retention policy, with plain data and a fixed ``now``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_milvus_backup.engine.retention import (
    Action,
    BackupInfo,
    RetentionPolicy,
    Rule,
    prune,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def complete(name: str, hours_ago: float | None) -> BackupInfo:
    return BackupInfo(name, "complete", None if hours_ago is None else _at(hours_ago), owned=True)


def names(verdicts: tuple) -> list[str]:
    return [v.name for v in verdicts]


def test_keep_last_keeps_the_newest_n_and_deletes_the_rest_newest_first() -> None:
    backups = [complete(f"b{i}", hours_ago=10 * i) for i in (3, 1, 4, 2, 5)]
    d = prune(backups, RetentionPolicy(keep_last=2), NOW)
    assert names(d.kept) == ["b1", "b2"]
    assert names(d.delete) == ["b3", "b4", "b5"]
    assert d.kept[0].reason == "newest complete backup, one of the last 2"
    assert d.kept[1].reason == "one of the last 2"
    assert d.delete[0].reason == f"complete, created {_at(30)}"
    assert {v.action for v in d.delete} == {Action.DELETE}
    assert {v.rule for v in d.delete} == {Rule.EXPIRED}
    assert d.skipped == ()


def test_the_newest_complete_backup_always_stays() -> None:
    backups = [complete("old", 100), complete("older", 200)]
    d = prune(backups, RetentionPolicy(keep_last=0), NOW)
    assert names(d.kept) == ["old"]
    assert d.kept[0].reason == "newest complete backup"
    d = prune(backups, RetentionPolicy(max_age=timedelta(0)), NOW)
    assert names(d.kept) == ["old"]
    assert names(d.delete) == ["older"]


def test_max_age_keeps_younger_backups_and_the_rules_add_up() -> None:
    backups = [complete("a", 1), complete("b", 5), complete("c", 30), complete("d", 50)]
    d = prune(backups, RetentionPolicy(max_age=timedelta(hours=24)), NOW)
    assert names(d.kept) == ["a", "b"]
    assert d.kept[1].reason == "younger than 1 day, 0:00:00"
    assert names(d.delete) == ["c", "d"]
    # keep_last 3 or younger than a day: a, b (both), c (one of the last 3)
    d = prune(backups, RetentionPolicy(keep_last=3, max_age=timedelta(hours=24)), NOW)
    assert names(d.kept) == ["a", "b", "c"]
    assert d.kept[2].reason == "one of the last 3"
    assert names(d.delete) == ["d"]


def test_exactly_max_age_old_is_still_kept() -> None:
    d = prune([complete("new", 0), complete("edge", 24)], RetentionPolicy(max_age=timedelta(hours=24)), NOW)
    assert names(d.kept) == ["new", "edge"]


def test_a_complete_backup_of_unknown_age_counts_as_oldest_and_max_age_keeps_it() -> None:
    backups = [complete("dated", 1), complete("undated", None)]
    d = prune(backups, RetentionPolicy(keep_last=1), NOW)
    assert names(d.kept) == ["dated"]
    assert names(d.delete) == ["undated"]
    assert d.delete[0].reason == "complete, created None"
    d = prune(backups, RetentionPolicy(keep_last=1, max_age=timedelta(hours=2)), NOW)
    assert names(d.kept) == ["dated", "undated"]


def test_ties_in_time_are_ordered_by_name_and_times_without_zone_are_utc() -> None:
    same = _at(5)
    naive = (NOW - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    backups = [
        BackupInfo("x_a", "complete", same, owned=True),
        BackupInfo("x_b", "complete", same, owned=True),
        BackupInfo("x_naive", "complete", naive, owned=True),
        BackupInfo("x_z", "complete", _at(10).replace("+00:00", "Z"), owned=True),
    ]
    d = prune(backups, RetentionPolicy(keep_last=2), NOW)
    assert names(d.kept) == ["x_naive", "x_b"]
    assert names(d.delete) == ["x_a", "x_z"]


def test_partial_backups_are_deleted_after_the_grace_period_only() -> None:
    backups = [
        complete("c", 1),
        BackupInfo("p_old", "partial", _at(48), owned=True),
        BackupInfo("p_young", "partial", _at(2), owned=True),
        BackupInfo("p_undated", "partial", None, owned=True),
    ]
    d = prune(backups, RetentionPolicy(keep_last=5, partial_grace=timedelta(hours=24)), NOW)
    assert names(d.delete) == ["p_old"]
    assert d.delete[0].rule is Rule.PARTIAL_EXPIRED
    assert d.delete[0].reason == f"partial (interrupted), created {_at(48)}"
    assert [(v.name, v.rule) for v in d.skipped] == [
        ("p_young", Rule.PARTIAL_IN_GRACE),
        ("p_undated", Rule.PARTIAL_IN_GRACE),
    ]
    assert d.skipped[0].reason == "partial but younger than the grace period 1 day, 0:00:00"
    d = prune(backups, RetentionPolicy(keep_last=5, partial_grace=timedelta(0)), NOW)
    assert names(d.delete) == ["p_old", "p_young"]


def test_complete_backups_to_delete_come_before_partial_ones() -> None:
    backups = [BackupInfo("p", "partial", _at(48), owned=True), complete("new", 1), complete("old", 40)]
    d = prune(backups, RetentionPolicy(keep_last=1, partial_grace=timedelta(hours=1)), NOW)
    assert names(d.delete) == ["old", "p"]


def test_folders_that_are_not_ours_are_never_touched() -> None:
    backups = [
        complete("mine", 1),
        BackupInfo("theirs", "unknown", _at(500), owned=False, reason="'theirs' is not a backup of ours"),
        BackupInfo("no_reason", "unknown", _at(500)),
        BackupInfo("broken_alone", "corrupt", _at(500), owned=False, reason="not JSON", error="not JSON"),
        BackupInfo("odd", "complete", _at(500), owned=False),  # never listed so; still never touched
    ]
    d = prune(backups, RetentionPolicy(keep_last=0, max_age=timedelta(0)), NOW)
    assert names(d.kept) == ["mine"]
    assert d.delete == ()
    assert [(v.name, v.rule, v.reason) for v in d.skipped] == [
        ("theirs", Rule.FOREIGN, "'theirs' is not a backup of ours"),
        ("no_reason", Rule.FOREIGN, "not a backup of airflow-milvus-backup: not touched"),
        ("broken_alone", Rule.FOREIGN, "not JSON"),
        ("odd", Rule.FOREIGN, "not a backup of airflow-milvus-backup: not touched"),
    ]


def test_backups_being_written_or_corrupt_are_left_for_a_person() -> None:
    backups = [
        complete("c", 1),
        BackupInfo("w", "in_progress", _at(500), owned=True),
        BackupInfo("bad", "corrupt", _at(500), owned=True, error="manifest truncated"),
        BackupInfo("strange", "corrupt", _at(500), owned=True),
        BackupInfo("stateless", None, _at(500)),
    ]
    d = prune(backups, RetentionPolicy(keep_last=1, partial_grace=timedelta(0)), NOW)
    assert d.delete == ()
    assert [(v.name, v.action, v.rule, v.reason) for v in d.skipped] == [
        ("w", Action.SKIP, Rule.IN_PROGRESS, "being written"),
        ("bad", Action.SKIP, Rule.NEEDS_A_LOOK, "state 'corrupt': manifest truncated"),
        ("strange", Action.SKIP, Rule.NEEDS_A_LOOK, "state 'corrupt': check it by hand"),
    ]  # an entry without a state is not a backup: no verdict


def test_only_names_with_the_prefix_are_considered() -> None:
    backups = [complete("nightly_1", 30), complete("nightly_2", 1), complete("adhoc", 100)]
    d = prune(backups, RetentionPolicy(keep_last=1, prefix="nightly_"), NOW)
    assert names(d.kept) == ["nightly_2"]
    assert names(d.delete) == ["nightly_1"]
    assert d.skipped == ()  # "adhoc" is not looked at at all


def test_from_listing_takes_what_the_engine_lists() -> None:
    entry = {
        "name": "b1",
        "state": "corrupt",
        "created_at": "2026-12-01T00:00:00+00:00",
        "owned": True,
        "reason": "truncated",
        "error": "truncated",
        "size": 10,
    }
    info = BackupInfo.from_listing(entry)
    assert info == BackupInfo("b1", "corrupt", "2026-12-01T00:00:00+00:00", True, "truncated", "truncated")
    assert info.created == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert BackupInfo("x", "complete", "yesterday").created is None


def test_the_decision_is_frozen_and_the_same_for_the_same_input() -> None:
    backups = [complete("a", 1), complete("b", 50)]
    policy = RetentionPolicy(keep_last=1)
    d = prune(backups, policy, NOW)
    assert d == prune(list(reversed(backups)), policy, NOW)
    with pytest.raises(AttributeError):
        d.kept = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "needs keep_last and/or max_age"), ({"keep_last": -1}, "must not be negative")],
)
def test_a_policy_that_keeps_nothing_said_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**kwargs)
