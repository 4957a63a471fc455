"""The plan of a restore: what it does with each target, with which keys, by which method. Pure.

Everything is decided and checked here *before anything is touched*, from plain data: the manifest, the
options, the selection (:func:`~.selection.select_targets`: which collections onto which targets), the target
server's :class:`ServerInfo`, a :class:`~.snapshot.TargetSnapshot` of the target and the status of the restore
to resume. Targets that exist, ``skip_create`` schema compatibility field by field, field types and primary
keys the server can hold, the method. The I/O that gathers the snapshot, and :func:`~.snapshot.prepare` that
the facade calls, are in :mod:`.snapshot`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import (
    CollectionNotFoundError,
    TargetExistsError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.names import DEFAULT_DB
from airflow_milvus_backup.engine.physical.restore_meta import is_physical
from airflow_milvus_backup.engine.restore.capabilities import (
    AUTO_ID_PROPERTY,
    ServerInfo,
    bulk_blockers,
    check_apis,
    check_fields,
)
from airflow_milvus_backup.engine.restore.context import qualified
from airflow_milvus_backup.engine.restore.options import Method, RestoreOptions, StrValue, new_restore_id
from airflow_milvus_backup.engine.restore.status import SUCCESS
from airflow_milvus_backup.engine.schema import primary_field
from airflow_milvus_backup.engine.schema_compare import require_takes_rows

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry, DataFile, Manifest, PartitionData
    from airflow_milvus_backup.engine.restore.selection import Pair
    from airflow_milvus_backup.engine.restore.snapshot import TargetSnapshot
    from airflow_milvus_backup.engine.storage import ImportLocation

_DB_INFO_KEYS = {"name", "id", "db_id", "dbid", "created_timestamp", "db_name"}


class Action(StrValue):
    """What a restore does with one target collection."""

    #: the target does not exist: create it
    CREATE = "create"
    #: the target exists and ``drop_existing``: drop it and create it again
    REPLACE = "replace"
    #: the target exists and ``skip_create``: insert the rows into it as it is
    EXISTING = "existing"
    #: an earlier attempt of this restore created the target: go on where it stopped
    RESUME = "resume"
    #: an earlier attempt of this restore finished the target: nothing to do
    DONE = "done"


@dataclass(frozen=True)
class Target:
    """One collection to restore: where from, where to, and how (its progress: ``Status.of``)."""

    meta: CollectionEntry
    db: str
    name: str
    action: Action
    keep_keys: bool
    auto_id_property: bool

    @property
    def source(self) -> str:
        """Return the source as ``db.collection``."""
        return qualified(self.meta.db_name, self.meta.name)

    @property
    def target(self) -> str:
        """Return the target as ``db.collection``."""
        return qualified(self.db, self.name)

    @property
    def partition_key(self) -> bool:
        """Return whether the collection has a partition-key field."""
        return any(f.get("is_partition_key") for f in self.meta.fields)

    @property
    def pk(self) -> str:
        """Return the primary key field's name."""
        return str(primary_field(self.meta)["name"])

    def files(self) -> Iterator[tuple[PartitionData, DataFile]]:
        """Yield (partition, data file) for every data file of the collection in the backup."""
        for part in self.meta.data:
            for f in part.files:
                yield part, f


@dataclass(frozen=True)
class Plan:
    """What a restore will do: its targets, method, databases to create, and how to tell it when resumed.

    :param method: ``None`` only in a ``finished`` plan (a restore that already succeeded: nothing to do).
    :param databases: target databases to create, with the properties they get.
    :param prior: the status of the earlier attempt this restore resumes.
    :param finished: that status, when the earlier attempt succeeded.
    """

    backup: str
    manifest: Manifest
    opts: RestoreOptions
    server: ServerInfo
    targets: tuple[Target, ...]
    method: Method | None
    method_reason: str
    databases: dict[str, dict[str, str]]
    fingerprint: str
    arguments: dict[str, Any]
    restore_id: str
    prior: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None

    @property
    def address(self) -> str:
        """Return the target Milvus' address (as the arguments record it), for messages and logs."""
        return str(self.arguments["target"]["address"])


def arguments_of(
    manifest: Manifest,
    pairs: Iterable[Pair],
    opts: RestoreOptions,
    address: str,
    connection_db: str | None,
) -> dict[str, Any]:
    """Return a restore's arguments as its status records them (a resume matches their fingerprint)."""
    return {
        "backup_name": manifest.name,
        "backup_id": manifest.id,
        "target": {"address": address, "db_name": connection_db or DEFAULT_DB},
        "collections": [[p.meta.qualified_name, qualified(p.db, p.name)] for p in pairs],
        "options": opts.fingerprint_fields(),
    }


def fingerprint_of(arguments: dict[str, Any]) -> str:
    """Return the fingerprint of a restore's arguments (what a resume must match)."""
    raw = json.dumps(arguments, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def make_plan(
    manifest: Manifest,
    opts: RestoreOptions,
    server: ServerInfo,
    snapshot: TargetSnapshot | None,
    pairs: list[Pair],
    prior: dict[str, Any] | None,
    restore_id: str | None,
    *,
    address: str,
    connection_db: str | None,
) -> Plan:
    """Return the plan of a restore: each target's action and key policy, the method, the databases to create.

    :param manifest: the backup's manifest.
    :param opts: the restore's options.
    :param server: the target Milvus.
    :param snapshot: the target as it is (may be ``None`` only when ``prior`` succeeded).
    :param pairs: the selection, from :func:`~.selection.select_targets`.
    :param prior: the status of the attempt this restore resumes, or ``None``.
    :param restore_id: the restore id asked for; default: the prior's, else a new one.
    :param address: the target Milvus' address (for the arguments and the messages).
    :param connection_db: the target connection's database.
    :returns: a finished plan (no targets) when ``prior`` succeeded.
    :raises TargetExistsError, CollectionNotFoundError, SchemaMismatchError, UnsupportedError: see
        :func:`decide_action`, :func:`key_policy`, :func:`choose_method` and
        :func:`~.capabilities.check_fields`.
    """
    name = manifest.name
    args = arguments_of(manifest, pairs, opts, address, connection_db)
    fp = fingerprint_of(args)
    rid = restore_id or (prior["restore_id"] if prior else new_restore_id())
    if prior is not None and prior.get("state") == SUCCESS:
        return Plan(name, manifest, opts, server, (), None, "", {}, fp, args, rid, prior, finished=prior)
    if snapshot is None:
        raise ValueError("make_plan needs a snapshot of the target unless the prior restore succeeded")

    prior_entries = {c["target"]: c for c in (prior or {}).get("collections", [])}
    physical = is_physical(manifest)
    targets: list[Target] = []
    databases: dict[str, dict[str, str]] = {}
    for meta, tdb, tname in pairs:
        check_fields(meta, server, address)
        check_apis(meta, tdb, server, address)
        exists = tname in snapshot.collections.get(tdb, ())
        if tdb not in snapshot.databases and tdb not in databases:
            databases[tdb] = db_properties(manifest, meta.db_name)
        pe = prior_entries.get(qualified(tdb, tname))
        action = decide_action(tdb, tname, exists, pe, opts, address)
        desc = snapshot.described.get((tdb, tname))
        if physical:  # binlogs keep their keys; skip_create is checked field by field (ids at import)
            if action == Action.EXISTING and desc is not None:
                require_takes_rows(meta, desc, qualified(tdb, tname))
            keep_keys, auto_prop = True, False
        else:
            keep_keys, auto_prop = key_policy(meta, tdb, tname, action, server, opts, address, desc)
        targets.append(Target(meta, tdb, tname, action, keep_keys, auto_prop))
    if physical:
        method, reason = physical_method(opts, server, address)
    else:
        method, reason = choose_method(
            targets, server, opts, prior, location=snapshot.import_location, where=snapshot.storage
        )
    return Plan(name, manifest, opts, server, tuple(targets), method, reason, databases, fp, args, rid, prior)


def decide_action(
    tdb: str, tname: str, exists: bool, prior_entry: dict[str, Any] | None, opts: RestoreOptions, address: str
) -> Action:
    """Return what to do with one target, or refuse.

    :param tdb: the target database.
    :param tname: the target collection.
    :param exists: whether the target collection exists now.
    :param prior_entry: the target's entry in the status of the attempt this restore resumes.
    :param opts: the restore's options (``drop_existing``, ``skip_create``).
    :param address: the target Milvus' address, for the messages.
    :raises TargetExistsError: the target exists and neither ``drop_existing`` nor ``skip_create`` is set.
    :raises CollectionNotFoundError: ``skip_create`` and the target does not exist.
    """
    target = qualified(tdb, tname)
    if prior_entry is not None and prior_entry.get("created"):
        if prior_entry.get("state") == SUCCESS and exists:
            return Action.DONE
        if exists:
            return Action.RESUME
        return Action.CREATE
    if exists and opts.drop_existing:
        return Action.REPLACE
    if exists and opts.skip_create:
        return Action.EXISTING
    if exists:
        raise TargetExistsError(
            f"Target collection {target} already exists in Milvus at {address}; nothing was "
            "changed. Restore under another name (collection_suffix, collection_renames or "
            "target_db_name), pass drop_existing=True to replace it, or skip_create=True to insert the "
            "rows into it."
        )
    if opts.skip_create:
        raise CollectionNotFoundError(
            f"skip_create=True needs the target collection {target} to exist in Milvus at "
            f"{address}, and it does not; create it, or restore without skip_create."
        )
    return Action.CREATE


def key_policy(
    meta: CollectionEntry,
    tdb: str,
    tname: str,
    action: Action,
    server: ServerInfo,
    opts: RestoreOptions,
    address: str,
    described: dict[str, Any] | None,
) -> tuple[bool, bool]:
    """Return (keys kept, set ``allow_insert_auto_id``); check ``skip_create`` compatibility.

    :param described: ``describe_collection`` of the existing target (needed for :attr:`Action.EXISTING`).
    :raises SchemaMismatchError: an existing target whose fields cannot take the backup's.
    :raises UnsupportedError: an auto_id key the server cannot keep, without ``accept_new_primary_keys``.
    """
    target_auto_id = meta.auto_id
    if action == Action.EXISTING:
        if described is None:
            raise ValueError(f"key_policy needs describe_collection of {qualified(tdb, tname)}")
        require_takes_rows(meta, described, qualified(tdb, tname))
        target_auto_id = bool(described.get("auto_id"))
    if not target_auto_id:
        return True, False
    if server.keeps_auto_id:
        return True, True
    if opts.accept_new_primary_keys or opts.meta_only:
        return False, False
    pk = primary_field(meta)["name"]
    raise UnsupportedError(
        f"{meta.qualified_name} has an auto_id primary key {pk!r}; {server.label} "
        f"at {address} cannot keep the backed-up keys (it has no '{AUTO_ID_PROPERTY}' property, "
        "and its bulk import refuses an auto_id key column). Pass accept_new_primary_keys=True to let "
        "Milvus generate new keys, or restore to Milvus 2.6+ / Milvus Lite."
    )


def choose_method(
    targets: list[Target],
    server: ServerInfo,
    opts: RestoreOptions,
    prior: dict[str, Any] | None,
    *,
    location: ImportLocation | None,
    where: str,
) -> tuple[Method, str]:
    """Return the method and why.

    The prior's method, insert for ``meta_only``, the one asked for, or (``auto``) bulk import when nothing
    blocks it.

    :param location: where Milvus could import the backup from (see :func:`~.capabilities.bulk_blockers`).
    :param where: the storage's description.
    :raises UnsupportedError: ``method="bulk_import"`` and something blocks it (the message lists what).
    """
    if prior is not None and prior.get("method") in (Method.INSERT, Method.BULK_IMPORT):
        return Method(prior["method"]), "resumed with the method it started with"
    if opts.meta_only:
        return Method.INSERT, "meta_only: no data"
    blockers = bulk_blockers(location, where, targets, server, opts)
    if opts.method == Method.INSERT:
        return Method.INSERT, "asked for"
    if opts.method == Method.BULK_IMPORT:
        if blockers:
            raise UnsupportedError(
                "method='bulk_import' cannot work here: " + "; ".join(blockers) + ". Use method='insert' or "
                "'auto'."
            )
        return Method.BULK_IMPORT, "asked for"
    if blockers:
        return Method.INSERT, "bulk import cannot work: " + "; ".join(blockers)
    return Method.BULK_IMPORT, "the target Milvus reads the backup's bucket"


def physical_method(opts: RestoreOptions, server: ServerInfo, address: str) -> tuple[Method, str]:
    """Return the method of a physical backup's restore: binlog import (no other can read binlogs).

    :raises UnsupportedError: another method asked for, or a target that has no binlog import (Milvus Lite).
    """
    if opts.method not in ("auto", Method.BINLOG_IMPORT):
        raise UnsupportedError(
            f"method={opts.method!r} cannot restore a physical backup: its data is Milvus binlogs, which "
            "only Milvus' binlog import reads. Use method='auto'."
        )
    if server.lite:
        raise UnsupportedError(
            f"{address} is Milvus Lite, which has no binlog import: a physical backup restores into a Milvus "
            "server (2.3+) only. Restore a logical backup into Milvus Lite."
        )
    if opts.meta_only:
        return Method.BINLOG_IMPORT, "physical backup, meta_only: no data"
    return Method.BINLOG_IMPORT, "physical backup: its binlogs are imported"


def db_properties(manifest: Manifest, source_db: str) -> dict[str, str]:
    """Return the captured properties of a source database that a new database can take."""
    props = (manifest.databases or {}).get(source_db) or {}
    return {str(k): str(v) for k, v in props.items() if str(k).lower() not in _DB_INFO_KEYS}


def plan_from_status(body: dict[str, Any], manifest: Manifest, server: ServerInfo) -> Plan:
    """Return the plan of a submitted restore, rebuilt from its status and manifest."""
    opts = RestoreOptions.build(body["arguments"]["options"])
    by_source = {qualified(c.db_name, c.name): c for c in manifest.collections}
    targets = []
    for entry in body["collections"]:
        db, name = entry["target"].split(".", 1)
        keep_keys = entry.get("keys") == "kept"
        auto_prop = AUTO_ID_PROPERTY in entry.get("temp_properties", [])
        targets.append(
            Target(by_source[entry["source"]], db, name, Action(entry["action"]), keep_keys, auto_prop)
        )
    return Plan(
        body["backup_name"],
        manifest,
        opts,
        server,
        tuple(targets),
        Method(body["method"]),
        body.get("method_reason", ""),
        {},
        body["fingerprint"],
        body["arguments"],
        body["restore_id"],
        prior=None,
    )
