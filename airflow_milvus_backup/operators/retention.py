"""MilvusBackupRetentionOperator: delete old backups, keeping the last N and/or those younger than an age."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.exceptions import MilvusBackupException, MilvusBackupInvalidArgument
from airflow_milvus_backup.operators.base import MilvusBackupBaseOperator, as_bool, as_count, as_duration

if TYPE_CHECKING:
    from airflow.sdk import Context


def _created(b: dict[str, Any]) -> datetime | None:
    text = b.get("created_at")
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class MilvusBackupRetentionOperator(MilvusBackupBaseOperator):
    """Delete old backups; return ``{"deleted": [...], "kept": [...], "skipped": {...}, "dry_run": ...}``.

    A complete backup is kept if it is one of the newest ``keep_last``, or younger than ``max_age``, (the
    rules add up, as in borg and restic); every other one is deleted. Never deleted: the newest complete
    backup, a backup being written, a backup a running restore reads (a live lease with a running state under
    ``<backup>/restores/``), a backup with a corrupt manifest (left for a human to look at), and any folder
    that is not a backup of this package (state ``unknown``: no marker, lock or manifest of ours; never
    touched). Partial backups (ours, interrupted: no manifest) older than ``partial_grace_period`` are
    deleted too.

    Takes the location arguments (connections, bucket, ...) of :class:`MilvusBackupBaseOperator`, and:

    :param keep_last: keep this many newest complete backups (templated).
    :param max_age: keep complete backups younger than this (a timedelta, or seconds; templated).
    :param backup_prefix: only consider backups whose name starts with this (templated), e.g. the prefix of
        one DAG's backups.
    :param partial_grace_period: delete partial backups older than this (a timedelta, or seconds; templated).
    :param dry_run: only log and return what would be deleted (templated, as the attribute ``dry_run_mode``).
    """

    template_fields: Sequence[str] = (
        "keep_last",
        "max_age",
        "backup_prefix",
        "partial_grace_period",
        "dry_run_mode",
        *MilvusBackupBaseOperator.template_fields,
    )

    def __init__(
        self,
        *,
        keep_last: int | None = None,
        max_age: timedelta | float | None = None,
        backup_prefix: str = "",
        partial_grace_period: timedelta | float = timedelta(hours=24),
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_last = keep_last
        self.max_age = max_age
        self.backup_prefix = backup_prefix
        self.partial_grace_period = partial_grace_period
        # Not ``self.dry_run``: that is BaseOperator's method.
        self.dry_run_mode = dry_run

    def execute(self, context: Context) -> dict[str, Any]:
        """Choose and delete old backups; return the names deleted, kept and skipped (with the reason)."""
        keep_last = self._keep_last()
        # finite, not negative, at most 100 years: inf or 1e15 would overflow date arithmetic later
        max_age = as_duration(self.max_age, "max_age")
        grace = as_duration(self.partial_grace_period, "partial_grace_period") or timedelta(0)
        dry_run = as_bool(self.dry_run_mode, "dry_run")
        if keep_last is None and max_age is None:
            raise MilvusBackupInvalidArgument(
                "MilvusBackupRetentionOperator needs keep_last and/or max_age: set how many or how old "
                "backups to keep."
            )
        now = datetime.now(timezone.utc)
        backups = self.hook.list_backups(prefix=self.backup_prefix or "")
        complete = [b for b in backups if b.get("state") == "complete"]
        complete.sort(key=lambda b: (_created(b) or datetime.min.replace(tzinfo=timezone.utc), b["name"]))
        complete.reverse()
        kept: list[str] = []
        skipped: dict[str, str] = {}
        candidates: list[tuple[str, str]] = []
        for i, b in enumerate(complete):
            created = _created(b)
            reasons = []
            if i == 0:
                reasons.append("newest complete backup")
            if keep_last is not None and i < keep_last:
                reasons.append(f"one of the last {keep_last}")
            if max_age is not None and (created is None or now - created <= max_age):
                reasons.append(f"younger than {max_age}")
            if reasons:
                kept.append(b["name"])
            else:
                candidates.append((b["name"], f"complete, created {b.get('created_at')}"))
        for b in backups:
            state = b.get("state")
            if state == "unknown" or b.get("owned") is False:
                skipped[b["name"]] = b.get("reason") or "not a backup of airflow-milvus-backup: not touched"
                self.log.info("Not touching %s: %s", b["name"], skipped[b["name"]])
            elif state == "partial":
                created = _created(b)
                if created is not None and now - created > grace:
                    candidates.append((b["name"], f"partial (interrupted), created {b.get('created_at')}"))
                else:
                    skipped[b["name"]] = f"partial but younger than the grace period {grace}"
            elif state == "in_progress":
                skipped[b["name"]] = "being written"
            elif state not in ("complete", None):
                skipped[b["name"]] = f"state {state!r}: {b.get('error', 'check it by hand')}"
                self.log.warning("Not deleting backup %s in state %s: %s", b["name"], state, b.get("error"))
        deleted: list[str] = []
        for name, why in candidates:
            readers = self.hook.running_restores(name)
            if readers:
                reader = readers[0].get("restore_id") or readers[0].get("_key")
                skipped[name] = f"a running restore reads it ({reader})"
                self.log.info("Keeping backup %s: a running restore reads it", name)
                continue
            if dry_run:
                self.log.info("Dry run: would delete backup %s (%s)", name, why)
                deleted.append(name)
                continue
            try:
                self.hook.delete_backup(name)
            except MilvusBackupException as e:
                skipped[name] = str(e)
                self.log.warning("Could not delete backup %s: %s", name, e)
                continue
            self.log.info("Deleted backup %s (%s)", name, why)
            deleted.append(name)
        self.log.info(
            "Retention%s: %d deleted, %d kept, %d skipped in %s",
            " (dry run)" if dry_run else "",
            len(deleted),
            len(kept),
            len(skipped),
            self.hook.storage.description,
        )
        return {"deleted": deleted, "kept": kept, "skipped": skipped, "dry_run": dry_run}

    def _keep_last(self) -> int | None:
        if self.keep_last is None or self.keep_last == "":
            return None
        return as_count(self.keep_last, "keep_last", minimum=0)  # 2.7 is refused, not rounded down
