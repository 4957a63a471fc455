"""Which backups to keep and which to delete: a pure policy, like borg's and restic's ``prune``.

:func:`prune` takes the listing of the backups (plain data, as :meth:`BackupEngine.list` returns it), the
policy and ``now``, and returns a frozen :class:`RetentionDecision`: each backup kept, deleted or skipped,
with the reason. It does no I/O; the retention operator gathers the listing, calls it and carries the
deletions out through the hook (whose delete refuses a backup a live process writes or reads).

The rules, as the retention operator has always applied them:

* a complete backup is kept if it is the newest one, one of the newest ``keep_last``, or younger than
  ``max_age`` (the rules add up); every other complete backup is deleted;
* a partial backup (ours, interrupted: no manifest) is deleted once older than the grace period;
* never touched: a folder that is not a backup of this package (``owned`` false or state ``unknown``), a
  backup being written, a backup in any other state (corrupt: left for a person to look at);
* only names that start with the prefix are considered (and, when the policy names ``kinds``, only backups of
  those kinds);
* backups of every kind are ranked together (``logical``, ``physical``, ``milvus-backup``); a complete backup
  Milvus Backup wrote is pruned like ours (it is a recognised, complete backup), an incomplete one never
  (Milvus Backup may be writing it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


class Action(enum.Enum):
    """What happens to one backup."""

    KEEP = "keep"
    DELETE = "delete"
    SKIP = "skip"


class Rule(enum.Enum):
    """The rule that decided, for the log line the operator writes about it."""

    #: a complete backup one of the keep rules holds
    KEPT = "kept"
    #: a complete backup no keep rule holds
    EXPIRED = "expired"
    #: a partial backup older than the grace period
    PARTIAL_EXPIRED = "partial_expired"
    #: a partial backup within the grace period (or of unknown age)
    PARTIAL_IN_GRACE = "partial_in_grace"
    #: not a backup of this package: never touched
    FOREIGN = "foreign"
    #: a live writer holds it
    IN_PROGRESS = "in_progress"
    #: another state (corrupt...): a person should look at it
    NEEDS_A_LOOK = "needs_a_look"


@dataclass(frozen=True)
class BackupInfo:
    """One backup of the listing, as far as retention is concerned.

    :param name: the backup's name.
    :param state: ``complete``, ``partial``, ``in_progress``, ``corrupt``, ``unknown``...
    :param created_at: when it was created (ISO 8601 text as listed), ``None`` if not known.
    :param owned: whether the folder carries a mark of this package (``None``: not said).
    :param reason: why the listing says it is not ours or not readable.
    :param error: what is wrong with it (corrupt backups).
    """

    name: str
    state: str | None
    created_at: str | None = None
    owned: bool | None = None
    reason: str | None = None
    error: str | None = None
    kind: str | None = None

    @classmethod
    def from_listing(cls, entry: Mapping[str, Any]) -> BackupInfo:
        """Return the info of one entry of :meth:`BackupEngine.list`."""
        return cls(
            name=str(entry["name"]),
            state=entry.get("state"),
            created_at=entry.get("created_at"),
            owned=entry.get("owned"),
            reason=entry.get("reason"),
            error=entry.get("error"),
            kind=entry.get("kind"),
        )

    @property
    def created(self) -> datetime | None:
        """The creation time (UTC if the text names no zone), ``None`` if absent or unreadable."""
        if not self.created_at:
            return None
        try:
            dt = datetime.fromisoformat(str(self.created_at).replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep.

    :param keep_last: keep this many newest complete backups (``None``: no such rule).
    :param max_age: keep complete backups younger than this (``None``: no such rule).
    :param partial_grace: delete partial backups older than this.
    :param prefix: only consider backups whose name starts with it.
    :param kinds: only consider backups of these kinds (``None``: every kind).
    """

    keep_last: int | None = None
    max_age: timedelta | None = None
    partial_grace: timedelta = timedelta(hours=24)
    prefix: str = ""
    kinds: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.keep_last is None and self.max_age is None:
            raise ValueError("A retention policy needs keep_last and/or max_age.")
        if self.keep_last is not None and self.keep_last < 0:
            raise ValueError(f"keep_last must not be negative, not {self.keep_last}.")


@dataclass(frozen=True)
class Verdict:
    """The decision about one backup.

    :param name: the backup's name.
    :param action: keep, delete or skip.
    :param rule: the rule that decided.
    :param reason: why, as the operator reports it.
    """

    name: str
    action: Action
    rule: Rule
    reason: str


@dataclass(frozen=True)
class RetentionDecision:
    """What :func:`prune` decided: every backup considered, in the order the operator reports them.

    :param kept: complete backups kept, newest first.
    :param delete: backups to delete: complete ones newest first, then partial ones as listed.
    :param skipped: backups never touched, as listed.
    """

    kept: tuple[Verdict, ...]
    delete: tuple[Verdict, ...]
    skipped: tuple[Verdict, ...]


def prune(backups: Iterable[BackupInfo], policy: RetentionPolicy, now: datetime) -> RetentionDecision:
    """Decide which backups to keep, delete and leave alone.

    :param backups: the backups under the root (any order).
    :param policy: what to keep.
    :param now: the time to measure ages against (timezone-aware).
    """
    listed = [
        b
        for b in backups
        if b.name.startswith(policy.prefix) and (policy.kinds is None or b.kind in policy.kinds)
    ]
    foreign = {b.name for b in listed if _foreign(b)}
    complete = [b for b in listed if b.state == "complete" and b.name not in foreign]
    complete.sort(key=lambda b: (b.created or _EPOCH, b.name), reverse=True)
    kept: list[Verdict] = []
    delete: list[Verdict] = []
    for i, b in enumerate(complete):
        reasons = _keep_reasons(i, b, policy, now)
        if reasons:
            kept.append(Verdict(b.name, Action.KEEP, Rule.KEPT, ", ".join(reasons)))
        else:
            delete.append(Verdict(b.name, Action.DELETE, Rule.EXPIRED, f"complete, created {b.created_at}"))
    skipped: list[Verdict] = []
    for b in listed:
        verdict = _other(b, b.name in foreign, policy, now)
        if verdict is None:
            continue
        (delete if verdict.action is Action.DELETE else skipped).append(verdict)
    return RetentionDecision(tuple(kept), tuple(delete), tuple(skipped))


def _foreign(b: BackupInfo) -> bool:
    """Return whether retention must never touch ``b`` (not ours; Milvus Backup's unless complete)."""
    if b.kind == "milvus-backup":
        return b.state != "complete"
    return b.state == "unknown" or b.owned is False


def _keep_reasons(i: int, b: BackupInfo, policy: RetentionPolicy, now: datetime) -> list[str]:
    """Return why the ``i``-th newest complete backup is kept (empty: it is not)."""
    reasons = []
    if i == 0:
        reasons.append("newest complete backup")
    if policy.keep_last is not None and i < policy.keep_last:
        reasons.append(f"one of the last {policy.keep_last}")
    created = b.created
    if policy.max_age is not None and (created is None or now - created <= policy.max_age):
        reasons.append(f"younger than {policy.max_age}")
    return reasons


def _other(b: BackupInfo, foreign: bool, policy: RetentionPolicy, now: datetime) -> Verdict | None:
    """Return the verdict on a backup that is not complete (``None`` for complete ones and no state)."""
    if foreign:
        why = b.reason or "not a backup of airflow-milvus-backup: not touched"
        return Verdict(b.name, Action.SKIP, Rule.FOREIGN, why)
    if b.state == "partial":
        created = b.created
        if created is not None and now - created > policy.partial_grace:
            why = f"partial (interrupted), created {b.created_at}"
            return Verdict(b.name, Action.DELETE, Rule.PARTIAL_EXPIRED, why)
        why = f"partial but younger than the grace period {policy.partial_grace}"
        return Verdict(b.name, Action.SKIP, Rule.PARTIAL_IN_GRACE, why)
    if b.state == "in_progress":
        return Verdict(b.name, Action.SKIP, Rule.IN_PROGRESS, "being written")
    if b.state not in ("complete", None):
        why = f"state {b.state!r}: {b.error if b.error is not None else 'check it by hand'}"
        return Verdict(b.name, Action.SKIP, Rule.NEEDS_A_LOOK, why)
    return None
