"""Binlog import units of a physical backup, and the raw ``Import`` RPC that imports one (as Milvus Backup).

:func:`import_units` is pure: it groups a collection's segments into the units one import job reads, by the
layout Milvus Backup writes (:mod:`.layout`):

* current format (segments with a ``group_id``): one unit per group folder
  (``insert_log/<coll>/<part>/<group>/``, with ``delta_log/<coll>/<part>/<group>/`` when it holds logs);
* v0.4/v0.5 (``group_id`` 0, no group folder): one unit per partition folder;
* L0 segments (partition ``-1``, delta logs only): one unit per segment, imported with ``l0_import``.

:func:`submit` calls the ``Import`` RPC itself: pymilvus' ``do_bulk_insert`` forwards only ``bucket``,
``backup``, ``sep`` and ``nullkey`` and silently drops ``skip_disk_quota_check``, ``end_ts``, ``l0_import``
and ``storage_version``, the options Milvus Backup passes. :func:`job_state` and :func:`list_jobs` are
``GetImportState`` / ``ListImportTasks`` (polling, and adopting a job after a crash).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.physical import layout

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.physical.mbmodel import CollectionBackupInfo, SegmentBackupInfo


@dataclass(frozen=True)
class ImportUnit:
    """One binlog import job's worth of a backup: a group folder, a partition folder, or an L0 segment.

    :param key: the unit's id, relative to the backup's folder (its insert folder, or an L0 segment's delta
        folder, without the trailing ``/``); the restore status keys its job by it.
    :param partition_id: the source partition (``-1`` for L0).
    :param partition_name: the partition to import into (``""`` for L0: every partition).
    :param insert_dir: the insert log folder, relative to the backup storage's root (``""`` for L0).
    :param delta_dir: the delta log folder, or ``""`` when the unit has no delta logs.
    :param rows: inserted rows of its segments (deletes not subtracted).
    :param segments: the segment ids it holds.
    :param binlogs: its binlog objects (key relative to the storage's root, size the meta records).
    :param l0: an L0 segment.
    :param storage_version: the segments' storage version (0: not recorded).
    """

    key: str
    partition_id: int
    partition_name: str
    insert_dir: str
    delta_dir: str
    rows: int
    segments: tuple[int, ...]
    binlogs: tuple[layout.BinlogObject, ...]
    l0: bool = False
    storage_version: int = 0

    @property
    def size(self) -> int:
        """Return the bytes of its binlogs."""
        return sum(b.size for b in self.binlogs)


def _rel(name: str, path: str) -> str:
    """Return a storage key relative to the backup's folder (``<name>/x`` -> ``x``)."""
    prefix = f"{name}/"
    return (path[len(prefix) :] if path.startswith(prefix) else path).rstrip("/")


def import_units(name: str, coll: CollectionBackupInfo) -> list[ImportUnit]:
    """Return the import units of one collection of backup ``name`` (see the module docstring). Pure.

    Units come in partition order, then group order; L0 units last (Milvus Backup imports them after the
    partitions' data, so that their deletes apply to it).
    """
    names = {p.partition_id: p.partition_name for p in coll.partition_backups}
    groups: dict[tuple[int, int], list[SegmentBackupInfo]] = {}
    for part in coll.partition_backups:
        for seg in part.segment_backups:
            if seg.is_l0 or seg.partition_id == layout.ALL_PARTITION_ID:
                continue
            groups.setdefault((seg.partition_id, seg.group_id), []).append(seg)
    out: list[ImportUnit] = []
    for (pid, _gid), segs in groups.items():
        insert_dir, delta_dir = layout.import_dirs(name, segs[0])
        binlogs = tuple(b for s in segs for b in layout.segment_binlogs(name, s))
        has_delta = any(b.field_id is None for b in binlogs)
        out.append(
            ImportUnit(
                key=_rel(name, insert_dir),
                partition_id=pid,
                partition_name=names.get(pid, ""),
                insert_dir=insert_dir,
                delta_dir=delta_dir if has_delta else "",
                rows=sum(s.num_of_rows for s in segs),
                segments=tuple(sorted(s.segment_id for s in segs)),
                binlogs=binlogs,
                storage_version=max((s.storage_version for s in segs), default=0),
            )
        )
    l0s = list(coll.l0_segments) + [
        s for p in coll.partition_backups for s in p.segment_backups if s.is_l0 or s.partition_id == -1
    ]
    for seg in sorted(l0s, key=lambda s: s.segment_id):
        delta_dir = layout.delta_log_dir(name, seg.collection_id, seg.partition_id, None, seg.segment_id)
        out.append(
            ImportUnit(
                key=_rel(name, delta_dir),
                partition_id=seg.partition_id,
                partition_name=""
                if seg.partition_id == layout.ALL_PARTITION_ID
                else names.get(seg.partition_id, ""),
                insert_dir="",
                delta_dir=delta_dir,
                rows=0,
                segments=(seg.segment_id,),
                binlogs=tuple(layout.segment_binlogs(name, seg)),
                l0=True,
                storage_version=seg.storage_version,
            )
        )
    return out


def import_options(unit: ImportUnit, end_ts: int) -> dict[str, str]:
    """Return the options of a unit's import job, as Milvus Backup passes them. Pure.

    :param end_ts: the backup's timestamp: rows and deletes after it are not imported.
    """
    opts = {"backup": "true", "skip_disk_quota_check": "true"}
    if end_ts:
        opts["end_ts"] = str(end_ts)
    if unit.l0:
        opts["l0_import"] = "true"
    if unit.storage_version:
        opts["storage_version"] = str(unit.storage_version)
    return opts


def import_files(insert_path: str, delta_path: str) -> list[str]:
    """Return the ``files`` of a binlog import: ``[insert folder, delta folder or ""]`` (ending in ``/``)."""
    return [insert_path, delta_path]


# ----------------------------------------------------------------------------------------- the RPCs
def _stub(client: MilvusClient) -> tuple[Any, Any]:
    from pymilvus.client.call_context import _api_level_md

    stub = client._get_connection()._stub  # noqa: SLF001 - the raw RPC keeps every option
    return stub, _api_level_md(client._generate_call_context())  # noqa: SLF001


def submit(
    client: MilvusClient,
    collection: str,
    files: list[str],
    options: dict[str, str],
    *,
    partition: str = "",
    db_name: str = "",
) -> int:
    """Start one binlog import job through the raw ``Import`` RPC; return its job (task) id.

    :raises MilvusException: Milvus refused it (the message is Milvus').
    """
    from pymilvus.client.utils import check_status
    from pymilvus.grpc_gen import common_pb2, milvus_pb2

    stub, md = _stub(client)
    req = milvus_pb2.ImportRequest(
        collection_name=collection,
        partition_name=partition,
        files=files,
        options=[common_pb2.KeyValuePair(key=k, value=v) for k, v in options.items()],
        db_name=db_name,
    )
    resp = stub.Import(req, metadata=md)
    check_status(resp.status)
    if not resp.tasks:
        from pymilvus.exceptions import MilvusException

        raise MilvusException(message=f"Import of {files} into {collection} returned no job id")
    return int(resp.tasks[0])


@dataclass(frozen=True)
class JobState:
    """An import job's state: ``pending``, ``running``, ``completed`` or ``failed`` (with ``reason``)."""

    state: str
    rows: int
    progress: int
    reason: str
    files: tuple[str, ...] = ()


_STATES = {0: "pending", 1: "failed", 2: "running", 3: "running", 4: "running", 5: "running", 6: "completed"}


def _state_of(resp: Any) -> JobState:
    infos = {kv.key: kv.value for kv in resp.infos}
    state = _STATES.get(int(resp.state), "running")
    if int(resp.state) == 7:  # ImportFailedAndCleaned
        state = "failed"
    try:
        progress = int(infos.get("progress_percent", "0") or 0)
    except ValueError:
        progress = 0
    files = tuple(f for f in infos.get("files", "").split(",") if f)
    return JobState(state, int(resp.row_count), progress, infos.get("failed_reason", ""), files)


def job_state(client: MilvusClient, job_id: int) -> JobState:
    """Return the state of an import job (``GetImportState``)."""
    from pymilvus.client.utils import check_status
    from pymilvus.grpc_gen import milvus_pb2

    stub, md = _stub(client)
    resp = stub.GetImportState(milvus_pb2.GetImportStateRequest(task=int(job_id)), metadata=md)
    check_status(resp.status)
    return _state_of(resp)


def list_jobs(client: MilvusClient, collection: str, db_name: str = "") -> dict[int, JobState]:
    """Return the import jobs Milvus knows of a collection, by id (``ListImportTasks``)."""
    from pymilvus.client.utils import check_status
    from pymilvus.grpc_gen import milvus_pb2

    stub, md = _stub(client)
    resp = stub.ListImportTasks(
        milvus_pb2.ListImportTasksRequest(collection_name=collection, db_name=db_name), metadata=md
    )
    check_status(resp.status)
    return {int(t.id): _state_of(t) for t in resp.tasks}


def adoptable(jobs: dict[int, JobState], files: Iterable[str]) -> int | None:
    """Return the newest job (not failed) that imports exactly these ``files``, if any. Pure."""
    want = tuple(f for f in files if f)
    found = [i for i, j in jobs.items() if j.state != "failed" and tuple(f for f in j.files if f) == want]
    return max(found) if found else None
