"""What a failed Milvus call means: unreachable, busy, refused login, refused request, or something else.

One pure decision (:func:`classify`) used wherever the engine decides to retry or how to report: by the
exception's type (pymilvus raises its own input errors before sending anything), the gRPC status code, the
server's error code and retriable flag, and only then by words of the message - with quoted names taken out
first, so a field called ``auth_code`` or ``timeout_ms`` in a refusal does not read as a login or a timeout.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


class FailureKind(enum.Enum):
    """The kinds of Milvus failure, each handled one way."""

    #: Milvus could not be reached, or dropped or timed out the call: retry, then "check that it runs".
    UNREACHABLE = "unreachable"
    #: Milvus is busy (rate limit, memory or write quota): retry with backoff.
    TRANSIENT = "transient"
    #: Milvus refused the user, password or token: never retried.
    AUTH = "auth"
    #: Milvus (or pymilvus, before sending) refused the request itself, e.g. a row that does not fit the
    #: schema: never retried; the same request is refused again.
    REFUSED = "refused"
    #: anything else (not a Milvus error, or one this module does not know).
    OTHER = "other"


_GRPC = {
    "UNAVAILABLE": FailureKind.UNREACHABLE,
    "DEADLINE_EXCEEDED": FailureKind.UNREACHABLE,
    "ABORTED": FailureKind.TRANSIENT,
    "RESOURCE_EXHAUSTED": FailureKind.TRANSIENT,
    "UNAUTHENTICATED": FailureKind.AUTH,
    "PERMISSION_DENIED": FailureKind.AUTH,
    "INVALID_ARGUMENT": FailureKind.REFUSED,
    "FAILED_PRECONDITION": FailureKind.REFUSED,
    "OUT_OF_RANGE": FailureKind.REFUSED,
    "ALREADY_EXISTS": FailureKind.REFUSED,
    "NOT_FOUND": FailureKind.REFUSED,
    "UNIMPLEMENTED": FailureKind.REFUSED,
}

#: pymilvus exceptions raised before anything is sent: the data or the arguments do not fit
_REFUSED_TYPES = (
    "ParamError",
    "DataNotMatchException",
    "DataTypeNotMatchException",
    "DataTypeNotSupportException",
    "PrimaryKeyException",
    "PartitionKeyException",
    "ClusteringKeyException",
    "FieldsTypeException",
    "FieldTypeException",
    "FunctionsTypeException",
    "AutoIDException",
    "InvalidConsistencyLevel",
    "CannotInferSchemaException",
    "AmbiguousIndexName",
)
_UNREACHABLE_TYPES = (
    "ConnectError",
    "MilvusUnavailableException",
    "ConnectionNotExistException",
    "ConnectionConfigException",
)

#: Milvus server error codes (merr): 2 service unavailable, 15/16 and 1800 as Milvus 2.x reports a proxy or
#: node that is not serving
_UNREACHABLE_CODES = {2, 15, 16, 1800}
#: 3 memory limit, 4 request limit, 8 rate limit, 9 write quota / force deny, 12 resources insufficient
_TRANSIENT_CODES = {3, 4, 8, 9, 12}
#: 1100-1199 invalid or missing parameters, 1700-1799 field errors
_REFUSED_CODE_RANGES = (range(1100, 1200), range(1700, 1800))

_AUTH_WORDS = re.compile(
    r"unauthenticated|authenticat|auth check fail|username and password|credential|access denied", re.I
)
_TRANSIENT_WORDS = re.compile(
    r"rate limit|ratelimit|quota|deny to write|memory|too many requests|resource exhausted", re.I
)
_UNREACHABLE_WORDS = re.compile(
    r"fail(ed)? connecting|fail(ed)? to connect|unavailable|connection refused|connection reset|"
    r"connect to server|deadline exceeded|socket closed|not ready|illegal connection params|"
    r"\btime ?out\b|\btimed out\b",
    re.I,
)
#: names in messages: 'x', "x", `x`, {x}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\{[^{}]*\}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(seen) < 10:
        seen.add(id(e))
        yield e
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)


def grpc_status_name(exc: BaseException) -> str | None:
    """Return the gRPC status code name of ``exc`` (``"UNAVAILABLE"``...) if it is a gRPC error."""
    import grpc

    if not isinstance(exc, grpc.RpcError):
        return None
    code = getattr(exc, "code", None)
    try:
        value = code() if callable(code) else code
    except Exception:  # noqa: BLE001 - not a finished RPC
        return None
    name = getattr(value, "name", None)
    return str(name) if name else None


def _is_pymilvus(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("pymilvus")


def _type_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def message_of(exc: BaseException) -> str:
    """Return the message of a pymilvus or gRPC error without its class wrapper."""
    details = getattr(exc, "details", None)
    if callable(details):
        try:
            return str(details() or exc)
        except Exception:  # noqa: BLE001
            return str(exc)
    return str(getattr(exc, "message", None) or exc)


def classify(exc: BaseException) -> FailureKind:
    """Return what a failed Milvus call means (see :class:`FailureKind`).

    :param exc: the exception a pymilvus or gRPC call raised (or one raised from it).
    """
    chain = list(_chain(exc))
    for e in chain:  # the gRPC status is the most precise answer, wherever it is in the chain
        name = grpc_status_name(e)
        if name is not None:
            return _GRPC.get(name, FailureKind.OTHER)
    milvus = [e for e in chain if _is_pymilvus(e)]
    if not milvus:
        return FailureKind.OTHER
    e = milvus[0]
    names = _type_names(e)
    if names.intersection(_REFUSED_TYPES) or getattr(e, "is_input_error", False) is True:
        return FailureKind.REFUSED
    if names.intersection(_UNREACHABLE_TYPES):
        return FailureKind.UNREACHABLE
    if getattr(e, "retriable", False) is True:
        return FailureKind.TRANSIENT
    text = _QUOTED.sub("''", message_of(e))
    if _AUTH_WORDS.search(text):
        return FailureKind.AUTH
    code = getattr(e, "code", None)
    if isinstance(code, int) and any(code in r for r in _REFUSED_CODE_RANGES):
        return FailureKind.REFUSED
    if code in _TRANSIENT_CODES or _TRANSIENT_WORDS.search(text):
        return FailureKind.TRANSIENT
    if code in _UNREACHABLE_CODES or _UNREACHABLE_WORDS.search(text):
        return FailureKind.UNREACHABLE
    return FailureKind.OTHER


def retry_worthy(exc: BaseException) -> bool:
    """Return whether running the same Milvus call again may succeed (unreachable or busy)."""
    return classify(exc) in (FailureKind.UNREACHABLE, FailureKind.TRANSIENT)


# ------------------------------------------------------------------------------------------ refused rows
def describe_field(field: dict[str, Any]) -> str:
    """Return a field's type as a user reads it: ``VARCHAR(max_length=64)``, ``FLOAT_VECTOR(dim=8)``."""
    params = field.get("params") or {}
    shown = [f"{p}={params[p]}" for p in ("dim", "max_length", "max_capacity") if p in params]
    kind = str(field.get("type", "?"))
    if field.get("element_type"):
        kind = f"{kind} of {field['element_type']}"
    if field.get("nullable"):
        shown.append("nullable")
    return f"{kind}({', '.join(shown)})" if shown else kind


def named_field(reason: str, fields: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the field of ``fields`` that a refusal message names (the longest name that appears)."""
    best: dict[str, Any] | None = None
    for f in fields:
        name = str(f.get("name", ""))
        if not name:
            continue
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", reason):
            if best is None or len(name) > len(str(best["name"])):
                best = f
    return best


def misfit_field(table: pa.Table, fields: list[dict[str, Any]], dynamic: bool) -> dict[str, Any] | None:
    """Return the first field whose column in ``table`` does not fit it (type, string length), or ``None``.

    For refusals that name no field (Milvus 2.3: "the length (30) of 0th string exceeds max length (8)").
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_milvus_backup.engine.arrow import arrow_schema

    expected = arrow_schema(fields, dynamic)
    by_name = {f["name"]: f for f in fields}
    for name in table.column_names:
        f = by_name.get(name)
        if f is None or name not in expected.names:
            continue
        column = table.column(name)
        if column.type != expected.field(name).type:
            return f
        limit = (f.get("params") or {}).get("max_length")
        if limit is not None and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            longest = pc.max(pc.utf8_length(column)).as_py()
            if longest is not None and longest > int(limit):
                return f
        if f.get("type") == "FLOAT_VECTOR" and _has_nan_or_infinity(column):
            return f  # Milvus refuses NaN and infinity in float vectors, naming no field
    return None


def _has_nan_or_infinity(column: pa.ChunkedArray) -> bool:
    """Return whether a column of floats, or of lists of floats, holds a NaN or an infinity."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.concat_arrays([c.flatten() if hasattr(c, "flatten") else c for c in column.chunks])
    if not pa.types.is_floating(values.type) or len(values) == 0:
        return False
    return bool(pc.any(pc.invert(pc.is_finite(values))).as_py())


def rejected_rows_message(
    *,
    address: str,
    key: str,
    target: str,
    reason: str,
    fields: list[dict[str, Any]],
    suspect: dict[str, Any] | None = None,
) -> str:
    """Return the message of rows Milvus refused: the data file, the field and what it expects.

    :param address: the Milvus address (no credentials).
    :param key: the data file of the backup.
    :param target: the qualified target collection.
    :param reason: Milvus' (or pymilvus') reason, scrubbed of secrets.
    :param fields: the fields of the backup's collection.
    :param suspect: the field the data shows does not fit, where the reason names none.
    """
    f = named_field(reason, fields) or suspect
    which = "a row" if f is None else f"field {f['name']!r} (the backup's schema says {describe_field(f)})"
    return (
        f"Milvus at {address} refused rows of data file {key!r} for {target}: {which}: {reason}. "
        "Nothing else of this file was inserted, and retrying cannot help: the data does not fit the target. "
        "Check the backup (verify_backup) and the target's schema, then run the restore again with the same "
        "arguments to resume it."
    )
