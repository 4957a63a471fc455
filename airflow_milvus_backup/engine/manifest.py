"""The backup manifest (``<backup>/meta/backup_meta.json``) and the layout of a backup's keys.

The manifest is written last: its presence is what makes a backup complete. See FORMAT.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import (
    BackupNotFoundError,
    FormatVersionError,
    IncompleteBackupError,
    ManifestError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.names import validate_backup_name

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

FORMAT_NAME = "airflow-milvus-backup"
FORMAT_VERSION = 1
MANIFEST = "meta/backup_meta.json"
LOCKS = "meta/locks/"
RESTORES = "restores/"
DATA = "data/"
#: Partition segment used when a collection is streamed whole (partition-key collections).
ALL_PARTITIONS = "=all"

_REQUIRED = ("format_version", "name", "id", "state", "collections")


def manifest_key(name: str) -> str:
    """Return the key of a backup's manifest."""
    return f"{validate_backup_name(name)}/{MANIFEST}"


def data_file_key(db: str, collection: str, partition: str | None, index: int) -> str:
    """Return a data file's key relative to the backup's folder."""
    return f"{DATA}{db}/{collection}/{partition or ALL_PARTITIONS}/part-{index:05d}.parquet"


def dumps(manifest: dict[str, Any]) -> bytes:
    """Serialise a manifest (sorted keys, indented, UTF-8)."""
    return json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False).encode()


def parse(raw: bytes, name: str) -> dict[str, Any]:
    """Parse and check a manifest's shape and format version.

    :raises ManifestError: truncated or invalid JSON, or required keys missing.
    :raises FormatVersionError: written by a newer format version.
    """
    key = f"{name}/{MANIFEST}"
    try:
        m = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(
            f"Manifest {key!r} of backup {name!r} is not valid JSON ({e}); it is truncated or corrupt. "
            "The backup cannot be trusted: restore another one."
        ) from None
    if not isinstance(m, dict) or any(k not in m for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(m, dict) or k not in m]
        raise ManifestError(
            f"Manifest {key!r} of backup {name!r} lacks {missing}; it is not a backup manifest."
        )
    if not isinstance(m["format_version"], int) or m["format_version"] > FORMAT_VERSION:
        raise FormatVersionError(
            f"Backup {name!r} was written in format version {m['format_version']!r}; "
            "this package reads up to "
            f"{FORMAT_VERSION}. Upgrade airflow-milvus-backup to read it."
        )
    if m["name"] != name:
        raise ManifestError(
            f"Manifest {key!r} names backup {m['name']!r}, not {name!r}: it was copied by hand."
        )
    if m["state"] != "complete" or not isinstance(m["collections"], list):
        raise ManifestError(
            f"Manifest {key!r} of backup {name!r} is in state {m['state']!r}, not 'complete'."
        )
    return m


def load(storage: Storage, name: str) -> dict[str, Any]:
    """Read and check the manifest of a complete backup.

    :raises BackupNotFoundError: nothing is stored under that name.
    :raises IncompleteBackupError: objects exist but no manifest (an interrupted backup).
    """
    validate_backup_name(name)
    try:
        raw = storage.get_bytes(manifest_key(name))
    except StorageNotFoundError:
        if next(iter(storage.list(f"{name}/")), None) is not None:
            raise IncompleteBackupError(
                f"Backup {name!r} in {storage.description} has no manifest: it was interrupted and never "
                "completed. Delete it (or back up again with overwrite=True)."
            ) from None
        raise BackupNotFoundError(
            f"Backup {name!r} does not exist in {storage.description}; list the backups to see the names."
        ) from None
    return parse(raw, name)


def iter_files(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Return ``(collection, partition entry, file entry)`` for every data file of a manifest."""
    out = []
    for coll in manifest["collections"]:
        for part in coll.get("data", []):
            for f in part.get("files", []):
                out.append((coll, part, f))
    return out
