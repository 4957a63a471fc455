"""Where Milvus' own bucket is, from the ``milvus`` connection or a Milvus Backup ``backup.yaml``.

A physical backup copies Milvus' binlogs out of Milvus' own object storage. The ``milvus`` connection's extra
names it (documented in docs/connections.md)::

    {"milvus_bucket": "milvus-bucket",          # minio.bucketName of Milvus' milvus.yaml
     "milvus_root_path": "files",               # minio.rootPath (default "files")
     "milvus_storage_conn_id": "milvus_minio"}  # an ``aws`` connection that reaches it (optional)

The ``aws`` connection gives the endpoint (extra ``endpoint_url``), the keys or a role, the region and TLS
(extra ``verify``), exactly as for the backup bucket; without ``milvus_storage_conn_id`` the backups' own
``aws_conn_id`` is used (Milvus' bucket is often on the same MinIO). Without ``milvus_bucket`` in the
connection, a ``backup_config`` file's ``minio`` section (``bucketName``, ``rootPath``, ``address``,
``accessKeyID``, ...) names it. Neither: no physical backup (``mode="auto"`` makes a logical one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.physical.milvus_storage import (
    DEFAULT_MILVUS_ROOT,
    MilvusStorageSettings,
    check_milvus_storage,
    open_milvus_bucket,
)
from airflow_milvus_backup.engine.storage_base import validate_key
from airflow_milvus_backup.exceptions import MilvusBackupConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_milvus_backup.engine.physical.milvus_storage import StorageCheck
    from airflow_milvus_backup.engine.storage_s3 import S3Storage
    from airflow_milvus_backup.hooks.backup_config import BackupConfig

#: the keys of the ``milvus`` connection's extra that name Milvus' own storage
MILVUS_STORAGE_KEYS = ("milvus_bucket", "milvus_root_path", "milvus_storage_conn_id")


@dataclass(frozen=True)
class MilvusStorageRef:
    """Milvus' bucket and how this worker reaches it: an ``aws`` connection, or plain ``settings``.

    :param bucket: Milvus' bucket.
    :param root_path: Milvus' root path in it (``""``: the top of the bucket).
    :param source: where it was named, for messages (``"connection 'milvus_default'"``).
    :param aws_conn_id: the ``aws`` connection that reaches it (``None`` with ``settings``: boto3's default).
    :param settings: the plain values of a ``backup.yaml`` (endpoint, keys), instead of a connection.
    """

    bucket: str
    root_path: str
    source: str
    aws_conn_id: str | None = None
    settings: MilvusStorageSettings | None = None

    def describe(self) -> str:
        """Return ``s3://bucket/root (from ...)``, with no secret in it."""
        via = f", through AWS connection {self.aws_conn_id!r}" if self.settings is None else ""
        return f"s3://{self.bucket}/{self.root_path}".rstrip("/") + f" (from {self.source}{via})"

    def open(self, **storage_options: Any) -> S3Storage:
        """Return Milvus' bucket as a read-side storage (keys relative to the root path).

        :param storage_options: passed to :class:`S3Storage` (``retry_seconds``, ``retry_attempts``).
        """
        if self.settings is not None:
            return self.settings.open(**storage_options)
        from airflow_milvus_backup.hooks.connection import s3_hook

        client = s3_hook(self.aws_conn_id, None, None).get_conn()
        return open_milvus_bucket(client, self.bucket, self.root_path, **storage_options)

    def check(self, **storage_options: Any) -> StorageCheck:
        """Return whether this worker can read Milvus' bucket, and why (see :func:`check_milvus_storage`)."""
        return check_milvus_storage(self.open(**storage_options))


def milvus_storage_from_extra(conn_id: str, extra: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """Return ``(bucket, root_path, storage_conn_id)`` from a ``milvus`` connection's extra, if it names one.

    :raises MilvusBackupConfigError: a key has a wrong type or value (the message names connection and key).
    """

    def get(name: str) -> str | None:
        value = extra.get(name)
        if value in (None, ""):
            value = extra.get(f"extra__milvus__{name}")
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise MilvusBackupConfigError(
                f"Milvus connection {conn_id!r}: extra {name!r} must be a string, got {type(value).__name__}."
            )
        return value.strip()

    bucket = get("milvus_bucket")
    root = get("milvus_root_path")
    storage_conn = get("milvus_storage_conn_id")
    if not bucket:
        if root or storage_conn:
            raise MilvusBackupConfigError(
                f"Milvus connection {conn_id!r}: extra 'milvus_root_path' or 'milvus_storage_conn_id' is set "
                "but 'milvus_bucket' is not: name Milvus' bucket (minio.bucketName) too."
            )
        return None
    root = DEFAULT_MILVUS_ROOT if root is None else root.strip("/")
    try:
        validate_key(bucket)
        if root:
            validate_key(root)
    except InvalidArgumentError as e:
        raise MilvusBackupConfigError(
            f"Milvus connection {conn_id!r}: extra 'milvus_bucket' / 'milvus_root_path': {e}"
        ) from None
    return bucket, root, storage_conn


def resolve_milvus_storage(
    milvus_conn: Connection | None, cfg: BackupConfig | None, aws_conn_id: str | None
) -> MilvusStorageRef | None:
    """Return where Milvus' own bucket is: the connection's extra first, then ``backup_config``'s ``minio``.

    :param milvus_conn: the ``milvus`` connection, or ``None`` (Milvus named by ``backup_config`` only).
    :param cfg: the parsed ``backup_config``, or ``None``.
    :param aws_conn_id: the backups' ``aws`` connection, used when the extra names no
        ``milvus_storage_conn_id``.
    :return: ``None`` when neither names Milvus' bucket.
    """
    if milvus_conn is not None:
        found = milvus_storage_from_extra(milvus_conn.conn_id, milvus_conn.extra_dejson or {})
        if found is not None:
            bucket, root, storage_conn = found
            return MilvusStorageRef(
                bucket, root, f"connection {milvus_conn.conn_id!r}", aws_conn_id=storage_conn or aws_conn_id
            )
    if cfg is not None and cfg.milvus_storage is not None:
        s = cfg.milvus_storage
        return MilvusStorageRef(s.bucket, s.root_path, s.source or cfg.path, settings=s)
    return None
