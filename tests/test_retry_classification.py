"""The one retry classification (engine.failures) and the Airflow mapping it drives, with plain fake errors.

No server: each case is an exception built as the client library raises it (gRPC status codes, HTTP
statuses, socket errors, pymilvus exceptions with Milvus' codes), and the outcome a user lives with: retried
or not, reported as unreachable, refused login or refused request, failed at once by Airflow or retried.
"""

from __future__ import annotations

import inspect
import socket
from typing import Any

import grpc
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pymilvus.exceptions import DataNotMatchException, MilvusException, MilvusUnavailableException, ParamError

from airflow_milvus_backup import exceptions as af
from airflow_milvus_backup.engine import errors
from airflow_milvus_backup.engine.client import auth_failure, is_connection_failure
from airflow_milvus_backup.engine.failures import (
    FailureKind,
    answer_kind,
    classify,
    is_retryable_answer,
    retryable,
)

U, T, A, R, OTHER = (
    FailureKind.UNREACHABLE,
    FailureKind.TRANSIENT,
    FailureKind.AUTH,
    FailureKind.REFUSED,
    FailureKind.OTHER,
)


class Rpc(Exception):
    """A finished gRPC call, as grpc's _InactiveRpcError answers: ``code()`` and ``details()``."""

    def __init__(self, code: grpc.StatusCode, details: str = "details") -> None:
        super().__init__(f"<_InactiveRpcError: {code}, {details}>")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Answered(Exception):
    """An S3 answer as botocore's ClientError carries it."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"An error occurred ({code}) when calling the PutObject operation")
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class HttpStatus(Exception):
    """An HTTP client's error with the response's status (``e.response.status_code``)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.response = type("Response", (), {"status_code": status})()


class RetriesExceeded(Exception):
    """boto3's RetriesExceededError: the last socket error is an attribute, not the cause."""

    def __init__(self, last: BaseException) -> None:
        super().__init__("Max Retries Exceeded")
        self.last_exception = last


def _from(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


CASES: list[tuple[str, BaseException, FailureKind]] = [
    # gRPC status codes
    ("grpc UNAVAILABLE", Rpc(grpc.StatusCode.UNAVAILABLE), U),
    ("grpc DEADLINE_EXCEEDED", Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), U),
    ("grpc RESOURCE_EXHAUSTED", Rpc(grpc.StatusCode.RESOURCE_EXHAUSTED), T),
    ("grpc ABORTED", Rpc(grpc.StatusCode.ABORTED), T),
    ("grpc UNAUTHENTICATED", Rpc(grpc.StatusCode.UNAUTHENTICATED), A),
    ("grpc PERMISSION_DENIED", Rpc(grpc.StatusCode.PERMISSION_DENIED), A),
    ("grpc INVALID_ARGUMENT", Rpc(grpc.StatusCode.INVALID_ARGUMENT), R),
    ("grpc NOT_FOUND", Rpc(grpc.StatusCode.NOT_FOUND), R),
    ("grpc INTERNAL", Rpc(grpc.StatusCode.INTERNAL, "timed out"), OTHER),  # the code decides, not the words
    # Milvus 2.3.5's refused login: pymilvus' "Fail connecting" (code 2) over the gRPC answer
    (
        "wrong password (2.3.5)",
        _from(
            MilvusException(2, "Fail connecting to server on 127.0.0.1:1, illegal connection params"),
            Rpc(grpc.StatusCode.UNAUTHENTICATED, "auth check failure, please check username and password"),
        ),
        A,
    ),
    (
        "server down",
        _from(
            MilvusException(2, "Fail connecting to server on 127.0.0.1:1, illegal connection params"),
            Rpc(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Connection refused"),
        ),
        U,
    ),
    # HTTP answers (S3 and other HTTP clients)
    ("S3 503 SlowDown", Answered("SlowDown", 503), T),
    ("S3 400 Throttling", Answered("Throttling", 400), T),
    ("HTTP 429", HttpStatus(429), T),
    ("HTTP 500", HttpStatus(500), T),
    ("HTTP 503", HttpStatus(503), T),
    ("HTTP 401", HttpStatus(401), A),
    ("S3 403 AccessDenied", Answered("AccessDenied", 403), A),
    ("HTTP 403", HttpStatus(403), A),
    ("S3 404 NoSuchKey", Answered("NoSuchKey", 404), R),
    ("HTTP 404", HttpStatus(404), R),
    ("S3 400 InvalidArgument", Answered("InvalidArgument", 400), R),
    ("S3 answer behind boto3's retries", RetriesExceeded(Answered("SlowDown", 503)), T),
    # connection errors below any client
    ("connection reset", ConnectionResetError(104, "Connection reset by peer"), U),
    ("connection refused", ConnectionRefusedError(111, "Connection refused"), U),
    ("socket timeout", TimeoutError("timed out"), U),
    ("name resolution", socket.gaierror(-2, "Name or service not known"), U),
    ("socket error behind boto3's retries", RetriesExceeded(ConnectionResetError()), U),
    (
        "pymilvus' unexpected error over a reset",
        _from(MilvusException(message="Unexpected error, message=<reset>"), ConnectionResetError()),
        U,
    ),
    ("a file that is not there", FileNotFoundError(2, "No such file"), OTHER),
    # pymilvus exceptions: type, flags, Milvus' codes
    ("ParamError", ParamError(message="timeout must be positive"), R),
    ("DataNotMatchException", DataNotMatchException(message="field {auth} should be int64"), R),
    ("MilvusUnavailableException", MilvusUnavailableException(message="x"), U),
    ("server's input error", MilvusException(65535, "bad", is_input_error=True), R),
    ("server's retriable flag", MilvusException(65535, "busy", retriable=True), T),
    ("merr 2 service unavailable", MilvusException(2, "service unavailable"), U),
    ("merr 3 memory limit", MilvusException(3, "memory limit exceeded"), T),
    ("merr 4 request limit", MilvusException(4, "request limit exceeded"), T),
    ("merr 8 rate limit", MilvusException(8, "rate limit exceeded[rate=10]"), T),
    ("merr 9 force deny", MilvusException(9, "deny to write, reason: memory quota exhausted"), T),
    ("merr 12 resources", MilvusException(12, "service resource insufficient"), T),
    ("merr 1100 parameter", MilvusException(1100, "length of varchar field timeout_ms exceeds max"), R),
    ("merr 1701 field", MilvusException(1701, "field name invalid"), R),
    ("merr 1400 not authenticated", MilvusException(1400, "not authenticated"), A),
    ("merr 1800 not authenticated", MilvusException(1800, "user hasn't authenticated"), A),
    ("legacy RateLimit (Milvus 2.3)", MilvusException(0, "rate limit", compatible_code=49), T),
    ("legacy ForceDeny (Milvus 2.3)", MilvusException(0, "deny to write", compatible_code=48), T),
    ("legacy NotReadyServe", MilvusException(0, "not serving", compatible_code=56), U),
    ("pymilvus retry timeout", MilvusException(grpc.StatusCode.DEADLINE_EXCEEDED, "Retry timeout: 10s"), U),
    # refusals carry no code that says so: not retried, and not read as a connection failure
    ("Lite refused row", MilvusException(6, "VARCHAR field 'auth_code' value length 8 exceeds"), OTHER),
    ("2.3.5 refused row", MilvusException(65535, "the length(2) of float data should divide dim(4)"), OTHER),
    ("2.3.5 NaN", MilvusException(65535, "value 'NaN' is not a number or infinity"), OTHER),
    ("quoted names are not read", MilvusException(65535, "field 'timeout' of 'unavailable' too long"), OTHER),
    # the words still read, where nothing structured says it (see failures.UNREACHABLE_WORDS)
    ("pymilvus code-less timeout", MilvusException(message="gRPC call timed out (DEADLINE_EXCEEDED): x"), U),
    ("2.3.5 inside the cluster", MilvusException(65535, "context deadline exceeded"), U),
    # the engine's own errors
    ("engine: Milvus unreachable", errors.MilvusConnectionError("Milvus at x failed"), U),
    ("engine: Lite locked", errors.MilvusLiteLockedError("held by pid 1"), U),
    ("engine: refused login", errors.MilvusAuthenticationError("refused the credentials"), A),
    ("engine: S3 unreachable", errors.StorageConnectionError("cannot reach S3"), U),
    ("engine: S3 access", errors.StorageAccessError("S3 refused access"), A),
    ("engine: being written", errors.BackupInProgressError("being written"), OTHER),
    ("engine: integrity", errors.IntegrityError("checksum"), OTHER),
    ("plain ValueError", ValueError("timeout"), OTHER),
]


@pytest.mark.parametrize(("exc", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(exc: BaseException, kind: FailureKind) -> None:
    assert classify(exc) is kind
    assert retryable(exc) is (kind in (U, T))


def test_a_chain_that_loops_ends() -> None:
    e = MilvusException(65535, "x")
    e.__cause__ = e  # pymilvus' "raise e from e"
    assert classify(e) is OTHER


def test_a_context_the_raiser_suppressed_is_not_read() -> None:
    e = ValueError("bad value")
    e.__context__ = ConnectionResetError()
    e.__suppress_context__ = True  # raise ValueError(...) from None
    assert classify(e) is OTHER
    e.__suppress_context__ = False
    assert classify(e) is U


def test_an_engine_error_handled_before_a_milvus_call_failed_is_not_what_failed() -> None:
    down = _from(MilvusException(2, "Fail connecting"), Rpc(grpc.StatusCode.UNAVAILABLE))
    down.__cause__.__context__ = errors.BackupInProgressError("being written")  # type: ignore[union-attr]
    assert classify(down) is U
    lost = MilvusException(65535, "context deadline exceeded")
    lost.__context__ = errors.IntegrityError("checksum")
    assert retryable(lost)


def test_an_engine_error_says_what_it_is_whatever_it_came_from() -> None:
    err = errors.MilvusConnectionError("Milvus at x refused", retryable=False)
    assert classify(_from(err, Rpc(grpc.StatusCode.UNAVAILABLE))) is A
    assert not retryable(err)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("SlowDown", 503, T),
        ("RequestTimeout", 400, T),
        ("", 429, T),
        ("", 502, T),
        ("", 401, A),
        ("SignatureDoesNotMatch", 403, A),
        ("NoSuchKey", 404, R),
        ("", 408, R),  # retried are 429 and 5xx only
        ("", 0, None),
        ("", 200, None),
    ],
)
def test_answer_kind(code: str, status: int, kind: FailureKind | None) -> None:
    assert answer_kind(code, status) is kind
    assert is_retryable_answer(code, status) is (kind in (U, T))


def test_boto3_wrapper_that_kept_only_the_message() -> None:
    from boto3.exceptions import S3UploadFailedError

    slow = S3UploadFailedError(
        "Failed to upload f to b/k: An error occurred (SlowDown) when calling the UploadPart operation"
    )
    assert retryable(slow)
    denied = S3UploadFailedError("Failed to upload f to b/k: An error occurred (403) when calling HeadObject")
    assert classify(denied) is A


def test_the_client_reports_a_refused_login_with_the_servers_reason() -> None:
    login = _from(
        MilvusException(2, "Fail connecting to server on 127.0.0.1:1"),
        Rpc(grpc.StatusCode.UNAUTHENTICATED, "missing authorization in header"),
    )
    assert auth_failure(login) == "missing authorization in header"
    assert is_connection_failure(login)
    refused_row = MilvusException(6, "VARCHAR field 'auth_code' value length 8 exceeds")
    assert auth_failure(refused_row) is None
    assert not is_connection_failure(refused_row)


# ------------------------------------------------------------------------------------- Airflow mapping
ENGINE_ERRORS = sorted(
    (c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.MilvusBackupError)),
    key=lambda c: c.__name__,
)

#: the class a task raises for each engine error; AirflowFailException's subclasses when a person must act
EXPECTED: dict[type[errors.MilvusBackupError], type[AirflowException]] = {
    errors.MilvusBackupError: af.MilvusBackupException,
    errors.InvalidArgumentError: af.MilvusBackupInvalidArgument,
    errors.BackupNameError: af.MilvusBackupInvalidArgument,
    errors.EmptyBackupError: af.MilvusBackupInvalidArgument,
    errors.NotABackupError: af.MilvusBackupInvalidArgument,
    errors.NotFoundError: af.MilvusBackupNotFound,
    errors.BackupNotFoundError: af.MilvusBackupNotFound,
    errors.CollectionNotFoundError: af.MilvusBackupNotFound,
    errors.DatabaseNotFoundError: af.MilvusBackupNotFound,
    errors.StorageNotFoundError: af.MilvusBackupNotFound,
    errors.BackupDeletedError: af.MilvusBackupConflictError,
    errors.AlreadyExistsError: af.MilvusBackupConflictError,
    errors.BackupExistsError: af.MilvusBackupConflictError,
    errors.TargetExistsError: af.MilvusBackupConflictError,
    errors.SchemaMismatchError: af.MilvusBackupConflictError,
    errors.UnsupportedError: af.MilvusBackupConflictError,
    errors.FormatVersionError: af.MilvusBackupConflictError,
    errors.BackupInProgressError: af.MilvusBackupException,
    errors.IntegrityError: af.MilvusBackupIntegrityError,
    errors.ManifestError: af.MilvusBackupIntegrityError,
    errors.ForeignManifestError: af.MilvusBackupIntegrityError,
    errors.UnreadableManifestError: af.MilvusBackupIntegrityError,
    errors.IncompleteBackupError: af.MilvusBackupIntegrityError,
    errors.MilvusConnectionError: af.MilvusBackupException,
    errors.MilvusLiteLockedError: af.MilvusBackupException,
    errors.MilvusAuthenticationError: af.MilvusBackupAuthenticationError,
    errors.StorageError: af.MilvusBackupException,
    errors.StorageConnectionError: af.MilvusBackupException,
    errors.StorageAccessError: af.MilvusBackupAuthenticationError,
    errors.RestoreError: af.MilvusBackupException,
    errors.RowRejectedError: af.MilvusBackupRowsRejected,
}


def test_every_engine_error_states_its_flag_and_has_a_mapping() -> None:
    assert set(ENGINE_ERRORS) == set(EXPECTED)
    for cls in ENGINE_ERRORS:
        assert "retryable" in vars(cls), f"{cls.__name__} sets no retryable default"


@pytest.mark.parametrize("cls", ENGINE_ERRORS, ids=lambda c: c.__name__)
def test_the_flag_decides_whether_airflow_retries(cls: type[errors.MilvusBackupError]) -> None:
    message = f"{cls.__name__}: Backup 'b' near s3cr3t; fix it."
    mapped: Any = af.to_airflow_error(cls(message), lambda s: s.replace("s3cr3t", "***"))
    assert type(mapped) is EXPECTED[cls]
    assert isinstance(mapped, af.MilvusBackupException)
    assert isinstance(mapped, AirflowFailException) is (not cls.retryable)
    assert str(mapped) == f"{cls.__name__}: Backup 'b' near ***; fix it."


def test_an_error_a_person_must_act_on_fails_the_task_whatever_its_class() -> None:
    taken = errors.RestoreError(
        "Restore r1 already has a status object; another process started it. Use another restore_id.",
        retryable=False,
    )
    mapped = af.to_airflow_error(taken)
    assert isinstance(mapped, af.MilvusBackupFailException)
    assert isinstance(mapped, AirflowFailException)
    assert str(mapped) == str(taken)
    # and the other way: an error of a kind that is usually final, which the engine says a rerun may cure
    passing = af.to_airflow_error(errors.SchemaMismatchError("being altered", retryable=True))
    assert not isinstance(passing, AirflowFailException)


def test_other_exceptions_are_left_as_they_are() -> None:
    e = KeyError("x")
    assert af.to_airflow_error(e) is e
