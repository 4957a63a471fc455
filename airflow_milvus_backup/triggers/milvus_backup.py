"""Former module of the triggers, kept because serialized triggers name it.

A task deferred by an earlier release is stored with the classpath
``airflow_milvus_backup.triggers.milvus_backup.<Trigger>``; the triggerer imports it from here after an
upgrade. New code imports :mod:`.backup` and :mod:`.restore`.
"""

from __future__ import annotations

from airflow_milvus_backup.triggers.backup import MilvusBackupTrigger
from airflow_milvus_backup.triggers.restore import MilvusRestoreTrigger

__all__ = ["MilvusBackupTrigger", "MilvusRestoreTrigger"]
