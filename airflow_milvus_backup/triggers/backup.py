"""MilvusBackupTrigger: fire when a backup is complete (the deferrable sensor's trigger)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_milvus_backup.triggers.base import MilvusBackupBaseTrigger

if TYPE_CHECKING:
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook


class MilvusBackupTrigger(MilvusBackupBaseTrigger):
    """Fire when a backup is complete: one by name, or the newest whose name starts with a prefix.

    Each check is :meth:`MilvusBackupHook.find_complete_backup`, the sensor's poke. Event:
    ``{"status": "success", "backup": <summary of the backup>}`` or ``{"status": "error", "message": ...}``. A
    backup being written, a partial one and a missing one are waited for; a corrupt manifest is an error.

    :param backup_name: the backup to wait for; ``None`` to wait for any complete backup matching
        ``backup_prefix``.
    :param backup_prefix: with no ``backup_name``, the prefix of names to consider.
    :param newer_than: with a prefix, only backups created after this ISO 8601 time count.
    """

    def __init__(
        self,
        *,
        backup_name: str | None = None,
        backup_prefix: str = "",
        newer_than: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backup_name = backup_name
        self.backup_prefix = backup_prefix
        self.newer_than = newer_than

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and every keyword argument."""
        return (
            "airflow_milvus_backup.triggers.backup.MilvusBackupTrigger",
            {
                **self._base_kwargs(),
                "backup_name": self.backup_name,
                "backup_prefix": self.backup_prefix,
                "newer_than": self.newer_than,
            },
        )

    @property
    def what(self) -> str:
        """What the trigger waits for, to start its log lines and error messages."""
        return f"Waiting for backup {self.backup_name or (self.backup_prefix or '') + '*'}"

    def check(self, hook: MilvusBackupHook) -> TriggerEvent | None:
        """Return the success event once the backup is complete, else ``None``."""
        found = hook.find_complete_backup(self.backup_name, self.backup_prefix, self.newer_than)
        if found is not None:
            return TriggerEvent({"status": "success", "backup": found})
        self.log.info("%s: not complete yet; next check in %s s", self.what, self.poll_interval)
        return None
