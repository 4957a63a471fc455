"""The engine's exceptions: one small hierarchy, every error with a message that names the thing and the fix.

The engine imports nothing from Airflow; the Airflow layer maps these onto Airflow's exceptions
(:mod:`airflow_milvus_backup.exceptions`).
"""

from __future__ import annotations


class MilvusBackupError(Exception):
    """Base class of every error the engine raises on purpose."""

    #: Whether a later run of the same task may succeed without a person acting: the Airflow layer
    #: retries the task (``AirflowException``) or fails it at once (``AirflowFailException``).
    #: Every class sets it; an instance may too (``RestoreError("... Use another restore_id.",
    #: retryable=False)``).
    retryable: bool = True

    def __init__(self, *args: object, retryable: bool | None = None) -> None:
        """Keep the message (``args``) as ``Exception`` does; ``retryable`` overrides the class's flag.

        :param args: the message.
        :param retryable: whether a later run may succeed without a person acting (default: the class's).
        """
        super().__init__(*args)
        if retryable is not None:
            self.retryable = retryable


class InvalidArgumentError(MilvusBackupError, ValueError):
    """An argument is malformed: a bad name, suffix, rename map or conflicting options."""

    retryable = False


class BackupNameError(InvalidArgumentError):
    """A backup name breaks the name rule."""

    retryable = False


class EmptyBackupError(InvalidArgumentError):
    """A backup would hold no collection (a wrong database or Milvus Lite path?) and empty was not allowed."""

    retryable = False


class NotFoundError(MilvusBackupError, LookupError):
    """Something the caller named does not exist."""

    retryable = True  # it may appear: a backup still being written, a bucket being created


class BackupNotFoundError(NotFoundError):
    """No backup of that name under the storage root."""

    retryable = True


class BackupDeletedError(BackupNotFoundError):
    """The backup was deleted (``delete(force=True)``) while a restore read it; the restore stopped."""

    retryable = False  # deleted on purpose: restore another backup


class CollectionNotFoundError(NotFoundError):
    """A collection named by the caller is not in Milvus or not in the backup."""

    retryable = True


class DatabaseNotFoundError(NotFoundError):
    """A database named by the caller does not exist."""

    retryable = True


class AlreadyExistsError(MilvusBackupError):
    """The target of a write already exists and the caller did not ask to replace it."""

    retryable = False  # a person decides: another name, or replace it


class BackupExistsError(AlreadyExistsError):
    """A backup of that name already exists."""

    retryable = False


class TargetExistsError(AlreadyExistsError):
    """A restore target collection already exists."""

    retryable = False


class BackupInProgressError(MilvusBackupError):
    """Another process is writing the backup right now."""

    retryable = True


class IntegrityError(MilvusBackupError):
    """Stored data does not match its manifest: checksum, size or row count. Never retried."""

    retryable = False


class ManifestError(IntegrityError):
    """A manifest is missing, truncated or not valid JSON of the expected shape."""

    retryable = False


class ForeignManifestError(ManifestError):
    """The manifest's path holds a JSON document another tool wrote (such as the Go tool Milvus Backup)."""

    retryable = False


class UnreadableManifestError(ManifestError):
    """The manifest is not a JSON object at all: truncated, not JSON, too big or too deeply nested."""

    retryable = False


class NotABackupError(InvalidArgumentError):
    """A folder under the backup root carries no mark of this package: never a backup, never deleted."""

    retryable = False


class IncompleteBackupError(IntegrityError):
    """The backup has data but no manifest: it was never committed."""

    retryable = False


class FormatVersionError(MilvusBackupError):
    """The backup was written by a newer format version than this package reads."""

    retryable = False


class SchemaMismatchError(MilvusBackupError):
    """An existing target collection's schema does not match the backup."""

    retryable = False


class UnsupportedError(MilvusBackupError):
    """The target Milvus cannot do what was asked (a field type, an index, keeping primary keys)."""

    retryable = False


class MilvusConnectionError(MilvusBackupError):
    """Milvus could not be reached or refused the credentials."""

    retryable = True


class MilvusLiteLockedError(MilvusConnectionError):
    """Another process holds the lock of the Milvus Lite file: retried, as that process may finish soon."""

    retryable = True


class MilvusAuthenticationError(MilvusConnectionError):
    """Milvus refused the user, password or token: running again without fixing them cannot succeed."""

    retryable = False


class StorageError(MilvusBackupError):
    """The object store or local directory failed."""

    retryable = True


class StorageNotFoundError(StorageError, NotFoundError):
    """An object or bucket does not exist."""

    retryable = True


class StorageConnectionError(StorageError):
    """The object store could not be reached (after bounded retries)."""

    retryable = True


class StorageAccessError(StorageError):
    """The object store refused the credentials or the operation."""

    retryable = False


class RestoreError(MilvusBackupError):
    """A restore failed; the message names the collection and the step."""

    retryable = True


class RowRejectedError(RestoreError):
    """Milvus refused rows of a data file (a value that does not fit the field): retrying cannot help.

    The message names the data file, the field and what the backup's schema expects.
    """

    retryable = False
