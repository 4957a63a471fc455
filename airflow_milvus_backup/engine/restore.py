"""Restore collections from a backup: by insert or by Milvus bulk import, resumable, with a persisted status.

One restore (:meth:`RestoreEngine.restore`) goes:

1. **plan** (:meth:`RestoreEngine._plan`): read the manifest, resolve the selection and the target names
   (``collection_suffix``, ``collection_renames``; the target database is ``target_db_name``, else the
   connection's database ``MilvusParams.db_name``, never implicitly the source's), connect to the target
   Milvus and check everything *before anything is touched*: conflicting options, two sources onto one target,
   names that are not in the backup, the manifest's own names and keys (Milvus name rule, no ``..``), targets
   that exist, ``skip_create`` schema compatibility field by field, field types and primary keys the server
   can hold, every data object's presence and size (one listing of ``<backup>/data/``), and (bulk import)
   every object's sha256.
2. **status**: ``<backup>/restores/<restore_id>.json`` in the backup's storage, written at once and after
   each step and each data file (see *Status contract* below).
3. **setup**: missing databases (with the captured properties), collections with the exact captured schema
   (functions, partition key and its partition count, nullable and default values, dynamic field,
   consistency level, shards, properties), partitions, indexes. If this step fails, the collections and
   databases it created are dropped again; when that leaves Milvus as it was and the restore is a new one,
   its status object is deleted too (a failed restore that changed nothing leaves no state behind).
4. **data**: *insert* - each data file is downloaded to a temporary file, its sha256 and size are checked
   against the manifest before any of its rows is inserted, then it is read in record batches (bounded
   memory) and inserted in batches, partitions and collections in parallel; or *bulk import* - one import
   job per data file (Milvus reads the Parquet straight from the backup's bucket), polled until done.
5. **finish**: flush, temporary properties removed, load state (release + load after a bulk import so the
   imported rows are visible), aliases (``alias + collection_suffix``; an alias taken on the target is
   reported and never moved), status ``success``.

Primary keys are kept. For ``auto_id`` collections the engine sets the collection property
``allow_insert_auto_id`` while inserting (Milvus Lite and Milvus 2.6+) and removes it afterwards; on servers
without it (e.g. Milvus 2.3.5, whose bulk import refuses an auto_id key column too) the restore is refused
with :class:`UnsupportedError` unless ``accept_new_primary_keys=True``, which lets Milvus generate new keys.
BM25 function outputs are not stored in a backup: Milvus regenerates them on insert.

Status contract (retention relies on it): the status object is a :class:`~.lease.Lease` body with ``host``,
``pid``, ``ttl`` and ``heartbeat_at``, plus ``state`` (``executing``, ``success`` or ``failed``). While a
restore runs in a process, a heartbeat thread refreshes it every ``ttl / 4`` seconds, so
``lease.is_alive(body)`` tells a running restore from a dead one. A restore returned by
:meth:`RestoreEngine.submit` whose import jobs still run is *detached*: ``pid`` is ``None`` and ``ttl`` is
``detached_ttl``; every :meth:`RestoreEngine.poll` refreshes the heartbeat. A backup must not be deleted
while any body under ``<backup>/restores/`` (``lease.read_leases``) has ``state == "executing"`` and
``lease.is_alive(body)``.

Resume: run the restore again with the same arguments (the same ``restore_id``, or none: the engine then
picks the newest failed or dead restore with identical arguments). Data files recorded ``done`` are skipped;
every other file is inserted again, each batch's primary keys deleted (in its partition) just before the
batch is inserted, so the end result is exactly the backup's rows. Acknowledged inserts are durable in
Milvus' log, so no flush per file is needed, and per-file progress is written at most every
``status_interval`` seconds (a ``done`` not written yet only costs the file being redone). With newly
generated keys an interrupted collection cannot be repaired row by row: if the restore created it, it is
dropped and restored again from its first file. Import jobs already submitted are polled again rather than
submitted twice (jobs whose id was never recorded are found by file name).

Server quirks handled here: Milvus Lite has no bulk import, reports index names as the field name and no
build params, loads a new collection by itself (an unloaded source is released again; the report says so),
ignores the partition in ``delete`` (a primary key is unique per collection anyway); Milvus 2.3.5 ignores
``nullable`` (refused here), has no ``describe_database``, has one vector field per collection, and shows
bulk-imported rows only after release + load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from airflow_milvus_backup.engine import arguments as checks
from airflow_milvus_backup.engine import integrity, readers
from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.arrow import META_FIELD
from airflow_milvus_backup.engine.client import MilvusParams, connect, is_connection_failure, milvus_errors
from airflow_milvus_backup.engine.errors import (
    BackupDeletedError,
    CollectionNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    MilvusBackupError,
    MilvusConnectionError,
    NotFoundError,
    RestoreError,
    RowRejectedError,
    SchemaMismatchError,
    StorageConnectionError,
    StorageNotFoundError,
    TargetExistsError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.failures import (
    FailureKind,
    classify,
    message_of,
    misfit_field,
    rejected_rows_message,
    retry_worthy,
)
from airflow_milvus_backup.engine.filters import grammar_of, pk_in
from airflow_milvus_backup.engine.indexes import create_index
from airflow_milvus_backup.engine.insert import BatchInserter
from airflow_milvus_backup.engine.names import (
    DEFAULT_DB,
    map_target,
    restore_database,
    select_collections,
    split_qualified,
    validate_backup_name,
    validate_milvus_name,
    validate_renames,
    validate_suffix,
)
from airflow_milvus_backup.engine.progress import Progress, ProgressCallback, human_bytes
from airflow_milvus_backup.engine.schema import build_schema, capture_field, exported_fields, primary_field
from airflow_milvus_backup.engine.storage import file_sha256, validate_key

if TYPE_CHECKING:
    import pyarrow as pa
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger("airflow_milvus_backup.engine.restore")

METHODS = ("auto", "insert", "bulk_import")
EXECUTING, SUCCESS, FAILED = "executing", "success", "failed"
RESTORE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The collection property that lets explicit primary keys into an auto_id collection (Milvus Lite, Milvus
#: 2.6+).
AUTO_ID_PROPERTY = "allow_insert_auto_id"
VECTOR_TYPES = {
    "FLOAT_VECTOR",
    "BINARY_VECTOR",
    "FLOAT16_VECTOR",
    "BFLOAT16_VECTOR",
    "INT8_VECTOR",
    "SPARSE_FLOAT_VECTOR",
}
#: Field types whose Parquet columns (as this package writes them) Milvus' bulk import reads as they are.
BULK_IMPORT_TYPES = {
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FLOAT",
    "DOUBLE",
    "VARCHAR",
    "JSON",
    "ARRAY",
    "FLOAT_VECTOR",
    "BINARY_VECTOR",
}
_LITE_UNSUPPORTED = {"BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR"}
_TYPE_SINCE = {
    "JSON": (2, 2),
    "ARRAY": (2, 3),
    "SPARSE_FLOAT_VECTOR": (2, 4),
    "FLOAT16_VECTOR": (2, 4),
    "BFLOAT16_VECTOR": (2, 4),
    "INT8_VECTOR": (2, 6),
    "GEOMETRY": (2, 6),
    "TIMESTAMPTZ": (2, 6),
}
_DB_INFO_KEYS = {"name", "id", "db_id", "dbid", "created_timestamp", "db_name"}
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_DELETE_CHUNK = 4096


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def new_restore_id() -> str:
    """Return a new, time-ordered restore id such as ``r20260101T020000_1a2b3c4d``."""
    return f"r{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"


def status_key(backup_name: str, restore_id: str) -> str:
    """Return the key of a restore's status object, relative to the storage root."""
    return f"{validate_backup_name(backup_name)}/{mf.RESTORES}{restore_id}.json"


def _qualified(db: str, name: str) -> str:
    return f"{db}.{name}"


def _milvus_exception(e: BaseException) -> bool:
    from pymilvus.exceptions import MilvusException

    return isinstance(e, MilvusException)


def _transient(e: BaseException) -> bool:
    """Retry rate limits, memory back-pressure and dropped connections; never a refused request or login."""
    if isinstance(e, (MilvusConnectionError, StorageConnectionError)):
        return bool(getattr(e, "retryable", True))  # not a refused login
    return retry_worthy(e)


# ------------------------------------------------------------------------------------------------ options
@dataclass
class RestoreOptions:
    """The options of one restore (see :meth:`RestoreEngine.restore` for each one's meaning)."""

    collection_suffix: str = ""
    collection_renames: dict[str, str] | None = None
    target_db_name: str | None = None
    drop_existing: bool = False
    skip_create: bool = False
    meta_only: bool = False
    restore_index: bool = True
    use_auto_index: bool = False
    auto_index_fallback: bool = False
    restore_aliases: bool = True
    restore_load_state: bool = True
    method: str = "auto"
    accept_new_primary_keys: bool = False
    bulk_import_bucket: str | None = None
    bulk_import_root: str | None = None

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> RestoreOptions:
        """Return options from keyword arguments; an unknown name is an :class:`InvalidArgumentError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidArgumentError(
                f"Unknown restore option(s) {unknown}; known options: {sorted(known)}."
            )
        opts = cls(**{k: v for k, v in options.items() if k in known})
        opts.validate()
        return opts

    def validate(self) -> None:
        """Check the options and their combinations; normalise suffix and renames."""
        self.collection_suffix = validate_suffix(self.collection_suffix)
        self.collection_renames = validate_renames(self.collection_renames) or None
        if self.target_db_name in ("", None):
            self.target_db_name = None
        else:
            validate_milvus_name(self.target_db_name, "database")
        for flag in (
            "drop_existing",
            "skip_create",
            "meta_only",
            "restore_index",
            "use_auto_index",
            "auto_index_fallback",
            "restore_aliases",
            "restore_load_state",
            "accept_new_primary_keys",
        ):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidArgumentError(
                    f"Restore option {flag} must be True or False, got {getattr(self, flag)!r}."
                )
        if self.method not in METHODS:
            raise InvalidArgumentError(f"Invalid restore method {self.method!r}: use one of {list(METHODS)}.")
        if self.drop_existing and self.skip_create:
            raise InvalidArgumentError(
                "drop_existing=True and skip_create=True contradict each other: drop_existing replaces the "
                "target collections, skip_create loads the rows into them as they are. Choose one."
            )
        if self.meta_only and self.skip_create:
            raise InvalidArgumentError(
                "meta_only=True with skip_create=True would do nothing: meta_only recreates the collections "
                "without rows, skip_create only loads rows into existing ones. Choose one."
            )
        if self.use_auto_index and not self.restore_index:
            raise InvalidArgumentError(
                "use_auto_index=True needs restore_index=True (it builds AUTOINDEX instead of the backed-up "
                "indexes; restore_index=False builds none)."
            )
        if self.bulk_import_root:
            self.bulk_import_root = self.bulk_import_root.strip("/")

    def fingerprint_fields(self) -> dict[str, Any]:
        """Return the options that decide what a restore does (all of them: they are the arguments)."""
        return asdict(self)


# ------------------------------------------------------------------------------------------------ server
@dataclass(frozen=True)
class ServerInfo:
    """What the target Milvus is and can do, from its version string.

    :param version: as ``get_server_version`` returns it (``v2.3.5-lite``, ``milvus_lite-3.2.2``, ``2.5.4``).
    :param lite: Milvus Lite (embedded or ``milvus-lite server``).
    :param numbers: the Milvus version, ``None`` when unknown (assumed recent).
    """

    version: str
    lite: bool
    numbers: tuple[int, int, int] | None

    @classmethod
    def detect(cls, version: str, lite_uri: bool = False) -> ServerInfo:
        """Return the server's description from its version string."""
        v = str(version or "")
        lite = lite_uri or v.lower().startswith("milvus_lite")
        m = None if lite else _VERSION_RE.search(v)
        nums = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None
        return cls(v, lite, nums)

    @property
    def label(self) -> str:
        """Return ``Milvus Lite milvus_lite-3.2.2`` or ``Milvus v2.3.5``."""
        return f"Milvus Lite {self.version}" if self.lite else f"Milvus {self.version or '(unknown version)'}"

    def at_least(self, major: int, minor: int) -> bool:
        """Return whether the server is Milvus ``major.minor`` or newer (Lite and unknown count as newest)."""
        return self.numbers is None or self.numbers[:2] >= (major, minor)

    @property
    def keeps_auto_id(self) -> bool:
        """Return whether explicit keys can go into an auto_id collection (``allow_insert_auto_id``)."""
        return self.lite or self.at_least(2, 6)

    @property
    def bulk_import(self) -> bool:
        """Return whether the server has bulk import from object storage."""
        return not self.lite and self.at_least(2, 2)

    def field_problem(self, f: dict[str, Any]) -> str | None:
        """Return why this server cannot hold a captured field, or ``None``."""
        t = f["type"]
        if self.lite and t in _LITE_UNSUPPORTED:
            return f"Milvus Lite has no {t} fields"
        since = _TYPE_SINCE.get(t)
        if since and not self.at_least(*since):
            return f"{t} fields need Milvus {since[0]}.{since[1]} or newer"
        if f.get("nullable") and not self.at_least(2, 5):
            return "nullable fields need Milvus 2.5 or newer (older servers silently ignore nullable)"
        if "default_value" in f and not self.at_least(2, 4):
            return "default values need Milvus 2.4 or newer"
        if f.get("is_function_output") and not self.at_least(2, 5):
            return "function output fields (BM25) need Milvus 2.5 or newer"
        return None


# ------------------------------------------------------------------------------------------------ status
class _StatusLease(leases.Lease):
    """A lease whose body is the restore status, written under one lock (heartbeat and updates).

    It is written only while the backup's manifest exists: a backup deleted under a running restore is never
    re-created by its status (checked before and after each write; :mod:`~.readers`).
    """

    def __init__(
        self, storage: Storage, key: str, body: dict[str, Any], ttl: float, lock: threading.RLock
    ) -> None:
        super().__init__(storage, key, body, ttl)
        self._lock = lock

    def write(self, exclusive: bool = False) -> bool:  # noqa: D102
        backup, rid = str(self.body["backup_name"]), str(self.body["restore_id"])
        with self._lock:
            readers.check_not_deleted(self.storage, backup, rid)
            stored = super().write(exclusive)
            try:
                readers.check_not_deleted(self.storage, backup, rid)  # deleted while we wrote
            except BackupDeletedError:
                self.storage.delete([self.key])
                raise
            return stored


class _Status:
    """The persisted status of one restore, shared by the worker threads."""

    def __init__(
        self, storage: Storage, key: str, body: dict[str, Any], ttl: float, interval: float = 0.0
    ) -> None:
        self.lock = threading.RLock()
        self.lease = _StatusLease(storage, key, body, ttl, self.lock)
        self.body = self.lease.body
        self.interval = interval
        self._last = 0.0
        #: Set when a failed setup was undone completely: the status object is deleted instead of kept.
        self.untouched = False

    @property
    def id(self) -> str:
        return str(self.body["restore_id"])

    def save(self, force: bool = True) -> None:
        """Persist the status (with a fresh heartbeat); unforced saves happen at most every ``interval`` s.

        An unforced change not written yet goes out with the next save or heartbeat; a restore resumed
        after a crash redoes every file not recorded ``done``, so losing one costs time, never rows.
        """
        with self.lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return
            self._last = now
            self.lease.write()

    def start(self, exclusive: bool) -> None:
        """Write the status for the first time and start the heartbeat."""
        if not self.lease.write(exclusive=exclusive) and exclusive:
            raise RestoreError(
                f"Restore {self.id} already has a status object ({self.lease.key}); another process started "
                "it at the same moment. Use another restore_id."
            )
        self.lease.start_heartbeat()

    def stop(self) -> None:
        """Stop the heartbeat; keep the status object."""
        self.lease.release(delete=False)

    def discard(self) -> None:
        """Stop the heartbeat and delete the status object (the restore left nothing to resume or report)."""
        self.lease.release(delete=True)

    def detach(self, ttl: float) -> None:
        """Mark the restore as detached (no owning process; alive while polled) and persist it."""
        with self.lock:
            self.body["detached"] = True
            self.body["pid"] = None
            self.body["ttl"] = ttl
        self.save()

    def fail(self, exc: BaseException) -> None:
        """Record a failure (state ``failed``, the error message) and persist it; never raises."""
        if isinstance(exc, BackupDeletedError):
            return  # no status is kept for a deleted backup
        msg = str(exc) or type(exc).__name__
        with self.lock:
            self.body["state"] = FAILED
            self.body["finished_at"] = _now()
            self.body["error"] = msg
            self.body.setdefault("errors", []).append(msg)
            for c in self.body["collections"]:
                if c["state"] not in (SUCCESS,):
                    c["state"] = FAILED
        try:
            self.save()
        except Exception as e:  # noqa: BLE001 - the original error matters more
            log.warning("Could not record the failure of restore %s: %s", self.id, e)


def _totals(body: dict[str, Any]) -> dict[str, Any]:
    cols = body["collections"]
    return {
        "collections": len(cols),
        "rows_expected": sum(c["rows_expected"] for c in cols),
        "rows_restored": sum(c["rows_restored"] for c in cols),
        "files": sum(c["files_total"] for c in cols),
        "files_done": sum(c["files_done"] for c in cols),
    }


def _public(body: dict[str, Any], *, with_files: bool = False) -> dict[str, Any]:
    """Return a JSON-serialisable copy of a status body for callers (per-file detail only on request)."""
    out = json.loads(json.dumps(body, default=str))
    out.pop("_key", None)
    out["totals"] = _totals(out)
    for c in out["collections"]:
        files = c.pop("files", {})
        if with_files:
            c["files"] = files
        if out.get("method") == "bulk_import" and files:
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


# ------------------------------------------------------------------------------------------------ plan
@dataclass
class _Target:
    """One collection to restore: where from, where to, and how."""

    meta: dict[str, Any]
    db: str
    name: str
    action: str  # create | replace | existing | resume | done
    keep_keys: bool
    auto_id_property: bool
    entry: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return _qualified(self.meta["db_name"], self.meta["name"])

    @property
    def target(self) -> str:
        return _qualified(self.db, self.name)

    @property
    def partition_key(self) -> bool:
        return any(f.get("is_partition_key") for f in self.meta["fields"])

    @property
    def pk(self) -> str:
        return str(primary_field(self.meta)["name"])

    def files(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for part in self.meta.get("data", []):
            for f in part.get("files", []):
                yield part, f


@dataclass
class _Plan:
    backup: str
    manifest: dict[str, Any]
    opts: RestoreOptions
    server: ServerInfo
    targets: list[_Target]
    method: str
    method_reason: str
    databases: dict[str, dict[str, str]]  # target databases to create -> properties
    fingerprint: str
    arguments: dict[str, Any]
    restore_id: str
    prior: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None


def _partition_key_count(meta: dict[str, Any]) -> int | None:
    """Return the number of partitions to ask for on a partition-key collection.

    Milvus names them ``_default_N``; Milvus Lite always makes 16 ``_pk_N`` (plus a ``_default``) and reports
    17.
    """
    if not any(f.get("is_partition_key") for f in meta["fields"]):
        return None
    parts = meta.get("partitions") or []
    keyed = [p for p in parts if re.fullmatch(r"_(default|pk)_\d+", p)]
    if keyed:
        return len(keyed)
    n = meta.get("num_partitions")
    return int(n) if n else None


def _index_params(idx: dict[str, Any]) -> dict[str, Any]:
    """Return the build params of a captured index, flattened, without type and metric."""
    params: dict[str, Any] = {}
    for k, v in (idx.get("params") or {}).items():
        if k == "params" and isinstance(v, dict):
            params.update(v)
        elif k not in ("index_type", "metric_type", "field_name", "index_name"):
            params[k] = v
    return params


def _metric(idx: dict[str, Any]) -> str | None:
    m = idx.get("metric_type")
    return None if m in (None, "", "NONE") else str(m)


def _fingerprint(arguments: dict[str, Any]) -> str:
    raw = json.dumps(arguments, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class _Stop(Exception):
    """Raised inside a worker when another worker failed."""


# ------------------------------------------------------------------------------------------------ engine
class RestoreEngine:
    """Restore backups into Milvus, resumably, and keep each restore's status beside the backup.

    :param storage: where the backups live.
    :param parallelism: partitions inserted at the same time (across collections), and objects checked at
        once.
    :param insert_batch_rows: rows per insert call; ``None`` sizes batches to about ``insert_batch_bytes``.
    :param insert_batch_bytes: target size of one insert call when ``insert_batch_rows`` is ``None``.
    :param logger: where progress lines go.
    :param progress_callback: also called with progress figures.
    :param progress_interval: seconds between progress lines.
    :param tmp_dir: where data files are downloaded (default: the system's temporary directory).
    :param poll_interval: seconds between two checks of import jobs in :meth:`restore`.
    :param status_ttl: heartbeat ttl of a running restore's status.
    :param detached_ttl: how long after its last poll a submitted (detached) restore still counts as alive.
    :param status_interval: seconds between two writes of the status for per-file progress (steps that
        resuming depends on are written at once).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        parallelism: int = 2,
        insert_batch_rows: int | None = None,
        insert_batch_bytes: int = 8 * 1024 * 1024,
        logger: logging.Logger | None = None,
        progress_callback: ProgressCallback | None = None,
        progress_interval: float = 5.0,
        tmp_dir: str | None = None,
        poll_interval: float = 2.0,
        status_ttl: float = leases.DEFAULT_TTL,
        detached_ttl: float = 3600.0,
        status_interval: float = 5.0,
    ) -> None:
        # checked here, before any work: nothing is created with a bad argument (see engine/arguments.py)
        self.storage = storage
        self.parallelism = checks.count(parallelism, "parallelism", maximum=1024)
        self.insert_batch_rows = (
            None if insert_batch_rows is None else checks.count(insert_batch_rows, "insert_batch_rows")
        )
        self.insert_batch_bytes = max(
            64 * 1024, checks.count(insert_batch_bytes, "insert_batch_bytes", maximum=1 << 34)
        )
        self.log = logger or log
        self.progress_callback = progress_callback
        self.progress_interval = checks.seconds(progress_interval, "progress_interval")
        self.tmp_dir = checks.directory(tmp_dir, "tmp_dir")
        self.poll_interval = checks.seconds(poll_interval, "poll_interval", minimum=0.01, maximum=86_400)
        self.status_ttl = checks.seconds(status_ttl, "status_ttl", minimum=1.0)
        self.detached_ttl = checks.seconds(detached_ttl, "detached_ttl", minimum=1.0)
        self.status_interval = checks.seconds(status_interval, "status_interval")

    # ----------------------------------------------------------------------------------------- public
    def restore(
        self,
        milvus: MilvusParams,
        backup_name: str,
        collection_names: Iterable[str] | None = None,
        *,
        collection_suffix: str = "",
        collection_renames: Mapping[str, str] | None = None,
        target_db_name: str | None = None,
        drop_existing: bool = False,
        skip_create: bool = False,
        meta_only: bool = False,
        restore_index: bool = True,
        use_auto_index: bool = False,
        auto_index_fallback: bool = False,
        restore_aliases: bool = True,
        restore_load_state: bool = True,
        method: str = "auto",
        accept_new_primary_keys: bool = False,
        restore_id: str | None = None,
        bulk_import_bucket: str | None = None,
        bulk_import_root: str | None = None,
    ) -> dict[str, Any]:
        """Restore collections of a backup and wait until they are complete; return the report.

        :param milvus: the target Milvus; its ``db_name`` is the target database unless ``target_db_name``
            is given.
        :param backup_name: the backup to restore.
        :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"`` (bare names are in
            ``default``, or
            in the backup's only database); default: every collection of the backup.
        :param collection_suffix: appended to every target name (``hello_milvus`` + ``_recover``); also to
            aliases.
        :param collection_renames: ``{"c1": "c2", "db1.c1": "db2.c2", "db1.*": "db2.*"}``; an exact rule wins.
        :param target_db_name: restore into this database (created, if missing, with the source's properties);
            default: the database of ``milvus`` (``milvus.db_name``), never implicitly the source database.
            A rename rule with an explicit database (``{"db1.c1": "db2.c2"}``) wins for its collections.
        :param drop_existing: drop an existing target and create it again.
        :param skip_create: insert the rows into existing targets whose schema is compatible (checked field by
            field).
        :param meta_only: recreate schema, partitions, indexes, aliases and load state, without rows.
        :param restore_index: create the backed-up indexes (same names and params); ``False`` creates none.
        :param use_auto_index: build AUTOINDEX with the original metric on vector fields instead.
        :param auto_index_fallback: build AUTOINDEX where the target cannot build the backed-up index.
        :param restore_aliases: create the aliases (``alias + collection_suffix``); taken ones are reported.
        :param restore_load_state: load the collections that were loaded, release the others.
        :param method: ``"insert"``, ``"bulk_import"`` or ``"auto"`` (bulk import when it can work).
        :param accept_new_primary_keys: let Milvus generate new keys for auto_id collections where it cannot
            keep
            the backed-up ones.
        :param restore_id: the restore's id (to resume one); default: resume the newest failed or dead restore
            with identical arguments, else a new id.
        :param bulk_import_bucket: the bucket the target Milvus stores its data in (bulk import needs the
            backup
            to be in that bucket).
        :param bulk_import_root: the prefix Milvus resolves import paths against (default: the bucket's root,
            as
            Milvus 2.3 to 2.5 do).
        :raises InvalidArgumentError: bad or conflicting options, two sources onto one target.
        :raises CollectionNotFoundError: a collection that is not in the backup.
        :raises TargetExistsError: a target exists (without ``drop_existing`` or ``skip_create``).
        :raises SchemaMismatchError: ``skip_create`` onto an incompatible collection (the message names the
            field).
        :raises UnsupportedError: the target cannot hold a field, keep the keys, or build an index.
        :raises IntegrityError: a data object does not match the manifest (the message names its key).
        """
        opts = RestoreOptions.build(
            {
                "collection_suffix": collection_suffix,
                "collection_renames": collection_renames,
                "target_db_name": target_db_name,
                "drop_existing": drop_existing,
                "skip_create": skip_create,
                "meta_only": meta_only,
                "restore_index": restore_index,
                "use_auto_index": use_auto_index,
                "auto_index_fallback": auto_index_fallback,
                "restore_aliases": restore_aliases,
                "restore_load_state": restore_load_state,
                "method": method,
                "accept_new_primary_keys": accept_new_primary_keys,
                "bulk_import_bucket": bulk_import_bucket,
                "bulk_import_root": bulk_import_root,
            }
        )
        return self._run(milvus, backup_name, collection_names, opts, restore_id, wait=True)

    def submit(
        self,
        milvus: MilvusParams,
        backup_name: str,
        collection_names: Iterable[str] | None = None,
        *,
        restore_id: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Start a restore and return its status without waiting for bulk import jobs.

        Takes the arguments of :meth:`restore`. Validates, creates the targets, checks the objects' sha256,
        submits one import job per data file and returns the status (``state`` ``executing``, ``restore_id``);
        :meth:`poll` advances it. When the restore goes by insert (``method="insert"``, or ``"auto"`` where
        bulk import cannot work) or is ``meta_only``, there is nothing to wait for: the work is
        done here and the returned status is final (``success``).
        """
        opts = RestoreOptions.build(options)
        return self._run(milvus, backup_name, collection_names, opts, restore_id, wait=False)

    def poll(self, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Advance a submitted restore: check its import jobs; when all are done, finish it.

        ``state`` is ``executing`` while jobs run, ``success`` once the collections are loaded, indexed and
        aliased, ``failed`` (with ``error``) when a job failed. A restore whose process died is marked failed
        (run it again with the same arguments to resume it).

        :param milvus: the target Milvus.
        :param backup_name: the backup.
        :param restore_id: the id :meth:`submit` returned.
        """
        name = validate_backup_name(backup_name)
        body = self._read_status(name, restore_id)
        if body.get("state") != EXECUTING:
            return _public(body)
        if not body.get("detached"):
            if leases.is_alive(body):
                return _public(body)
            status = self._reopen(body, detached=True)
            status.fail(
                RestoreError(
                    f"Restore {restore_id} of backup {name!r} was interrupted (its process, pid "
                    f"{body.get('pid')} on {body.get('host')}, is gone); run it again with the same "
                    "arguments to resume it."
                )
            )
            return _public(status.body)
        manifest = mf.load(self.storage, name)
        status = self._reopen(body, detached=True)
        client = connect(milvus)
        try:
            with milvus_errors(milvus, f"Restore {restore_id} of backup {name!r}"):
                plan = self._plan_from_status(client, milvus, status.body, manifest)
                try:
                    if self._poll_jobs(milvus, plan, status, None):
                        self._finish(client, milvus, plan, status)
                    else:
                        status.save()
                except (MilvusConnectionError, StorageConnectionError):
                    raise
                except BaseException as e:
                    status.fail(e)
                    if isinstance(e, MilvusBackupError):
                        return _public(status.body)
                    raise
        finally:
            client.close()
        return _public(status.body)

    def status(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Return the stored status of a restore, with per-file detail and ``alive``.

        :raises NotFoundError: no restore of that id for that backup.
        """
        body = self._read_status(validate_backup_name(backup_name), restore_id)
        out = _public(body, with_files=True)
        out["alive"] = body.get("state") == EXECUTING and leases.is_alive(body)
        return out

    def list_restores(self, backup_name: str) -> list[dict[str, Any]]:
        """Return every restore recorded for a backup, newest first (id, state, alive, targets, times)."""
        name = validate_backup_name(backup_name)
        out = []
        for body in leases.read_leases(self.storage, f"{name}/{mf.RESTORES}"):
            if "restore_id" not in body or "collections" not in body:
                continue
            out.append(
                {
                    "restore_id": body["restore_id"],
                    "backup_name": body.get("backup_name"),
                    "state": body.get("state"),
                    "alive": body.get("state") == EXECUTING and leases.is_alive(body),
                    "method": body.get("method"),
                    "started_at": body.get("first_started_at") or body.get("started_at"),
                    "finished_at": body.get("finished_at"),
                    "collections": [
                        {"source": c["source"], "target": c["target"], "state": c["state"]}
                        for c in body["collections"]
                    ],
                    "totals": _totals(body),
                    "error": body.get("error"),
                }
            )
        out.sort(key=lambda r: (r["started_at"] or "", r["restore_id"]), reverse=True)
        return out

    def cancel(self, milvus: MilvusParams, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Mark a restore as failed (cancelled) so nothing waits on it; import jobs already running go on.

        Milvus has no way to cancel an import job; run the restore again with ``drop_existing=True`` to clean
        up.
        """
        name = validate_backup_name(backup_name)
        body = self._read_status(name, restore_id)
        if body.get("state") != EXECUTING:
            return _public(body)
        status = self._reopen(body, detached=True)
        status.body["cancelled"] = True
        status.fail(RestoreError(f"Restore {restore_id} of backup {name!r} was cancelled."))
        return _public(status.body)

    # ----------------------------------------------------------------------------------------- run
    def _run(
        self,
        milvus: MilvusParams,
        backup_name: str,
        collection_names: Iterable[str] | None,
        opts: RestoreOptions,
        restore_id: str | None,
        *,
        wait: bool,
    ) -> dict[str, Any]:
        started = time.monotonic()
        name = validate_backup_name(backup_name)
        if restore_id is not None and (
            not isinstance(restore_id, str) or not RESTORE_ID_RE.fullmatch(restore_id)
        ):
            raise InvalidArgumentError(
                f"Invalid restore_id {restore_id!r}: use 1 to 64 ASCII letters, digits, '_' or '-'."
            )
        if isinstance(collection_names, str):
            collection_names = [collection_names]
        manifest = mf.load(self.storage, name)
        client = connect(milvus)
        try:
            with milvus_errors(milvus, f"Restore of backup {name!r}"):
                plan = self._plan(client, milvus, manifest, collection_names, opts, restore_id)
                if plan.finished is not None:
                    self.log.info(
                        "Restore %s of backup %s already succeeded; nothing to do", plan.restore_id, name
                    )
                    return _public(plan.finished)
                status = self._open_status(plan, milvus)
                try:
                    self._execute(client, milvus, plan, status, wait=wait, started=started)
                except BaseException as e:
                    if isinstance(e, (IntegrityError, UnsupportedError)) and not status.untouched:
                        # data that disagrees with its manifest leaves no target this restore created empty
                        empty = [t for t in plan.targets if t.entry.get("created")]
                        empty = [t for t in empty if not t.entry.get("rows_restored")]
                        self._rollback(client, milvus, empty, [], status)
                    if status.untouched:
                        status.discard()  # the failed setup was undone: no state is left behind
                    else:
                        status.fail(e)
                    raise
                finally:
                    status.stop()
        finally:
            client.close()
        return _public(status.body)

    def _execute(
        self,
        client: MilvusClient,
        milvus: MilvusParams,
        plan: _Plan,
        status: _Status,
        *,
        wait: bool,
        started: float,
    ) -> None:
        self.log.info(
            "Restore %s of backup %s: %d collection(s) into %s at %s, method %s%s",
            plan.restore_id,
            plan.backup,
            len(plan.targets),
            plan.server.label,
            milvus.address,
            plan.method,
            f" ({plan.method_reason})" if plan.method_reason else "",
        )
        for t in plan.targets:
            self.log.info(
                "  %s -> %s (%s, %s rows)", t.source, t.target, t.action, f"{t.meta.get('row_count', 0):,}"
            )
        self._setup(client, milvus, plan, status)
        if not plan.opts.meta_only:
            if plan.method == "bulk_import":
                self._submit_jobs(milvus, plan, status)
                if not wait:
                    status.detach(self.detached_ttl)
                    self.log.info(
                        "Restore %s: import jobs submitted; poll it to finish (restore_id %s)",
                        plan.restore_id,
                        plan.restore_id,
                    )
                    return
                progress = self._progress(plan)
                while not self._poll_jobs(milvus, plan, status, progress):
                    time.sleep(self.poll_interval)
                progress.report(final=True)
            else:
                self._insert_all(milvus, plan, status)
        self._finish(client, milvus, plan, status)
        with status.lock:
            status.body["seconds"] = round(time.monotonic() - started, 3)
        status.save()
        self.log.info(
            "Restore %s of backup %s complete: %d collection(s), %s rows in %.1f s",
            plan.restore_id,
            plan.backup,
            len(plan.targets),
            f"{_totals(status.body)['rows_restored']:,}",
            time.monotonic() - started,
        )

    # ----------------------------------------------------------------------------------------- plan
    def _plan(
        self,
        client: MilvusClient,
        milvus: MilvusParams,
        manifest: dict[str, Any],
        requested: Iterable[str] | None,
        opts: RestoreOptions,
        restore_id: str | None,
    ) -> _Plan:
        name = manifest["name"]
        where = f"backup {name!r}"
        by_source = {(c["db_name"], c["name"]): c for c in manifest["collections"]}
        available: dict[str, list[str]] = {}
        for db, coll in by_source:
            available.setdefault(db, []).append(coll)
        requested = [r for r in requested] if requested else None
        if not requested:
            selection = list(by_source)
        else:
            default_db = (
                DEFAULT_DB if DEFAULT_DB in available or len(available) != 1 else next(iter(available))
            )
            selection = select_collections(requested, available, default_db, where=where)
        renames = opts.collection_renames or {}
        self._check_rename_sources(renames, available, where)
        target_db = restore_database(opts.target_db_name, milvus.db_name)

        pairs: list[tuple[dict[str, Any], str, str]] = []
        seen: dict[tuple[str, str], str] = {}
        for db, coll in selection:
            _check_manifest_entry(name, by_source[(db, coll)])
            tdb, tname = map_target(
                db, coll, suffix=opts.collection_suffix, renames=renames, target_db=target_db
            )
            validate_milvus_name(tdb, "database")
            validate_milvus_name(tname, "collection")
            if (tdb, tname) in seen:
                raise InvalidArgumentError(
                    f"Collections {seen[(tdb, tname)]} and {_qualified(db, coll)} of {where} would both be "
                    f"restored to {_qualified(tdb, tname)} (a restore goes into the connection's database "
                    "unless target_db_name or a rule says otherwise); keep each source database with "
                    f'collection_renames={{"{db}.*": "{db}.*"}}, or change collection_renames or '
                    "collection_suffix so every target is unique."
                )
            seen[(tdb, tname)] = _qualified(db, coll)
            pairs.append((by_source[(db, coll)], tdb, tname))

        arguments = {
            "backup_name": name,
            "backup_id": manifest["id"],
            "target": {"address": milvus.address, "db_name": milvus.db_name or DEFAULT_DB},
            "collections": [[c["db_name"] + "." + c["name"], _qualified(d, n)] for c, d, n in pairs],
            "options": opts.fingerprint_fields(),
        }
        fingerprint = _fingerprint(arguments)
        prior = self._find_prior(name, restore_id, fingerprint)
        rid = restore_id or (prior["restore_id"] if prior else new_restore_id())
        if prior is not None and prior.get("state") == SUCCESS:
            return _Plan(
                name,
                manifest,
                opts,
                ServerInfo.detect("", milvus.is_lite),
                [],
                "",
                "",
                {},
                fingerprint,
                arguments,
                rid,
                prior=prior,
                finished=prior,
            )

        server = ServerInfo.detect(str(client.get_server_version()), milvus.is_lite)
        try:
            existing_dbs = set(client.list_databases())
        except Exception:  # noqa: BLE001 - servers without databases
            existing_dbs = {DEFAULT_DB}
        collections_of: dict[str, set[str]] = {}
        for db in sorted({d for _, d, _ in pairs} & existing_dbs):
            # one client per database: MilvusClient.use_database needs describe_database (not in Milvus 2.3)
            c = self._client(milvus, db)
            try:
                collections_of[db] = set(c.list_collections())
            finally:
                c.close()

        prior_entries = {c["target"]: c for c in (prior or {}).get("collections", [])}
        targets: list[_Target] = []
        databases: dict[str, dict[str, str]] = {}
        for meta, tdb, tname in pairs:
            self._check_fields(meta, server, milvus)
            exists = tname in collections_of.get(tdb, set())
            if tdb not in existing_dbs and tdb not in databases:
                databases[tdb] = self._db_properties(manifest, meta["db_name"])
            pe = prior_entries.get(_qualified(tdb, tname))
            action = self._action(meta, tdb, tname, exists, pe, opts, milvus)
            keep_keys, auto_prop = self._key_policy(client, meta, tdb, tname, action, server, opts, milvus)
            targets.append(_Target(meta, tdb, tname, action, keep_keys, auto_prop))
        method, reason = self._choose_method(plan_targets=targets, server=server, opts=opts, prior=prior)
        plan = _Plan(
            name,
            manifest,
            opts,
            server,
            targets,
            method,
            reason,
            databases,
            fingerprint,
            arguments,
            rid,
            prior=prior,
        )
        if not opts.meta_only:
            self._check_listing(plan)
            # types, row counts and vector dims from each object's footer, before anything is created
            integrity.check_footers(
                self.storage, name, self._pending_files(plan, with_meta=True), self.parallelism
            )
            if method == "bulk_import":
                self._verify_objects(plan)
        return plan

    def _check_rename_sources(
        self, renames: Mapping[str, str], available: Mapping[str, list[str]], where: str
    ) -> None:
        for src in renames:
            if "." in src:
                db, coll = split_qualified(src, DEFAULT_DB)
                if db not in available:
                    raise CollectionNotFoundError(
                        f"collection_renames names database {db!r} ({src!r}), which is not in {where}; "
                        f"databases in it: {sorted(available)}."
                    )
                if coll != "*" and coll not in available[db]:
                    raise CollectionNotFoundError(
                        f"collection_renames names {src!r}, which is not in {where}; its collections in "
                        f"{db!r}: {sorted(available[db])[:20]}."
                    )
            elif not any(src in colls for colls in available.values()):
                raise CollectionNotFoundError(
                    f"collection_renames names {src!r}, which is not in {where}; check the name."
                )

    def _check_fields(self, meta: dict[str, Any], server: ServerInfo, milvus: MilvusParams) -> None:
        src = _qualified(meta["db_name"], meta["name"])
        for f in meta["fields"]:
            problem = server.field_problem(f)
            if problem:
                raise UnsupportedError(
                    f"Field {f['name']!r} ({f['type']}) of {src} cannot be restored to {server.label} at "
                    f"{milvus.address}: {problem}. Restore this collection to a Milvus that supports it, or "
                    "leave it out of collection_names."
                )
        vectors = [f["name"] for f in meta["fields"] if f["type"] in VECTOR_TYPES]
        if len(vectors) > 1 and not server.at_least(2, 4):
            raise UnsupportedError(
                f"{src} has {len(vectors)} vector fields ({', '.join(vectors)}); {server.label} at "
                f"{milvus.address} allows one per collection (Milvus 2.4+ allows more). Restore it to a "
                "newer Milvus."
            )

    def _action(
        self,
        meta: dict[str, Any],
        tdb: str,
        tname: str,
        exists: bool,
        prior_entry: dict[str, Any] | None,
        opts: RestoreOptions,
        milvus: MilvusParams,
    ) -> str:
        target = _qualified(tdb, tname)
        if prior_entry is not None and prior_entry.get("created"):
            if prior_entry.get("state") == SUCCESS and exists:
                return "done"
            if exists:
                return "resume"
            return "create"
        if exists and opts.drop_existing:
            return "replace"
        if exists and opts.skip_create:
            return "existing"
        if exists:
            raise TargetExistsError(
                f"Target collection {target} already exists in Milvus at {milvus.address}; nothing was "
                "changed. Restore under another name (collection_suffix, collection_renames or "
                "target_db_name), pass drop_existing=True to replace it, or skip_create=True to insert the "
                "rows into it."
            )
        if opts.skip_create:
            raise CollectionNotFoundError(
                f"skip_create=True needs the target collection {target} to exist in Milvus at "
                f"{milvus.address}, and it does not; create it, or restore without skip_create."
            )
        return "create"

    def _key_policy(
        self,
        client: MilvusClient,
        meta: dict[str, Any],
        tdb: str,
        tname: str,
        action: str,
        server: ServerInfo,
        opts: RestoreOptions,
        milvus: MilvusParams,
    ) -> tuple[bool, bool]:
        """Return (keys kept, set ``allow_insert_auto_id``); check skip_create compatibility."""
        target_auto_id = bool(meta.get("auto_id"))
        if action == "existing":
            c = self._client(milvus, tdb)
            try:
                desc = c.describe_collection(tname)
            finally:
                c.close()
            self._check_compatible(meta, desc, _qualified(tdb, tname))
            target_auto_id = bool(desc.get("auto_id"))
        if not target_auto_id:
            return True, False
        if server.keeps_auto_id:
            return True, True
        if opts.accept_new_primary_keys or opts.meta_only:
            return False, False
        pk = primary_field(meta)["name"]
        raise UnsupportedError(
            f"{_qualified(meta['db_name'], meta['name'])} has an auto_id primary key {pk!r}; {server.label} "
            f"at {milvus.address} cannot keep the backed-up keys (it has no '{AUTO_ID_PROPERTY}' property, "
            "and its bulk import refuses an auto_id key column). Pass accept_new_primary_keys=True to let "
            "Milvus generate new keys, or restore to Milvus 2.6+ / Milvus Lite."
        )

    def _check_compatible(self, meta: dict[str, Any], desc: dict[str, Any], target: str) -> None:
        """Raise :class:`SchemaMismatchError` naming the first field the existing target cannot take."""
        src = _qualified(meta["db_name"], meta["name"])
        have = {f["name"]: capture_field(f) for f in desc["fields"]}

        def mismatch(fname: str, why: str) -> SchemaMismatchError:
            return SchemaMismatchError(
                f"skip_create: field {fname!r} of target {target} does not match backup collection {src}: "
                f"{why}. Restore into a new collection (collection_suffix) or pass drop_existing=True "
                "instead."
            )

        for f in meta["fields"]:
            name = f["name"]
            t = have.get(name)
            if f.get("is_function_output"):
                if t is not None and not t.get("is_function_output"):
                    raise mismatch(
                        name, "it is a function output in the backup but a plain field in the target"
                    )
                continue
            if t is None:
                raise mismatch(name, "the target has no such field")
            if t["type"] != f["type"]:
                raise mismatch(name, f"type {t['type']} in the target, {f['type']} in the backup")
            if f.get("element_type") and t.get("element_type") != f.get("element_type"):
                raise mismatch(
                    name,
                    f"array of {t.get('element_type')} in the target, of {f['element_type']} in the backup",
                )
            for p in ("dim",):
                if p in f["params"] and str(t["params"].get(p)) != str(f["params"][p]):
                    raise mismatch(
                        name, f"{p} {t['params'].get(p)} in the target, {f['params'][p]} in the backup"
                    )
            for p in ("max_length", "max_capacity"):
                if p in f["params"] and p in t["params"] and int(t["params"][p]) < int(f["params"][p]):
                    raise mismatch(
                        name,
                        f"{p} {t['params'][p]} in the target is smaller than {f['params'][p]} in the backup",
                    )
            if bool(f.get("is_primary")) != bool(t.get("is_primary")):
                raise mismatch(name, "primary key in one and not in the other")
            if f.get("nullable") and not t.get("nullable"):
                raise mismatch(name, "nullable in the backup but not in the target")
            if bool(f.get("is_partition_key")) != bool(t.get("is_partition_key")):
                raise mismatch(name, "partition key in one and not in the other")
        for name, t in have.items():
            if any(f["name"] == name for f in meta["fields"]):
                continue
            if not (t.get("nullable") or "default_value" in t or t.get("is_function_output")):
                raise mismatch(name, "the target requires it and the backup has no values for it")
        if meta.get("enable_dynamic_field") and not desc.get("enable_dynamic_field"):
            raise mismatch(META_FIELD, "the backup has a dynamic field and the target does not")

    def _choose_method(
        self,
        *,
        plan_targets: list[_Target],
        server: ServerInfo,
        opts: RestoreOptions,
        prior: dict[str, Any] | None,
    ) -> tuple[str, str]:
        if prior is not None and prior.get("method") in ("insert", "bulk_import"):
            return str(prior["method"]), "resumed with the method it started with"
        if opts.meta_only:
            return "insert", "meta_only: no data"
        blockers = self._bulk_blockers(plan_targets, server, opts)
        if opts.method == "insert":
            return "insert", "asked for"
        if opts.method == "bulk_import":
            if blockers:
                raise UnsupportedError(
                    "method='bulk_import' cannot work here: "
                    + "; ".join(blockers)
                    + ". Use method='insert' or "
                    "'auto'."
                )
            return "bulk_import", "asked for"
        if blockers:
            return "insert", "bulk import cannot work: " + "; ".join(blockers)
        return "bulk_import", "the target Milvus reads the backup's bucket"

    def _bulk_blockers(self, targets: list[_Target], server: ServerInfo, opts: RestoreOptions) -> list[str]:
        from airflow_milvus_backup.engine.storage import S3Storage

        out: list[str] = []
        if server.lite:
            out.append("Milvus Lite has no bulk import")
        elif not server.bulk_import:
            out.append(f"{server.label} has no bulk import")
        if not isinstance(self.storage, S3Storage):
            out.append(f"the backup is not in S3 ({self.storage.description})")
        elif not opts.bulk_import_bucket:
            out.append("bulk_import_bucket (the bucket of the target Milvus) is not given")
        elif opts.bulk_import_bucket != self.storage.bucket:
            out.append(
                f"the backup is in bucket {self.storage.bucket!r}, the target Milvus reads bucket "
                f"{opts.bulk_import_bucket!r}"
            )
        elif opts.bulk_import_root and not (self.storage.root + "/").startswith(opts.bulk_import_root + "/"):
            out.append(
                f"the backup's prefix {self.storage.root!r} is outside bulk_import_root "
                f"{opts.bulk_import_root!r}"
            )
        for t in targets:
            if not t.keep_keys:
                out.append(f"{t.source} gets new primary keys (bulk import cannot leave out the key column)")
            elif t.meta.get("auto_id") or t.auto_id_property:
                out.append(f"{t.source} has an auto_id primary key (bulk import refuses the key column)")
            for f in t.meta["fields"]:
                if f.get("is_function_output"):
                    out.append(f"{t.source} has function output field {f['name']!r}")
                elif f["type"] not in BULK_IMPORT_TYPES:
                    out.append(f"{t.source} field {f['name']!r} is {f['type']}")
                elif f.get("nullable"):
                    out.append(f"{t.source} field {f['name']!r} is nullable")
        return out

    def _db_properties(self, manifest: dict[str, Any], source_db: str) -> dict[str, str]:
        props = (manifest.get("databases") or {}).get(source_db) or {}
        return {str(k): str(v) for k, v in props.items() if str(k).lower() not in _DB_INFO_KEYS}

    def _find_prior(self, name: str, restore_id: str | None, fingerprint: str) -> dict[str, Any] | None:
        if restore_id is not None:
            try:
                body = self._read_status(name, restore_id)
            except NotFoundError:
                return None
            if body.get("fingerprint") != fingerprint:
                args = body.get("arguments", {})
                shown = json.dumps(args.get("options", {}), sort_keys=True)
                raise InvalidArgumentError(
                    f"Restore {restore_id} of backup {name!r} was started with other arguments; resume it "
                    f"with the same ones ({shown}, collections {args.get('collections')}) or use another "
                    "restore_id."
                )
            self._refuse_if_running(body, name)
            return body
        candidates = [
            b
            for b in leases.read_leases(self.storage, f"{name}/{mf.RESTORES}")
            if b.get("fingerprint") == fingerprint
            and not b.get("cancelled")
            and (b.get("state") == FAILED or (b.get("state") == EXECUTING and not leases.is_alive(b)))
        ]
        running = [
            b
            for b in leases.read_leases(self.storage, f"{name}/{mf.RESTORES}")
            if b.get("fingerprint") == fingerprint and b.get("state") == EXECUTING and leases.is_alive(b)
        ]
        if running:
            self._refuse_if_running(running[0], name)
        if not candidates:
            return None
        candidates.sort(key=lambda b: str(b.get("first_started_at") or b.get("started_at") or ""))
        body = candidates[-1]
        self.log.info(
            "Resuming restore %s of backup %s (state %s, %s of %s files done)",
            body["restore_id"],
            name,
            body.get("state"),
            _totals(body)["files_done"],
            _totals(body)["files"],
        )
        return body

    def _refuse_if_running(self, body: dict[str, Any], name: str) -> None:
        if body.get("state") == EXECUTING and leases.is_alive(body):
            raise RestoreError(
                f"Restore {body.get('restore_id')} of backup {name!r} is running "
                + (
                    "(its import jobs are being polled)"
                    if body.get("detached")
                    else f"in process {body.get('pid')} on {body.get('host')}"
                )
                + "; wait for it to finish (poll it) instead of starting it again."
            )

    def _pending_files(self, plan: _Plan, with_meta: bool = False) -> list[Any]:
        """Return the manifest entries of the data files this restore will read (with their collection's)."""
        out: list[Any] = []
        for t in plan.targets:
            if t.action == "done":
                continue
            done = set(self._prior_done(plan, t))
            out.extend((t.meta, f) if with_meta else f for _, f in t.files() if f["key"] not in done)
        return out

    def _check_listing(self, plan: _Plan) -> None:
        """Compare every data file to read with one listing of ``<backup>/data/`` (key and size).

        A deleted or truncated object fails here, before anything is created in Milvus. A changed byte keeps
        the size: it is caught by the sha256 check of each file before its rows are inserted.
        """
        pending = self._pending_files(plan)
        if not pending:
            return
        where = self.storage.description
        stored = {o.key: o.size for o in self.storage.list(f"{plan.backup}/{mf.DATA}")}
        problems = []
        for f in pending:
            key = f"{plan.backup}/{f['key']}"
            size = stored.get(key)
            if size is None:
                problems.append(f"Data object {key!r} of backup {plan.backup!r} is missing from {where}")
            elif size != f.get("size"):
                problems.append(
                    f"Data object {key!r} of backup {plan.backup!r} in {where} does not match its manifest "
                    f"({size} bytes stored, {f.get('size')} in the manifest): it was truncated or replaced"
                )
        if problems:
            more = f" ({len(problems) - 1} more object(s) missing or wrong)" if len(problems) > 1 else ""
            raise IntegrityError(
                f"{problems[0]}{more}: the backup is damaged. Nothing was restored; restore another backup, "
                "or run verify_backup to list every damaged object."
            )
        self.log.info("Found the %d data object(s) to restore, of the sizes in the manifest", len(pending))

    def _verify_objects(self, plan: _Plan) -> None:
        """Check the sha256 and size of every object a bulk import will read, before anything is touched."""
        jobs = self._pending_files(plan)
        if not jobs:
            return

        def check(f: dict[str, Any]) -> None:
            key = f"{plan.backup}/{f['key']}"
            try:
                digest, size = self.storage.sha256(key)
            except StorageNotFoundError:
                raise _missing_object(plan.backup, key, self.storage.description) from None
            _check_digest(plan.backup, key, digest, size, f, self.storage.description)

        with ThreadPoolExecutor(self.parallelism * 2, thread_name_prefix="verify") as pool:
            for fut in [pool.submit(check, f) for f in jobs]:
                fut.result()
        self.log.info("Checked the sha256 of %d object(s) before submitting the import jobs", len(jobs))

    def _prior_done(self, plan: _Plan, t: _Target) -> list[str]:
        for c in (plan.prior or {}).get("collections", []):
            if c["target"] == t.target and t.action == "resume":
                return [k for k, f in c.get("files", {}).items() if f.get("state") == "done"]
        return []

    # ----------------------------------------------------------------------------------------- status
    def _open_status(self, plan: _Plan, milvus: MilvusParams) -> _Status:
        key = status_key(plan.backup, plan.restore_id)
        prior = plan.prior
        prior_entries = {c["target"]: c for c in (prior or {}).get("collections", [])}
        collections = []
        for t in plan.targets:
            pe = prior_entries.get(t.target) or {}
            files: dict[str, Any] = {}
            keep_prior = bool(pe) and t.action in ("resume", "done", "existing")
            for part, f in t.files():
                old = (pe.get("files") or {}).get(f["key"]) if keep_prior else None
                files[f["key"]] = (
                    dict(old)
                    if old
                    else {
                        "partition": part.get("partition"),
                        "rows": f["rows"],
                        "state": "pending",
                        "inserted": 0,
                    }
                )
            entry = {
                "source": t.source,
                "target": t.target,
                "action": t.action,
                "created": bool(pe.get("created")) if keep_prior else False,
                "keys": "kept" if t.keep_keys else "new",
                "state": SUCCESS if t.action == "done" else "pending",
                "rows_expected": 0 if plan.opts.meta_only else int(t.meta.get("row_count", 0)),
                "rows_restored": 0,
                "files_total": 0 if plan.opts.meta_only else len(files),
                "files_done": 0,
                "files": {} if plan.opts.meta_only else files,
                "temp_properties": list(pe.get("temp_properties", [])) if keep_prior else [],
                "indexes": list(pe.get("indexes", [])) if keep_prior else [],
                "aliases": pe.get("aliases") or {"restored": [], "skipped": []},
                "load_state": pe.get("load_state") or {},
                "database_created": bool(pe.get("database_created")) if keep_prior else False,
                "seconds": float(pe.get("seconds", 0.0)) if keep_prior else 0.0,
                "resumed": keep_prior,
                "error": None,
            }
            _recount(entry)
            t.entry = entry
            collections.append(entry)
        body: dict[str, Any] = {
            "id": plan.restore_id,
            "restore_id": plan.restore_id,
            "kind": "restore",
            "backup_name": plan.backup,
            "backup_id": plan.manifest["id"],
            "state": EXECUTING,
            "method": plan.method,
            "method_reason": plan.method_reason,
            "meta_only": plan.opts.meta_only,
            "fingerprint": plan.fingerprint,
            "arguments": plan.arguments,
            "target": {
                "address": milvus.address,
                "db_name": restore_database(plan.opts.target_db_name, milvus.db_name),
                "server_version": plan.server.version,
                "lite": plan.server.lite,
            },
            "storage": self.storage.description,
            "first_started_at": (prior or {}).get("first_started_at") or _now(),
            "attempts": int((prior or {}).get("attempts", 0)) + 1,
            "finished_at": None,
            "detached": False,
            "databases_created": list((prior or {}).get("databases_created", [])),
            "collections": collections,
            "error": None,
            "errors": list((prior or {}).get("errors", [])),
        }
        status = _Status(self.storage, key, body, self.status_ttl, self.status_interval)
        status.start(exclusive=prior is None)
        self.log.info("Restore %s status: %s/%s", plan.restore_id, self.storage.description, key)
        return status

    def _reopen(self, body: dict[str, Any], *, detached: bool) -> _Status:
        keep = {
            k: v
            for k, v in body.items()
            if k not in ("host", "pid", "started_at", "ttl", "heartbeat_at", "_key")
        }
        ttl = self.detached_ttl if detached else self.status_ttl
        status = _Status(self.storage, status_key(body["backup_name"], body["restore_id"]), keep, ttl)
        if detached:
            status.body["pid"] = None
        return status

    def _read_status(self, name: str, restore_id: str) -> dict[str, Any]:
        if not isinstance(restore_id, str) or not RESTORE_ID_RE.fullmatch(restore_id):
            raise InvalidArgumentError(f"Invalid restore_id {restore_id!r}.")
        key = status_key(name, restore_id)
        try:
            raw = self.storage.get_bytes(key)
        except StorageNotFoundError:
            raise NotFoundError(
                f"No restore {restore_id!r} of backup {name!r} in {self.storage.description} (no {key!r}); "
                "list the restores to see their ids."
            ) from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise RestoreError(f"The status object {key!r} is not valid JSON; it was damaged.") from None
        if not isinstance(body, dict) or "collections" not in body:
            raise RestoreError(f"The status object {key!r} is not a restore status.")
        return body

    def _plan_from_status(
        self, client: MilvusClient, milvus: MilvusParams, body: dict[str, Any], manifest: dict[str, Any]
    ) -> _Plan:
        opts = RestoreOptions.build(body["arguments"]["options"])
        by_source = {_qualified(c["db_name"], c["name"]): c for c in manifest["collections"]}
        server = ServerInfo.detect(str(client.get_server_version()), milvus.is_lite)
        targets = []
        for entry in body["collections"]:
            meta = by_source[entry["source"]]
            db, name = entry["target"].split(".", 1)
            t = _Target(
                meta,
                db,
                name,
                entry["action"],
                entry.get("keys") == "kept",
                AUTO_ID_PROPERTY in entry.get("temp_properties", []),
                entry,
            )
            targets.append(t)
        return _Plan(
            body["backup_name"],
            manifest,
            opts,
            server,
            targets,
            body["method"],
            body.get("method_reason", ""),
            {},
            body["fingerprint"],
            body["arguments"],
            body["restore_id"],
            prior=None,
        )

    # ----------------------------------------------------------------------------------------- setup
    def _client(self, milvus: MilvusParams, db: str) -> MilvusClient:
        """Return a client of database ``db`` (its own connection)."""
        return connect(replace(milvus, db_name=db))

    def _setup(self, client: MilvusClient, milvus: MilvusParams, plan: _Plan, status: _Status) -> None:
        """Create databases, collections, partitions and indexes; undo what this call created if it fails.

        When the undo leaves Milvus as it was (a new restore that only created things, all dropped again),
        ``status.untouched`` is set: the failed restore leaves no state behind, not even its status object.
        """
        created_now: list[_Target] = []
        dbs_now: list[str] = []
        #: changes a rollback does not undo (an existing collection dropped or altered)
        kept: list[str] = []
        try:
            existing_dbs = set(client.list_databases()) if plan.databases else set()
            for db, props in plan.databases.items():
                if db in existing_dbs:
                    continue
                self.log.info("Creating database %s%s", db, f" with properties {props}" if props else "")
                if props:
                    client.create_database(db, properties=props)
                else:
                    client.create_database(db)
                dbs_now.append(db)
                with status.lock:
                    status.body.setdefault("databases_created", []).append(db)
                    for t in plan.targets:
                        if t.db == db:
                            t.entry["database_created"] = True
                status.save()
            for t in plan.targets:
                if t.action == "done":
                    continue
                c = self._client(milvus, t.db)
                try:
                    self._setup_one(c, plan, t, status, created_now, kept)
                finally:
                    c.close()
        except BaseException:
            undone = self._rollback(client, milvus, created_now, dbs_now, status)
            status.untouched = undone and not kept and plan.prior is None
            if kept:
                self.log.warning("The failed setup of restore %s left: %s", plan.restore_id, "; ".join(kept))
            raise

    def _setup_one(
        self,
        c: MilvusClient,
        plan: _Plan,
        t: _Target,
        status: _Status,
        created_now: list[_Target],
        kept: list[str],
    ) -> None:
        exists = c.has_collection(t.name)
        if t.action == "replace" and exists and not t.entry.get("created"):
            kept.append(f"existing collection {t.target} dropped")
            aliases = list(c.list_aliases(t.name).get("aliases", []))
            for a in aliases:
                c.drop_alias(a)
            self.log.info(
                "Dropping existing collection %s%s", t.target, f" (aliases {aliases})" if aliases else ""
            )
            c.drop_collection(t.name)
            with status.lock:
                t.entry["dropped_aliases"] = aliases
            exists = False
        if not exists and t.action in ("resume", "create", "replace"):
            if t.action == "resume":
                self.log.warning(
                    "Collection %s of an interrupted restore is gone; creating it again", t.target
                )
                _reset_files(t.entry)
            # recorded before the call: a restore killed right after it still knows the collection is its own
            with status.lock:
                t.entry["created"] = True
                t.entry["temp_properties"] = [AUTO_ID_PROPERTY] if t.auto_id_property else []
            status.save()
            created_now.append(t)
            self._create_collection(c, plan, t)
        elif t.action == "existing" and t.auto_id_property:
            props = c.describe_collection(t.name).get("properties") or {}
            if str(props.get(AUTO_ID_PROPERTY, "")).lower() != "true":
                kept.append(f"property {AUTO_ID_PROPERTY} set on {t.target}")
                c.alter_collection_properties(t.name, {AUTO_ID_PROPERTY: "true"})
                with status.lock:
                    t.entry["temp_properties"] = [AUTO_ID_PROPERTY]
                status.save()
        elif t.action == "resume" and t.auto_id_property and not plan.opts.meta_only:
            c.alter_collection_properties(t.name, {AUTO_ID_PROPERTY: "true"})
        # a collection this call created is dropped again by a rollback, with its partitions and indexes; a
        # resumed one belongs to this restore (its status says so); any other one is someone else's
        foreign = t not in created_now and t.action != "resume"
        if not t.partition_key:
            have = set(c.list_partitions(t.name))
            for p in t.meta.get("partitions", []):
                if p not in have:
                    if foreign:
                        kept.append(f"partition {p} created in {t.target}")
                    c.create_partition(t.name, p)
        if t.action != "existing":
            if foreign:
                kept.append(f"indexes created on {t.target}")
            self._create_indexes(c, plan, t, status)
        if (
            plan.method == "insert"
            and not plan.opts.meta_only
            and plan.opts.restore_load_state
            and t.action != "existing"
            and t.meta.get("load_state") in ("Loaded", "Loading")
        ):
            # Loaded now, the inserted rows stream into the loaded collection; loaded at the end, Milvus
            # reads them all back from object storage (bench/: about 5 s per 100k 768-d rows on 2.3.5).
            try:
                c.load_collection(t.name)
            except Exception as e:  # noqa: BLE001 - the final load decides and reports (e.g. no index)
                if not _milvus_exception(e) or is_connection_failure(e):
                    raise
                self.log.debug("%s not loaded before inserting: %s", t.target, e)

    def _create_collection(self, c: MilvusClient, plan: _Plan, t: _Target) -> None:
        meta = t.meta
        schema = build_schema(meta)
        props = {str(k): str(v) for k, v in (meta.get("properties") or {}).items()}
        if t.auto_id_property and not plan.opts.meta_only:
            props[AUTO_ID_PROPERTY] = "true"
        kwargs: dict[str, Any] = {"schema": schema, "num_shards": int(meta.get("num_shards") or 1)}
        level = meta.get("consistency_level_name") or meta.get("consistency_level")
        if level is not None:
            kwargs["consistency_level"] = level
        if props:
            kwargs["properties"] = props
        n = _partition_key_count(meta)
        if n:
            kwargs["num_partitions"] = n
        self.log.info("Creating collection %s (from %s)", t.target, t.source)
        c.create_collection(t.name, **kwargs)

    def _wanted_indexes(self, plan: _Plan, t: _Target) -> list[dict[str, Any]]:
        if not plan.opts.restore_index:
            return []
        types = {f["name"]: f["type"] for f in t.meta["fields"]}
        out = []
        for idx in t.meta.get("indexes", []):
            is_vector = types.get(idx["field_name"]) in VECTOR_TYPES
            spec = {
                "index_name": idx.get("index_name") or idx["field_name"],
                "field_name": idx["field_name"],
                "index_type": idx.get("index_type"),
                "metric_type": _metric(idx),
                "params": _index_params(idx),
                "vector": is_vector,
            }
            if plan.opts.use_auto_index and is_vector:
                spec.update(index_type="AUTOINDEX", params={})
            out.append(spec)
        return out

    def _create_indexes(self, c: MilvusClient, plan: _Plan, t: _Target, status: _Status) -> None:
        wanted = self._wanted_indexes(plan, t)
        if not wanted:
            return
        have_fields = set()
        for n in c.list_indexes(t.name):
            info = c.describe_index(t.name, n) or {}
            have_fields.add(info.get("field_name") or n)
        results = []
        for spec in wanted:
            if spec["field_name"] in have_fields:
                prior = next(
                    (r for r in t.entry.get("indexes", []) if r["field_name"] == spec["field_name"]), None
                )
                results.append(prior or {**_index_report(spec), "status": "exists"})
                continue
            results.append(self._create_index(c, plan, t, spec))
        with status.lock:
            t.entry["indexes"] = results
        status.save()

    def _create_index(self, c: MilvusClient, plan: _Plan, t: _Target, spec: dict[str, Any]) -> dict[str, Any]:
        def attempt(index_type: str, params: dict[str, Any]) -> None:
            ip = c.prepare_index_params()
            kwargs: dict[str, Any] = {"index_type": index_type, "index_name": spec["index_name"]}
            if spec["metric_type"]:
                kwargs["metric_type"] = spec["metric_type"]
            if params:
                kwargs["params"] = params
            ip.add_index(spec["field_name"], **kwargs)
            create_index(c, t.name, ip, lite=plan.server.lite)

        try:
            attempt(str(spec["index_type"]), spec["params"])
            return {**_index_report(spec), "status": "created"}
        except Exception as e:
            if not _milvus_exception(e) or is_connection_failure(e):
                raise
            reason = str(getattr(e, "message", None) or e)
        what = (
            f"Index {spec['index_name']!r} ({spec['index_type']}, metric {spec['metric_type']}, params "
            f"{spec['params']}) on field {spec['field_name']!r} of {t.target}"
        )
        if not plan.opts.auto_index_fallback:
            raise UnsupportedError(
                f"{what}: {plan.server.label} cannot build it ({reason}). Pass auto_index_fallback=True to "
                "build AUTOINDEX instead, use_auto_index=True, or restore_index=False."
            )
        fallbacks = ["AUTOINDEX"] if spec["vector"] else ["AUTOINDEX", "INVERTED"]
        for alt in fallbacks:
            try:
                attempt(alt, {})
            except Exception as e:  # noqa: BLE001 - try the next fallback
                if not _milvus_exception(e) or is_connection_failure(e):
                    raise
                continue
            self.log.warning(
                "%s cannot be built on %s (%s); built %s instead", what, plan.server.label, reason, alt
            )
            return {
                **_index_report(spec),
                "index_type": alt,
                "params": {},
                "status": "fallback",
                "reason": reason,
            }
        raise UnsupportedError(
            f"{what}: {plan.server.label} cannot build it ({reason}), nor {' or '.join(fallbacks)}. Pass "
            "restore_index=False."
        )

    def _rollback(
        self,
        client: MilvusClient,
        milvus: MilvusParams,
        created: list[_Target],
        dbs: list[str],
        status: _Status,
    ) -> bool:
        """Drop what a failed setup created; return whether all of it is gone."""
        undone = True
        for t in created:
            try:
                c = self._client(milvus, t.db)
                try:
                    c.drop_collection(t.name)
                finally:
                    c.close()
                with status.lock:
                    t.entry["created"] = False
                    t.entry["temp_properties"] = []
                    t.entry["indexes"] = []
                self.log.info("Dropped %s again: the restore failed while setting it up", t.target)
            except Exception as e:  # noqa: BLE001 - the original error matters more
                undone = False
                self.log.warning("Could not drop %s after the failed setup: %s; drop it by hand", t.target, e)
        for db in dbs:
            try:
                client.drop_database(db)
                with status.lock:
                    status.body["databases_created"].remove(db)
                self.log.info("Dropped database %s again: the restore failed while setting it up", db)
            except Exception as e:  # noqa: BLE001 - the original error matters more
                undone = False
                self.log.warning("Could not drop database %s after the failed setup: %s", db, e)
        return undone

    # ----------------------------------------------------------------------------------------- insert
    def _progress(self, plan: _Plan) -> Progress:
        total = sum(
            f["rows"]
            for t in plan.targets
            for _, f in t.files()
            if t.entry["files"].get(f["key"], {}).get("state") != "done"
        )
        return Progress(
            f"Restore {plan.backup}",
            total_rows=total,
            logger=self.log,
            callback=self.progress_callback,
            interval=self.progress_interval,
        )

    def _insert_all(self, milvus: MilvusParams, plan: _Plan, status: _Status) -> None:
        """Insert every pending data file; partitions (across collections) in parallel."""
        units: list[tuple[_Target, list[tuple[dict[str, Any], dict[str, Any], bool]]]] = []
        for t in plan.targets:
            if t.action == "done":
                continue
            pending = [(p, f) for p, f in t.files() if t.entry["files"][f["key"]]["state"] != "done"]
            started = [f["key"] for _, f in pending if t.entry["files"][f["key"]]["state"] == "started"]
            if started and not t.keep_keys:
                self._restart_collection(milvus, plan, t, status, started)
                pending = list(t.files())
            # a resumed restore redoes every file not recorded done (deleting each batch's keys first):
            # rows of a file may be in Milvus although its "started" was never written
            resumed = bool(t.entry.get("resumed")) and t.keep_keys
            with status.lock:
                t.entry["state"] = "restoring" if pending else t.entry["state"]
            by_part: dict[str | None, list[tuple[dict[str, Any], dict[str, Any], bool]]] = {}
            for p, f in pending:
                redo = resumed
                by_part.setdefault(p.get("partition"), []).append((p, f, redo))
            units.extend((t, items) for items in by_part.values())
        status.save()
        if not units:
            return
        progress = self._progress(plan)
        stop = threading.Event()
        with ThreadPoolExecutor(self.parallelism, thread_name_prefix="restore") as pool:
            futures = [
                pool.submit(self._insert_unit, milvus, plan, t, items, status, progress, stop)
                for t, items in units
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in done if f.exception() is not None]
            if errors:
                stop.set()
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, _Stop)]
        if real:
            raise real[0]  # type: ignore[misc]
        progress.report(final=True)

    def _restart_collection(
        self, milvus: MilvusParams, plan: _Plan, t: _Target, status: _Status, started: list[str]
    ) -> None:
        """Start a collection with regenerated keys over: its interrupted file cannot be repaired."""
        if not t.entry.get("created"):
            raise RestoreError(
                f"Cannot resume {t.target}: file(s) {started[:3]} were partly inserted with newly generated "
                "primary keys, which cannot be told apart from the collection's other rows. Delete its rows "
                "(or drop it) and restore again."
            )
        self.log.warning(
            "Restarting %s from its first file: it gets new primary keys and was interrupted mid-file",
            t.target,
        )
        c = self._client(milvus, t.db)
        try:
            c.drop_collection(t.name)
            self._create_collection(c, plan, t)
            if not t.partition_key:
                for p in t.meta.get("partitions", []):
                    if not c.has_partition(t.name, p):
                        c.create_partition(t.name, p)
            with status.lock:
                t.entry["indexes"] = []
                _reset_files(t.entry)
            self._create_indexes(c, plan, t, status)
        finally:
            c.close()

    def _insert_unit(
        self,
        milvus: MilvusParams,
        plan: _Plan,
        t: _Target,
        items: list[tuple[dict[str, Any], dict[str, Any], bool]],
        status: _Status,
        progress: Progress,
        stop: threading.Event,
    ) -> None:
        began = time.monotonic()
        with milvus_errors(milvus, f"Restore of {t.source} into {t.target}"):
            c = self._client(milvus, t.db)
            # one per unit: it reads the target's schema once for all its files
            inserter = BatchInserter(c, t.name, exported_fields(t.meta), set() if t.keep_keys else {t.pk})
            fetcher = ThreadPoolExecutor(1, thread_name_prefix="fetch")
            ahead: Future[Path] | None = None
            try:
                for i, (part, f, redo) in enumerate(items):
                    if stop.is_set():
                        raise _Stop()
                    tmp = ahead.result() if ahead is not None else self._fetch(plan, f, progress)
                    ahead = None
                    if i + 1 < len(items):
                        # the next file is downloaded and checked while this one is inserted
                        ahead = fetcher.submit(self._fetch, plan, items[i + 1][1], progress)
                    self._insert_file(
                        milvus, c, inserter, plan, t, part, f, redo, status, progress, stop, tmp
                    )
            finally:
                if ahead is not None:
                    with suppress(BaseException):
                        ahead.result().unlink(missing_ok=True)
                fetcher.shutdown()
                c.close()
                with status.lock:
                    t.entry["seconds"] = round(
                        float(t.entry.get("seconds", 0.0)) + time.monotonic() - began, 3
                    )

    def _fetch(self, plan: _Plan, f: dict[str, Any], progress: Progress) -> Path:
        """Download a data file to a temporary file and check its size and sha256; return its path."""
        key = f"{plan.backup}/{f['key']}"
        fd, tmp_name = tempfile.mkstemp(prefix="milvus-restore-", suffix=".parquet", dir=self.tmp_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                self.storage.download(key, tmp)
            except StorageNotFoundError:
                readers.check_not_deleted(self.storage, plan.backup, plan.restore_id)
                raise _missing_object(plan.backup, key, self.storage.description) from None
            digest, size = file_sha256(tmp)
            _check_digest(plan.backup, key, digest, size, f, self.storage.description)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        progress.add(nbytes=size)
        return tmp

    def _insert_file(
        self,
        milvus: MilvusParams,
        c: MilvusClient,
        inserter: BatchInserter,
        plan: _Plan,
        t: _Target,
        part: dict[str, Any],
        f: dict[str, Any],
        redo: bool,
        status: _Status,
        progress: Progress,
        stop: threading.Event,
        tmp: Path,
    ) -> None:
        """Insert the rows of one downloaded and checked data file (``tmp``, removed afterwards)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = f"{plan.backup}/{f['key']}"
        fstate = t.entry["files"][f["key"]]
        partition = None if t.partition_key else part.get("partition")
        try:
            # pre_buffer=False: read a row group at a time, not the whole file into memory up front
            pf = pq.ParquetFile(str(tmp), pre_buffer=False)
            _check_parquet(plan.backup, key, pf, f, t.meta)
            kinds = integrity.json_kinds_stored(plan.server.lite, plan.server.numbers)
            integrity.check_json_kinds(pf, t.meta, key, kinds, plan.server.label, t.target)
            batch_rows = self.insert_batch_rows or _auto_batch_rows(pf, self.insert_batch_bytes)
            with status.lock:
                fstate["state"] = "started"
                fstate["inserted"] = 0
                fstate["attempts"] = int(fstate.get("attempts", 0)) + 1
                _recount(t.entry)
            # with new keys, a partly inserted file forces a restart of the collection: record it at once
            status.save(force=not t.keep_keys)
            n = 0
            for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
                if stop.is_set():
                    raise _Stop()
                table = pa.Table.from_batches([batch])
                pks = table.column(t.pk).to_pylist() if t.keep_keys else []
                try:
                    if redo and pks:
                        self._delete(c, t, pks, partition)
                    self._insert(c, inserter, t, table, pks, partition)
                except Exception as e:
                    if classify(e) in (FailureKind.OTHER, FailureKind.REFUSED) and _milvus_exception(e):
                        raise RowRejectedError(
                            rejected_rows_message(
                                address=milvus.address,
                                key=key,
                                target=t.target,
                                reason=milvus.scrub(message_of(e)),
                                fields=list(t.meta["fields"]),
                                suspect=misfit_field(
                                    table, exported_fields(t.meta), bool(t.meta.get("enable_dynamic_field"))
                                ),
                            )
                        ) from e
                    raise
                n += table.num_rows
                with status.lock:
                    fstate["inserted"] = n
                    _recount(t.entry)
                progress.add(rows=table.num_rows)
            if n != f["rows"]:
                raise IntegrityError(
                    f"Data object {key!r} of backup {plan.backup!r} held {n} rows, its manifest says "
                    f"{f['rows']}; the backup is inconsistent. Verify it (verify_backup) and restore another "
                    "one."
                )
            with status.lock:
                fstate["state"] = "done"
                _recount(t.entry)
            status.save(force=False)
        finally:
            tmp.unlink(missing_ok=True)

    def _delete(self, c: MilvusClient, t: _Target, pks: list[Any], partition: str | None) -> None:
        # the filter is built by filters.pk_in: pymilvus' delete(ids=...) quotes keys without escaping them
        kwargs = {"partition_name": partition} if partition else {}
        dtype, grammar = str(primary_field(t.meta)["type"]), grammar_of(c)
        for i in range(0, len(pks), _DELETE_CHUNK):
            c.delete(t.name, filter=pk_in(t.pk, dtype, pks[i : i + _DELETE_CHUNK], grammar), **kwargs)

    def _insert(
        self,
        c: MilvusClient,
        inserter: BatchInserter,
        t: _Target,
        table: pa.Table,
        pks: list[Any],
        partition: str | None,
    ) -> None:
        for attempt in Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(6),
            wait=wait_exponential(multiplier=0.5, max=15),
            reraise=True,
            before_sleep=lambda rs: self.log.warning(
                "Insert into %s failed (%s); retry %d",
                t.target,
                rs.outcome.exception() if rs.outcome else "",
                rs.attempt_number,
            ),
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1 and pks:
                    # The failed call may have landed: remove its rows so the retry cannot duplicate them.
                    self._delete(c, t, pks, partition)
                inserter.insert(table, partition)

    # ----------------------------------------------------------------------------------------- bulk import
    @contextmanager
    def _orm(self, milvus: MilvusParams, db: str) -> Iterator[str]:
        """Yield an ORM connection alias (bulk import has no MilvusClient method that works on Milvus 2.3)."""
        from pymilvus import connections

        alias = f"restore-{uuid.uuid4().hex[:12]}"
        kw = replace(milvus, db_name=db).client_kwargs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            connections.connect(alias, **kw)
        try:
            yield alias
        finally:
            with suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                connections.disconnect(alias)

    def _import_path(self, plan: _Plan, f: dict[str, Any]) -> str:
        prefix = str(getattr(self.storage, "root", "") or "")
        full = f"{prefix}/{plan.backup}/{f['key']}" if prefix else f"{plan.backup}/{f['key']}"
        root = plan.opts.bulk_import_root
        return full[len(root) + 1 :] if root else full

    def _submit_jobs(self, milvus: MilvusParams, plan: _Plan, status: _Status) -> None:
        """Submit one import job per pending data file (adopting jobs an interrupted attempt submitted)."""
        from pymilvus import utility

        n = 0
        for t in plan.targets:
            if t.action == "done":
                continue
            with self._orm(milvus, t.db) as alias:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    known = self._known_tasks(utility, t, alias) if t.action == "resume" else {}
                    for part, f in t.files():
                        fs = t.entry["files"][f["key"]]
                        if fs["state"] == "done" or (fs.get("task_id") and fs["state"] == "importing"):
                            continue
                        path = self._import_path(plan, f)
                        adopted = known.get(path)
                        if fs["state"] == "submitting" and adopted is not None:
                            task_id = adopted
                        else:
                            with status.lock:
                                fs.update(state="submitting", task_id=None, error=None)
                            status.save()
                            kwargs: dict[str, Any] = {}
                            if not t.partition_key and part.get("partition"):
                                kwargs["partition_name"] = part["partition"]
                            task_id = utility.do_bulk_insert(t.name, files=[path], using=alias, **kwargs)
                            n += 1
                        with status.lock:
                            fs.update(state="importing", task_id=int(task_id), progress=0)
                            t.entry["state"] = "restoring"
                        status.save()
        self.log.info("Restore %s: submitted %d import job(s)", plan.restore_id, n)

    def _known_tasks(self, utility: Any, t: _Target, alias: str) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            tasks = utility.list_bulk_insert_tasks(collection_name=t.name, using=alias)
        except Exception as e:  # noqa: BLE001 - older servers: nothing to adopt
            self.log.warning("Cannot list the import jobs of %s: %s", t.target, e)
            return out
        for task in tasks:
            if getattr(task, "state_name", "") == "Failed":
                continue
            files = getattr(task, "files", "") or ""
            for path in str(files).split(","):
                out[path.strip()] = int(task.task_id)
        return out

    def _poll_jobs(
        self, milvus: MilvusParams, plan: _Plan, status: _Status, progress: Progress | None
    ) -> bool:
        """Check every running import job once; return whether all are done. A failed job raises."""
        from pymilvus import utility

        all_done = True
        for t in plan.targets:
            running = {
                k: fs for k, fs in t.entry["files"].items() if fs["state"] in ("importing", "submitting")
            }
            if not running:
                continue
            with self._orm(milvus, t.db) as alias, warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                for key, fs in running.items():
                    if fs["state"] == "submitting" or fs.get("task_id") is None:
                        raise RestoreError(
                            f"The import job of {key!r} into {t.target} was being submitted when the restore "
                            "was interrupted; run the restore again with the same arguments to resume it."
                        )
                    st = utility.get_bulk_insert_state(int(fs["task_id"]), using=alias)
                    state = str(getattr(st, "state_name", ""))
                    if state.startswith("Failed"):
                        reason = getattr(st, "failed_reason", "") or "unknown reason"
                        with status.lock:
                            fs.update(state="failed", error=reason)
                        status.save()
                        raise RestoreError(
                            f"Import job {fs['task_id']} of {plan.backup}/{key} into {t.target} failed: "
                            f"{reason}. Run the restore again with the same arguments to retry the failed "
                            "jobs, or use method='insert'."
                        )
                    if state == "Completed":
                        rows = int(getattr(st, "row_count", 0) or 0)
                        expected = t.entry["files"][key]["rows"]
                        if rows != expected:
                            raise IntegrityError(
                                f"Import job {fs['task_id']} of {plan.backup}/{key} into {t.target} imported "
                                f"{rows} rows; the manifest says {expected}."
                            )
                        with status.lock:
                            fs.update(state="done", inserted=rows, progress=100)
                            _recount(t.entry)
                        if progress is not None:
                            progress.add(rows=rows)
                    else:
                        all_done = False
                        with status.lock:
                            fs["progress"] = int(getattr(st, "progress", 0) or 0)
        status.save()
        return all_done

    # ----------------------------------------------------------------------------------------- finish
    def _finish(self, client: MilvusClient, milvus: MilvusParams, plan: _Plan, status: _Status) -> None:
        """Flush, drop temporary properties, restore load state and aliases; mark the restore a success."""
        for t in plan.targets:
            if t.action == "done":
                continue
            began = time.monotonic()
            c = self._client(milvus, t.db)
            try:
                if not plan.opts.meta_only and t.entry["files_total"] and plan.method == "insert":
                    c.flush(t.name)  # seal the inserted segments (imported ones are sealed already)
                for prop in list(t.entry.get("temp_properties", [])):
                    c.drop_collection_properties(t.name, property_keys=[prop])
                    with status.lock:
                        t.entry["temp_properties"].remove(prop)
                self._restore_load_state(c, plan, t, status)
                if plan.opts.restore_aliases:
                    self._restore_aliases(c, plan, t, status)
                rows_found = None
                if _state_name(c.get_load_state(t.name)) == "Loaded":
                    res = c.query(t.name, filter="", output_fields=["count(*)"], consistency_level="Strong")
                    rows_found = int(res[0]["count(*)"]) if res else 0
                with status.lock:
                    t.entry["rows_found"] = rows_found
                    t.entry["state"] = SUCCESS
                    t.entry["seconds"] = round(
                        float(t.entry.get("seconds", 0.0)) + time.monotonic() - began, 3
                    )
                status.save()
            finally:
                c.close()
        with status.lock:
            status.body["state"] = SUCCESS
            status.body["finished_at"] = _now()
            status.body["error"] = None
            status.body["detached"] = False
        status.save()

    def _restore_load_state(self, c: MilvusClient, plan: _Plan, t: _Target, status: _Status) -> None:
        source = t.meta.get("load_state")
        before = _state_name(c.get_load_state(t.name))
        report: dict[str, Any] = {"source": source, "before": before}
        if not plan.opts.restore_load_state or t.action == "existing":
            report["action"] = "unchanged"
        elif source in ("Loaded", "Loading"):
            if before == "Loaded" and plan.method == "bulk_import" and not plan.opts.meta_only:
                c.release_collection(t.name)  # imported segments show only after a reload (Milvus 2.3)
            try:
                c.load_collection(t.name)
                report["action"] = "loaded"
            except Exception as e:
                if not _milvus_exception(e) or is_connection_failure(e) or plan.opts.restore_index:
                    raise
                report["action"] = "not loaded"
                report["reason"] = f"restore_index=False left the vector fields without an index ({e})"
                self.log.warning("%s is not loaded: %s", t.target, report["reason"])
        else:
            if before == "Loaded":
                c.release_collection(t.name)
                report["action"] = "released"
            else:
                report["action"] = "left released"
        after = _state_name(c.get_load_state(t.name))
        report["target"] = after
        if source not in ("Loaded", "Loading") and after == "Loaded" and report["action"] != "unchanged":
            report["note"] = f"{plan.server.label} loads collections by itself"
        with status.lock:
            t.entry["load_state"] = report

    def _restore_aliases(self, c: MilvusClient, plan: _Plan, t: _Target, status: _Status) -> None:
        restored, skipped = [], []
        if t.meta.get("aliases"):
            taken = set(c.list_aliases().get("aliases", []))
            mine = set(c.list_aliases(t.name).get("aliases", []))
            for a in t.meta["aliases"]:
                alias = a + plan.opts.collection_suffix
                if alias in mine:
                    restored.append(alias)
                    continue
                if alias in taken:
                    try:
                        owner = c.describe_alias(alias).get("collection_name")
                    except Exception:  # noqa: BLE001 - only for the message
                        owner = "another collection"
                    reason = f"alias {alias!r} already points to {t.db}.{owner}; it was left there"
                    skipped.append({"alias": alias, "reason": reason})
                    self.log.warning("Alias %s of %s not restored: %s", alias, t.target, reason)
                    continue
                c.create_alias(t.name, alias)
                restored.append(alias)
        with status.lock:
            t.entry["aliases"] = {"restored": restored, "skipped": skipped}


# ------------------------------------------------------------------------------------------------ helpers
def _state_name(state: Any) -> str:
    s = state.get("state") if isinstance(state, dict) else state
    return getattr(s, "name", None) or str(s)


def _index_report(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("index_name", "field_name", "index_type", "metric_type", "params")}


def _reset_files(entry: dict[str, Any]) -> None:
    for fs in entry.get("files", {}).values():
        fs.update(state="pending", inserted=0, task_id=None)
    _recount(entry)


def _recount(entry: dict[str, Any]) -> None:
    files = entry.get("files", {})
    entry["files_done"] = sum(1 for f in files.values() if f.get("state") == "done")
    entry["rows_restored"] = sum(int(f.get("inserted", 0)) for f in files.values())


def _check_digest(backup: str, key: str, digest: str, size: int, f: dict[str, Any], where: str) -> None:
    if digest != f.get("sha256") or size != f.get("size"):
        raise IntegrityError(
            f"Data object {key!r} of backup {backup!r} in {where} does not match its manifest (sha256 "
            f"{digest[:16]}... vs {str(f.get('sha256'))[:16]}..., {human_bytes(size)} vs "
            f"{human_bytes(int(f.get('size') or 0))}): it is corrupt or was changed. None of its rows were "
            "restored; restore another backup (verify_backup checks them all)."
        )


def _missing_object(backup: str, key: str, where: str) -> IntegrityError:
    return IntegrityError(
        f"Data object {key!r} of backup {backup!r} is missing from {where}: the backup is damaged. Restore "
        "another backup, or run verify_backup to list every damaged object."
    )


def _check_manifest_entry(backup: str, meta: dict[str, Any]) -> None:
    """Refuse a collection entry of a manifest whose names or keys break the rules, before anything is done.

    A manifest written by this package passes; one edited by hand or copied in from elsewhere may name keys
    with ``..`` or collections and partitions Milvus would refuse (or that would mean something else).
    """
    try:
        validate_milvus_name(meta.get("db_name"), "database")
        validate_milvus_name(meta.get("name"), "collection")
        for p in meta.get("partitions") or []:
            validate_milvus_name(p, "partition")
        for part in meta.get("data") or []:
            if part.get("partition") is not None:
                validate_milvus_name(part["partition"], "partition")
            for f in part.get("files") or []:
                key = f.get("key")
                if not isinstance(key, str) or not key.startswith(mf.DATA):
                    raise InvalidArgumentError(
                        f"Invalid storage key {key!r}: data objects are under {mf.DATA!r}."
                    )
                validate_key(f"{backup}/{key}")
    except InvalidArgumentError as e:
        source = f"{meta.get('db_name')}.{meta.get('name')}"
        raise InvalidArgumentError(
            f"{e} It is in the manifest of backup {backup!r} (collection {source!r}), which was damaged or "
            "edited by hand; nothing was restored. Restore another backup, or run verify_backup."
        ) from None


def _check_parquet(backup: str, key: str, pf: Any, f: dict[str, Any], meta: dict[str, Any]) -> None:
    integrity.check_file(backup, key, pf, meta, f)


def _auto_batch_rows(pf: Any, target_bytes: int) -> int:
    md = pf.metadata
    total = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    per_row = max(1, total // max(1, md.num_rows))
    return int(max(1, min(50_000, target_bytes // per_row)))
