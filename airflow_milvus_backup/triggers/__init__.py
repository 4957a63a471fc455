"""Triggers of the deferrable sensor and restore."""

from __future__ import annotations

from airflow_milvus_backup.triggers.milvus_backup import MilvusBackupTrigger, MilvusRestoreTrigger

__all__ = ["MilvusBackupTrigger", "MilvusRestoreTrigger"]
