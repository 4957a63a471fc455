"""The backup engine: knows Milvus, Parquet and object storage, and nothing of Airflow.

Follow one backup from :class:`BackupEngine.create` (:mod:`.backup`) through :mod:`.schema` (metadata),
:mod:`.export` and :mod:`.arrow` (rows to Parquet) and :mod:`.storage` (bytes to S3 or a directory);
:mod:`.manifest` commits it. One restore goes through the package :mod:`.restore` (its ``__init__`` says in
which order).
"""

from __future__ import annotations

from airflow_milvus_backup.engine.backup import BackupEngine
from airflow_milvus_backup.engine.client import MilvusParams, connect
from airflow_milvus_backup.engine.errors import (
    AlreadyExistsError,
    BackupExistsError,
    BackupInProgressError,
    BackupNameError,
    BackupNotFoundError,
    CollectionNotFoundError,
    DatabaseNotFoundError,
    FormatVersionError,
    IncompleteBackupError,
    IntegrityError,
    InvalidArgumentError,
    ManifestError,
    MilvusBackupError,
    MilvusConnectionError,
    NotFoundError,
    RestoreError,
    RowRejectedError,
    SchemaMismatchError,
    StorageAccessError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    TargetExistsError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.names import validate_backup_name
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.storage import LocalStorage, S3Storage, Storage
from airflow_milvus_backup.engine.verify import verify_backup, verify_restore

__all__ = [
    "AlreadyExistsError",
    "BackupEngine",
    "BackupExistsError",
    "BackupInProgressError",
    "BackupNameError",
    "BackupNotFoundError",
    "CollectionNotFoundError",
    "DatabaseNotFoundError",
    "FormatVersionError",
    "IncompleteBackupError",
    "IntegrityError",
    "InvalidArgumentError",
    "LocalStorage",
    "ManifestError",
    "MilvusBackupError",
    "MilvusConnectionError",
    "MilvusParams",
    "NotFoundError",
    "RestoreEngine",
    "RestoreError",
    "RowRejectedError",
    "S3Storage",
    "SchemaMismatchError",
    "Storage",
    "StorageAccessError",
    "StorageConnectionError",
    "StorageError",
    "StorageNotFoundError",
    "TargetExistsError",
    "UnsupportedError",
    "connect",
    "validate_backup_name",
    "verify_backup",
    "verify_restore",
]
