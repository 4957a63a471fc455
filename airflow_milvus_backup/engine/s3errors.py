"""Where the S3 answer is, however boto3 wrapped it; what the answer means is decided in :mod:`.failures`.

boto3's managed transfers hide the S3 answer: ``upload_file`` turns any ``ClientError`` (a ``503 SlowDown`` on
one part) into an ``S3UploadFailedError`` whose only link to it is the exception context and the message;
``download_file`` turns exhausted socket retries into a ``RetriesExceededError`` carrying the last one; a
body cut short surfaces as ``ResponseStreamingError`` or ``IncompleteReadError``. :func:`unwrap` finds the
error underneath so the storage seam retries each of them as the transient failure it is.

:data:`THROTTLING_CODES`, :func:`is_retryable_answer` and :func:`code_in_message` are the retry
classification's (:mod:`airflow_milvus_backup.engine.failures`), named here for the storage seam.
"""

from __future__ import annotations

from airflow_milvus_backup.engine.failures import THROTTLING_CODES, code_in_message, is_retryable_answer

__all__ = ["THROTTLING_CODES", "code_in_message", "is_retryable_answer", "unwrap"]


def unwrap(exc: BaseException) -> BaseException:
    """Return the error underneath boto3's transfer wrappers (or ``exc`` itself).

    :param exc: what a boto3 call raised.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    e: BaseException = exc
    seen: set[int] = set()
    while id(e) not in seen and len(seen) < 10:
        seen.add(id(e))
        if isinstance(e, (ClientError, BotoCoreError)):
            return e
        last = getattr(e, "last_exception", None)  # boto3 / s3transfer RetriesExceededError
        if isinstance(last, BaseException):
            e = last
            continue
        inner = e.__cause__ or e.__context__
        if inner is None or not type(e).__module__.startswith(("boto3", "s3transfer")):
            return e
        e = inner
    return e
