"""What every step of a restore shares (storage, logger, the engine's tuning); one way to open a client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.client import MilvusParams, connect

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.progress import ProgressCallback
    from airflow_milvus_backup.engine.storage import Storage
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

log = logging.getLogger("airflow_milvus_backup.engine.restore")


@dataclass(frozen=True)
class Context:
    """The backup storage and the :class:`~.engine.RestoreEngine`'s settings, handed to every step."""

    storage: Storage
    log: logging.Logger
    parallelism: int
    insert_batch_rows: int | None
    insert_batch_bytes: int
    progress_callback: ProgressCallback | None
    progress_interval: float
    tmp_dir: str | None
    poll_interval: float
    status_ttl: float
    detached_ttl: float
    status_interval: float
    #: Milvus' own bucket (rooted at its root path), or a function returning it (called when a physical
    #: restore needs it): what a physical restore imports binlogs from
    milvus_storage: S3Storage | Callable[[], S3Storage | None] | None = None


def client_for(milvus: MilvusParams, db: str) -> MilvusClient:
    """Return a client of database ``db`` (:func:`~airflow_milvus_backup.engine.client.connect`)."""
    return connect(milvus, db)


def qualified(db: str, name: str) -> str:
    """Return ``db.name``."""
    return f"{db}.{name}"


def milvus_exception(e: BaseException) -> bool:
    """Return whether ``e`` is pymilvus' ``MilvusException`` (an answer of the server)."""
    from pymilvus.exceptions import MilvusException

    return isinstance(e, MilvusException)
