"""The backup manifest (``<backup>/meta/backup_meta.json``) and the layout of a backup's keys.

The manifest is written last: its presence is what makes a backup complete. See FORMAT.md.

The manifest is a tree of frozen dataclasses (:mod:`~.jsonmodel`): a :class:`Manifest` holds
:class:`CollectionEntry` objects (and its :class:`Totals`), each holding :class:`PartitionData` objects, each
holding :class:`DataFile` objects. :meth:`Manifest.from_json` is the one validation of a manifest;
:meth:`Manifest.to_json` writes the same JSON back, byte for byte once serialised (:func:`dumps`), keys of a
newer writer included. :func:`load_manifest` reads one from storage (backup, restore, verify and the listing
all read it so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_milvus_backup.engine.errors import (
    BackupNotFoundError,
    ForeignManifestError,
    FormatVersionError,
    IncompleteBackupError,
    InvalidArgumentError,
    ManifestError,
    StorageNotFoundError,
    UnreadableManifestError,
)
from airflow_milvus_backup.engine.jsonmodel import ANY, JsonModel, Maybe, check, malformed, show, too_deep
from airflow_milvus_backup.engine.names import validate_backup_name, validate_milvus_name

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

FORMAT_NAME = "airflow-milvus-backup"
FORMAT_VERSION = 1
#: Keys inside a backup's folder (see FORMAT.md, "Layout").
MANIFEST = "meta/backup_meta.json"
MARKER = "meta/marker.json"
LOCKS = "meta/locks/"
RESTORES = "restores/"
DATA = "data/"
#: Partition segment used when a collection is streamed whole (partition-key collections).
ALL_PARTITIONS = "=all"
#: The only state a manifest is written in.
COMPLETE = "complete"

_REQUIRED = ("format_version", "name", "id", "state", "collections")
#: No manifest this package writes comes near these; bigger or deeper ones are refused unread.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64


def manifest_key(name: str) -> str:
    """Return the key of a backup's manifest."""
    return f"{validate_backup_name(name)}/{MANIFEST}"


def data_file_key(db: str, collection: str, partition: str | None, index: int) -> str:
    """Return a data file's key relative to the backup's folder."""
    return f"{DATA}{db}/{collection}/{partition or ALL_PARTITIONS}/part-{index:05d}.parquet"


@dataclass(frozen=True, kw_only=True)
class DataFile(JsonModel):
    """One data object: its key (relative to the backup's folder), rows, size, sha256 and key range."""

    key: str
    rows: int
    size: int
    sha256: str
    min_pk: Any = None
    max_pk: Any = None
    SPEC: ClassVar[dict[str, Any]] = {
        "key": str,
        "rows": int,
        "size": int,
        "sha256": str,
        "min_pk": Maybe(ANY),
        "max_pk": Maybe(ANY),
    }


@dataclass(frozen=True, kw_only=True)
class PartitionData(JsonModel):
    """The data of one partition (``partition`` is ``None`` for a partition-key collection streamed whole)."""

    partition: str | None = None
    rows: int
    files: tuple[DataFile, ...]
    snapshot_ts: int | None = None
    SPEC: ClassVar[dict[str, Any]] = {
        "partition": Maybe(str),
        "rows": int,
        "files": [DataFile],
        "snapshot_ts": Maybe(int),
    }


# The captured schema stays plain JSON: it is Milvus' own description (``describe_collection``), read by
# pymilvus and the integrity checks as dicts, and it grows with Milvus releases. Only what readers use is
# checked.
_FIELD = {
    "name": str,
    "type": str,
    "description": Maybe(str),
    "params": Maybe(dict),
    "element_type": Maybe(str),
    **{flag: Maybe(bool) for flag in ("is_primary", "auto_id", "is_partition_key", "is_clustering_key")},
    **{flag: Maybe(bool) for flag in ("nullable", "is_function_output")},
}
_FUNCTION = {
    "name": str,
    "type": str,
    "input_field_names": [str],
    "output_field_names": [str],
    "params": Maybe(dict),
}
_INDEX = {
    "index_name": Maybe(str),
    "field_name": Maybe(str),
    "index_type": Maybe(str),
    "metric_type": Maybe(str),
    "params": Maybe(dict),
}


@dataclass(frozen=True, kw_only=True)
class CollectionEntry(JsonModel):
    """One collection of a backup: its captured metadata and its data.

    ``fields``, ``functions`` and ``indexes`` are the dicts :func:`~.schema.capture_collection` recorded
    (FORMAT.md lists their keys). Keys it records for information only (``collection_id``,
    ``created_timestamp``) are in ``extra``.
    """

    name: str
    db_name: str
    description: str | None = None
    auto_id: bool
    enable_dynamic_field: bool
    fields: tuple[dict[str, Any], ...]
    functions: tuple[dict[str, Any], ...] | None = None
    partitions: tuple[str, ...] | None = None
    indexes: tuple[dict[str, Any], ...] | None = None
    aliases: tuple[str, ...] | None = None
    properties: dict[str, Any] | None = None
    num_shards: int | None = None
    num_partitions: int | None = None
    consistency_level: int | None = None
    consistency_level_name: str | None = None
    load_state: str | None = None
    row_count: int | None = None
    stats_row_count: int | None = None
    snapshot_ts: int | None = None
    data: tuple[PartitionData, ...]
    SPEC: ClassVar[dict[str, Any]] = {
        "name": str,
        "db_name": str,
        "description": Maybe(str),
        "auto_id": bool,
        "enable_dynamic_field": bool,
        "fields": [_FIELD],
        "functions": Maybe([_FUNCTION]),
        "partitions": Maybe([str]),
        "indexes": Maybe([_INDEX]),
        "aliases": Maybe([str]),
        "properties": Maybe(dict),
        "num_shards": Maybe(int),
        "num_partitions": Maybe(int),
        "consistency_level": Maybe(int),
        "consistency_level_name": Maybe(str),
        "load_state": Maybe(str),
        "row_count": Maybe(int),
        "stats_row_count": Maybe(int),
        "snapshot_ts": Maybe(int),
        "data": [PartitionData],
    }

    @classmethod
    def captured(
        cls, meta: Mapping[str, Any], *, stats_row_count: int, data: Sequence[PartitionData]
    ) -> CollectionEntry:
        """Return the entry of a collection just backed up: its row count and snapshot come from ``data``.

        :param meta: what :func:`~.schema.capture_collection` returned.
        :param stats_row_count: the rows the server reported before the export.
        :param data: its exported partitions.
        """
        snaps = [p.snapshot_ts for p in data if p.snapshot_ts]
        doc = {
            **meta,
            "stats_row_count": stats_row_count,
            "row_count": sum(p.rows for p in data),
            "snapshot_ts": min(snaps) if snaps else None,
            "data": [],
        }
        return replace(cls.build(doc), data=tuple(data))

    @property
    def qualified_name(self) -> str:
        """Return ``"db.collection"``."""
        return f"{self.db_name}.{self.name}"


@dataclass(frozen=True, kw_only=True)
class Totals(JsonModel):
    """What a backup holds in all."""

    collections: int
    rows: int
    files: int
    bytes: int
    SPEC: ClassVar[dict[str, Any]] = {"collections": int, "rows": int, "files": int, "bytes": int}

    @classmethod
    def of(cls, collections: Sequence[CollectionEntry]) -> Totals:
        """Return the totals of these collections."""
        files = [f for c in collections for p in c.data for f in p.files]
        return cls(
            collections=len(collections),
            rows=sum(c.row_count or 0 for c in collections),
            files=len(files),
            bytes=sum(f.size for f in files),
        )


@dataclass(frozen=True, kw_only=True)
class Manifest(JsonModel):
    """A backup's manifest (FORMAT.md, "Manifest"). Read it with :meth:`from_json`, the one validation."""

    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    name: str
    id: str
    state: str = COMPLETE
    started_at: str | None = None
    finished_at: str | None = None
    server_version: str | None = None
    source: dict[str, Any] | None = None
    databases: dict[str, Any] | None = None
    producer: dict[str, Any] | None = None
    totals: Totals | None = None
    collections: tuple[CollectionEntry, ...]
    #: users, roles and grants of a backup made with ``rbac=True`` (:meth:`.rbac.RbacSnapshot.to_manifest`);
    #: the key is absent otherwise, and older readers ignore it.
    rbac: dict[str, Any] | None = None
    SPEC: ClassVar[dict[str, Any]] = {
        "format": str,
        "format_version": int,
        "name": str,
        "id": str,
        "state": str,
        "started_at": Maybe(str),
        "finished_at": Maybe(str),
        "server_version": Maybe(str),
        "source": Maybe(dict),
        "databases": Maybe(dict),
        "producer": Maybe(dict),
        "totals": Maybe(Totals),
        "collections": [CollectionEntry],
        "rbac": Maybe(dict),
    }

    @classmethod
    def from_json(cls, doc: Any, name: str) -> Manifest:
        """Check a manifest's whole shape, its format and its format version, and return it.

        Bounded: a document nested deeper than :data:`MAX_DEPTH` is refused before it is walked, so no
        document makes a reader raise ``RecursionError``, ``TypeError`` or ``AttributeError`` later.

        :param doc: the parsed JSON.
        :param name: the backup it was read for (it must name it).
        :raises UnreadableManifestError: not an object, or too deeply nested.
        :raises ForeignManifestError: a JSON object written by another tool (its ``format`` is not ours).
        :raises FormatVersionError: written by a newer format version.
        :raises ManifestError: ours, but a key is missing or of the wrong type, or it names another backup.
        """
        key = f"{name}/{MANIFEST}"
        what = f"Manifest {key!r} of backup {name!r}"
        if too_deep(doc, MAX_DEPTH):
            raise _too_deep_error(key, name)
        if not isinstance(doc, dict):
            raise UnreadableManifestError(
                f"Manifest {key!r} of backup {name!r} is a JSON {type(doc).__name__}, not an object; it is "
                "not a backup manifest."
            )
        if doc.get("format") != FORMAT_NAME:
            shown = f"format {show(doc['format'])}" if "format" in doc else "no 'format' key"
            raise ForeignManifestError(
                f"Manifest {key!r} of backup {name!r} was written by another tool ({shown}), not by "
                "airflow-milvus-backup: it is not touched. Read it with the tool that wrote it."
            )
        missing = [k for k in _REQUIRED if k not in doc]
        if missing:
            raise ManifestError(
                f"Manifest {key!r} of backup {name!r} lacks {missing}; it is not a backup manifest."
            )
        version = doc["format_version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise malformed(what, "format_version", "a whole number", version)
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"Backup {name!r} was written in format version {version!r}; this package reads up to "
                f"{FORMAT_VERSION}. Upgrade airflow-milvus-backup to read it."
            )
        check(doc, cls, "", what)
        if doc["name"] != name:
            raise ManifestError(
                f"Manifest {key!r} names backup {doc['name']!r}, not {name!r}: it was copied by hand."
            )
        if doc["state"] != COMPLETE:
            raise ManifestError(
                f"Manifest {key!r} of backup {name!r} is in state {doc['state']!r}, not 'complete'."
            )
        return cls.build(doc)

    def __post_init__(self) -> None:
        # ``rbac`` is written only when the backup holds RBAC: without it a manifest is what it always was
        if self.rbac is None and "rbac" not in self.absent:
            object.__setattr__(self, "absent", self.absent | {"rbac"})

    def files(self) -> list[tuple[CollectionEntry, PartitionData, DataFile]]:
        """Return ``(collection, partition, file)`` for every data file."""
        return [(c, p, f) for c in self.collections for p in c.data for f in p.files]

    def dumps(self) -> bytes:
        """Return the manifest's bytes as written to storage (:func:`dumps`)."""
        return dumps(self.to_json())


def dumps(manifest: Manifest | Mapping[str, Any]) -> bytes:
    """Serialise a manifest (sorted keys, indented, UTF-8): the bytes written to storage."""
    doc = manifest.to_json() if isinstance(manifest, Manifest) else manifest
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode()


def check_entry_names(backup: str, entry: CollectionEntry | Mapping[str, Any]) -> None:
    """Refuse a collection entry whose names or keys break the rules, before anything is restored.

    A manifest written by this package passes; one edited by hand or copied in from elsewhere may name keys
    with ``..`` or collections and partitions Milvus would refuse (or that would mean something else). Not
    part of :meth:`Manifest.from_json`: such a backup still lists, and ``get`` and ``verify_backup`` still
    read it; only a restore refuses it.

    :param backup: the backup's name.
    :param entry: the collection entry (or its JSON, as read by :meth:`Manifest.from_json`).
    :raises InvalidArgumentError: naming the bad name or key, the backup and the collection.
    """
    from airflow_milvus_backup.engine.storage import validate_key

    if not isinstance(entry, CollectionEntry):
        entry = CollectionEntry.build(entry)
    try:
        validate_milvus_name(entry.db_name, "database")
        validate_milvus_name(entry.name, "collection")
        for p in entry.partitions or ():
            validate_milvus_name(p, "partition")
        for part in entry.data:
            if part.partition is not None:
                validate_milvus_name(part.partition, "partition")
            for f in part.files:
                if not f.key.startswith((DATA, "binlogs/")):  # binlogs/: a physical unit
                    raise InvalidArgumentError(
                        f"Invalid storage key {f.key!r}: data objects are under {DATA!r}."
                    )
                validate_key(f"{backup}/{f.key}")
    except InvalidArgumentError as e:
        source = entry.qualified_name
        raise InvalidArgumentError(
            f"{e} It is in the manifest of backup {backup!r} (collection {source!r}), which was "
            "damaged or edited by hand; nothing was restored. Restore another backup, or run verify_backup."
        ) from None


# ------------------------------------------------------------------------------------------- reading
def _too_deep_error(key: str, name: str) -> UnreadableManifestError:
    return UnreadableManifestError(
        f"Manifest {key!r} of backup {name!r} is nested deeper than {MAX_DEPTH} levels: no manifest "
        "this package writes is. The backup cannot be trusted: restore another one."
    )


def _load_json(raw: bytes, key: str, name: str) -> Any:
    """Return the manifest's JSON, bounded in size (its depth is bounded by :meth:`Manifest.from_json`)."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise UnreadableManifestError(
            f"Manifest {key!r} of backup {name!r} is bigger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB: "
            "no manifest this package writes is. The backup cannot be trusted: restore another one."
        )
    try:
        return json.loads(raw)
    except RecursionError:  # nested deeper than the parser goes
        raise _too_deep_error(key, name) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableManifestError(
            f"Manifest {key!r} of backup {name!r} is not valid JSON ({e}); it is truncated or corrupt. "
            "The backup cannot be trusted: restore another one."
        ) from None


def parse_manifest(raw: bytes, name: str) -> Manifest:
    """Parse and check a manifest's bytes (:meth:`Manifest.from_json`); at most :data:`MAX_MANIFEST_BYTES`.

    :raises UnreadableManifestError: truncated, not JSON, not an object, too big or too deeply nested.
    :raises ForeignManifestError: a JSON object written by another tool (its ``format`` is not ours).
    :raises FormatVersionError: written by a newer format version.
    :raises ManifestError: ours, but a key is missing or of the wrong type, or it names another backup.
    """
    return Manifest.from_json(_load_json(raw, f"{name}/{MANIFEST}", name), name)


def read_bounded(storage: Storage, key: str) -> bytes:
    """Read a manifest, at most one byte past :data:`MAX_MANIFEST_BYTES` (then it is refused as too big)."""
    with storage.open_read(key) as fh:
        return fh.read(MAX_MANIFEST_BYTES + 1)


def _read(storage: Storage, name: str) -> bytes:
    validate_backup_name(name)
    try:
        return read_bounded(storage, manifest_key(name))
    except StorageNotFoundError:
        if next(iter(storage.list(f"{name}/")), None) is not None:
            raise IncompleteBackupError(
                f"Backup {name!r} in {storage.description} has no manifest: it was interrupted and never "
                "completed. Delete it (or back up again with overwrite=True)."
            ) from None
        raise BackupNotFoundError(
            f"Backup {name!r} does not exist in {storage.description}; list the backups to see the names."
        ) from None


def load_manifest(storage: Storage, name: str) -> Manifest:
    """Read and check the manifest of a complete backup.

    :raises BackupNotFoundError: nothing is stored under that name.
    :raises IncompleteBackupError: objects exist but no manifest (an interrupted backup).
    :raises ManifestError: the manifest is unreadable or malformed (see :func:`parse_manifest`).
    """
    return parse_manifest(_read(storage, name), name)
