"""Where backups live: a handful of verbs over S3 or a local directory.

Keys are relative to the backend's root (``root_path``) and validated at this seam: segments of ASCII
letters, digits, ``_``, ``-``, ``.`` and ``=``, never ``.`` or ``..``, so nothing escapes the root.

Atomicity: on both backends a single object appears whole or not at all (S3 by its nature; the local
backend writes a temporary file and renames it). Nothing is atomic across objects: a backup is committed by
its manifest, written last (see FORMAT.md).
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_=.\-]{1,255}$")
T = TypeVar("T")
CHUNK = 8 * 1024 * 1024


def validate_key(key: str) -> str:
    """Return ``key`` if every ``/``-separated segment is safe, else raise :class:`InvalidArgumentError`."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"Invalid storage key {key!r}: empty.")
    for seg in key.split("/"):
        if seg in ("", ".", "..") or not _SEGMENT_RE.fullmatch(seg):
            raise InvalidArgumentError(f"Invalid storage key {key!r}: segment {seg!r} is not allowed.")
    return key


def validate_root(root: str | None, *, allow_root_at_top: bool = False, where: str = "the storage") -> str:
    """Normalise a ``root_path``; refuse ``..``, odd characters and (unless allowed) an empty or ``/`` root.

    :param root: the prefix or folder of backups, relative to the bucket or directory.
    :param allow_root_at_top: accept an empty root: backups at the top of the bucket or directory.
    :param where: the bucket or directory, for the message.
    """
    given = root
    root = (root or "").strip("/")
    if root:
        validate_key(root)
    elif not allow_root_at_top:
        raise InvalidArgumentError(
            f"root_path {given!r} would keep backups at the top of {where}, among whatever else is stored "
            "there: set root_path to a folder of their own (the default is 'backup'), or pass "
            "allow_root_at_top=True if nothing but backups is ever kept there."
        )
    return root


def file_sha256(path: Path) -> tuple[str, int]:
    """Return the sha256 hex digest and size of a local file, read through one reused 1 MB buffer."""
    h = hashlib.sha256()
    size = 0
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    with open(path, "rb") as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key relative to the root, size in bytes and last modification time."""

    key: str
    size: int
    last_modified: datetime


class Storage(ABC):
    """The storage seam: store, load, list, delete and hash objects by key."""

    #: A human description with no secret in it, e.g. ``s3://bucket/backups`` or ``/var/backups``.
    description: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any object there."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file (multipart for large files on S3)."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` only if ``key`` does not exist; return whether it was stored.

        Atomic where the backend can be (local: ``O_EXCL``; S3: ``If-None-Match``); elsewhere a check then
        a write, and callers must not rely on it alone.
        """
        if self.exists(key):
            return False
        self.put_bytes(key, data)
        return True

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the whole object (for small objects such as manifests)."""

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """Return a stream over the object, read in chunks."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes of the object from offset ``start`` (e.g. a Parquet footer)."""
        with self.open_read(key) as fh:
            skipped = 0
            while skipped < start and (chunk := fh.read(min(CHUNK, start - skipped))):
                skipped += len(chunk)
            return fh.read(length)

    @abstractmethod
    def download(self, key: str, path: Path) -> None:
        """Copy the object to a local file."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix`` (a folder prefix ends with ``/``)."""

    @abstractmethod
    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """Return the names directly below ``prefix`` that have objects under them."""

    @abstractmethod
    def delete(self, keys: builtins.list[str]) -> None:
        """Delete objects; keys that do not exist are ignored."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether an object exists under ``key``."""

    def sha256(self, key: str) -> tuple[str, int]:
        """Stream the object and return its sha256 hex digest and size."""
        h = hashlib.sha256()
        size = 0
        with self.open_read(key) as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
        return h.hexdigest(), size

    def check(self) -> None:
        """Fail with a clear error if the storage cannot be used (no bucket, bad credentials, unreachable)."""
        next(iter(self.list_dirs("")), None)


# --------------------------------------------------------------------------------------------------- local
class LocalStorage(Storage):
    """A directory on a local or mounted file system; backups live in its folder ``root_path``.

    Symbolic links are never followed out of the root: every path is resolved and a read, write, listing
    or delete whose real path leaves the root is refused (:class:`StorageError` naming the link); listings do
    not descend into linked folders; a delete removes a link itself at most, never what it points to.

    :param path: the directory.
    :param root_path: the folder of backups inside it (default ``"backup"``).
    :param allow_root_at_top: accept an empty ``root_path``: backups directly in ``path``.
    """

    def __init__(
        self, path: str | os.PathLike[str], root_path: str = "backup", *, allow_root_at_top: bool = False
    ) -> None:
        self.base = Path(path).resolve()
        self.root = validate_root(root_path, allow_root_at_top=allow_root_at_top, where=str(self.base))
        self.dir = self.base / self.root if self.root else self.base
        self.description = str(self.dir)

    def _real_root(self) -> Path:
        return Path(os.path.realpath(self.dir))

    def _inside(self, p: Path) -> bool:
        real, root = Path(os.path.realpath(p)), self._real_root()
        return real == root or root in real.parents

    def _refuse_link(self, key: str, verb: str, p: Path) -> StorageError:
        """Return the error naming the first symbolic link on the way from the root to ``p``."""
        link = p
        cur = self.dir
        for part in p.relative_to(self.dir).parts:
            cur = cur / part
            if cur.is_symlink() and not self._inside(cur):
                link = cur
                break
        rel = link.relative_to(self.dir).as_posix()
        return StorageError(
            f"Refusing to {verb} {key!r} in {self.description}: {rel!r} is a symbolic link to "
            f"{os.path.realpath(link)}, outside the backup root. Remove the link, or move the files into "
            f"{self.description}."
        )

    def _path(self, key: str, verb: str = "read", *, the_link_itself: bool = False) -> Path:
        """Return the path of ``key``, refusing any whose real path leaves the root.

        :param the_link_itself: the final component may be a link (it is acted on, never followed: a
            delete), so only its folder must be inside the root.
        """
        p = self.dir / validate_key(key)
        if self.dir not in p.parents:
            raise InvalidArgumentError(f"Storage key {key!r} escapes {self.dir}.")
        check = p.parent if the_link_itself else p
        if not self._inside(check):
            raise self._refuse_link(key, verb, check)
        return p

    def _write_path(self, key: str) -> Path:
        """Return the path to write ``key`` at, its folders created without following a link."""
        p = self._path(key, "write")
        cur = self.dir
        cur.mkdir(parents=True, exist_ok=True)
        for part in p.relative_to(self.dir).parts[:-1]:
            cur = cur / part
            if cur.is_symlink():  # inside the root (checked above): not created, only passed through
                continue
            cur.mkdir(exist_ok=True)
        if not self._inside(p):  # a link appeared while the folders were made
            raise self._refuse_link(key, "write", p)
        return p

    def _tmp(self, p: Path) -> Path:
        return p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:12]}")

    def put_bytes(self, key: str, data: bytes) -> None:  # noqa: D102
        p = self._write_path(key)
        tmp = self._tmp(p)
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)

    def put_file(self, key: str, path: Path) -> None:  # noqa: D102
        p = self._write_path(key)
        tmp = self._tmp(p)
        with open(path, "rb") as src, open(tmp, "xb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        os.replace(tmp, p)

    def put_if_absent(self, key: str, data: bytes) -> bool:  # noqa: D102
        p = self._write_path(key)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def _open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise StorageNotFoundError(f"Object {key!r} does not exist in {self.description}.") from None

    def get_bytes(self, key: str) -> bytes:  # noqa: D102
        with self._open(key) as fh:
            return fh.read()

    def open_read(self, key: str) -> IO[bytes]:  # noqa: D102
        return self._open(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:  # noqa: D102
        with self._open(key) as fh:
            fh.seek(start)
            return fh.read(length)

    def download(self, key: str, path: Path) -> None:  # noqa: D102
        with self._open(key) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:  # noqa: D102
        if not self.dir.is_dir():
            return
        start = self.dir
        if prefix:
            folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
            if folder:
                validate_key(folder)
                start = self.dir / folder
        parts = start.relative_to(self.dir).parts
        if any(self.dir.joinpath(*parts[: i + 1]).is_symlink() for i in range(len(parts))):
            return  # a linked folder is never descended into
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):  # does not follow links below ``start``
            kept = []
            for d in sorted(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    log.warning("Not listing %s: a symbolic link to a folder", os.path.join(dirpath, d))
                else:
                    kept.append(d)
            dirnames[:] = kept
            for fn in sorted(filenames):
                if fn.startswith(".") and ".tmp-" in fn:
                    continue
                full = Path(dirpath) / fn
                key = full.relative_to(self.dir).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    validate_key(key)
                    # A file link is listed under its own key, so deleting the backup removes it (never what
                    # it points to) and reading it is refused naming it; a dangling one with its own size.
                    st = full.stat() if full.exists() else full.lstat()
                except (InvalidArgumentError, OSError):
                    continue  # a name no backup writes, or gone since
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:  # noqa: D102
        p = prefix.strip("/")
        d = self.dir / validate_key(p) if p else self.dir
        if not d.is_dir() or d.is_symlink() or not self._inside(d):
            return []
        return sorted(
            c.name for c in d.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith(".")
        )

    def delete(self, keys: builtins.list[str]) -> None:  # noqa: D102
        paths = [self._path(key, "delete", the_link_itself=True) for key in keys]
        parents: set[Path] = set()
        for p in paths:
            if p.is_dir() and not p.is_symlink():
                continue  # a key names an object, never a folder
            p.unlink(missing_ok=True)  # a link itself goes, never what it points to
            parents.add(p.parent)
        for parent in sorted(parents, key=lambda x: len(x.parts), reverse=True):
            while parent != self.dir and self.dir in parent.parents and not parent.is_symlink():
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def exists(self, key: str) -> bool:  # noqa: D102
        return self._path(key).is_file()

    def check(self) -> None:  # noqa: D102
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageAccessError(f"Cannot use backup directory {self.dir}: {e}. Check the path.") from e


# ------------------------------------------------------------------------------------------------------ S3
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
                if cp_key.startswith(full) and _SEGMENT_RE.fullmatch(name) and name not in (".", ".."):
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
