"""Copy Milvus' binlog objects into a backup: server-side where it can, streamed where it must.

For each :class:`CopyItem` (a key in Milvus' bucket, a key in the backup storage) the copier picks one way:

* ``server-copy``: one ``CopyObject`` when the source and the destination are on the same S3 endpoint (any
  bucket); the bytes never leave the S3 server. A SHA-256 is asked for (``ChecksumAlgorithm``) and reported
  where the server computes it.
* ``multipart``: ``UploadPartCopy`` in ranges of ``part_size`` above ``multipart_threshold`` (S3 copies at
  most 5 GiB in one ``CopyObject``). A server that answers a part copy without an ETag (rclone's) cannot do
  it: the copier aborts that upload and streams from then on.
* ``stream``: ``GET`` then ``PUT`` (multipart in parts of ``stream_part_size``) when the endpoints differ,
  the server refuses the server-side copy, or the destination is a directory; one part in memory per worker
  at most, the SHA-256 computed on the way.

Every copy is checked: the destination's size against the source's (and the size the caller expects), its
ETag against the source's MD5 (single-part), the composite ETag of the parts (multipart: MD5 of the parts'
MD5s, ``-N``), or the MD5 computed while streaming. Each result carries a digest of the whole object where
one is had without reading it: the server's ``ChecksumSHA256``, or the copy's ETag when it is a plain MD5
equal to the source's (:func:`~.copy_model.etag_md5`; ``etag_md5``); a copy with neither (a multipart
copy's ``-N`` ETag, a KMS-encrypted object) is read back once for its SHA-256 (``hash_server_copies``).
A streamed copy has both, computed on the way. A source that is gone (a segment compacted away and
collected) is reported in :attr:`CopyReport.vanished`, never as a failure of the copy, so the caller can
redo that segment. Transient failures are retried through :func:`~..failures.retryable`. Nothing is written
outside ``dest_prefix`` and nothing is read outside Milvus' root path.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from airflow_milvus_backup.engine.errors import (
    InvalidArgumentError,
    MilvusBackupError,
    StorageAccessError,
    StorageError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.failures import retryable
from airflow_milvus_backup.engine.physical.copy_model import (
    CopyIntegrityError,
    CopyItem,
    CopyMethod,
    CopyOptions,
    CopyProgress,
    CopyReport,
    CopyResult,
    HashingReader,
    SourceVanishedError,
    check_items,
    clean_etag,
    etag_md5,
    is_simple_etag,
    multipart_etag,
    plan_parts,
    read_back_sha256,
    same_endpoint,
    sha256_hex_from_checksum,
)
from airflow_milvus_backup.engine.physical.copy_stream import (
    abort_upload,
    spool_to_storage,
    upload_stream,
)
from airflow_milvus_backup.engine.progress import human_bytes
from airflow_milvus_backup.engine.storage_base import Storage, validate_key
from airflow_milvus_backup.engine.storage_s3 import S3Storage

log = logging.getLogger("airflow_milvus_backup.engine.physical")
T = TypeVar("T")


class _PartCopyUnsupported(Exception):
    """The server answered an UploadPartCopy without an ETag: it cannot copy parts."""


# ------------------------------------------------------------------------------------------------- copier
class BinlogCopier:
    """Copy objects from Milvus' bucket into a backup storage, checked, in parallel.

    :param source: Milvus' bucket (:func:`~.milvus_storage.open_milvus_bucket`); only read.
    :param dest: the backup storage (S3 or a local directory).
    :param dest_prefix: every destination key must be under it (the backup's folder, e.g. ``nightly``).
    :param options: tuning (:class:`CopyOptions`).
    :param logger: where progress and fallbacks are logged.
    :param progress_callback: also called with the progress figures.
    """

    def __init__(
        self,
        source: S3Storage,
        dest: Storage,
        dest_prefix: str,
        options: CopyOptions | None = None,
        *,
        logger: logging.Logger | None = None,
        progress_callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.source = source
        self.dest = dest
        self.dest_prefix = validate_key(dest_prefix.strip("/"))
        self.options = options or CopyOptions()
        self.log = logger or log
        self.progress_callback = progress_callback
        #: whether CopyObject can join source and destination (same endpoint); turned off if refused
        self.server_side = same_endpoint(source, dest)
        self.part_copy = True
        self._lock = threading.Lock()
        self._progress: CopyProgress | None = None

    # -- public
    def copy(self, items: Sequence[CopyItem], *, what: str = "Copy binlogs") -> CopyReport:
        """Copy every item; return the results (in the items' order) and the sources that had vanished.

        :raises InvalidArgumentError: a key is invalid or a destination is outside the prefix.
        :raises CopyIntegrityError: a copy does not match its source (nothing is retried then).
        :raises StorageError: a storage failure that retries did not cure.
        """
        check_items(items, self.dest_prefix)
        total = sum(it.size or 0 for it in items)
        progress = CopyProgress(
            what,
            total_objects=len(items),
            total_bytes=total,
            logger=self.log,
            callback=self.progress_callback,
            interval=self.options.progress_interval,
        )
        self._progress = progress
        self.log.info(
            "%s: %d object(s) from %s to %s (%s)",
            what,
            len(items),
            self.source.description,
            self.dest.description,
            "server-side copy" if self.server_side else "streamed: different endpoints",
        )
        report = CopyReport()
        outcomes: list[CopyResult | CopyItem] = []
        with ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="copier") as pool:
            outcomes = list(pool.map(self._copy_or_vanished, items))
        for item, out in zip(items, outcomes, strict=True):
            if isinstance(out, CopyResult):
                report.results.append(out)
                report.bytes += out.size
            else:
                report.vanished.append(item)
        report.seconds = time.monotonic() - progress.started
        progress.report(final=True)
        self._progress = None
        return report

    def copy_one(self, item: CopyItem) -> CopyResult:
        """Copy one item and check it.

        :raises SourceVanishedError: the source does not exist (any more).
        """
        check_items([item], self.dest_prefix)
        return self._copy(item)

    # -- driving
    def _copy_or_vanished(self, item: CopyItem) -> CopyResult | CopyItem:
        try:
            result = self._copy(item)
        except SourceVanishedError as e:
            self.log.warning("%s", e)
            return item
        if self._progress is not None:
            self._progress.add(objects=1, nbytes=result.size)
        return result

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run a streamed copy again on transient failures, from its first byte.

        Only streams are retried here, as a whole; their calls inside are not retried on their own (one
        retry budget per object). Server-side copies retry each call through the storage's ``call``.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn()
            except (SourceVanishedError, CopyIntegrityError, InvalidArgumentError):
                raise
            except Exception as e:  # noqa: BLE001 - classified, then re-raised typed
                err = e if isinstance(e, MilvusBackupError) else self.source.translate(e, what)
                attempt += 1
                out_of_time = time.monotonic() - started >= self.options.retry_seconds
                if not retryable(err) or attempt >= self.options.retry_attempts or out_of_time:
                    if err is e:
                        raise
                    raise err from e
                wait = min(10.0, 0.25 * 2**attempt)
                self.log.warning("%s failed (%s); retry %d in %.1f s", what, err, attempt, wait)
                time.sleep(wait)

    def _head_source(self, item: CopyItem) -> tuple[int, str]:
        try:
            head = self.source.head(item.source_key)
        except StorageNotFoundError:
            raise self._vanished(item) from None
        size = int(head.get("ContentLength", 0))
        if item.size is not None and size != item.size:
            raise CopyIntegrityError(
                f"{self.source.description}/{item.source_key} is {size} bytes, expected {item.size}: the "
                "listing and the object disagree; list the segment again."
            )
        return size, clean_etag(head.get("ETag"))

    def _vanished(self, item: CopyItem) -> SourceVanishedError:
        return SourceVanishedError(
            f"{self.source.description}/{item.source_key} does not exist (any more): its segment was "
            "probably compacted away during the backup.",
            item.source_key,
        )

    def _copy(self, item: CopyItem) -> CopyResult:
        size, src_etag = self._head_source(item)
        limit = self.options.max_single_copy
        try:
            if self.server_side and self.part_copy and size > self.options.multipart_threshold:
                try:
                    return self._multipart_copy(item, size, src_etag)
                except _PartCopyUnsupported:
                    self._fallback(
                        "part_copy",
                        "the S3 server cannot copy parts (UploadPartCopy)",
                        f"objects up to {human_bytes(limit)} are copied whole, larger ones streamed",
                    )
            if self.server_side and size <= limit:
                return self._server_copy(item, size, src_etag)
        except StorageAccessError as e:
            self._fallback("server_side", f"the server refused the server-side copy ({e})", "streaming all")
        except StorageNotFoundError:
            if not self.source.exists(item.source_key):
                raise self._vanished(item) from None
            raise
        return self._retrying(f"Copy {item.source_key!r}", lambda: self._stream(item, size, src_etag))

    def _fallback(self, flag: str, why: str, then: str) -> None:
        with self._lock:
            if getattr(self, flag):
                setattr(self, flag, False)
                self.log.warning("%s: %s from now on (GET then PUT through this worker).", why, then)

    # -- server-side
    def _server_copy(self, item: CopyItem, size: int, src_etag: str) -> CopyResult:
        dest = self._s3_dest()
        src = {"Bucket": self.source.bucket, "Key": self.source.full_key(item.source_key)}
        extra: dict[str, Any] = dict(dest.extra_args())
        if self.options.checksum:
            extra["ChecksumAlgorithm"] = "SHA256"
        key = dest.full_key(item.dest_key)
        resp = dest.call(
            f"Copy {item.source_key!r} to {item.dest_key!r}",
            lambda: dest.client.copy_object(Bucket=dest.bucket, Key=key, CopySource=src, **extra),
        )
        out = resp.get("CopyObjectResult", {})
        checksum = out.get("ChecksumSHA256")
        etag, md5 = self._check_dest(item, size, src_etag if is_simple_etag(src_etag) else None)
        sha = self._sha256_unless_known(item, sha256_hex_from_checksum(checksum), md5)
        return CopyResult(
            item.source_key,
            item.dest_key,
            size,
            etag,
            sha,
            f"SHA256:{checksum}" if checksum else None,
            CopyMethod.SERVER_COPY.value,
            md5=md5,
        )

    def _sha256_unless_known(self, item: CopyItem, sha: str | None, md5: str | None) -> str | None:
        """Return ``sha``, or the copy's SHA-256 read back when it has no digest and that is asked for."""
        if sha is None and md5 is None and self.options.hash_server_copies:
            return read_back_sha256(self._s3_dest(), item.dest_key)
        return sha

    def _multipart_copy(self, item: CopyItem, size: int, src_etag: str) -> CopyResult:
        dest = self._s3_dest()
        key = dest.full_key(item.dest_key)
        src = {"Bucket": self.source.bucket, "Key": self.source.full_key(item.source_key)}
        what = f"Copy {item.source_key!r} to {item.dest_key!r}"
        up = dest.call(
            what,
            lambda: dest.client.create_multipart_upload(Bucket=dest.bucket, Key=key, **dest.extra_args()),
        )
        upload_id = up["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            md5s: list[bytes] = []
            for number, (first, last) in enumerate(plan_parts(size, self.options.part_size), start=1):
                resp = dest.call(
                    what,
                    functools.partial(
                        dest.client.upload_part_copy,
                        Bucket=dest.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource=src,
                        CopySourceRange=f"bytes={first}-{last}",
                    ),
                )
                part_etag = clean_etag(resp.get("CopyPartResult", {}).get("ETag"))
                if not is_simple_etag(part_etag):
                    raise _PartCopyUnsupported(part_etag)
                parts.append({"PartNumber": number, "ETag": f'"{part_etag}"'})
                md5s.append(bytes.fromhex(part_etag))
            dest.call(
                what,
                lambda: dest.client.complete_multipart_upload(
                    Bucket=dest.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            abort_upload(dest, key, upload_id)
            raise
        etag, md5 = self._check_dest(
            item, size, multipart_etag(md5s), src_etag if is_simple_etag(src_etag) else None
        )
        sha = self._sha256_unless_known(item, None, md5)  # md5: a store giving the whole object's MD5
        method = CopyMethod.MULTIPART.value
        return CopyResult(item.source_key, item.dest_key, size, etag, sha, None, method, md5=md5)

    def _s3_dest(self) -> S3Storage:
        assert isinstance(self.dest, S3Storage)
        return self.dest

    def _check_dest(self, item: CopyItem, size: int, *expected: str | None) -> tuple[str, str | None]:
        """HEAD the copy; check its size and its ETag (one of ``expected``, when any).

        Return its ETag and, when that ETag is the MD5 of its bytes (:func:`~.copy_model.etag_md5`) and
        ``etag_md5`` is on, that MD5.

        A multipart object's ETag is the composite ``md5(part md5s)-N`` on AWS, MinIO and moto, but some
        stores (rclone) give the whole object's MD5: both are accepted where both are known.
        """
        dest = self._s3_dest()
        head = dest.head(item.dest_key)
        got_size = int(head.get("ContentLength", -1))
        etag = clean_etag(head.get("ETag"))
        if got_size != size:
            raise CopyIntegrityError(
                f"The copy {dest.description}/{item.dest_key} is {got_size} bytes, its source "
                f"{item.source_key!r} {size}: the copy is incomplete; run the backup again."
            )
        kms = str(head.get("ServerSideEncryption", "")).startswith("aws:kms")
        accept = [e for e in expected if e]
        if accept and not kms and etag not in accept:
            raise CopyIntegrityError(
                f"The copy {dest.description}/{item.dest_key} has ETag {etag!r}, expected "
                f"{' or '.join(map(repr, accept))} "
                f"from its source {item.source_key!r}: the bytes differ; run the backup again."
            )
        return etag, etag_md5(head, etag, *expected) if self.options.etag_md5 else None

    # -- streamed
    def _stream(self, item: CopyItem, size: int, src_etag: str) -> CopyResult:
        what = f"Read {item.source_key!r}"
        full = self.source.full_key(item.source_key)
        try:
            body = self.source.client.get_object(Bucket=self.source.bucket, Key=full)["Body"]
        except Exception as e:  # noqa: BLE001 - translated
            err = self.source.translate(e, what)
            if isinstance(err, StorageNotFoundError):
                raise self._vanished(item) from e
            raise err from e
        reader = HashingReader(body)
        try:
            if isinstance(self.dest, S3Storage):
                etag = self._stream_to_s3(item, reader)
            else:
                etag = self._stream_to_file(item, reader)
        finally:
            body.close()
        if reader.size != size:
            raise CopyIntegrityError(
                f"{self.source.description}/{item.source_key} gave {reader.size} bytes, its size is {size}."
            )
        md5 = reader.md5.hexdigest()
        if is_simple_etag(src_etag) and md5 != src_etag:
            raise CopyIntegrityError(
                f"{self.source.description}/{item.source_key} read back with MD5 {md5}, its ETag is "
                f"{src_etag}: the bytes changed on the way; run the backup again."
            )
        sha = reader.sha.hexdigest()
        method = CopyMethod.STREAM.value
        return CopyResult(item.source_key, item.dest_key, size, etag, sha, None, method, md5=md5)

    def _stream_to_s3(self, item: CopyItem, reader: HashingReader) -> str:
        dest = self._s3_dest()
        what = f"Upload {item.dest_key!r}"
        first, md5s = upload_stream(
            dest, dest.full_key(item.dest_key), reader, self.options.stream_part_size, what
        )
        if md5s is None:
            return self._check_dest(item, reader.size, first.hex())[0]
        return self._check_dest(item, reader.size, multipart_etag(md5s), reader.md5.hexdigest())[0]

    def _stream_to_file(self, item: CopyItem, reader: HashingReader) -> str:
        """Spool to a temporary file (bounded memory), then store it: the destination is no S3 storage."""
        spool_to_storage(self.dest, item.dest_key, reader, self.options.stream_part_size)
        return reader.md5.hexdigest()


def copy_objects(
    source: S3Storage,
    dest: Storage,
    items: Sequence[CopyItem],
    dest_prefix: str,
    options: CopyOptions | None = None,
    *,
    what: str = "Copy binlogs",
    logger: logging.Logger | None = None,
    progress_callback: Callable[[dict[str, Any]], None] | None = None,
) -> CopyReport:
    """Copy ``items`` from Milvus' bucket into ``dest`` under ``dest_prefix`` (see :class:`BinlogCopier`)."""
    copier = BinlogCopier(
        source, dest, dest_prefix, options, logger=logger, progress_callback=progress_callback
    )
    return copier.copy(items, what=what)


__all__ = [
    "BinlogCopier",
    "CopyIntegrityError",
    "CopyItem",
    "CopyMethod",
    "CopyOptions",
    "CopyReport",
    "CopyResult",
    "SourceVanishedError",
    "StorageError",
    "copy_objects",
    "multipart_etag",
    "plan_parts",
    "same_endpoint",
]
