"""What the sensor and its trigger check: is the backup complete (and new enough); its JSON summary."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.exceptions import MilvusBackupInvalidArgument

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.backup import BackupEngine


def parse_time(value: Any, what: str) -> datetime:
    """Return an ISO 8601 time (or a datetime) as an aware datetime; a naive one is UTC.

    :raises MilvusBackupInvalidArgument: not a time; the message names ``what``.
    """
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise MilvusBackupInvalidArgument(
                f"{what} must be an ISO 8601 time such as '2026-01-01T02:00:00+00:00', got {value!r}."
            ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def backup_summary(item: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON summary of a backup (from a manifest or a list entry) the sensor pushes to XCom.

    ``kind`` is ``logical``, ``physical`` or ``milvus-backup`` (a manifest of an earlier release: logical).
    """
    collections = item.get("collections") or []
    if collections and isinstance(collections[0], dict):
        collections = [f"{c.get('db_name', 'default')}.{c['name']}" for c in collections]
    totals = item.get("totals") or {}
    return {
        "name": item["name"],
        "kind": item.get("kind", "logical"),
        "id": item.get("id"),
        "state": item.get("state", "complete"),
        "collections": list(collections),
        "rows": item.get("rows", totals.get("rows")),
        "bytes": item.get("size", totals.get("bytes")),
        "created_at": item.get("created_at") or item.get("started_at"),
        "finished_at": item.get("finished_at"),
    }


def complete_backup(
    engine: BackupEngine, backup_name: str | None, backup_prefix: str = "", newer_than: str | None = None
) -> dict[str, Any] | None:
    """Return the summary of the complete backup asked for, or ``None`` if it is not (yet) there.

    A missing, partial or in-progress backup is ``None``; a corrupt manifest raises.

    :param engine: the backup engine over the storage.
    :param backup_name: a backup name; ``None`` for the newest complete backup matching ``backup_prefix``.
    :param backup_prefix: the prefix of names to consider without ``backup_name``.
    :param newer_than: only a backup created after this ISO 8601 time counts.
    """
    from airflow_milvus_backup.engine.errors import BackupNotFoundError, IncompleteBackupError

    since = parse_time(newer_than, "newer_than") if newer_than else None
    try:
        found = backup_summary(engine.get(backup_name) if backup_name else engine.latest(backup_prefix or ""))
    except (BackupNotFoundError, IncompleteBackupError):
        return None
    if since is not None and (
        not found["created_at"] or parse_time(found["created_at"], "created_at") <= since
    ):
        return None
    return found
