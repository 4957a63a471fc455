"""MilvusBackupSensor: wait until a backup is complete (by name, or the newest matching a prefix)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_milvus_backup.exceptions import (
    MilvusBackupException,
    MilvusBackupInvalidArgument,
    engine_errors_as_airflow,
)
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from airflow_milvus_backup.operators.base import HOOK_TEMPLATE_FIELDS, MilvusBackupHookMixin
from airflow_milvus_backup.triggers.milvus_backup import MilvusBackupTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


def _parse_time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise MilvusBackupInvalidArgument(
                f"{what} must be an ISO 8601 time such as '2026-01-01T02:00:00+00:00', got {value!r}."
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def backup_entry(item: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON summary of a backup (from a manifest or a list entry) that sensors push to XCom."""
    collections = item.get("collections") or []
    if collections and isinstance(collections[0], dict):
        collections = [f"{c.get('db_name', 'default')}.{c['name']}" for c in collections]
    totals = item.get("totals") or {}
    return {
        "name": item["name"],
        "id": item.get("id"),
        "state": item.get("state", "complete"),
        "collections": list(collections),
        "rows": item.get("rows", totals.get("rows")),
        "bytes": item.get("size", totals.get("bytes")),
        "created_at": item.get("created_at") or item.get("started_at"),
        "finished_at": item.get("finished_at"),
    }


def find_complete_backup(
    hook: MilvusBackupHook,
    backup_name: str | None = None,
    backup_prefix: str = "",
    newer_than: str | None = None,
) -> dict[str, Any] | None:
    """Return the summary of the complete backup asked for, or ``None`` if it is not (yet) there.

    A missing, partial or in-progress backup is ``None``; a corrupt manifest raises.

    :param hook: the hook over the backup storage.
    :param backup_name: a backup name; ``None`` for the newest complete backup matching ``backup_prefix``.
    :param backup_prefix: the prefix of names to consider without ``backup_name``.
    :param newer_than: only a backup created after this ISO 8601 time counts.
    """
    from airflow_milvus_backup.engine.errors import BackupNotFoundError, IncompleteBackupError

    since = _parse_time(newer_than, "newer_than") if newer_than else None
    with engine_errors_as_airflow(hook.scrub):
        engine = hook.backup_engine()
        if backup_name:
            try:
                found = backup_entry(engine.get(backup_name))
            except (BackupNotFoundError, IncompleteBackupError):
                return None
        else:
            try:
                found = backup_entry(engine.latest(backup_prefix or ""))
            except BackupNotFoundError:
                return None
    if since is not None and (
        not found["created_at"] or _parse_time(found["created_at"], "created_at") <= since
    ):
        return None
    return found


class MilvusBackupSensor(MilvusBackupHookMixin, BaseSensorOperator):
    """Wait until a backup is complete; push its summary (name, id, collections, rows, bytes) to XCom.

    :param backup_name: the backup to wait for (templated); ``None`` to wait for the newest complete backup
        whose name starts with ``backup_prefix``.
    :param backup_prefix: the prefix of names to consider without ``backup_name`` (templated).
    :param newer_than: only a backup created after this ISO 8601 time counts (templated, e.g.
        ``"{{ data_interval_start }}"``).
    :param milvus_conn_id: the ``milvus`` connection (templated).
    :param aws_conn_id: the ``aws`` connection of the backup bucket (templated).
    :param bucket_name: the bucket of backups (templated).
    :param root_path: the prefix of backups in the bucket (templated; default ``"backup"``).
    :param backup_config: a Milvus Backup ``backup.yaml`` (templated).
    :param local_path: a local directory of backups instead of S3 (templated).
    :param region_name: the S3 region.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param allow_root_at_top: accept an empty ``root_path`` (backups at the top of the bucket or directory).
    """

    template_fields: Sequence[str] = ("backup_name", "backup_prefix", "newer_than", *HOOK_TEMPLATE_FIELDS)
    ui_color = "#4fc3f7"

    def __init__(
        self,
        *,
        backup_name: str | None = None,
        backup_prefix: str = "",
        newer_than: str | None = None,
        milvus_conn_id: str | None = MilvusBackupHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        bucket_name: str | None = None,
        root_path: str | None = None,
        backup_config: str | None = None,
        local_path: str | None = None,
        region_name: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        allow_root_at_top: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.allow_root_at_top = allow_root_at_top
        self.backup_name = backup_name
        self.backup_prefix = backup_prefix
        self.newer_than = newer_than
        self.milvus_conn_id = milvus_conn_id
        self.aws_conn_id = aws_conn_id
        self.bucket_name = bucket_name
        self.root_path = root_path
        self.backup_config = backup_config
        self.local_path = local_path
        self.region_name = region_name
        self.deferrable = deferrable

    @property
    def _what(self) -> str:
        return f"backup {self.backup_name!r}" if self.backup_name else f"newest backup {self.backup_prefix}*"

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Return the backup's summary once it is complete."""
        found = find_complete_backup(
            self.hook, self.backup_name or None, self.backup_prefix or "", self.newer_than or None
        )
        if found is None:
            self.log.info("Waiting for %s in %s: not complete yet", self._what, self.hook.storage.description)
            return False
        self.log.info(
            "Backup %s is complete: %d collection(s), %s rows, created %s",
            found["name"],
            len(found["collections"]),
            found["rows"],
            found["created_at"],
        )
        return PokeReturnValue(is_done=True, xcom_value=found)

    def execute(self, context: Context) -> Any:
        """Poke; in deferrable mode, poke once, then defer to :class:`MilvusBackupTrigger`."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        self.defer(
            trigger=MilvusBackupTrigger(
                backup_name=self.backup_name or None,
                backup_prefix=self.backup_prefix or "",
                newer_than=self.newer_than or None,
                **self.hook_kwargs(),
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Check the trigger's event; return the backup's summary or raise with the trigger's message."""
        if not isinstance(event, dict) or "status" not in event:
            raise MilvusBackupException(
                f"Waiting for {self._what}: the trigger sent an invalid event {event!r}."
            )
        if event["status"] == "error":
            raise MilvusBackupException(str(event.get("message") or "the trigger failed"))
        if event["status"] != "success" or not isinstance(event.get("backup"), dict):
            raise MilvusBackupException(f"Waiting for {self._what}: unexpected trigger event {event!r}.")
        self.log.info("Backup %s is complete", event["backup"]["name"])
        return event["backup"]
