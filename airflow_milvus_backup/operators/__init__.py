"""Operators: back up, restore, and apply retention."""

from __future__ import annotations

from airflow_milvus_backup.operators.backup import MilvusBackupOperator, backup_asset
from airflow_milvus_backup.operators.restore import MilvusRestoreOperator
from airflow_milvus_backup.operators.retention import MilvusBackupRetentionOperator

__all__ = ["MilvusBackupOperator", "MilvusBackupRetentionOperator", "MilvusRestoreOperator", "backup_asset"]
