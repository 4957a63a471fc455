"""The copier's vocabulary: what to copy, what came out, its options and errors, and the pure helpers.

Everything here is imported from :mod:`~.copier` too; see that module for how objects are copied.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_milvus_backup.engine import arguments as checks
from airflow_milvus_backup.engine.errors import IntegrityError, InvalidArgumentError, StorageNotFoundError
from airflow_milvus_backup.engine.progress import human_bytes, human_seconds
from airflow_milvus_backup.engine.storage_base import Storage, validate_key
from airflow_milvus_backup.engine.storage_s3 import S3Storage

GiB = 1 << 30
MiB = 1 << 20
#: S3's largest single CopyObject
MAX_SINGLE_COPY = 5 * GiB


class CopyMethod(str, enum.Enum):
    """How one object was copied."""

    SERVER_COPY = "server-copy"
    MULTIPART = "multipart"
    STREAM = "stream"


@dataclass(frozen=True)
class CopyItem:
    """One object to copy.

    :param source_key: its key in Milvus' bucket, relative to Milvus' root path (as the source storage lists).
    :param dest_key: its key in the destination storage, relative to that storage's root, under the prefix.
    :param size: the size the caller expects (from a listing or Milvus' meta), checked; ``None``: unchecked.
    """

    source_key: str
    dest_key: str
    size: int | None = None


@dataclass(frozen=True)
class CopyResult:
    """One object copied and checked.

    :param sha256: the object's SHA-256 (hex), from the server's checksum, computed while streaming, or read
        back; ``None`` when none of those was had (a server copy with an MD5, or with no digest asked for).
    :param checksum: the S3 checksum the server reported, ``"SHA256:<base64>"`` (``-N`` for a composite
        multipart checksum), or ``None``.
    :param method: ``"server-copy"``, ``"multipart"`` or ``"stream"``.
    :param md5: the object's MD5 (hex): computed while streaming, or a copy's plain-MD5 ETag that equals its
        source's (a single-part, unencrypted object, see :func:`etag_md5`); ``None`` otherwise.
    """

    source_key: str
    dest_key: str
    size: int
    etag: str
    sha256: str | None
    checksum: str | None
    method: str
    md5: str | None = None

    @property
    def has_digest(self) -> bool:
        """Whether the result proves the bytes: a SHA-256 or an MD5 of the whole object."""
        return bool(self.sha256 or self.md5)


class SourceVanishedError(StorageNotFoundError):
    """A source object disappeared before or while it was copied (a segment compacted away and collected)."""

    retryable = False

    def __init__(self, message: str, source_key: str) -> None:
        super().__init__(message)
        self.source_key = source_key


class CopyIntegrityError(IntegrityError):
    """A copied object does not match its source: size or ETag differ."""

    retryable = False


@dataclass
class CopyReport:
    """The outcome of :meth:`BinlogCopier.copy`: what was copied, what had vanished, the figures."""

    results: list[CopyResult] = field(default_factory=list)
    vanished: list[CopyItem] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    def by_method(self) -> dict[str, int]:
        """Return how many objects went each way."""
        out: dict[str, int] = {}
        for r in self.results:
            out[r.method] = out.get(r.method, 0) + 1
        return out

    def raise_for_vanished(self) -> None:
        """Raise :class:`SourceVanishedError` naming the first vanished source, if any vanished."""
        if self.vanished:
            first = self.vanished[0].source_key
            raise SourceVanishedError(
                f"{len(self.vanished)} source object(s) vanished during the copy, e.g. {first!r}: the "
                "segment was compacted away; copy its new segment instead.",
                first,
            )


@dataclass(frozen=True)
class CopyOptions:
    """Tuning of :class:`BinlogCopier`.

    :param concurrency: objects copied at once (threads).
    :param multipart_threshold: objects larger than this are copied with ``UploadPartCopy`` (at most
        ``max_single_copy``).
    :param max_single_copy: the largest object one ``CopyObject`` may copy (S3's limit, 5 GiB); larger ones
        are streamed when the server cannot copy parts.
    :param part_size: the range of one part copy (5 MiB to 5 GiB on S3; smaller on test servers).
    :param stream_part_size: the part size of a streamed upload: the memory one worker holds.
    :param checksum: ask the server for a SHA-256 of each server-side copy (``ChecksumAlgorithm``).
    :param etag_md5: take a server-side copy's ETag as its MD5 when it is a plain MD5 (32 hex digits, no
        ``-N``), the object is not encrypted with KMS or a customer key, and it equals the source's ETag; then
        nothing is read back. Turn it off for a store whose single-part ETags are no MD5 of the bytes.
    :param hash_server_copies: read a server-side copy back to compute its SHA-256 when it has no digest
        (no ``ChecksumSHA256`` from the server, no MD5 ETag taken: a multipart or encrypted copy).
    :param retry_attempts: attempts per object on transient failures.
    :param retry_seconds: give up retrying one object after this long.
    :param progress_interval: seconds between two progress lines.
    """

    concurrency: int = 8
    multipart_threshold: int = MAX_SINGLE_COPY
    max_single_copy: int = MAX_SINGLE_COPY
    part_size: int = 512 * MiB
    stream_part_size: int = 16 * MiB
    checksum: bool = True
    etag_md5: bool = True
    hash_server_copies: bool = False
    retry_attempts: int = 6
    retry_seconds: float = 120.0
    progress_interval: float = 5.0

    def __post_init__(self) -> None:
        checks.count(self.concurrency, "concurrency", maximum=256)
        checks.count(self.max_single_copy, "max_single_copy", maximum=MAX_SINGLE_COPY)
        checks.count(self.multipart_threshold, "multipart_threshold", maximum=self.max_single_copy)
        checks.count(self.part_size, "part_size", maximum=MAX_SINGLE_COPY)
        checks.count(self.stream_part_size, "stream_part_size", maximum=MAX_SINGLE_COPY)
        checks.count(self.retry_attempts, "retry_attempts", maximum=100)
        checks.seconds(self.retry_seconds, "retry_seconds", maximum=86_400)


# ------------------------------------------------------------------------------------------- pure helpers
def plan_parts(size: int, part_size: int) -> list[tuple[int, int]]:
    """Return the inclusive byte ranges ``(first, last)`` of a copy in parts of ``part_size`` (>= 1 part)."""
    if size <= 0:
        return [(0, -1)]
    return [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """Return the ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, ``-`` the part count."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def clean_etag(etag: str | None) -> str:
    """Return an ETag without its quotes."""
    return (etag or "").strip().strip('"')


def is_simple_etag(etag: str) -> bool:
    """Return whether an ETag is a plain MD5 (32 hex digits): a single-part, unencrypted or SSE-S3 object."""
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower())


def etag_md5(head: dict[str, Any], etag: str, *matching: str | None) -> str | None:
    """Return a copy's ETag as the MD5 of its bytes, or ``None`` when it is not one.

    It is one when it is a plain MD5 (:func:`is_simple_etag`: not a multipart ``-N`` ETag), the object is not
    encrypted with KMS or a customer key (whose ETags are no MD5; ``head`` is the copy's HEAD answer), and
    it equals one of ``matching`` (its source's ETag, or the MD5 computed of the bytes sent): S3 then
    vouches that the copy's bytes are those whose MD5 the source's ETag is.
    """
    if not is_simple_etag(etag) or etag not in [m for m in matching if m]:
        return None
    if str(head.get("ServerSideEncryption", "")).startswith("aws:kms") or head.get("SSECustomerAlgorithm"):
        return None
    return etag.lower()


def sha256_hex_from_checksum(checksum_b64: str | None) -> str | None:
    """Return the hex SHA-256 of a whole-object S3 ``ChecksumSHA256``; ``None`` for a composite or none."""
    if not checksum_b64 or "-" in checksum_b64:
        return None
    try:
        raw = base64.b64decode(checksum_b64, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None


def read_back_sha256(storage: S3Storage, key: str) -> str:
    """Return the SHA-256 (hex) of an object, read 1 MiB at a time; the whole read is one attempt.

    A server-side copy's digest when the server computed none. The memory it holds is one 1 MiB read,
    whatever the object's size (:meth:`S3Storage.sha256` reads 8 MiB at a time: 64 MiB at 8 copy workers).
    """
    full = storage.full_key(key)

    def read() -> str:
        h = hashlib.sha256()
        body = storage.client.get_object(Bucket=storage.bucket, Key=full)["Body"]
        try:
            while chunk := body.read(MiB):
                h.update(chunk)
        finally:
            body.close()
        return h.hexdigest()

    return storage.call(f"Read {key!r} back", read)


def _norm_endpoint(url: str | None) -> str:
    if not url:
        return "aws"
    u = url.strip().rstrip("/").lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if u.startswith(scheme) and u.endswith(port):
            u = u[: -len(port)]
    return u


def same_endpoint(source: S3Storage, dest: Storage) -> bool:
    """Return whether ``dest`` is an S3 storage on the source's endpoint, so CopyObject can join them."""
    return isinstance(dest, S3Storage) and _norm_endpoint(source.endpoint) == _norm_endpoint(dest.endpoint)


def check_items(items: Sequence[CopyItem], dest_prefix: str) -> None:
    """Refuse bad keys, a destination outside ``dest_prefix`` and two sources for one destination.

    :raises InvalidArgumentError: naming the item.
    """
    prefix = validate_key(dest_prefix.strip("/")) + "/"
    seen: set[str] = set()
    for it in items:
        validate_key(it.source_key)
        validate_key(it.dest_key)
        if not it.dest_key.startswith(prefix):
            raise InvalidArgumentError(
                f"Refusing to copy {it.source_key!r} to {it.dest_key!r}: the destination is outside the "
                f"backup's prefix {prefix!r}."
            )
        if it.dest_key in seen:
            raise InvalidArgumentError(f"Two source objects would be copied to {it.dest_key!r}.")
        seen.add(it.dest_key)
        if it.size is not None and it.size < 0:
            raise InvalidArgumentError(f"Invalid size {it.size} for {it.source_key!r}.")


class HashingReader:
    """A reader over a stream that keeps its SHA-256, MD5 and length."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.size = 0

    def read_part(self, n: int) -> tuple[bytes, bytes]:
        """Return up to ``n`` bytes (fewer only at the end) and their MD5, read 1 MiB at a time."""
        chunks: list[bytes] = []
        part_md5 = hashlib.md5()
        got = 0
        while got < n:
            chunk = self.raw.read(min(n - got, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            part_md5.update(chunk)
            self.sha.update(chunk)
            self.md5.update(chunk)
            got += len(chunk)
        self.size += got
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return (data if chunks else b""), part_md5.digest()


@dataclass
class CopyProgress:
    """Objects and bytes copied, throughput and ETA, logged at most every ``interval`` seconds (thread-safe).

    The figures passed to ``callback`` are :class:`~...progress.Progress`'s keys (``rows`` counts objects
    here) plus ``objects``, ``total_objects`` and ``total_bytes``.
    """

    what: str
    total_objects: int = 0
    total_bytes: int = 0
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("airflow_milvus_backup"))
    callback: Callable[[dict[str, Any]], None] | None = None
    interval: float = 5.0
    objects: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, objects: int = 0, nbytes: int = 0) -> None:
        """Count objects and bytes copied; report if the interval has passed."""
        with self._lock:
            self.objects += objects
            self.bytes += nbytes
            now = time.monotonic()
            due = now - self._last >= self.interval
            if due:
                self._last = now
        if due:
            self.report()

    def figures(self) -> dict[str, Any]:
        """Return objects, bytes, their totals, elapsed seconds, MB/s and the ETA in seconds."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        byte_rate = self.bytes / elapsed
        if self.total_bytes and byte_rate > 0:
            eta: float | None = max(self.total_bytes - self.bytes, 0) / byte_rate
        elif self.total_objects and self.objects:
            eta = max(self.total_objects - self.objects, 0) * elapsed / self.objects
        else:
            eta = None
        return {
            "what": self.what,
            "objects": self.objects,
            "total_objects": self.total_objects,
            "rows": self.objects,
            "total_rows": self.total_objects,
            "bytes": self.bytes,
            "total_bytes": self.total_bytes,
            "seconds": round(elapsed, 3),
            "mb_per_second": round(byte_rate / 1e6, 3),
            "eta_seconds": None if eta is None else round(eta, 1),
        }

    def report(self, final: bool = False) -> None:
        """Log one progress line now."""
        f = self.figures()
        pct = f" ({100.0 * f['objects'] / f['total_objects']:.1f}%)" if f["total_objects"] else ""
        self.logger.info(
            "%s: %s/%s objects%s, %s%s, %s/s, %s %s",
            self.what,
            f"{f['objects']:,}",
            f"{f['total_objects']:,}",
            pct,
            human_bytes(f["bytes"]),
            f"/{human_bytes(f['total_bytes'])}" if f["total_bytes"] else "",
            human_bytes(f["bytes"] / max(f["seconds"], 1e-9)),
            "done in" if final else "ETA",
            human_seconds(f["seconds"] if final else f["eta_seconds"]),
        )
        if self.callback:
            self.callback(f)
