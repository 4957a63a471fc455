"""The backup manifest (``<backup>/meta/backup_meta.json``) and the layout of a backup's keys.

The manifest is written last: its presence is what makes a backup complete. See FORMAT.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import (
    BackupNotFoundError,
    ForeignManifestError,
    FormatVersionError,
    IncompleteBackupError,
    ManifestError,
    StorageNotFoundError,
    UnreadableManifestError,
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
#: No manifest this package writes comes near these; bigger or deeper ones are refused unread.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64


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
    """Parse a manifest and check its whole shape, its format and its format version, in one place.

    Bounded: a manifest bigger than :data:`MAX_MANIFEST_BYTES` or nested deeper than :data:`MAX_DEPTH` is
    refused before (or instead of) being walked, so no document makes a reader raise ``RecursionError``,
    ``TypeError`` or ``AttributeError`` later.

    :raises UnreadableManifestError: truncated, not JSON, not an object, too big or too deeply nested.
    :raises ForeignManifestError: a JSON object written by another tool (its ``format`` is not ours).
    :raises FormatVersionError: written by a newer format version.
    :raises ManifestError: ours, but a key is missing or of the wrong type, or it names another backup.
    """
    key = f"{name}/{MANIFEST}"
    m = _load_json(raw, key, name)
    if m.get("format") != FORMAT_NAME:
        shown = f"format {_show(m['format'])}" if "format" in m else "no 'format' key"
        raise ForeignManifestError(
            f"Manifest {key!r} of backup {name!r} was written by another tool ({shown}), not by "
            "airflow-milvus-backup: it is not touched. Read it with the tool that wrote it."
        )
    missing = [k for k in _REQUIRED if k not in m]
    if missing:
        raise ManifestError(
            f"Manifest {key!r} of backup {name!r} lacks {missing}; it is not a backup manifest."
        )
    if not isinstance(m["format_version"], int) or isinstance(m["format_version"], bool):
        raise _malformed(key, name, "format_version", "a whole number", m["format_version"])
    if m["format_version"] > FORMAT_VERSION:
        raise FormatVersionError(
            f"Backup {name!r} was written in format version {m['format_version']!r}; "
            "this package reads up to "
            f"{FORMAT_VERSION}. Upgrade airflow-milvus-backup to read it."
        )
    _check(m, _TOP, "", key, name)
    if m["name"] != name:
        raise ManifestError(
            f"Manifest {key!r} names backup {m['name']!r}, not {name!r}: it was copied by hand."
        )
    if m["state"] != "complete":
        raise ManifestError(
            f"Manifest {key!r} of backup {name!r} is in state {m['state']!r}, not 'complete'."
        )
    return m


def _load_json(raw: bytes, key: str, name: str) -> dict[str, Any]:
    """Return the manifest's JSON object, bounded in size and depth."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise UnreadableManifestError(
            f"Manifest {key!r} of backup {name!r} is bigger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB: "
            "no manifest this package writes is. The backup cannot be trusted: restore another one."
        )
    try:
        m = json.loads(raw)
    except RecursionError:
        m = None  # nested deeper than the parser goes: reported below
        deep = True
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableManifestError(
            f"Manifest {key!r} of backup {name!r} is not valid JSON ({e}); it is truncated or corrupt. "
            "The backup cannot be trusted: restore another one."
        ) from None
    else:
        deep = _too_deep(m)
    if deep:
        raise UnreadableManifestError(
            f"Manifest {key!r} of backup {name!r} is nested deeper than {MAX_DEPTH} levels: no manifest "
            "this package writes is. The backup cannot be trusted: restore another one."
        )
    if not isinstance(m, dict):
        raise UnreadableManifestError(
            f"Manifest {key!r} of backup {name!r} is a JSON {type(m).__name__}, not an object; it is not a "
            "backup manifest."
        )
    return m


def _too_deep(doc: Any) -> bool:
    """Return whether ``doc`` nests lists and objects deeper than :data:`MAX_DEPTH` (iteratively)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class _Maybe:
    """A key that may be missing or ``null``; when present, of ``spec``."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


_ANY = object()
_NAMES = {str: "a string", int: "a whole number", bool: "true or false", dict: "an object", list: "a list"}

_FILE = {"key": str, "rows": int, "size": int, "sha256": str, "min_pk": _Maybe(_ANY), "max_pk": _Maybe(_ANY)}
_PART = {"partition": _Maybe(str), "rows": int, "files": [_FILE], "snapshot_ts": _Maybe(int)}
_FIELD = {
    "name": str,
    "type": str,
    "description": _Maybe(str),
    "params": _Maybe(dict),
    "element_type": _Maybe(str),
    **{flag: _Maybe(bool) for flag in ("is_primary", "auto_id", "is_partition_key", "is_clustering_key")},
    **{flag: _Maybe(bool) for flag in ("nullable", "is_function_output")},
}
_FUNCTION = {
    "name": str,
    "type": str,
    "input_field_names": [str],
    "output_field_names": [str],
    "params": _Maybe(dict),
}
_INDEX = {
    "index_name": _Maybe(str),
    "field_name": _Maybe(str),
    "index_type": _Maybe(str),
    "metric_type": _Maybe(str),
    "params": _Maybe(dict),
}
_COLLECTION = {
    "name": str,
    "db_name": str,
    "description": _Maybe(str),
    "auto_id": bool,
    "enable_dynamic_field": bool,
    "fields": [_FIELD],
    "functions": _Maybe([_FUNCTION]),
    "partitions": _Maybe([str]),
    "indexes": _Maybe([_INDEX]),
    "aliases": _Maybe([str]),
    "properties": _Maybe(dict),
    "num_shards": _Maybe(int),
    "num_partitions": _Maybe(int),
    "consistency_level": _Maybe(int),
    "load_state": _Maybe(str),
    "row_count": _Maybe(int),
    "stats_row_count": _Maybe(int),
    "snapshot_ts": _Maybe(int),
    "data": [_PART],
}
_TOTALS = {"collections": int, "rows": int, "files": int, "bytes": int}
_TOP = {
    "format": str,
    "format_version": int,
    "name": str,
    "id": str,
    "state": str,
    "started_at": _Maybe(str),
    "finished_at": _Maybe(str),
    "server_version": _Maybe(str),
    "source": _Maybe(dict),
    "databases": _Maybe(dict),
    "producer": _Maybe(dict),
    "totals": _Maybe(_TOTALS),
    "collections": [_COLLECTION],
}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _malformed(key: str, name: str, where: str, what: str, value: Any) -> ManifestError:
    return ManifestError(
        f"Manifest {key!r} of backup {name!r} is malformed: {where} must be {what}, not {_show(value)}. "
        "The backup cannot be trusted: restore another one."
    )


def _check(value: Any, spec: Any, where: str, key: str, name: str) -> None:
    """Check ``value`` against ``spec`` (a type, ``[spec]``, ``{key: spec}`` or :class:`_Maybe`).

    Objects may hold more keys than the spec names (a newer writer of the same major version adds fields).
    Depth is bounded by :func:`_too_deep` before this runs.
    """
    if isinstance(spec, _Maybe):
        if value is not None:
            _check(value, spec.spec, where, key, name)
        return
    if spec is _ANY:
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise _malformed(key, name, where or "the manifest", "an object", value)
        for k, sub in spec.items():
            path = f"{where}.{k}" if where else k
            if k not in value:
                if isinstance(sub, _Maybe):
                    continue
                raise ManifestError(
                    f"Manifest {key!r} of backup {name!r} is malformed: {path} is missing. The backup "
                    "cannot be trusted: restore another one."
                )
            _check(value[k], sub, path, key, name)
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise _malformed(key, name, where, "a list", value)
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]", key, name)
        return
    ok = isinstance(value, spec) and not (spec is int and isinstance(value, bool))
    if not ok:
        raise _malformed(key, name, where, _NAMES.get(spec, spec.__name__), value)


def load(storage: Storage, name: str) -> dict[str, Any]:
    """Read and check the manifest of a complete backup.

    :raises BackupNotFoundError: nothing is stored under that name.
    :raises IncompleteBackupError: objects exist but no manifest (an interrupted backup).
    """
    validate_backup_name(name)
    try:
        raw = read_bounded(storage, manifest_key(name))
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


def read_bounded(storage: Storage, key: str) -> bytes:
    """Read a manifest, at most one byte past :data:`MAX_MANIFEST_BYTES` (then :func:`parse` refuses it)."""
    with storage.open_read(key) as fh:
        return fh.read(MAX_MANIFEST_BYTES + 1)


def iter_files(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Return ``(collection, partition entry, file entry)`` for every data file of a manifest."""
    out = []
    for coll in manifest["collections"]:
        for part in coll.get("data", []):
            for f in part.get("files", []):
                out.append((coll, part, f))
    return out
