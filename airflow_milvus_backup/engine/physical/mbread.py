"""Read a backup in Milvus Backup's format from a :class:`~..storage.Storage`, as Milvus Backup reads it.

Milvus Backup (``internal/meta/meta.go``, ``Read``) reads ``full_meta.json`` when it exists, else the four
level files (``backup_meta``, ``collection_meta``, ``partition_meta``, ``segment_meta``), which it joins
into the tree by collection and partition id, summing the sizes (``levelToTree``). A backup exists when
``backup_meta.json`` does (``Exist``). Every file is read bounded (:data:`MAX_META_BYTES`); each error names
the object.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.errors import (
    BackupNotFoundError,
    IncompleteBackupError,
    ManifestError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.physical import layout
from airflow_milvus_backup.engine.physical.gojson import GoJsonError, GoStruct
from airflow_milvus_backup.engine.physical.mbmodel import (
    BackupInfo,
    BackupTaskStateCode,
    CollectionLevelBackupInfo,
    PartitionLevelBackupInfo,
    SegmentBackupInfo,
    SegmentLevelBackupInfo,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

#: No meta file is read past this size (a 1M-binlog backup's full_meta.json is about 150 MiB).
MAX_META_BYTES = 1024 * 1024 * 1024

#: Formats of ``BackupInfo.format`` this package reads (``""`` is the binlog format).
BINLOG_FORMAT = ""
SNAPSHOT_FORMAT = "snapshot"


def read_meta_bytes(storage: Storage, name: str, meta_file: str, *, limit: int = MAX_META_BYTES) -> bytes:
    """Return one meta file's bytes, bounded.

    :raises StorageNotFoundError: it does not exist.
    :raises ManifestError: it is bigger than ``limit``.
    """
    key = layout.meta_key(name, meta_file)
    with storage.open_read(key) as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise ManifestError(
            f"Meta file {key!r} of backup {name!r} is bigger than {limit >> 20} MiB: not read. "
            "The backup cannot be trusted: restore another one."
        )
    return raw


def parse_meta(raw: bytes, cls: type[GoStruct], key: str, name: str) -> GoStruct:
    """Parse one meta file as Go's ``json.Unmarshal`` into ``cls`` would.

    :raises ManifestError: not JSON, not an object, or a value of the wrong type (object and path named).
    """
    try:
        return cls.from_go_json(raw, f"Meta file {key!r} of backup {name!r}")
    except GoJsonError as e:
        raise ManifestError(f"{e}. The backup cannot be trusted: restore another one.") from None
    except UnicodeDecodeError:
        raise ManifestError(f"Meta file {key!r} of backup {name!r} is not UTF-8 text.") from None


def _read(storage: Storage, name: str, meta_file: str, cls: type[GoStruct]) -> GoStruct:
    key = layout.meta_key(name, meta_file)
    try:
        raw = read_meta_bytes(storage, name, meta_file)
    except StorageNotFoundError:
        raise ManifestError(
            f"Backup {name!r} in {storage.description} lacks its meta file {key!r}: it is incomplete or was "
            "damaged. Restore another backup."
        ) from None
    return parse_meta(raw, cls, key, name)


def level_to_tree(
    top: BackupInfo,
    colls: CollectionLevelBackupInfo,
    parts: PartitionLevelBackupInfo,
    segs: SegmentLevelBackupInfo,
) -> BackupInfo:
    """Join the level files into the tree, as Milvus Backup's ``levelToTree`` does (sizes summed)."""
    by_part: dict[tuple[int, int], list[SegmentBackupInfo]] = defaultdict(list)
    for s in segs.infos:
        by_part[(s.collection_id, s.partition_id)].append(s)
    by_coll = defaultdict(list)
    for p in parts.infos:
        ss = tuple(by_part[(p.collection_id, p.partition_id)])
        by_coll[p.collection_id].append(replace(p, segment_backups=ss, size=sum(s.size for s in ss)))
    out = []
    for c in colls.infos:
        ps = tuple(by_coll[c.collection_id])
        out.append(replace(c, partition_backups=ps, size=sum(p.size for p in ps)))
    return replace(top, collection_backups=tuple(out), size=sum(c.size for c in out))


def read_top(storage: Storage, name: str) -> BackupInfo:
    """Return ``backup_meta.json`` alone (no collections): what listing a backup needs.

    :raises BackupNotFoundError: nothing is stored under that name.
    :raises IncompleteBackupError: objects exist but no ``backup_meta.json``.
    :raises ManifestError: it does not parse.
    """
    key = layout.meta_key(name, layout.BACKUP_META)
    try:
        raw = read_meta_bytes(storage, name, layout.BACKUP_META)
    except StorageNotFoundError:
        if next(iter(storage.list(f"{name}/")), None) is not None:
            raise IncompleteBackupError(
                f"Backup {name!r} in {storage.description} has no {layout.BACKUP_META}: it was interrupted "
                "(or is being written) and is not a complete backup."
            ) from None
        raise BackupNotFoundError(
            f"Backup {name!r} does not exist in {storage.description}; list the backups to see the names."
        ) from None
    top = parse_meta(raw, BackupInfo, key, name)
    assert isinstance(top, BackupInfo)
    return top


def read_meta(storage: Storage, name: str) -> BackupInfo:
    """Return a Milvus-Backup-format backup's whole meta tree, read as Milvus Backup reads it.

    ``backup_meta.json`` must exist (else the backup does not, for Milvus Backup either); then
    ``full_meta.json`` when present, else the level files.

    :raises BackupNotFoundError: nothing is stored under that name.
    :raises IncompleteBackupError: no ``backup_meta.json``.
    :raises ManifestError: a meta file is missing, too big or does not parse (the object named).
    """
    top = read_top(storage, name)
    if storage.exists(layout.meta_key(name, layout.FULL_META)):
        full = _read(storage, name, layout.FULL_META, BackupInfo)
        assert isinstance(full, BackupInfo)
        return full
    colls = _read(storage, name, layout.COLLECTION_META, CollectionLevelBackupInfo)
    if top.format == SNAPSHOT_FORMAT:
        parts, segs = PartitionLevelBackupInfo(), SegmentLevelBackupInfo()
    else:
        parts = _read(storage, name, layout.PARTITION_META, PartitionLevelBackupInfo)  # type: ignore[assignment]
        segs = _read(storage, name, layout.SEGMENT_META, SegmentLevelBackupInfo)  # type: ignore[assignment]
    assert isinstance(colls, CollectionLevelBackupInfo)
    assert isinstance(parts, PartitionLevelBackupInfo)
    assert isinstance(segs, SegmentLevelBackupInfo)
    return level_to_tree(top, colls, parts, segs)


@dataclass(frozen=True)
class MetaState:
    """What ``backup_meta.json`` says about a backup's state.

    :param state: ``complete``, ``in_progress`` or ``partial`` (the listing's words).
    :param reason: why it is not complete.
    """

    state: str
    reason: str | None = None


def meta_state(top: BackupInfo) -> MetaState:
    """Decide a present backup's state from its ``backup_meta.json``.

    Current Milvus Backup writes no state (``state_code`` 0) and writes the file only once the backup is
    done: complete. v0.4/v0.5 wrote ``state_code`` (``BACKUP_SUCCESS`` = 2 when done); ``EXECUTING`` or
    ``INITIAL`` there means it is being written, ``FAIL``/``TIMEOUT`` that it failed.
    """
    code = top.state_code
    if not top.legacy and code == 0:
        return MetaState("complete")
    if code == BackupTaskStateCode.BACKUP_SUCCESS:
        return MetaState("complete")
    if code in (BackupTaskStateCode.BACKUP_INITIAL, BackupTaskStateCode.BACKUP_EXECUTING):
        return MetaState("in_progress", f"Milvus Backup recorded state_code {code} (not done yet)")
    label = BackupTaskStateCode(code).name if code in {c.value for c in BackupTaskStateCode} else str(code)
    detail = f": {top.error_message}" if top.error_message else ""
    return MetaState("partial", f"Milvus Backup recorded {label}{detail}")
