"""What the triggers of this provider share: the location arguments, the hook, and error events.

The triggers poll through the hook in a worker thread (``sync_to_async``) so the triggerer's event loop never
blocks, and turn every failure into ``TriggerEvent({"status": "error", "message": ...})``. ``serialize()``
returns the classpath and *all* keyword arguments; new arguments get defaults and none is ever removed
(serialized triggers outlive upgrades).
"""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_milvus_backup.hooks.location import BackupLocation, takes_location
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook


class MilvusBackupBaseTrigger(BaseTrigger):
    """Location arguments (:class:`~airflow_milvus_backup.hooks.location.BackupLocation`) and the hook.

    :param poll_interval: seconds between two checks.
    """

    @takes_location()
    def __init__(self, *, poll_interval: float = 30.0, **kwargs: Any) -> None:
        super().__init__()
        self.location = BackupLocation(**BackupLocation.take(kwargs))
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(kwargs)}")
        self.poll_interval = poll_interval

    def _base_kwargs(self) -> dict[str, Any]:
        return {**self.location.as_kwargs(), "poll_interval": self.poll_interval}

    def _hook(self) -> MilvusBackupHook:
        return MilvusBackupHook(**self.location.as_kwargs(), logger=self.log)  # type: ignore[arg-type]

    def _error(self, hook: MilvusBackupHook | None, e: BaseException, what: str) -> TriggerEvent:
        message = str(e) or type(e).__name__
        if hook is not None:
            message = hook.scrub(message)
        self.log.error("%s: %s", what, message)
        return TriggerEvent(
            {"status": "error", "message": f"{what}: {message}", "error_type": type(e).__name__}
        )
