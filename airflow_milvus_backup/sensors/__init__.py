"""Sensors: :class:`~airflow_milvus_backup.sensors.backup.MilvusBackupSensor`."""

from __future__ import annotations

from airflow_milvus_backup.sensors.backup import MilvusBackupSensor

__all__ = ["MilvusBackupSensor"]
