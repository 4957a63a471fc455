"""Hooks: :class:`~airflow_milvus_backup.hooks.milvus_backup.MilvusBackupHook`."""

from __future__ import annotations

from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

__all__ = ["MilvusBackupHook"]
