"""Where backups live: a handful of verbs over S3 or a local directory.

Keys are relative to the backend's root (``root_path``) and validated at this seam: segments of ASCII
letters, digits, ``_``, ``-``, ``.`` and ``=``, never ``.`` or ``..``, so nothing escapes the root.

Atomicity: on both backends a single object appears whole or not at all (S3 by its nature; the local
backend writes a temporary file and renames it). Nothing is atomic across objects: a backup is committed by
its manifest, written last (see FORMAT.md).

The seam (:class:`Storage`, :class:`ObjectInfo`, :class:`ImportLocation`, the key rules) is in
:mod:`~.storage_base`, the backends in :mod:`~.storage_local` and :mod:`~.storage_s3`; everything is imported
from here.
"""

from __future__ import annotations

from airflow_milvus_backup.engine.storage_base import (
    CHUNK,
    ImportLocation,
    ObjectInfo,
    Storage,
    file_sha256,
    validate_key,
    validate_root,
)
from airflow_milvus_backup.engine.storage_local import LocalStorage
from airflow_milvus_backup.engine.storage_s3 import S3Storage

__all__ = [
    "CHUNK",
    "ImportLocation",
    "LocalStorage",
    "ObjectInfo",
    "S3Storage",
    "Storage",
    "file_sha256",
    "validate_key",
    "validate_root",
]
