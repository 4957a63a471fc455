"""What the triggers of this provider share: the location arguments, the hook, and error events.

The triggers poll through the hook in a worker thread (``sync_to_async``) so the triggerer's event loop never
blocks, and turn every failure into ``TriggerEvent({"status": "error", "message": ...})``. ``serialize()``
returns the classpath and *all* keyword arguments; new arguments get defaults and none is ever removed
(serialized triggers outlive upgrades).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_milvus_backup.hooks.location import BackupLocation, takes_location
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook


class MilvusBackupBaseTrigger(BaseTrigger):
    """Location arguments (:class:`~airflow_milvus_backup.hooks.location.BackupLocation`), the hook, the loop.

    A trigger says what it waits for (:attr:`what`) and checks once (:meth:`check`); :meth:`run` checks every
    ``poll_interval`` seconds until a check returns an event.

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

    @property
    def what(self) -> str:
        """What the trigger waits for, to start its log lines and error messages."""
        raise NotImplementedError

    def error_payload(self) -> dict[str, Any]:
        """Return the extra keys of an error event (the ids of what the trigger waits for)."""
        return {}

    def check(self, hook: MilvusBackupHook) -> TriggerEvent | None:
        """Check once (in a worker thread: it may block); return the event to fire, or ``None`` to wait."""
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check every ``poll_interval`` seconds until a check returns an event; yield it."""
        hook: MilvusBackupHook | None = None
        try:
            hook = self._hook()
            while True:
                event = await sync_to_async(self.check)(hook)
                if event is not None:
                    yield event
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error event
            message = str(e) or type(e).__name__
            if hook is not None:
                message = hook.scrub(message)
            self.log.error("%s: %s", self.what, message)
            yield TriggerEvent(
                {
                    "status": "error",
                    "message": f"{self.what}: {message}",
                    "error_type": type(e).__name__,
                    **self.error_payload(),
                }
            )
