"""What an S3 failure is, however boto3 wrapped it: throttling and 5xx, a dropped connection, or a refusal.

boto3's managed transfers hide the S3 answer: ``upload_file`` turns any ``ClientError`` (a ``503 SlowDown`` on
one part) into an ``S3UploadFailedError`` whose only link to it is the exception context and the message;
``download_file`` turns exhausted socket retries into a ``RetriesExceededError`` carrying the last one; a
body cut short surfaces as ``ResponseStreamingError`` or ``IncompleteReadError``. :func:`unwrap` finds the
error underneath so the storage seam retries each of them as the transient failure it is.
"""

from __future__ import annotations

import re

#: Error codes S3 and S3-compatible stores answer when they want the client to slow down or try again.
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "TransactionInProgressException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "InternalServerError",
        "PriorRequestNotComplete",
    }
)

_CODE_IN_MESSAGE = re.compile(r"An error occurred \((?P<code>[A-Za-z0-9.]+)\)")


def is_retryable_answer(code: str, status: int) -> bool:
    """Return whether an S3 answer means "try again": throttling (any status), 429 or a 5xx.

    :param code: the S3 error code (``SlowDown``...), may be empty.
    :param status: the HTTP status, ``0`` if unknown.
    """
    return code in THROTTLING_CODES or status == 429 or 500 <= status <= 599


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


def code_in_message(exc: BaseException) -> tuple[str, int]:
    """Return the S3 error code and HTTP status a wrapper's message quotes (``("", 0)`` if none).

    boto3 writes ``Failed to upload f to b/k: An error occurred (SlowDown) when calling the UploadPart
    operation (reached max retries: 2): Please reduce your request rate.``
    """
    m = _CODE_IN_MESSAGE.search(str(exc))
    code = m.group("code") if m else ""
    # an answer without a body (HEAD) has its status as its code: "An error occurred (503) ..."
    return code, int(code) if code.isdigit() else 0
