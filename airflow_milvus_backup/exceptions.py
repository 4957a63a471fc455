"""The Airflow layer's exceptions, and the mapping of engine errors onto them.

One small hierarchy rooted at :class:`~airflow.sdk.exceptions.AirflowException`:

* :class:`MilvusBackupException` - retryable failures (Milvus or S3 unreachable, a backup being written, a
  backup not there yet, a failed restore step).
* :class:`MilvusBackupFailException` - failures a retry cannot fix (Airflow does not retry them):
  :class:`MilvusBackupInvalidArgument` (also a ``ValueError``: a bad name, option, connection or
  ``backup.yaml``), :class:`MilvusBackupIntegrityError` (checksum, manifest, verification),
  :class:`MilvusBackupConflictError` (exists already, schema mismatch, unsupported),
  :class:`MilvusBackupRowsRejected` (Milvus refused rows of a backup) and
  :class:`MilvusBackupAuthenticationError` (Milvus refused the user, password or token).

The engine's message is kept as it is (it names the object and the fix and holds no secret); the engine
exception is chained as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_milvus_backup.engine import errors as engine_errors


class MilvusBackupException(AirflowException):
    """Base class of this provider's errors; a retry may succeed."""


class MilvusBackupNotFound(MilvusBackupException, LookupError):
    """A backup, collection, database or bucket named by the task does not exist (yet)."""


class MilvusBackupFailException(AirflowFailException, MilvusBackupException):
    """A failure that retrying cannot fix: the task fails without using its retries."""


class MilvusBackupInvalidArgument(MilvusBackupFailException, ValueError):
    """A bad argument: a backup name, option, connection field or ``backup.yaml`` key."""


class MilvusBackupConfigError(MilvusBackupInvalidArgument):
    """A ``backup.yaml`` file or an Airflow connection is malformed; the message names the file or key."""


class MilvusBackupIntegrityError(MilvusBackupFailException):
    """Stored data does not match its manifest, or a restore did not verify. Never retried."""


class MilvusBackupConflictError(MilvusBackupFailException):
    """The target already exists, has another schema, or the server cannot do what was asked."""


class MilvusBackupRowsRejected(MilvusBackupFailException):
    """Milvus refused rows of a data file (they do not fit the target's schema): a retry is refused again."""


class MilvusBackupAuthenticationError(MilvusBackupFailException):
    """Milvus or S3 refused the credentials: fix the connection; a retry would be refused again."""


def to_airflow_error(exc: BaseException, scrub: Callable[[str], str] | None = None) -> BaseException:
    """Return the Airflow exception for an engine exception (other exceptions are returned as they are).

    :param exc: the exception raised by the engine.
    :param scrub: removes secrets from the message (a second line of defence; the engine scrubs too).
    """
    if not isinstance(exc, engine_errors.MilvusBackupError):
        return exc
    message = str(exc)
    if scrub is not None:
        message = scrub(message)
    cls: type[MilvusBackupException]
    if isinstance(exc, engine_errors.IntegrityError):
        cls = MilvusBackupIntegrityError
    elif isinstance(exc, engine_errors.RowRejectedError):
        cls = MilvusBackupRowsRejected
    elif isinstance(exc, (engine_errors.MilvusAuthenticationError, engine_errors.StorageAccessError)):
        # Refused credentials: a retry would be refused again (checked before retryable parents).
        cls = MilvusBackupAuthenticationError
    elif isinstance(exc, engine_errors.InvalidArgumentError):
        cls = MilvusBackupInvalidArgument
    elif isinstance(
        exc,
        (
            engine_errors.AlreadyExistsError,
            engine_errors.SchemaMismatchError,
            engine_errors.UnsupportedError,
            engine_errors.FormatVersionError,
            engine_errors.BackupDeletedError,  # the backup is gone: a retry cannot restore it
        ),
    ):
        cls = MilvusBackupConflictError
    elif isinstance(exc, engine_errors.NotFoundError):
        cls = MilvusBackupNotFound
    else:
        cls = MilvusBackupException
    return cls(message)


@contextmanager
def engine_errors_as_airflow(scrub: Callable[[str], str] | None = None) -> Iterator[None]:
    """Re-raise engine exceptions inside the block as this module's Airflow exceptions."""
    try:
        yield
    except engine_errors.MilvusBackupError as e:
        raise to_airflow_error(e, scrub) from e
