"""What a failed Milvus or S3 call means: unreachable, busy, refused login, refused request, or else.

The one retry classification of the engine, used by the client, the storage seam and restore. :func:`classify`
reads, in this order, the first structured answer anywhere in the exception's chain (``__cause__``,
``__context__``, boto3's ``last_exception``):

1. the engine's own connection errors (their ``retryable`` flag);
2. a gRPC status code (``UNAVAILABLE``...): the most precise answer a Milvus call gives;
3. an HTTP answer: an S3 error code (``SlowDown``) or HTTP status (429, 5xx, 401/403, 4xx);
4. a pymilvus exception: its type (pymilvus raises its own input errors before sending anything), the
   server's input-error and retriable flags, a gRPC status code pymilvus put in ``code``, the Milvus error
   code (``merr``), then the legacy error code Milvus 2.3 still fills in;
5. a connection error type (``ConnectionError``, ``TimeoutError``, botocore's ``HTTPClientError``...);
6. words of a pymilvus message, for the answers that carry no meaningful code (each case in
   :data:`UNREACHABLE_WORDS`), with quoted names taken out first, so that a field called ``timeout_ms`` in
   a refusal does not read as a timeout.

Each step is a lookup in one of the tables below; :func:`retryable` is the predicate the retries use.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator

from airflow_milvus_backup.engine.errors import (
    MilvusBackupError,
    MilvusConnectionError,
    StorageAccessError,
    StorageConnectionError,
)


class FailureKind(enum.Enum):
    """The kinds of failure, each handled one way."""

    #: Milvus or S3 could not be reached, or dropped or timed out the call: retry, then "check that it runs".
    UNREACHABLE = "unreachable"
    #: Milvus or S3 is busy (rate limit, throttling, memory or write quota, a 5xx): retry with backoff.
    TRANSIENT = "transient"
    #: Milvus or S3 refused the user, password, token or key: never retried.
    AUTH = "auth"
    #: Milvus (or pymilvus, before sending) or S3 refused the request itself, e.g. a row that does not fit
    #: the schema or an object that is not there: never retried; the same request is refused again.
    REFUSED = "refused"
    #: anything else (not a Milvus or S3 error, or one this module does not know): never retried.
    OTHER = "other"


#: the kinds a retry may cure
RETRYABLE_KINDS = frozenset({FailureKind.UNREACHABLE, FailureKind.TRANSIENT})

# ------------------------------------------------------------------------------------------------ tables
#: gRPC status codes (by name)
GRPC_STATUS = {
    "UNAVAILABLE": FailureKind.UNREACHABLE,
    "DEADLINE_EXCEEDED": FailureKind.UNREACHABLE,
    "ABORTED": FailureKind.TRANSIENT,
    "RESOURCE_EXHAUSTED": FailureKind.TRANSIENT,
    "UNAUTHENTICATED": FailureKind.AUTH,  # Milvus 2.3.5: a wrong password or token, no credentials at all
    "PERMISSION_DENIED": FailureKind.AUTH,  # Milvus 2.3.5: a user without the privilege
    "INVALID_ARGUMENT": FailureKind.REFUSED,
    "FAILED_PRECONDITION": FailureKind.REFUSED,
    "OUT_OF_RANGE": FailureKind.REFUSED,
    "ALREADY_EXISTS": FailureKind.REFUSED,
    "NOT_FOUND": FailureKind.REFUSED,
    "UNIMPLEMENTED": FailureKind.REFUSED,
}

#: every gRPC status code: a ``code()`` that answers another name is not a gRPC call
_GRPC_NAMES = frozenset(
    (
        "OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS PERMISSION_DENIED "
        "RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED INTERNAL UNAVAILABLE "
        "DATA_LOSS UNAUTHENTICATED"
    ).split()
)

#: S3 error codes that mean "slow down or try again", whatever the HTTP status (``Throttling`` comes as 400)
THROTTLING_CODES = frozenset(
    (
        "SlowDown Throttling ThrottlingException ThrottledException RequestThrottled "
        "RequestThrottledException RequestLimitExceeded TooManyRequests TooManyRequestsException "
        "ProvisionedThroughputExceededException BandwidthLimitExceeded TransactionInProgressException "
        "RequestTimeout RequestTimeoutException InternalError ServiceUnavailable InternalServerError "
        "PriorRequestNotComplete"
    ).split()
)

#: pymilvus exceptions raised before anything is sent: the data or the arguments do not fit
_REFUSED_TYPES = frozenset(
    (
        "ParamError DataNotMatchException DataTypeNotMatchException DataTypeNotSupportException "
        "PrimaryKeyException PartitionKeyException ClusteringKeyException FieldsTypeException "
        "FieldTypeException FunctionsTypeException AutoIDException InvalidConsistencyLevel "
        "CannotInferSchemaException AmbiguousIndexName"
    ).split()
)
_UNREACHABLE_TYPES = frozenset(
    {"ConnectError", "MilvusUnavailableException", "ConnectionNotExistException", "ConnectionConfigException"}
)
#: connection failures below any client: Python's socket errors (``ConnectionResetError``, ``TimeoutError``,
#: name resolution) and botocore's (``EndpointConnectionError`` and ``ConnectTimeoutError`` are its
#: ``ConnectionError``; a read timeout, a closed connection or a body cut short its ``HTTPClientError``)
_CONNECTION_TYPES = frozenset(
    {"ConnectionError", "TimeoutError", "gaierror", "HTTPClientError", "IncompleteReadError"}
)

#: Milvus error codes (``merr``, Milvus 2.3 and later; pymilvus' own ``CONNECT_FAILED`` is 2 too)
MILVUS_CODES = {
    2: FailureKind.UNREACHABLE,  # service unavailable; pymilvus: "Fail connecting to server"
    3: FailureKind.TRANSIENT,  # memory limit exceeded
    4: FailureKind.TRANSIENT,  # request limit exceeded
    8: FailureKind.TRANSIENT,  # rate limit exceeded
    9: FailureKind.TRANSIENT,  # quota exceeded / force deny ("deny to write")
    12: FailureKind.TRANSIENT,  # resources insufficient
    1400: FailureKind.AUTH,  # not authenticated
    1401: FailureKind.AUTH,  # privilege not permitted
    1800: FailureKind.AUTH,  # "user hasn't authenticated"
}
#: 1100-1199 invalid or missing parameters, 1700-1799 field errors
_REFUSED_CODE_RANGES = (range(1100, 1200), range(1700, 1800))
#: the legacy ``ErrorCode`` (pymilvus' ``compatible_code``): Milvus 2.3 rate limits answer with it alone
LEGACY_CODES = {
    48: FailureKind.TRANSIENT,  # ForceDeny ("deny to write, reason: memory quota exhausted")
    49: FailureKind.TRANSIENT,  # RateLimit
    53: FailureKind.TRANSIENT,  # MemoryQuotaExhausted
    54: FailureKind.TRANSIENT,  # DiskQuotaExhausted
    56: FailureKind.UNREACHABLE,  # NotReadyServe
    57: FailureKind.UNREACHABLE,  # NotReadyCoordActivating
}

#: The only words still read, in pymilvus messages whose code says nothing (pymilvus' default 1, Milvus'
#: 65535 "unexpected", or a code none of the tables knows), each needed by a server or client that gives no
#: structured answer for it:
#:
#: * pymilvus 3.0 ``client/asynch.py``: "gRPC call timed out (DEADLINE_EXCEEDED)" with code 1, no cause;
#: * pymilvus 3.0 ``query_iterator.py``: "failed to connect to milvus for setting up mvccTs" with code 1;
#: * Milvus 2.3.5: failures inside the cluster (a node that does not answer, a context that timed out)
#:   reach the client as code 65535 and a Go error string ("context deadline exceeded", "connection
#:   refused", "service unavailable", "not ready"), exactly as a refused row does: only the words differ.
UNREACHABLE_WORDS = re.compile(
    r"deadline exceeded|\btime ?out\b|\btimed out\b|fail(ed)? to connect|connection refused|"
    r"connection reset|socket closed|unavailable|not ready",
    re.I,
)
#: names in messages: 'x', "x", `x`, {x}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\{[^{}]*\}")
#: boto3's transfer wrappers keep the S3 answer only in their message: "An error occurred (SlowDown) when"
_CODE_IN_MESSAGE = re.compile(r"An error occurred \((?P<code>[A-Za-z0-9.]+)\)")


# ------------------------------------------------------------------------------------------- answers
def answer_kind(code: str, status: int) -> FailureKind | None:
    """Return what an HTTP (S3) answer means, or ``None`` if it says nothing (no code, status ``0``).

    A throttling code is transient whatever the status; otherwise 429 and 5xx are transient, 401 and 403
    refused credentials, other 4xx a refused request.

    :param code: the S3 error code (``SlowDown``...), may be empty.
    :param status: the HTTP status, ``0`` if unknown.
    """
    if code in THROTTLING_CODES or status == 429 or 500 <= status <= 599:
        return FailureKind.TRANSIENT
    if status in (401, 403):
        return FailureKind.AUTH
    if 400 <= status <= 499:
        return FailureKind.REFUSED
    return None


def is_retryable_answer(code: str, status: int) -> bool:
    """Return whether an S3 answer means "try again": throttling (any status), 429 or a 5xx.

    :param code: the S3 error code (``SlowDown``...), may be empty.
    :param status: the HTTP status, ``0`` if unknown.
    """
    return answer_kind(code, status) in RETRYABLE_KINDS


def code_in_message(exc: BaseException) -> tuple[str, int]:
    """Return the S3 error code and HTTP status a wrapper's message quotes (``("", 0)`` if none).

    boto3 writes ``Failed to upload f to b/k: An error occurred (SlowDown) when calling the UploadPart
    operation (reached max retries: 2): Please reduce your request rate.``
    """
    m = _CODE_IN_MESSAGE.search(str(exc))
    code = m.group("code") if m else ""
    # an answer without a body (HEAD) has its status as its code: "An error occurred (503) ..."
    return code, int(code) if code.isdigit() else 0


def http_answer(exc: BaseException) -> tuple[str, int] | None:
    """Return the ``(error code, HTTP status)`` an exception carries, or ``None`` if it carries none.

    Reads botocore's ``ClientError.response``, a ``status_code`` (on the exception or its ``response``), and
    the answer boto3's transfer wrappers (``S3UploadFailedError``) quote in their message.
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str((response.get("Error") or {}).get("Code", "") or "")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 0)
        return code, status if isinstance(status, int) else 0
    for holder in (exc, response):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            return "", status
    if type(exc).__module__.startswith(("boto3", "s3transfer")):
        code, status = code_in_message(exc)
        if code:
            return code, status
    return None


# ------------------------------------------------------------------------------------------- the chain
def causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and the errors it came from (``__cause__``, ``__context__``, ``last_exception``)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(seen) < 20:
        seen.add(id(e))
        yield e
        last = getattr(e, "last_exception", None)  # boto3 / s3transfer RetriesExceededError
        if isinstance(last, BaseException):
            e = last
        else:
            e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)


def grpc_status_name(exc: BaseException) -> str | None:
    """Return the gRPC status code name of ``exc`` (``"UNAVAILABLE"``...) if it is a finished gRPC call.

    :param exc: any exception; a gRPC error has a ``code()`` method returning a ``grpc.StatusCode``.
    """
    code = getattr(exc, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:  # noqa: BLE001 - not a finished RPC
        return None
    name = getattr(value, "name", None)
    return name if isinstance(name, str) and name in _GRPC_NAMES else None


def _is_pymilvus(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("pymilvus")


def _type_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


#: Milvus 2.3-2.6 word a missing privilege "PrivilegeX: permission deny to user"
_PERMISSION_WORDS = re.compile(r"permission deny|permission denied|privilege not permitted", re.IGNORECASE)


def is_permission_denied(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an error it came from) says the user lacks a privilege (not a bad login).

    Milvus answers a call the user's roles do not allow with gRPC ``PERMISSION_DENIED``, error code 1401 or,
    on 2.3.5, a plain status whose message says "permission deny".
    """
    for e in causes(exc):
        if grpc_status_name(e) == "PERMISSION_DENIED" or getattr(e, "code", None) == 1401:
            return True
        if _is_pymilvus(e) and _PERMISSION_WORDS.search(message_of(e)):
            return True
    return False


def message_of(exc: BaseException) -> str:
    """Return the message of a pymilvus or gRPC error without its class wrapper."""
    details = getattr(exc, "details", None)
    if callable(details):
        try:
            return str(details() or exc)
        except Exception:  # noqa: BLE001
            return str(exc)
    return str(getattr(exc, "message", None) or exc)


# ------------------------------------------------------------------------------------------- the rules
def _engine_kind(e: BaseException) -> FailureKind | None:
    if isinstance(e, StorageAccessError):
        return FailureKind.AUTH
    if isinstance(e, (MilvusConnectionError, StorageConnectionError)):
        return FailureKind.UNREACHABLE if e.retryable else FailureKind.AUTH
    if isinstance(e, MilvusBackupError):
        return FailureKind.OTHER  # a decision the engine made: no retry of the call changes it
    return None


def _grpc_kind(e: BaseException) -> FailureKind | None:
    name = grpc_status_name(e)
    if name is None:
        return None
    return GRPC_STATUS.get(name, FailureKind.OTHER)


def _http_kind(e: BaseException) -> FailureKind | None:
    answer = http_answer(e)
    return None if answer is None else answer_kind(*answer)


def _milvus_kind(e: BaseException) -> FailureKind | None:
    if not _is_pymilvus(e):
        return None
    names = _type_names(e)
    if names & _REFUSED_TYPES or getattr(e, "is_input_error", False) is True:
        return FailureKind.REFUSED
    if names & _UNREACHABLE_TYPES:
        return FailureKind.UNREACHABLE
    if getattr(e, "retriable", False) is True:
        return FailureKind.TRANSIENT
    code = getattr(e, "code", None)
    status = getattr(code, "name", None)  # pymilvus' retry timeout: MilvusException(rpc.code(), ...)
    if status in GRPC_STATUS and not isinstance(code, int):
        return GRPC_STATUS[status]
    if isinstance(code, int):
        if code in MILVUS_CODES:
            return MILVUS_CODES[code]
        if any(code in r for r in _REFUSED_CODE_RANGES):
            return FailureKind.REFUSED
    legacy = getattr(e, "compatible_code", None)
    return LEGACY_CODES.get(legacy) if isinstance(legacy, int) else None


def _connection_kind(e: BaseException) -> FailureKind | None:
    return FailureKind.UNREACHABLE if _type_names(e) & _CONNECTION_TYPES else None


def _words_kind(e: BaseException) -> FailureKind | None:
    if not _is_pymilvus(e):
        return None
    if _PERMISSION_WORDS.search(message_of(e)):
        return FailureKind.AUTH
    return FailureKind.UNREACHABLE if UNREACHABLE_WORDS.search(_QUOTED.sub("''", message_of(e))) else None


#: the rules in the order they are asked; each is asked of every error of the chain before the next one,
#: but the engine's rule only of the error raised (an engine error an ``except`` block handled before a
#: Milvus call failed is not what failed) and the pymilvus rules only of the first pymilvus error
_RULES = (_engine_kind, _grpc_kind, _http_kind, _milvus_kind, _connection_kind, _words_kind)
_FIRST_PYMILVUS_ONLY = (_milvus_kind, _words_kind)


def classify(exc: BaseException) -> FailureKind:
    """Return what a failed Milvus or S3 call means (see :class:`FailureKind` and the module's rules).

    :param exc: the exception a pymilvus, gRPC or boto3 call raised (or one raised from it).
    """
    chain = list(causes(exc))
    first_milvus = next((e for e in chain if _is_pymilvus(e)), None)
    for rule in _RULES:
        if rule is _engine_kind:
            links: list[BaseException | None] = [exc]
        elif rule in _FIRST_PYMILVUS_ONLY:
            links = [first_milvus]
        else:
            links = list(chain)
        for e in links:
            kind = None if e is None else rule(e)
            if kind is not None:
                return kind
    return FailureKind.OTHER


def retryable(exc: BaseException) -> bool:
    """Return whether running the same call again, now, may succeed (unreachable or busy).

    The predicate of every retry of the engine (tenacity ``retry_if_exception(retryable)``): Milvus calls,
    storage verbs, restore's inserts. Never a refused request or login, not-found or integrity error. Of the
    engine's own errors only the connection errors whose ``retryable`` flag is set count: the others
    (a backup being written, a name not found) are decisions a retry seconds later does not change, though
    Airflow's retry of the task, minutes later, may (:mod:`airflow_milvus_backup.exceptions`).

    :param exc: the exception raised.
    """
    return classify(exc) in RETRYABLE_KINDS


#: the earlier name of :func:`retryable`, kept for callers of the previous release
retry_worthy = retryable
