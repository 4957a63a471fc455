"""The restore status as typed data: what ``<backup>/restores/<restore_id>.json`` holds; read, written here.

Pure: no storage, no clock. :mod:`.status` owns the object in storage (its lease and lock) and changes the
model only through its verbs.

Compatibility rules (format version 1):

- A body without ``format_version`` is the previous layout (the same keys): it reads as version 1, keeps its
  fingerprint and resumes.
- ``format_version`` is ``1`` or ``"1.<minor>"``; any version of major 1 reads. A later minor may only add
  keys: keys this release does not know are kept (``extra``) and written back unchanged, and the version read
  is written back. A higher major is refused with a message that says to upgrade.
- The lease's keys (``id``, ``host``, ``pid``, ``started_at``, ``ttl``, ``heartbeat_at``) are carried in
  ``lease``; :class:`~.status.Status` refreshes them on every write.
- Optional keys of a file (``attempts``, ``task_id``, ``progress``, ``error``): ``null`` and absent mean the
  same; they are written only when set.
- States are the same strings as always (str-valued Enums); a new state would be a new major version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from airflow_milvus_backup.engine.errors import RestoreError
from airflow_milvus_backup.engine.restore.options import FINGERPRINT_FIELDS, RestoreOptions

#: The status format this release writes; it reads every ``1`` or ``"1.<minor>"``.
FORMAT_VERSION = 1
#: The keys of the lease the status object is (see :mod:`~airflow_milvus_backup.engine.lease`).
LEASE_KEYS = ("id", "host", "pid", "started_at", "ttl", "heartbeat_at")


class _StrEnum(str, Enum):
    """An Enum whose members are their string values (in JSON, ``==``, ``str()`` and f-strings)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RunState(_StrEnum):
    """The state of a restore."""

    EXECUTING = "executing"
    SUCCESS = "success"
    FAILED = "failed"


class CollectionState(_StrEnum):
    """The state of one target collection."""

    PENDING = "pending"
    RESTORING = "restoring"
    SUCCESS = "success"
    FAILED = "failed"


class FileState(_StrEnum):
    """The state of a data file: by insert pending, started, done; by import submitting, importing, done."""

    PENDING = "pending"
    STARTED = "started"
    DONE = "done"
    SUBMITTING = "submitting"
    IMPORTING = "importing"
    FAILED = "failed"


def major_of(version: object, where: str) -> int:
    """Return the major number of a ``format_version`` (``1``, ``"1.2"``); refuse anything else."""
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, str) and version.split(".", 1)[0].isdigit():
        return int(version.split(".", 1)[0])
    raise RestoreError(
        f"The status object {where} has an invalid format_version {version!r}.", retryable=False
    )


def _enum(kind: type[_StrEnum], value: object, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise RestoreError(
            f"The status object {where} has an unknown {kind.__name__} {value!r}; it was written by a newer "
            "airflow-milvus-backup (upgrade to read it) or damaged.",
            retryable=False,
        ) from None


def _plain(value: Any) -> Any:
    """Return an Enum's value (of this module or another: the planner's target actions), else the value."""
    return value.value if isinstance(value, Enum) else value


def _split(doc: dict[str, Any], known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in known}


@dataclass
class FileStatus:
    """One data file of a target: its state and the rows it brought."""

    partition: str | None
    rows: int
    state: FileState = FileState.PENDING
    inserted: int = 0
    attempts: int | None = None
    task_id: int | None = None
    progress: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("partition", "rows", "state", "inserted", "attempts", "task_id", "progress", "error")

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "") -> FileStatus:
        """Return a file's status from its JSON."""
        return cls(
            partition=doc.get("partition"),
            rows=int(doc.get("rows", 0)),
            state=_enum(FileState, doc.get("state", "pending"), where),
            inserted=int(doc.get("inserted") or 0),
            attempts=None if doc.get("attempts") is None else int(doc["attempts"]),
            task_id=None if doc.get("task_id") is None else int(doc["task_id"]),
            progress=None if doc.get("progress") is None else int(doc["progress"]),
            error=doc.get("error"),
            extra=_split(doc, set(cls._KEYS)),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the file's JSON (optional keys only when set)."""
        out: dict[str, Any] = {
            **self.extra,
            "partition": self.partition,
            "rows": self.rows,
            "state": self.state.value,
            "inserted": self.inserted,
        }
        for k in ("attempts", "task_id", "progress", "error"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @property
    def done(self) -> bool:
        """Return whether the file's rows are all in Milvus (a resume skips it)."""
        return self.state == FileState.DONE


@dataclass
class CollectionStatus:
    """One target collection of a restore."""

    source: str
    target: str
    action: str
    created: bool = False
    keys: str = "kept"
    state: CollectionState = CollectionState.PENDING
    rows_expected: int = 0
    rows_restored: int = 0
    files_total: int = 0
    files_done: int = 0
    files: dict[str, FileStatus] = field(default_factory=dict)
    temp_properties: list[str] = field(default_factory=list)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    aliases: dict[str, Any] = field(default_factory=lambda: {"restored": [], "skipped": []})
    load_state: dict[str, Any] = field(default_factory=dict)
    database_created: bool = False
    seconds: float = 0.0
    resumed: bool = False
    error: str | None = None
    #: aliases of an existing collection dropped with it (``drop_existing``); ``None``: none was dropped
    dropped_aliases: list[str] | None = None
    #: rows counted at the end (``None`` when the target is not loaded); written once ``counted``
    rows_found: int | None = None
    counted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    _OPTIONAL = ("dropped_aliases", "rows_found")

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "") -> CollectionStatus:
        """Return a target's status from its JSON."""
        known = {f.name for f in fields(cls)} - {"counted", "extra"}
        return cls(
            source=str(doc["source"]),
            target=str(doc["target"]),
            action=str(doc.get("action", "")),
            created=bool(doc.get("created")),
            keys=str(doc.get("keys", "kept")),
            state=_enum(CollectionState, doc.get("state", "pending"), where),
            rows_expected=int(doc.get("rows_expected") or 0),
            rows_restored=int(doc.get("rows_restored") or 0),
            files_total=int(doc.get("files_total") or 0),
            files_done=int(doc.get("files_done") or 0),
            files={str(k): FileStatus.from_json(f, where) for k, f in (doc.get("files") or {}).items()},
            temp_properties=list(doc.get("temp_properties") or []),
            indexes=list(doc.get("indexes") or []),
            aliases=doc.get("aliases") or {"restored": [], "skipped": []},
            load_state=doc.get("load_state") or {},
            database_created=bool(doc.get("database_created")),
            seconds=float(doc.get("seconds") or 0.0),
            resumed=bool(doc.get("resumed")),
            error=doc.get("error"),
            dropped_aliases=doc.get("dropped_aliases"),
            rows_found=doc.get("rows_found"),
            counted="rows_found" in doc,
            extra=_split(doc, known),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the target's JSON."""
        out: dict[str, Any] = {**self.extra}
        for f in fields(self):
            if f.name in ("counted", "extra", *self._OPTIONAL):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        out["files"] = {k: f.to_json() for k, f in self.files.items()}
        if self.dropped_aliases is not None:
            out["dropped_aliases"] = list(self.dropped_aliases)
        if self.counted:
            out["rows_found"] = self.rows_found
        return out

    @property
    def db(self) -> str:
        """Return the target's database."""
        return self.target.split(".", 1)[0]

    def recount(self) -> None:
        """Recompute ``files_done`` and ``rows_restored`` from the files."""
        self.files_done = sum(1 for f in self.files.values() if f.done)
        self.rows_restored = sum(f.inserted for f in self.files.values())

    def reset_files(self) -> None:
        """Mark every file pending again (the collection was created anew)."""
        for f in self.files.values():
            f.state, f.inserted, f.task_id = FileState.PENDING, 0, None
        self.recount()

    def done_keys(self) -> list[str]:
        """Return the files a resume skips (recorded ``done``)."""
        return [k for k, f in self.files.items() if f.done]

    def to_redo(self) -> list[str]:
        """Return the files a resume does again: every file not recorded ``done``."""
        return [k for k, f in self.files.items() if not f.done]


@dataclass
class RestoreStatus:
    """The status of one restore (see the module docstring for what a reader may rely on)."""

    restore_id: str
    backup_name: str
    backup_id: str
    state: RunState
    method: str
    fingerprint: str
    arguments: dict[str, Any]
    collections: list[CollectionStatus] = field(default_factory=list)
    method_reason: str = ""
    meta_only: bool = False
    target: dict[str, Any] = field(default_factory=dict)
    storage: str = ""
    first_started_at: str | None = None
    attempts: int = 1
    finished_at: str | None = None
    detached: bool = False
    databases_created: list[str] = field(default_factory=list)
    error: str | None = None
    errors: list[str] = field(default_factory=list)
    kind: str = "restore"
    format_version: int | str = FORMAT_VERSION
    #: optional keys, written only when set
    cancelled: bool = False
    imported: bool = False
    seconds: float | None = None
    lease: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def is_status(doc: object) -> bool:
        """Return whether a JSON document is a restore status (other leases may share the folder)."""
        return isinstance(doc, dict) and "restore_id" in doc and "collections" in doc

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "") -> RestoreStatus:
        """Return a restore's status from its JSON (this layout, or the previous one without a version).

        :param where: the object's key, for messages.
        :raises RestoreError: not a restore status, or written in a newer major format version.
        """
        if not where and isinstance(doc, dict) and doc.get("_key"):
            where = repr(doc["_key"])
        if not cls.is_status(doc):
            raise RestoreError(f"The status object {where} is not a restore status.", retryable=False)
        version = doc.get("format_version", FORMAT_VERSION)
        if major_of(version, where) > FORMAT_VERSION:
            raise RestoreError(
                f"The status object {where} was written in format version {version!r}; this "
                f"airflow-milvus-backup reads version {FORMAT_VERSION}. Upgrade airflow-milvus-backup to "
                "read or resume that restore.",
                retryable=False,
            )
        known = {f.name for f in fields(cls)} - {"lease", "extra"}
        scalar = known - {"collections", "state", "cancelled", "imported", "seconds"}
        values = {k: doc[k] for k in scalar if k in doc}
        try:
            return cls(
                **values,
                state=_enum(RunState, doc.get("state", "executing"), where),
                collections=[CollectionStatus.from_json(c, where) for c in doc["collections"]],
                cancelled=bool(doc.get("cancelled")),
                imported=bool(doc.get("imported")),
                seconds=doc.get("seconds"),
                lease={k: doc[k] for k in LEASE_KEYS if k in doc},
                extra=_split(doc, known | set(LEASE_KEYS) | {"_key"}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RestoreError(
                f"The status object {where} is not a restore status ({e!r}).", retryable=False
            ) from None

    def to_json(self) -> dict[str, Any]:
        """Return the status' JSON: every key of the previous layout, plus ``format_version``."""
        out: dict[str, Any] = {**self.extra, **self.lease, "id": self.restore_id}
        for f in fields(self):
            if f.name in ("lease", "extra", "cancelled", "imported", "seconds"):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        out["collections"] = [c.to_json() for c in self.collections]
        if self.cancelled:
            out["cancelled"] = True
        if self.imported:
            out["imported"] = True
        if self.seconds is not None:
            out["seconds"] = self.seconds
        return out

    def of(self, target: str) -> CollectionStatus:
        """Return the status of a target (``db.collection``).

        :raises KeyError: not a target of this restore.
        """
        for c in self.collections:
            if c.target == target:
                return c
        raise KeyError(target)

    def totals(self) -> dict[str, int]:
        """Return the row and file totals."""
        return totals(self.to_json())

    def resumes(self, fingerprint: str, arguments: dict[str, Any] | None = None) -> bool:
        """Return whether a restore with this fingerprint (and arguments) continues this one.

        The stored fingerprint decides when it is equal. Otherwise the stored arguments are compared with
        ``arguments`` by :func:`same_arguments`, so that a fingerprint computed differently by another
        release (an option added with a default that does what this release does) still resumes.
        """
        if self.fingerprint == fingerprint:
            return True
        return arguments is not None and same_arguments(self.arguments, arguments)


def canonical_arguments(arguments: dict[str, Any]) -> str:
    """Return a restore's arguments as canonical JSON: options reduced to what decides the restore.

    Each option of :data:`~.options.FINGERPRINT_FIELDS` counts (at its default when missing); any other
    option counts only when it is not at its default (an option this release does not know always counts).
    """
    defaults = {f.name: f.default for f in fields(RestoreOptions)}
    opts = dict(arguments.get("options") or {})
    reduced = {name: opts.get(name, defaults.get(name)) for name in FINGERPRINT_FIELDS}
    for name, value in opts.items():
        if name not in reduced and (name not in defaults or value != defaults[name]):
            reduced[name] = value
    return json.dumps({**arguments, "options": reduced}, sort_keys=True, default=str)


def same_arguments(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Return whether two restores' arguments mean the same restore (:func:`canonical_arguments`)."""
    return canonical_arguments(stored) == canonical_arguments(current)


def totals(body: dict[str, Any]) -> dict[str, int]:
    """Return the row and file totals of a status body (JSON)."""
    cols = body["collections"]
    return {
        "collections": len(cols),
        "rows_expected": sum(c["rows_expected"] for c in cols),
        "rows_restored": sum(c["rows_restored"] for c in cols),
        "files": sum(c["files_total"] for c in cols),
        "files_done": sum(c["files_done"] for c in cols),
    }


def public(body: dict[str, Any] | RestoreStatus, *, with_files: bool = False) -> dict[str, Any]:
    """Return a JSON-serialisable copy of a status for callers (per-file detail only on request).

    For a bulk import each collection lists its ``jobs`` (key, partition, task_id, state, rows, progress).
    """
    doc = body.to_json() if isinstance(body, RestoreStatus) else body
    out = json.loads(json.dumps(doc, default=str))
    out.pop("_key", None)
    out["totals"] = totals(out)
    for c in out["collections"]:
        files = c.pop("files", {})
        if with_files:
            c["files"] = files
        if out.get("method") in ("bulk_import", "binlog_import") and files:
            c["jobs"] = [
                {
                    "key": k,
                    "partition": f.get("partition"),
                    "task_id": f.get("task_id"),
                    "state": f.get("state"),
                    "rows": f.get("inserted", 0),
                    "progress": f.get("progress", 100 if f.get("state") == "done" else 0),
                    **({"error": f["error"]} if f.get("error") else {}),
                }
                for k, f in files.items()
            ]
    return out
