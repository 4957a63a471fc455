"""The storage seam: the verbs every backend has, the key rules, and where Milvus can import from.

Keys are relative to the backend's root (``root_path``) and validated at this seam: segments of ASCII
letters, digits, ``_``, ``-``, ``.`` and ``=``, never ``.`` or ``..``, so nothing escapes the root. The
backends are :mod:`~.storage_local` and :mod:`~.storage_s3`; import them all from :mod:`~.storage`.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from airflow_milvus_backup.engine.errors import InvalidArgumentError

SEGMENT_RE = re.compile(r"^[A-Za-z0-9_=.\-]{1,255}$")
CHUNK = 8 * 1024 * 1024


def validate_key(key: str) -> str:
    """Return ``key`` if every ``/``-separated segment is safe, else raise :class:`InvalidArgumentError`."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"Invalid storage key {key!r}: empty.")
    for seg in key.split("/"):
        if seg in ("", ".", "..") or not SEGMENT_RE.fullmatch(seg):
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


@dataclass(frozen=True)
class ImportLocation:
    """Where Milvus' bulk import finds a storage's objects: its bucket and the key prefix of its root.

    :param bucket: the bucket the objects are in.
    :param prefix: the storage's root inside the bucket (``""``: the top of the bucket), no ``/`` around it.
    """

    bucket: str
    prefix: str

    def within(self, bulk_import_root: str | None) -> bool:
        """Return whether the root is under ``bulk_import_root`` (the prefix Milvus resolves paths against).

        :param bulk_import_root: ``None`` or ``""``: the top of the bucket, which holds every root.
        """
        root = (bulk_import_root or "").strip("/")
        return not root or (self.prefix + "/").startswith(root + "/")

    def import_path(self, key: str, bulk_import_root: str | None = None) -> str:
        """Return the path Milvus' bulk import expects for an object of the storage.

        :param key: the object's key, relative to the storage's root (``<backup>/data/...``).
        :param bulk_import_root: the prefix Milvus resolves import paths against (default: the bucket's top).
        :raises InvalidArgumentError: the key is invalid, or the root is not under ``bulk_import_root``.
        """
        validate_key(key)
        root = (bulk_import_root or "").strip("/")
        if not self.within(root):
            raise InvalidArgumentError(
                f"The backup's prefix {self.prefix!r} is outside bulk_import_root {root!r}: Milvus cannot "
                f"import {key!r} from bucket {self.bucket!r}."
            )
        full = f"{self.prefix}/{key}" if self.prefix else key
        return full[len(root) + 1 :] if root else full


class Storage(ABC):
    """The storage seam: store, load, list, delete and hash objects by key."""

    #: A human description with no secret in it, e.g. ``s3://bucket/backups`` or ``/var/backups``.
    description: str

    def import_location(self) -> ImportLocation | None:
        """Return where Milvus' bulk import can read this storage's objects (``None``: it cannot)."""
        return None

    def bulk_import_blocker(self, bucket: str | None, bulk_import_root: str | None) -> str | None:
        """Return why a Milvus that stores its data in ``bucket`` cannot bulk import from here, or ``None``.

        :param bucket: the bucket of the target Milvus (``bulk_import_bucket``).
        :param bulk_import_root: the prefix that Milvus resolves import paths against.
        """
        loc = self.import_location()
        root = (bulk_import_root or "").strip("/")
        if loc is None:
            return f"the backup is not in S3 ({self.description})"
        if not bucket:
            return "bulk_import_bucket (the bucket of the target Milvus) is not given"
        if bucket != loc.bucket:
            return f"the backup is in bucket {loc.bucket!r}, the target Milvus reads bucket {bucket!r}"
        if not loc.within(root):
            return f"the backup's prefix {loc.prefix!r} is outside bulk_import_root {root!r}"
        return None

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
