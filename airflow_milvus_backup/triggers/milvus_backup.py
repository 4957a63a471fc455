"""Triggers: wait for a backup to be complete, and for a submitted restore (bulk import) to finish.

Both poll the engine in a worker thread (``sync_to_async``) so the triggerer's event loop never blocks, and
turn every failure into ``TriggerEvent({"status": "error", "message": ...})``. ``serialize()`` returns the
classpath and *all* keyword arguments; new arguments get defaults and none is ever removed (serialized
triggers outlive upgrades).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook


class _MilvusBackupBaseTrigger(BaseTrigger):
    """Hook settings shared by the triggers of this provider (see :class:`MilvusBackupHook`)."""

    def __init__(
        self,
        *,
        milvus_conn_id: str | None = MilvusBackupHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        bucket_name: str | None = None,
        root_path: str | None = None,
        backup_config: str | None = None,
        local_path: str | None = None,
        region_name: str | None = None,
        poll_interval: float = 30.0,
        allow_root_at_top: bool = False,
    ) -> None:
        super().__init__()
        self.allow_root_at_top = allow_root_at_top
        self.milvus_conn_id = milvus_conn_id
        self.aws_conn_id = aws_conn_id
        self.bucket_name = bucket_name
        self.root_path = root_path
        self.backup_config = backup_config
        self.local_path = local_path
        self.region_name = region_name
        self.poll_interval = poll_interval

    def _base_kwargs(self) -> dict[str, Any]:
        return {
            "milvus_conn_id": self.milvus_conn_id,
            "aws_conn_id": self.aws_conn_id,
            "bucket_name": self.bucket_name,
            "root_path": self.root_path,
            "backup_config": self.backup_config,
            "local_path": self.local_path,
            "region_name": self.region_name,
            "poll_interval": self.poll_interval,
            "allow_root_at_top": self.allow_root_at_top,
        }

    def _hook(self) -> MilvusBackupHook:
        kw = self._base_kwargs()
        kw.pop("poll_interval")
        return MilvusBackupHook(**kw, logger=self.log)  # type: ignore[arg-type]

    def _error(self, hook: MilvusBackupHook | None, e: BaseException, what: str) -> TriggerEvent:
        message = str(e) or type(e).__name__
        if hook is not None:
            message = hook.scrub(message)
        self.log.error("%s: %s", what, message)
        return TriggerEvent(
            {"status": "error", "message": f"{what}: {message}", "error_type": type(e).__name__}
        )


class MilvusBackupTrigger(_MilvusBackupBaseTrigger):
    """Fire when a backup is complete: one by name, or the newest whose name starts with a prefix.

    Event: ``{"status": "success", "backup": <list entry of the backup>}`` or
    ``{"status": "error", "message": ...}``. A backup being written, a partial one and a missing one are
    waited for; a corrupt manifest is an error.

    :param backup_name: the backup to wait for; ``None`` to wait for any complete backup matching
        ``backup_prefix``.
    :param backup_prefix: with no ``backup_name``, the prefix of names to consider.
    :param newer_than: with a prefix, only backups created after this ISO 8601 time count.
    :param poll_interval: seconds between two checks.
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
            "airflow_milvus_backup.triggers.milvus_backup.MilvusBackupTrigger",
            {
                **self._base_kwargs(),
                "backup_name": self.backup_name,
                "backup_prefix": self.backup_prefix,
                "newer_than": self.newer_than,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the storage until the backup is complete, then yield one event."""
        from airflow_milvus_backup.sensors.backup import find_complete_backup

        what = f"Waiting for backup {self.backup_name or (self.backup_prefix or '') + '*'}"
        hook: MilvusBackupHook | None = None
        try:
            hook = self._hook()
            while True:
                found = await sync_to_async(find_complete_backup)(
                    hook, self.backup_name, self.backup_prefix, self.newer_than
                )
                if found is not None:
                    yield TriggerEvent({"status": "success", "backup": found})
                    return
                self.log.info("%s: not complete yet; next check in %s s", what, self.poll_interval)
                await asyncio.sleep(self.poll_interval)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error event
            yield self._error(hook, e, what)


class MilvusRestoreTrigger(_MilvusBackupBaseTrigger):
    """Poll a submitted restore (bulk import jobs) until it succeeds or fails.

    Each poll lets the engine advance the restore (it finishes the restore when all import jobs are done).
    Event: ``{"status": "success", "backup_name", "restore_id", "report": <status>}`` or
    ``{"status": "error", "message": ..., "restore_id": ...}``.

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
            "airflow_milvus_backup.triggers.milvus_backup.MilvusRestoreTrigger",
            {**self._base_kwargs(), "backup_name": self.backup_name, "restore_id": self.restore_id},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the restore until it leaves the ``executing`` state, then yield one event."""
        what = f"Restore {self.restore_id} of backup {self.backup_name!r}"
        hook: MilvusBackupHook | None = None
        try:
            hook = self._hook()
            while True:
                status = await sync_to_async(hook.poll_restore)(self.backup_name, self.restore_id)
                state = str(status.get("state", "")).lower()
                totals = status.get("totals") or {}
                done = (
                    f"{totals.get('files_done')} of {totals.get('files')} files done, "
                    f"{totals.get('rows_restored')} of {totals.get('rows_expected')} rows"
                )
                if state == "success":
                    self.log.info("%s: success, %s", what, done)
                    yield TriggerEvent(
                        {
                            "status": "success",
                            "backup_name": self.backup_name,
                            "restore_id": self.restore_id,
                            "report": status,
                        }
                    )
                    return
                if state != "executing":
                    message = status.get("error") or status.get("message") or f"ended in state {state!r}"
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "message": hook.scrub(f"{what} failed: {message}"),
                            "restore_id": self.restore_id,
                            "report": status,
                        }
                    )
                    return
                self.log.info("%s: executing, %s; next poll in %s s", what, done, self.poll_interval)
                await asyncio.sleep(self.poll_interval)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error event
            event = self._error(hook, e, what)
            event.payload["restore_id"] = self.restore_id
            yield event
