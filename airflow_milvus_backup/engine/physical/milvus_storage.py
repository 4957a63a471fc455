"""Where Milvus keeps its own data: the bucket and root path of its binlogs, and whether we can read them.

A physical backup copies Milvus' segment files (binlogs) out of Milvus' own object storage, so the provider
must know that storage: its bucket, its root path (Milvus' ``minio.rootPath``, ``files`` by default), and how
to reach it (endpoint, region, credentials or IAM, TLS). :class:`MilvusStorageSettings` holds those values
(from a connection or a Milvus Backup ``backup.yaml``; see :mod:`airflow_milvus_backup.hooks.milvus_storage`),
:func:`open_milvus_bucket` turns a boto3 client on that storage into a read-side :class:`~..storage.S3Storage`
whose keys are relative to the root path, and :func:`check_milvus_storage` answers "can we read it?" with a
reason, which ``mode="auto"`` logs when it chooses between a physical and a logical backup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import InvalidArgumentError, StorageError
from airflow_milvus_backup.engine.storage_s3 import S3Storage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("airflow_milvus_backup.engine.physical")

#: Milvus' default ``minio.rootPath``
DEFAULT_MILVUS_ROOT = "files"


@dataclass(frozen=True)
class MilvusStorageSettings:
    """Milvus' own object storage, as plain values (no secret in ``repr`` or :meth:`describe`).

    :param bucket: Milvus' bucket (``minio.bucketName``).
    :param root_path: the prefix of Milvus' files in it (``minio.rootPath``; ``""``: the top of the bucket).
    :param endpoint_url: the S3 endpoint (``http://minio:9000``); ``None`` for AWS' own.
    :param access_key: the access key id; ``None`` with ``use_iam`` or to use boto3's default chain.
    :param secret_key: the secret key.
    :param session_token: an STS session token, if any.
    :param region: the region (``None``: the client's default).
    :param use_iam: take credentials from the environment (instance profile, IRSA) rather than keys.
    :param verify: TLS verification: ``True``/``False`` or the path of a CA bundle.
    :param source: where the values came from, for messages (``"connection 'milvus_default'"``).
    """

    bucket: str
    root_path: str = DEFAULT_MILVUS_ROOT
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    use_iam: bool = False
    verify: bool | str = True
    source: str = ""

    def __post_init__(self) -> None:
        if not self.bucket or not isinstance(self.bucket, str):
            raise InvalidArgumentError(
                f"Milvus' bucket is not named{self._from()}: set milvus_bucket (minio.bucketName)."
            )
        if self.access_key and not self.secret_key:
            raise InvalidArgumentError(
                f"Milvus' storage has an access key id but no secret key{self._from()}: set both."
            )
        object.__setattr__(self, "root_path", (self.root_path or "").strip("/"))

    def _from(self) -> str:
        return f" (from {self.source})" if self.source else ""

    def describe(self) -> str:
        """Return ``s3://bucket/root at endpoint``, with no secret in it."""
        where = f"s3://{self.bucket}/{self.root_path}".rstrip("/")
        return where + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def secrets(self) -> list[str]:
        """Return the secret values (for the Airflow secrets masker)."""
        return [s for s in (self.secret_key, self.session_token) if s]

    def client(self, **config: Any) -> S3Client:
        """Return a boto3 S3 client on this storage.

        :param config: botocore ``Config`` settings (``connect_timeout``, ``retries``, ...); path-style
            addressing is the default whenever an endpoint is given (MinIO and most S3-compatible stores).
        """
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "connect_timeout": 10,
            "read_timeout": 60,
            "retries": {"total_max_attempts": 3, "mode": "standard"},
        }
        if self.endpoint_url:
            settings["s3"] = {"addressing_style": "path"}
        settings.update(config)
        keys: dict[str, Any] = {}
        if not self.use_iam and self.access_key:
            keys = {
                "aws_access_key_id": self.access_key,
                "aws_secret_access_key": self.secret_key,
                "aws_session_token": self.session_token,
            }
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url or None,
            region_name=self.region or None,
            verify=self.verify,
            config=Config(**settings),
            **keys,
        )

    def open(self, client: S3Client | None = None, **storage_options: Any) -> S3Storage:
        """Return Milvus' bucket as a storage (see :func:`open_milvus_bucket`).

        :param client: a client to use instead of :meth:`client`'s.
        :param storage_options: passed to :class:`S3Storage` (``retry_seconds``, ``retry_attempts``).
        """
        return open_milvus_bucket(client or self.client(), self.bucket, self.root_path, **storage_options)


def open_milvus_bucket(client: S3Client, bucket: str, root_path: str, **storage_options: Any) -> S3Storage:
    """Return Milvus' bucket as a :class:`S3Storage` rooted at Milvus' root path.

    Keys are relative to the root path (``insert_log/<coll>/<part>/<seg>/<field>/<log>``), as a listing of
    it returns them; :meth:`S3Storage.full_key` gives the S3 key. The copier only reads through it.

    :param client: a boto3 client that can read the bucket.
    :param bucket: Milvus' bucket.
    :param root_path: Milvus' root path (``""``: Milvus keeps its files at the top of the bucket).
    :param storage_options: passed to :class:`S3Storage`.
    """
    storage = S3Storage(client, bucket, root_path, allow_root_at_top=True, **storage_options)
    storage.description = f"Milvus' storage {storage.description}"
    return storage


@dataclass(frozen=True)
class StorageCheck:
    """Whether Milvus' bucket can be read from here, and why (or why not), in one sentence."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def check_milvus_storage(storage: S3Storage) -> StorageCheck:
    """Check that Milvus' bucket exists and its root path can be listed (one key asked for).

    Never raises for a storage failure: an unreachable endpoint, a missing bucket or refused credentials
    come back as ``ok=False`` with the reason (``mode="auto"`` then makes a logical backup and logs it).
    A root path with nothing under it is readable (``ok=True``), and the reason says so: a Milvus that has
    flushed nothing yet, or a wrong root path.

    :param storage: Milvus' bucket (:func:`open_milvus_bucket`).
    """
    what = storage.description + (f" at {storage.endpoint}" if storage.endpoint else "")
    try:
        storage.check()
        prefix = f"{storage.root}/" if storage.root else ""
        page = storage.call(
            f"List {what}",
            lambda: storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix, MaxKeys=1),
        )
    except StorageError as e:
        return StorageCheck(False, f"cannot read {what}: {e}")
    if not page.get("Contents"):
        return StorageCheck(
            True,
            f"{what} is readable but holds nothing under {storage.root or 'its top'!r} yet: Milvus has "
            "flushed nothing, or the root path (minio.rootPath) is not Milvus' own",
        )
    return StorageCheck(True, f"{what} is readable")
