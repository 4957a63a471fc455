"""MilvusRestoreTrigger: wait in the triggerer until the import jobs of a submitted restore are done.

The trigger only reads: each poll is :meth:`MilvusBackupHook.restore_import_state` (the jobs' progress,
recorded in the restore status). Finishing the restore (flush, indexes, load state, aliases, counts) is
Milvus work for a worker: the operator's ``execute_complete`` does it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_milvus_backup.triggers.base import MilvusBackupBaseTrigger

if TYPE_CHECKING:
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

#: The import state while jobs run; the states after which the task goes on on a worker.
EXECUTING = "executing"
IMPORTED = "imported"
SUCCESS = "success"


def progress_text(totals: Mapping[str, Any] | None) -> str:
    """Return a restore's progress for the log: ``"3 of 4 files done, 1500 of 2000 rows"``."""
    t = totals or {}
    return (
        f"{t.get('files_done')} of {t.get('files')} files done, "
        f"{t.get('rows_restored')} of {t.get('rows_expected')} rows"
    )


class MilvusRestoreTrigger(MilvusBackupBaseTrigger):
    """Poll the import jobs of a submitted restore until every one is done, or one failed.

    Event: ``{"status": "success", "backup_name", "restore_id", "state", "totals", "error": None}`` once the
    jobs are done (``state`` ``imported``, or ``success`` when the restore was finished already), or
    ``{"status": "error", "message", "backup_name", "restore_id", "state", "totals", "error"}``. A summary,
    not the status of every file: the operator reads the full report when it finishes the restore.

    :param backup_name: the backup being restored.
    :param restore_id: the restore's id (from the submit status).
    :param poll_interval: seconds between two polls.
    """

    def __init__(self, *, backup_name: str, restore_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_name = backup_name
        self.restore_id = restore_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and every keyword argument."""
        return (
            "airflow_milvus_backup.triggers.restore.MilvusRestoreTrigger",
            {**self._base_kwargs(), "backup_name": self.backup_name, "restore_id": self.restore_id},
        )

    def _event(self, status: str, summary: Mapping[str, Any], **extra: Any) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "backup_name": self.backup_name,
                "restore_id": self.restore_id,
                "state": summary.get("state"),
                "totals": dict(summary.get("totals") or {}),
                "error": summary.get("error"),
                **extra,
            }
        )

    @property
    def what(self) -> str:
        """What the trigger waits for, to start its log lines and error messages."""
        return f"Restore {self.restore_id} of backup {self.backup_name!r}"

    def error_payload(self) -> dict[str, Any]:
        """Return the restore's ids: an error event carries them too."""
        return {"backup_name": self.backup_name, "restore_id": self.restore_id}

    def check(self, hook: MilvusBackupHook) -> TriggerEvent | None:
        """Return an event once every import job is done, or one failed; else ``None``."""
        summary = hook.restore_import_state(self.backup_name, self.restore_id)
        state = str(summary.get("state", "")).lower()
        done = progress_text(summary.get("totals"))
        if state in (IMPORTED, SUCCESS):
            self.log.info("%s: %s, %s; the task finishes it on a worker", self.what, state, done)
            return self._event("success", summary)
        if state != EXECUTING:
            message = hook.scrub(f"{self.what} failed: {summary.get('error') or f'ended in state {state!r}'}")
            self.log.error("%s", message)
            return self._event("error", summary, message=message)
        self.log.info("%s: executing, %s; next poll in %s s", self.what, done, self.poll_interval)
        return None
