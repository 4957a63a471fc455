"""The Airflow layer's exceptions, and the mapping of engine errors onto them.

One small hierarchy rooted at :class:`~airflow.sdk.exceptions.AirflowException`:

* :class:`MilvusBackupException` - retryable failures (Milvus or S3 unreachable, a backup being written, a
  backup not there yet, a failed restore step).
* :class:`MilvusBackupFailException` - failures a retry cannot fix (Airflow does not retry them; a person must
  act):
  :class:`MilvusBackupInvalidArgument` (also a ``ValueError``: a bad name, option, connection or
  ``backup.yaml``), :class:`MilvusBackupIntegrityError` (checksum, manifest, verification),
  :class:`MilvusBackupConflictError` (exists already, schema mismatch, unsupported),
  :class:`MilvusBackupRowsRejected` (Milvus refused rows of a backup) and
  :class:`MilvusBackupAuthenticationError` (Milvus refused the user, password or token).

Which of the two an engine error becomes is its ``retryable`` flag (:mod:`.engine.errors`), see
:func:`airflow_class`. The engine's message is kept as it is (it names the object and the fix and holds no
secret); the engine exception is chained as ``__cause__``.
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


#: The class a task sees for an engine error a person must act on (``retryable`` false): the first entry the
#: error is an instance of; :class:`MilvusBackupFailException` if none.
_FAIL_CLASSES: tuple[tuple[type[engine_errors.MilvusBackupError], type[MilvusBackupFailException]], ...] = (
    (engine_errors.IntegrityError, MilvusBackupIntegrityError),
    (engine_errors.RowRejectedError, MilvusBackupRowsRejected),
    (engine_errors.MilvusAuthenticationError, MilvusBackupAuthenticationError),
    (engine_errors.StorageAccessError, MilvusBackupAuthenticationError),
    (engine_errors.InvalidArgumentError, MilvusBackupInvalidArgument),
    (engine_errors.AlreadyExistsError, MilvusBackupConflictError),
    (engine_errors.SchemaMismatchError, MilvusBackupConflictError),
    (engine_errors.UnsupportedError, MilvusBackupConflictError),
    (engine_errors.FormatVersionError, MilvusBackupConflictError),
    (engine_errors.BackupDeletedError, MilvusBackupConflictError),  # the backup is gone: restore another
)
#: The class for an engine error a later run may get past (``retryable`` true), the same way.
_RETRY_CLASSES: tuple[tuple[type[engine_errors.MilvusBackupError], type[MilvusBackupException]], ...] = (
    (engine_errors.NotFoundError, MilvusBackupNotFound),
)


def airflow_class(exc: engine_errors.MilvusBackupError) -> type[MilvusBackupException]:
    """Return the Airflow exception class for an engine error, chosen by its ``retryable`` flag.

    Not retryable (a person must act: fix an argument or the credentials, use another name or restore_id,
    restore another backup): a subclass of ``AirflowFailException``, so Airflow fails the task without using
    its retries. Retryable (Milvus or S3 unreachable, a backup being written or not there yet): a plain
    ``AirflowException``. Within each, the kind of error picks the class users catch.

    :param exc: the engine's exception.
    """
    table = _RETRY_CLASSES if exc.retryable else _FAIL_CLASSES
    default = MilvusBackupException if exc.retryable else MilvusBackupFailException
    return next((cls for kind, cls in table if isinstance(exc, kind)), default)


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
    return airflow_class(exc)(message)


@contextmanager
def engine_errors_as_airflow(scrub: Callable[[str], str] | None = None) -> Iterator[None]:
    """Re-raise engine exceptions inside the block as this module's Airflow exceptions."""
    try:
        yield
    except engine_errors.MilvusBackupError as e:
        raise to_airflow_error(e, scrub) from e
