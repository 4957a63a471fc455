"""The engine's exceptions: one small hierarchy, every error with a message that names the thing and the fix.

The engine imports nothing from Airflow; the Airflow layer maps these onto Airflow's exceptions
(:mod:`airflow_milvus_backup.exceptions`).
"""

from __future__ import annotations


class MilvusBackupError(Exception):
    """Base class of every error the engine raises on purpose."""

    #: Whether running the same call again may succeed without the user changing anything.
    retryable: bool = False


class InvalidArgumentError(MilvusBackupError, ValueError):
    """An argument is malformed: a bad name, suffix, rename map or conflicting options."""


class BackupNameError(InvalidArgumentError):
    """A backup name breaks the name rule."""


class EmptyBackupError(InvalidArgumentError):
    """A backup would hold no collection (a wrong database or Milvus Lite path?) and empty was not allowed."""


class NotFoundError(MilvusBackupError, LookupError):
    """Something the caller named does not exist."""


class BackupNotFoundError(NotFoundError):
    """No backup of that name under the storage root."""


class BackupDeletedError(BackupNotFoundError):
    """The backup was deleted (``delete(force=True)``) while a restore read it; the restore stopped."""


class CollectionNotFoundError(NotFoundError):
    """A collection named by the caller is not in Milvus or not in the backup."""


class DatabaseNotFoundError(NotFoundError):
    """A database named by the caller does not exist."""


class AlreadyExistsError(MilvusBackupError):
    """The target of a write already exists and the caller did not ask to replace it."""


class BackupExistsError(AlreadyExistsError):
    """A backup of that name already exists."""


class TargetExistsError(AlreadyExistsError):
    """A restore target collection already exists."""


class BackupInProgressError(MilvusBackupError):
    """Another process is writing the backup right now."""

    retryable = True


class IntegrityError(MilvusBackupError):
    """Stored data does not match its manifest: checksum, size or row count. Never retried."""


class ManifestError(IntegrityError):
    """A manifest is missing, truncated or not valid JSON of the expected shape."""


class ForeignManifestError(ManifestError):
    """The manifest's path holds a JSON document another tool wrote (such as the Go tool Milvus Backup)."""


class UnreadableManifestError(ManifestError):
    """The manifest is not a JSON object at all: truncated, not JSON, too big or too deeply nested."""


class NotABackupError(InvalidArgumentError):
    """A folder under the backup root carries no mark of this package: never a backup, never deleted."""


class IncompleteBackupError(IntegrityError):
    """The backup has data but no manifest: it was never committed."""


class FormatVersionError(MilvusBackupError):
    """The backup was written by a newer format version than this package reads."""


class SchemaMismatchError(MilvusBackupError):
    """An existing target collection's schema does not match the backup."""


class UnsupportedError(MilvusBackupError):
    """The target Milvus cannot do what was asked (a field type, an index, keeping primary keys)."""


class MilvusConnectionError(MilvusBackupError):
    """Milvus could not be reached or refused the credentials."""

    retryable = True


class MilvusLiteLockedError(MilvusConnectionError):
    """Another process holds the lock of the Milvus Lite file: retried, as that process may finish soon."""


class MilvusAuthenticationError(MilvusConnectionError):
    """Milvus refused the user, password or token: running again without fixing them cannot succeed."""

    retryable = False


class StorageError(MilvusBackupError):
    """The object store or local directory failed."""


class StorageNotFoundError(StorageError, NotFoundError):
    """An object or bucket does not exist."""


class StorageConnectionError(StorageError):
    """The object store could not be reached (after bounded retries)."""

    retryable = True


class StorageAccessError(StorageError):
    """The object store refused the credentials or the operation."""


class RestoreError(MilvusBackupError):
    """A restore failed; the message names the collection and the step."""


class RowRejectedError(RestoreError):
    """Milvus refused rows of a data file (a value that does not fit the field): retrying cannot help.

    The message names the data file, the field and what the backup's schema expects.
    """
