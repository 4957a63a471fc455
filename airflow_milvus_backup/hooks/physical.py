"""The hook's side of physical backups: Milvus' own bucket for ``mode="physical"`` / ``"auto"`` and restores.

Kept out of :mod:`.milvus_backup` (which only passes ``mode`` through): where Milvus' bucket is comes from the
``milvus`` connection's extra (``milvus_bucket``, ``milvus_root_path``, ``milvus_storage_conn_id``) or from
``backup_config``'s ``minio`` section (:func:`~.milvus_storage.resolve_milvus_storage`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_milvus_backup.hooks.milvus_storage import resolve_milvus_storage

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.restore import RestoreEngine
    from airflow_milvus_backup.engine.storage_s3 import S3Storage
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook


def milvus_storage_for(hook: MilvusBackupHook, mode: str) -> S3Storage | None:
    """Return Milvus' bucket as a read-side storage for a backup in ``mode``, or ``None``.

    ``None`` for a logical backup and when nothing names Milvus' bucket (the engine then says what to set,
    or, with ``mode="auto"``, makes a logical backup and logs why).
    """
    if mode == "logical":
        return None
    conn = hook.get_connection(hook.milvus_conn_id) if hook.milvus_conn_id else None
    ref = resolve_milvus_storage(conn, hook.config, hook.location.aws_conn_id)
    return None if ref is None else ref.open()


def restore_engine_for(hook: MilvusBackupHook) -> RestoreEngine:
    """Return the hook's restore engine; Milvus' bucket is resolved only if the backup is physical.

    A physical restore imports binlogs from Milvus' own bucket (named as for a physical backup); a logical
    restore never reads the setting.
    """
    from airflow_milvus_backup.engine.restore import RestoreEngine

    return RestoreEngine(
        hook.storage,
        parallelism=hook.parallelism,
        logger=hook.engine_logger,
        progress_interval=hook.progress_interval,
        milvus_storage=lambda: milvus_storage_for(hook, "physical"),
    )
