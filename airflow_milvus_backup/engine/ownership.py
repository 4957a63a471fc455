"""Which folders under the backup root are ours, and in what state: the only place that decides it.

A folder is a backup of this package only if it carries one of its marks:

* its marker ``<name>/meta/marker.json`` (``{"format": "airflow-milvus-backup", ...}``), the first object a
  backup writes after its lock;
* a lock ``<name>/meta/locks/<id>.json`` whose body names the backup (what every release wrote first);
* a manifest whose ``format`` is ``"airflow-milvus-backup"`` (every release wrote one).

Anything else under the root (a database dump, photos, another tool's backups with their own
``meta/backup_meta.json``) lists as ``unknown`` and is never deleted: not by retention, not by ``delete``
without ``force``, not by ``create(overwrite=True)``.

:func:`classify` is the decision, a pure function of what :func:`inspect` gathered from the storage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.clock import now_iso
from airflow_milvus_backup.engine.errors import (
    ForeignManifestError,
    MilvusBackupError,
    StorageAccessError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    UnreadableManifestError,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import ObjectInfo, Storage

MARKER = mf.MARKER
MARKER_FORMAT_VERSION = 1


class BackupState(str, Enum):
    """The state a folder under the root lists in."""

    COMPLETE = "complete"
    IN_PROGRESS = "in_progress"
    PARTIAL = "partial"
    CORRUPT = "corrupt"
    UNKNOWN = "unknown"


class ManifestVerdict(str, Enum):
    """What the object at the manifest's path is."""

    ABSENT = "absent"
    VALID = "valid"
    MALFORMED = "malformed"  # ours (our format), but the shape or version is wrong
    FOREIGN = "foreign"  # a JSON object another tool wrote
    UNREADABLE = "unreadable"  # not a JSON object at all: cannot tell whose


@dataclass(frozen=True)
class Classification:
    """The decision about one folder: its state, whether it is ours, and why (for the listing)."""

    state: BackupState
    owned: bool
    reason: str | None = None


def marker_key(name: str) -> str:
    """Return the key of a backup's marker."""
    return f"{name}/{MARKER}"


def marker_body(name: str, backup_id: str, kind: str | None = None) -> bytes:
    """Return the marker of a backup being written (JSON).

    :param kind: ``"physical"`` for a physical backup (Milvus Backup's format); omitted for a logical one,
        as every earlier release wrote it.
    """
    body = {
        "format": mf.FORMAT_NAME,
        "format_version": MARKER_FORMAT_VERSION,
        "name": name,
        "id": backup_id,
        "created_at": now_iso(),
    }
    if kind is not None:
        body["kind"] = kind
    return json.dumps(body, sort_keys=True).encode()


def is_our_marker(raw: bytes, name: str) -> bool:
    """Return whether ``raw`` is a marker this package wrote (for ``name``, or for a backup copied to it)."""
    try:
        body = json.loads(raw[:65536])
    except (ValueError, RecursionError):
        return False
    if not isinstance(body, dict):
        return False
    return body.get("format") == mf.FORMAT_NAME and isinstance(body.get("name"), str)


def is_our_lock(body: dict[str, Any], name: str) -> bool:
    """Return whether a lease body under ``<name>/meta/locks/`` is a lock this package wrote for ``name``."""
    return body.get("backup") == name and isinstance(body.get("id"), str) and "heartbeat_at" in body


def classify(
    name: str,
    *,
    manifest: ManifestVerdict,
    marker: bool,
    lock: bool,
    live_lock: bool,
    error: str | None = None,
) -> Classification:
    """Decide a folder's state and ownership from what it holds.

    :param name: the folder (for the reasons).
    :param manifest: what the object at ``meta/backup_meta.json`` is.
    :param marker: the folder holds our marker.
    :param lock: the folder holds a lock we wrote (alive or not).
    :param live_lock: one of those locks is held by a live writer.
    :param error: why the manifest is not valid (its :class:`ManifestError` message).
    """
    marked = marker or lock
    if manifest is ManifestVerdict.VALID:
        return Classification(BackupState.COMPLETE, True)
    if manifest is ManifestVerdict.MALFORMED:
        return Classification(BackupState.CORRUPT, True, error)
    if manifest is ManifestVerdict.UNREADABLE:
        # A broken manifest next to our mark is ours; alone, it may be anyone's: listed, never deleted.
        return Classification(BackupState.CORRUPT, marked, error)
    if manifest is ManifestVerdict.FOREIGN:
        if marked:
            return Classification(BackupState.CORRUPT, True, error)
        return Classification(
            BackupState.UNKNOWN,
            False,
            f"{name!r} is not a backup of airflow-milvus-backup: its manifest was written by another tool; "
            "not touched.",
        )
    if live_lock:
        return Classification(BackupState.IN_PROGRESS, True)
    if marked:
        return Classification(BackupState.PARTIAL, True)
    return Classification(
        BackupState.UNKNOWN,
        False,
        f"{name!r} is not a backup of airflow-milvus-backup (it holds no marker, lock or manifest of it); "
        "not touched.",
    )


@dataclass
class Folder:
    """What :func:`inspect` found in one folder, and the decision about it."""

    name: str
    objects: list[ObjectInfo]
    decision: Classification
    manifest: mf.Manifest | None = None
    live_locks: list[dict[str, Any]] = field(default_factory=list)


def _manifest_verdict(storage: Storage, name: str) -> tuple[ManifestVerdict, mf.Manifest | None, str | None]:
    try:
        m = mf.parse_manifest(mf.read_bounded(storage, mf.manifest_key(name)), name)
    except StorageNotFoundError:
        return ManifestVerdict.ABSENT, None, None  # deleted since the listing
    except (StorageConnectionError, StorageAccessError):
        raise  # the storage failed, not this backup: the listing fails as a whole, clearly
    except StorageError as e:  # e.g. a link out of the root: whose it is cannot be told
        return ManifestVerdict.UNREADABLE, None, str(e)
    except UnreadableManifestError as e:
        return ManifestVerdict.UNREADABLE, None, str(e)
    except ForeignManifestError as e:
        return ManifestVerdict.FOREIGN, None, str(e)
    except MilvusBackupError as e:  # ManifestError, FormatVersionError: our format, not readable here
        return ManifestVerdict.MALFORMED, None, str(e)
    return ManifestVerdict.VALID, m, None


def inspect(storage: Storage, name: str, objects: list[ObjectInfo] | None = None) -> Folder:
    """Gather what folder ``name`` holds (manifest, marker, locks) and classify it.

    :param storage: the backup storage.
    :param name: the folder's name (a valid backup name).
    :param objects: its objects, if already listed.
    """
    objs = list(storage.list(f"{name}/")) if objects is None else objects
    keys = {o.key for o in objs}
    verdict, manifest, error = ManifestVerdict.ABSENT, None, None
    if mf.manifest_key(name) in keys:
        verdict, manifest, error = _manifest_verdict(storage, name)
    if verdict is ManifestVerdict.VALID:
        decision = classify(name, manifest=verdict, marker=False, lock=False, live_lock=False)
        return Folder(name, objs, decision, manifest)
    marker = False
    if marker_key(name) in keys:
        try:
            marker = is_our_marker(storage.get_bytes(marker_key(name)), name)
        except (StorageConnectionError, StorageAccessError):
            raise
        except StorageError:  # gone since the listing, or a link out of the root: not our marker
            marker = False
    locks = [b for b in leases.read_leases(storage, f"{name}/{mf.LOCKS}") if is_our_lock(b, name)]
    live = [b for b in locks if leases.is_alive(b)]
    decision = classify(
        name, manifest=verdict, marker=marker, lock=bool(locks), live_lock=bool(live), error=error
    )
    return Folder(name, objs, decision, None, live)
