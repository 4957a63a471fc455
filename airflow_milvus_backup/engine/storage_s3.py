"""An S3 bucket as backup storage: every verb retried on transient failures only, errors typed."""

from __future__ import annotations

import builtins
import functools
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from airflow_milvus_backup.engine import arguments as checks
from airflow_milvus_backup.engine.errors import (
    InvalidArgumentError,
    StorageAccessError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.failures import retryable
from airflow_milvus_backup.engine.s3errors import code_in_message, is_retryable_answer, unwrap
from airflow_milvus_backup.engine.storage_base import (
    SEGMENT_RE,
    ImportLocation,
    ObjectInfo,
    Storage,
    validate_key,
    validate_root,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("airflow_milvus_backup.engine.storage")
T = TypeVar("T")


_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_ACCESS = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
}


def _is_transient(exc: BaseException) -> bool:
    """Retry connection failures, throttling (429, SlowDown) and 5xx; never not-found, access or integrity."""
    return retryable(exc)  # _translate made each of them a StorageConnectionError


class S3Storage(Storage):
    """An S3 bucket (AWS or any S3-compatible store reached through ``endpoint_url``).

    :param client: a boto3 S3 client (the Airflow hook hands in the one from ``S3Hook.get_conn()``).
    :param bucket: the bucket name.
    :param root_path: the prefix under which backups live (default ``"backup"``).
    :param allow_root_at_top: accept an empty ``root_path``: backups at the top of the bucket.
    :param sse: ``"AES256"`` (SSE-S3) or ``"aws:kms"`` (SSE-KMS); ``None`` for the bucket default.
    :param sse_kms_key_id: the KMS key id with ``sse="aws:kms"``.
    :param max_concurrency: parallel parts of one multipart upload.
    :param retry_seconds: give up on a transient failure after this long (bounded retries with backoff).
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        root_path: str = "backup",
        *,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        multipart_threshold: int = 16 * 1024 * 1024,
        multipart_chunksize: int = 16 * 1024 * 1024,
        max_concurrency: int = 4,
        retry_seconds: float = 60.0,
        retry_attempts: int = 6,
        allow_root_at_top: bool = False,
    ) -> None:
        if not bucket or not isinstance(bucket, str):
            raise InvalidArgumentError("An S3 bucket name is required: set bucket_name.")
        self.client = client
        self.bucket = bucket
        self.root = validate_root(root_path, allow_root_at_top=allow_root_at_top, where=f"bucket {bucket!r}")
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.description = f"s3://{bucket}/{self.root}" if self.root else f"s3://{bucket}"
        self.endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
        self._retry_seconds = checks.seconds(retry_seconds, "retry_seconds", maximum=86_400)
        self._retry_attempts = checks.count(retry_attempts, "retry_attempts", maximum=100)
        max_concurrency = checks.count(max_concurrency, "max_concurrency", maximum=256)
        multipart_threshold = checks.count(multipart_threshold, "multipart_threshold", maximum=5 << 30)
        multipart_chunksize = checks.count(multipart_chunksize, "multipart_chunksize", maximum=5 << 30)
        from boto3.s3.transfer import TransferConfig

        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=max_concurrency > 1,
        )
        if sse not in (None, "", "AES256", "aws:kms", "aws:kms:dsse"):
            raise InvalidArgumentError(f"Invalid server-side encryption {sse!r}: use 'AES256' or 'aws:kms'.")
        if sse_kms_key_id and sse != "aws:kms":
            raise InvalidArgumentError("sse_kms_key_id needs sse='aws:kms'.")

    def import_location(self) -> ImportLocation:
        """Return the bucket and the key prefix of the root: Milvus reading this bucket can import from it."""
        return ImportLocation(self.bucket, self.root)

    # -- helpers
    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.root}/{key}" if self.root else key

    def _rel(self, full: str, prefix: str) -> str | None:
        """Return the key of a listed object relative to the root, or ``None`` for one to ignore.

        Only keys under the prefix asked for whose every segment is valid are ours: S3 keys are plain
        strings, so ``<root>/b1/../../x`` or ``<root>/b1//x`` would otherwise come back from a listing of
        ``b1/`` and lead a delete outside the backup.
        """
        if not full.startswith(prefix):
            log.warning("Ignoring S3 key %r: it is not under %r", full, prefix)
            return None
        key = full[len(self.root) + 1 :] if self.root else full
        try:
            return validate_key(key)
        except InvalidArgumentError:
            log.warning("Ignoring S3 key %r in %s: no backup writes such a key", full, self.description)
            return None

    def _prefix(self, prefix: str) -> str:
        """Return the full S3 prefix of a listing, its folder part validated."""
        folder, _, last = prefix.rpartition("/")
        for part in (folder, last):
            if part:
                validate_key(part)
        if not prefix:
            return f"{self.root}/" if self.root else ""
        return f"{self.root}/{prefix}" if self.root else prefix

    def extra_args(self) -> dict[str, str]:
        """Return the upload arguments that carry server-side encryption settings."""
        extra: dict[str, str] = {}
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        return extra

    def _translate(self, exc: Exception, what: str) -> StorageError:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            HTTPClientError,
            IncompleteReadError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = f"{self.description}" + (f" at {self.endpoint}" if self.endpoint else "")
        wrapper = exc
        inner = unwrap(exc)  # the S3 answer or socket error inside boto3's transfer wrappers
        if isinstance(inner, Exception):
            exc = inner
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "NoSuchBucket":
                return StorageNotFoundError(
                    f"Bucket {self.bucket!r} does not exist at {self.endpoint or 'S3'}: create it or fix "
                    "bucket_name."
                )
            if code in _NOT_FOUND or status == 404:
                return StorageNotFoundError(f"{what}: not found in {where}.")
            if code in _ACCESS or status == 403:
                return StorageAccessError(
                    f"{what}: S3 refused access to {where} ({code}). Check the AWS connection's access key "
                    "and secret, and the bucket policy."
                )
            if is_retryable_answer(code, status):
                return StorageConnectionError(f"{what}: S3 at {where} answered {status} {code}; retry later.")
            return StorageError(f"{what}: S3 error {code} ({status}) on {where}.")
        if isinstance(exc, NoCredentialsError):
            return StorageAccessError(
                f"{what}: no AWS credentials found for {where}; set the AWS connection."
            )
        if isinstance(
            exc,
            (
                EndpointConnectionError,
                ConnectTimeoutError,
                ReadTimeoutError,
                ConnectionClosedError,
                HTTPClientError,  # also a body cut short (ResponseStreamingError) and proxy failures
                IncompleteReadError,
                ConnectionError,
                socket.timeout,
                OSError,
            ),
        ):
            return StorageConnectionError(
                f"{what}: cannot reach S3 at {where} ({type(exc).__name__}). "
                "Check that the endpoint is up and "
                "endpoint_url is right."
            )
        code, status = code_in_message(wrapper)
        if is_retryable_answer(code, status):  # a wrapper that kept only the message
            return StorageConnectionError(f"{what}: S3 at {where} answered {code}; retry later.")
        return StorageError(f"{what}: {type(exc).__name__} on {where}: {exc}")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one backend verb with bounded retries on transient failures only."""

        @retry(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self._retry_attempts) | stop_after_delay(self._retry_seconds),
            wait=wait_exponential(multiplier=0.5, max=10),
            reraise=True,
            before_sleep=lambda rs: log.warning(
                "%s failed (%s); retry %d",
                what,
                rs.outcome.exception() if rs.outcome else "",
                rs.attempt_number,
            ),
        )
        def attempt() -> T:
            try:
                return fn()
            except StorageError:
                raise
            except Exception as e:  # noqa: BLE001 - translated into the typed hierarchy
                raise self._translate(e, what) from e

        return attempt()

    # -- for engine parts that drive the client themselves (the physical copier)
    def full_key(self, key: str) -> str:
        """Return the S3 key of ``key`` (validated, the root prepended)."""
        return self._key(key)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a client call) with this storage's bounded retries and typed errors."""
        return self._call(what, fn)

    def translate(self, exc: Exception, what: str) -> StorageError:
        """Return the typed error for a client failure of ``what`` (never raised here)."""
        return self._translate(exc, what)

    # -- verbs
    def put_bytes(self, key: str, data: bytes) -> None:  # noqa: D102
        k = self._key(key)
        self._call(
            f"Upload {key!r}",
            lambda: self.client.put_object(Bucket=self.bucket, Key=k, Body=data, **self.extra_args()),
        )

    def put_file(self, key: str, path: Path) -> None:  # noqa: D102
        k = self._key(key)

        def up() -> None:
            self.client.upload_file(
                str(path), self.bucket, k, ExtraArgs=self.extra_args() or None, Config=self.transfer_config
            )

        self._call(f"Upload {key!r}", up)

    def put_if_absent(self, key: str, data: bytes) -> bool:  # noqa: D102
        from botocore.exceptions import ClientError

        k = self._key(key)

        def put() -> bool:
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=k,
                    Body=data,
                    IfNoneMatch="*",
                    **self.extra_args(),
                )
            except ClientError as e:
                code = str(e.response.get("Error", {}).get("Code", ""))
                if code in ("PreconditionFailed", "ConditionalRequestConflict") or e.response.get(
                    "ResponseMetadata", {}
                ).get("HTTPStatusCode") in (409, 412):
                    return False
                raise
            return True

        if self.exists(key):
            return False
        return self._call(f"Upload {key!r}", put)

    def get_bytes(self, key: str) -> bytes:  # noqa: D102
        k = self._key(key)
        return self._call(
            f"Read {key!r}", lambda: self.client.get_object(Bucket=self.bucket, Key=k)["Body"].read()
        )

    def open_read(self, key: str) -> IO[bytes]:  # noqa: D102
        k = self._key(key)
        body = self._call(f"Read {key!r}", lambda: self.client.get_object(Bucket=self.bucket, Key=k)["Body"])
        return body

    def get_range(self, key: str, start: int, length: int) -> bytes:  # noqa: D102
        if length <= 0:
            return b""
        k = self._key(key)
        rng = f"bytes={start}-{start + length - 1}"

        def read() -> bytes:
            from botocore.exceptions import FlexibleChecksumError

            try:
                return self.client.get_object(Bucket=self.bucket, Key=k, Range=rng)["Body"].read()
            except FlexibleChecksumError:
                # Some S3 servers (rclone) send the whole object's CRC with a ranged answer, which botocore
                # then checks against the range. Read the whole object instead: its CRC is right.
                body = self.client.get_object(Bucket=self.bucket, Key=k)["Body"].read()
                return bytes(body[start : start + length])

        return self._call(f"Read {key!r}", read)

    def sha256(self, key: str) -> tuple[str, int]:  # noqa: D102
        # the whole read is one attempt: a body cut short starts again from the first byte
        self._key(key)  # a bad key is refused as it is, not as a storage failure
        return self._call(f"Read {key!r}", functools.partial(Storage.sha256, self, key))

    def download(self, key: str, path: Path) -> None:  # noqa: D102
        k = self._key(key)
        self._call(
            f"Download {key!r}",
            lambda: self.client.download_file(self.bucket, k, str(path), Config=self.transfer_config),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:  # noqa: D102
        full = self._prefix(prefix)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            list_page = functools.partial(self.client.list_objects_v2, **kwargs)
            page = self._call(f"List {prefix or '/'!r}", list_page)
            for obj in page.get("Contents", []):
                key = self._rel(obj["Key"], full)
                if key is not None:
                    yield ObjectInfo(key, int(obj["Size"]), obj["LastModified"])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:  # noqa: D102
        p = prefix.strip("/")
        if p:
            validate_key(p)
        full = "/".join(x for x in (self.root, p) if x)
        full = f"{full}/" if full else ""
        names: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            list_page = functools.partial(self.client.list_objects_v2, **kwargs)
            page = self._call(f"List {prefix or '/'!r}", list_page)
            for cp in page.get("CommonPrefixes", []):
                cp_key = str(cp["Prefix"])
                name = cp_key[len(full) :].rstrip("/")
                if cp_key.startswith(full) and SEGMENT_RE.fullmatch(name) and name not in (".", ".."):
                    names.append(name)
            if not page.get("IsTruncated"):
                return sorted(names)
            token = page.get("NextContinuationToken")

    def delete(self, keys: builtins.list[str]) -> None:  # noqa: D102
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            if not batch:
                continue
            resp = self._call(
                "Delete objects",
                functools.partial(
                    self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                ),
            )
            errors = resp.get("Errors") or []
            if errors:
                raise StorageError(
                    f"S3 could not delete {len(errors)} object(s) in {self.description}, e.g. "
                    f"{errors[0].get('Key')!r}: {errors[0].get('Code')}."
                )

    def exists(self, key: str) -> bool:  # noqa: D102
        k = self._key(key)
        try:
            self._call(f"Check {key!r}", lambda: self.client.head_object(Bucket=self.bucket, Key=k))
        except StorageNotFoundError:
            return False
        return True

    def head(self, key: str) -> dict[str, Any]:
        """Return the object's S3 metadata (``ServerSideEncryption``, ``ContentLength``, ...)."""
        k = self._key(key)
        return self._call(f"Check {key!r}", lambda: self.client.head_object(Bucket=self.bucket, Key=k))

    def check(self) -> None:  # noqa: D102
        try:
            self._call(f"Check bucket {self.bucket!r}", lambda: self.client.head_bucket(Bucket=self.bucket))
        except StorageNotFoundError:
            raise StorageNotFoundError(
                f"Bucket {self.bucket!r} does not exist at {self.endpoint or 'S3'}: "
                "create it or fix bucket_name."
            ) from None
