"""Which kind of backup a folder holds, by its contents: ours (logical), ours (physical), or Milvus Backup's.

Both our logical manifest and Milvus Backup's top-level meta live at ``<name>/meta/backup_meta.json``; the
contents tell them apart (:func:`sniff_backup_meta`):

* ``"logical"``: a JSON object whose ``format`` is ``"airflow-milvus-backup"`` (every manifest we wrote);
* ``"physical"``: Milvus Backup's meta (a JSON object that Go reads into ``BackupInfo`` and whose
  ``format`` is ``""``/absent or ``"snapshot"``) plus our sidecar ``meta/airflow_milvus_backup.json``;
* ``"milvus-backup"``: Milvus Backup's meta without our sidecar.

A folder without ``backup_meta.json`` is not complete: it is ours when it has our marker, lock or sidecar
(the marker says ``"kind": "physical"`` for a physical backup being written), Milvus Backup's when it has
Milvus Backup's other meta files or a ``binlogs/`` folder (a lone Milvus Backup ``backup_meta.json``, which
Milvus Backup itself cannot read, is nobody's) (an interrupted run, or one running now: never
touched), else nobody's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import (
    ManifestError,
    StorageAccessError,
    StorageConnectionError,
    StorageError,
)
from airflow_milvus_backup.engine.names import validate_backup_name
from airflow_milvus_backup.engine.physical import layout
from airflow_milvus_backup.engine.physical.gojson import GoJsonError
from airflow_milvus_backup.engine.physical.mbmodel import BackupInfo

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import ObjectInfo, Storage

LOGICAL = "logical"
PHYSICAL = "physical"
MILVUS_BACKUP = "milvus-backup"
KINDS = (LOGICAL, PHYSICAL, MILVUS_BACKUP)

#: Our logical manifest's ``format`` (engine/manifest.py's FORMAT_NAME; repeated to keep this module light).
OUR_FORMAT = "airflow-milvus-backup"
#: ``BackupInfo.format`` values of Milvus Backup (``""``: the binlog format).
MB_FORMATS = ("", "snapshot")
#: backup_meta.json is small (no collections); sniffing reads at most this much of it.
SNIFF_BYTES = 64 * 1024 * 1024
_MB_OTHER = (
    layout.COLLECTION_META,
    layout.PARTITION_META,
    layout.SEGMENT_META,
    layout.FULL_META,
    layout.CHANNEL_CP_META,
)


def sniff_backup_meta(raw: bytes) -> str | None:
    """Return whose ``backup_meta.json`` this is: :data:`LOGICAL`, :data:`MILVUS_BACKUP` or ``None``.

    ``None``: not a JSON object, or one Go's ``json.Unmarshal`` into ``BackupInfo`` refuses, or of another
    ``format``: nobody's we know.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    fmt = doc.get("format")
    if fmt == OUR_FORMAT:
        return LOGICAL
    try:
        info = BackupInfo.from_go_json(doc)
    except GoJsonError:
        return None
    return MILVUS_BACKUP if info.format in MB_FORMATS else None


def _marker_kind(storage: Storage, name: str) -> str | None:
    try:
        raw = storage.get_bytes(f"{name}/meta/marker.json")[:65536]
        body = json.loads(raw)
    except (StorageConnectionError, StorageAccessError):
        raise  # the storage failed, not this folder
    except (StorageError, ValueError, UnicodeDecodeError, RecursionError):
        return None  # gone since the listing, a link out of the root, not JSON: not our marker
    if not isinstance(body, dict) or body.get("format") != OUR_FORMAT:
        return None
    return PHYSICAL if body.get("kind") == PHYSICAL else LOGICAL


@dataclass(frozen=True)
class Sniffed:
    """What :func:`sniff_folder` found.

    :param kind: one of :data:`KINDS`, or ``None`` (nobody's we know).
    :param committed: ``backup_meta.json`` exists.
    :param sidecar: our sidecar exists.
    :param mb_traces: Milvus Backup's other meta files or binlogs exist.
    """

    kind: str | None
    committed: bool
    sidecar: bool
    mb_traces: bool


def sniff_folder(storage: Storage, name: str, objects: list[ObjectInfo] | None = None) -> Sniffed:
    """Return the kind of folder ``name`` by what it holds (reads ``backup_meta.json`` and the marker).

    :param storage: the backup storage.
    :param name: the folder (a valid backup name).
    :param objects: its objects, if already listed.
    """
    validate_backup_name(name)
    objs = list(storage.list(f"{name}/")) if objects is None else objects
    keys = {o.key for o in objs}
    has_sidecar = layout.sidecar_key(name) in keys
    mb_traces = any(layout.meta_key(name, f) in keys for f in _MB_OTHER) or any(
        k.startswith(layout.binlogs_prefix(name)) for k in keys
    )
    bm = layout.meta_key(name, layout.BACKUP_META)
    if bm in keys:
        try:
            with storage.open_read(bm) as fh:
                raw = fh.read(SNIFF_BYTES + 1)
        except (StorageConnectionError, StorageAccessError):
            raise
        except StorageError:  # gone since the listing, or a link out of the root: ownership decides
            raw = None
        if raw is not None:
            kind = sniff_backup_meta(raw) if len(raw) <= SNIFF_BYTES else None
            if kind == MILVUS_BACKUP and has_sidecar:
                kind = PHYSICAL
            elif kind == MILVUS_BACKUP and not mb_traces:
                # A lone backup_meta.json: Milvus Backup cannot read it either (its Read needs full_meta.json
                # or collection_meta.json); nobody's we know, as before.
                kind = None
            if kind is None and (has_sidecar or mb_traces) and _marker_kind(storage, name) != LOGICAL:
                # A broken backup_meta.json in a folder of Milvus Backup's shape: listed as such (corrupt).
                kind = PHYSICAL if has_sidecar else MILVUS_BACKUP
            return Sniffed(kind, True, has_sidecar, mb_traces)
    marker = _marker_kind(storage, name) if f"{name}/meta/marker.json" in keys else None
    if marker is not None:
        return Sniffed(marker, False, has_sidecar, mb_traces)
    if has_sidecar:
        return Sniffed(PHYSICAL, False, True, mb_traces)
    if mb_traces:
        return Sniffed(MILVUS_BACKUP, False, False, True)
    return Sniffed(None, False, False, False)


def describe_meta_error(name: str, e: ManifestError) -> dict[str, Any]:
    """Return the listing fields of a physical / Milvus Backup backup whose meta cannot be read."""
    return {"state": "corrupt", "reason": str(e), "error": str(e)}
