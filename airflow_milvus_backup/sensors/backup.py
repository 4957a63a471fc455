"""MilvusBackupSensor: wait until a backup is complete (by name, or the newest matching a prefix)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_milvus_backup.exceptions import MilvusBackupException
from airflow_milvus_backup.hooks.location import BackupLocation, takes_location
from airflow_milvus_backup.operators.base import LOCATION_TEMPLATE_FIELDS, MilvusBackupHookMixin
from airflow_milvus_backup.triggers.backup import MilvusBackupTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class MilvusBackupSensor(MilvusBackupHookMixin, BaseSensorOperator):
    """Wait until a backup is complete; push its summary (name, id, collections, rows, bytes) to XCom.

    Takes the location arguments of :class:`~airflow_milvus_backup.hooks.location.BackupLocation`
    (``milvus_conn_id``, ``aws_conn_id``, ``bucket_name``, ``root_path``, ``backup_config``, ``local_path``,
    ``region_name``, ...; all templated), and:

    :param backup_name: the backup to wait for (templated); ``None`` to wait for the newest complete backup
        whose name starts with ``backup_prefix``.
    :param backup_prefix: the prefix of names to consider without ``backup_name`` (templated).
    :param newer_than: only a backup created after this ISO 8601 time counts (templated, e.g.
        ``"{{ data_interval_start }}"``).
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("backup_name", "backup_prefix", "newer_than", *LOCATION_TEMPLATE_FIELDS)
    ui_color = "#4fc3f7"

    @takes_location()
    def __init__(
        self,
        *,
        backup_name: str | None = None,
        backup_prefix: str = "",
        newer_than: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        location_args = BackupLocation.take(kwargs)
        super().__init__(**kwargs)
        self._set_location(location_args)
        self.backup_name = backup_name
        self.backup_prefix = backup_prefix
        self.newer_than = newer_than
        self.deferrable = deferrable

    @property
    def _what(self) -> str:
        return f"backup {self.backup_name!r}" if self.backup_name else f"newest backup {self.backup_prefix}*"

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Return the backup's summary once it is complete."""
        found = self.hook.find_complete_backup(
            self.backup_name or None, self.backup_prefix or "", self.newer_than or None
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
                **self.backup_location.as_kwargs(),
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
