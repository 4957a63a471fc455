"""MilvusBackupRetentionOperator: delete old backups, keeping the last N and/or those younger than an age."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.retention import BackupInfo, RetentionPolicy, Rule, prune
from airflow_milvus_backup.exceptions import MilvusBackupException, MilvusBackupInvalidArgument
from airflow_milvus_backup.operators.base import MilvusBackupBaseOperator, as_bool, as_count, as_duration

if TYPE_CHECKING:
    from airflow.sdk import Context


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
        policy = RetentionPolicy(keep_last, max_age, grace, self.backup_prefix or "")
        listing = [BackupInfo.from_listing(b) for b in self.hook.list_backups(prefix=policy.prefix)]
        decision = prune(listing, policy, datetime.now(timezone.utc))
        info = {b.name: b for b in listing}
        kept = [v.name for v in decision.kept]
        skipped = {v.name: v.reason for v in decision.skipped}
        for v in decision.skipped:
            if v.rule is Rule.FOREIGN:
                self.log.info("Not touching %s: %s", v.name, v.reason)
            elif v.rule is Rule.NEEDS_A_LOOK:
                b = info[v.name]
                self.log.warning("Not deleting backup %s in state %s: %s", v.name, b.state, b.error)
        candidates = [(v.name, v.reason) for v in decision.delete]
        deleted: list[str] = []
        for name, why in candidates:
            # kept until BackupEngine.delete refuses a backup a running restore reads (issue 9)
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
