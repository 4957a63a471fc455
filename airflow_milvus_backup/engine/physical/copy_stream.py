"""The streamed way of :mod:`.copier`: ``GET`` then ``PUT`` with bounded memory, for different endpoints.

:func:`upload_stream` writes a :class:`~.copy_model.HashingReader` to an S3 key (one ``PUT`` when it fits one
part, else a multipart upload holding one part in memory, aborted on failure); :func:`spool_to_storage`
spools it through a temporary file into a storage that is not S3 (a directory). Each call is made once (the
copier retries the whole object) with its failure typed by the storage.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_milvus_backup.engine.physical.copy_model import CopyIntegrityError

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.copy_model import HashingReader
    from airflow_milvus_backup.engine.storage_base import Storage
    from airflow_milvus_backup.engine.storage_s3 import S3Storage

log = logging.getLogger("airflow_milvus_backup.engine.physical")
T = TypeVar("T")


def once(storage: S3Storage, what: str, fn: Callable[[], T]) -> T:
    """Run one client call with no retry of its own, its failure typed (the whole stream is retried)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - translated into the typed hierarchy
        raise storage.translate(e, what) from e


def abort_upload(dest: S3Storage, key: str, upload_id: str) -> None:
    """Abort a multipart upload, best effort (the first failure is the one reported)."""
    try:
        dest.client.abort_multipart_upload(Bucket=dest.bucket, Key=key, UploadId=upload_id)
    except Exception as e:  # noqa: BLE001 - best effort
        log.warning("Could not abort the multipart upload of %s: %s", key, type(e).__name__)


def _upload_part(dest: S3Storage, key: str, upload_id: str, number: int, held: list[bytes]) -> Any:
    body = io.BytesIO(held[0])
    try:
        return dest.client.upload_part(
            Bucket=dest.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
    finally:
        body.close()


def upload_stream(
    dest: S3Storage, key: str, reader: HashingReader, part_size: int, what: str
) -> tuple[bytes, list[bytes] | None]:
    """Write ``reader`` to the full key ``key`` of ``dest``.

    :returns: the first part's MD5, and every part's MD5 for a multipart upload (``None``: one ``PUT``).
    """
    call = functools.partial(once, dest)
    data, md5 = reader.read_part(part_size)
    if len(data) < part_size:  # the whole object fits one part: one PUT
        call(
            what, lambda: dest.client.put_object(Bucket=dest.bucket, Key=key, Body=data, **dest.extra_args())
        )
        return md5, None
    up = call(
        what, lambda: dest.client.create_multipart_upload(Bucket=dest.bucket, Key=key, **dest.extra_args())
    )
    upload_id = up["UploadId"]
    parts: list[dict[str, Any]] = []
    md5s: list[bytes] = []
    first = md5
    try:
        while data:
            number = len(parts) + 1
            held = [data]  # emptied after the call: retry state and botocore may keep the call alive
            del data
            resp = call(what, functools.partial(_upload_part, dest, key, upload_id, number, held))
            held.clear()
            parts.append({"PartNumber": number, "ETag": resp["ETag"]})
            md5s.append(md5)
            data, md5 = reader.read_part(part_size)
        call(
            what,
            lambda: dest.client.complete_multipart_upload(
                Bucket=dest.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            ),
        )
    except BaseException:
        abort_upload(dest, key, upload_id)
        raise
    return first, md5s


def spool_to_storage(dest: Storage, key: str, reader: HashingReader, part_size: int) -> None:
    """Spool ``reader`` to a temporary file (bounded memory), store it as ``key``, check the stored size."""
    fd, tmp = tempfile.mkstemp(prefix="milvus-backup-copy-")
    try:
        with os.fdopen(fd, "wb") as fh:
            while True:
                data, _ = reader.read_part(part_size)
                if not data:
                    break
                fh.write(data)
        dest.put_file(key, Path(tmp))
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    stored = next((o for o in dest.list(key) if o.key == key), None)
    if stored is None or stored.size != reader.size:
        raise CopyIntegrityError(
            f"The copy {dest.description}/{key} is "
            f"{'missing' if stored is None else f'{stored.size} bytes'}, expected {reader.size}."
        )
