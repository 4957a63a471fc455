"""Triggers of the deferrable sensor (:mod:`.backup`) and of the deferrable restore (:mod:`.restore`)."""

from __future__ import annotations

from airflow_milvus_backup.triggers.backup import MilvusBackupTrigger
from airflow_milvus_backup.triggers.restore import MilvusRestoreTrigger

__all__ = ["MilvusBackupTrigger", "MilvusRestoreTrigger"]
