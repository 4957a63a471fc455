"""The plan of a restore: which collections, onto which targets, doing what, by which method.

Everything is checked here *before anything is touched*: conflicting options, two sources onto one target,
names that are not in the backup, the manifest's own names and keys (Milvus name rule, no ``..``), targets
that exist, ``skip_create`` schema compatibility field by field, field types and primary keys the server can
hold. The target database is ``target_db_name``, else the connection's database ``MilvusParams.db_name``,
never implicitly the source's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import integrity
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.arrow import META_FIELD
from airflow_milvus_backup.engine.errors import (
    CollectionNotFoundError,
    InvalidArgumentError,
    SchemaMismatchError,
    TargetExistsError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.names import (
    DEFAULT_DB,
    map_target,
    restore_database,
    select_collections,
    split_qualified,
    validate_milvus_name,
)
from airflow_milvus_backup.engine.restore import preflight
from airflow_milvus_backup.engine.restore.capabilities import (
    AUTO_ID_PROPERTY,
    ServerInfo,
    bulk_blockers,
    check_fields,
)
from airflow_milvus_backup.engine.restore.context import Context, client_for, qualified
from airflow_milvus_backup.engine.restore.options import RestoreOptions, new_restore_id
from airflow_milvus_backup.engine.restore.status import SUCCESS, find_prior
from airflow_milvus_backup.engine.schema import capture_field, primary_field
from airflow_milvus_backup.engine.storage import validate_key

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.client import MilvusParams

_DB_INFO_KEYS = {"name", "id", "db_id", "dbid", "created_timestamp", "db_name"}


@dataclass
class Target:
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
        """Return the source as ``db.collection``."""
        return qualified(self.meta["db_name"], self.meta["name"])

    @property
    def target(self) -> str:
        """Return the target as ``db.collection``."""
        return qualified(self.db, self.name)

    @property
    def partition_key(self) -> bool:
        """Return whether the collection has a partition-key field."""
        return any(f.get("is_partition_key") for f in self.meta["fields"])

    @property
    def pk(self) -> str:
        """Return the primary key field's name."""
        return str(primary_field(self.meta)["name"])

    def files(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Yield (partition entry, file entry) for every data file of the collection in the backup."""
        for part in self.meta.get("data", []):
            for f in part.get("files", []):
                yield part, f


@dataclass
class Plan:
    """What a restore will do: its targets, method, databases to create, and how to tell it when resumed."""

    backup: str
    manifest: dict[str, Any]
    opts: RestoreOptions
    server: ServerInfo
    targets: list[Target]
    method: str
    method_reason: str
    databases: dict[str, dict[str, str]]  # target databases to create -> properties
    fingerprint: str
    arguments: dict[str, Any]
    restore_id: str
    prior: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None


def partition_key_count(meta: dict[str, Any]) -> int | None:
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


def index_params(idx: dict[str, Any]) -> dict[str, Any]:
    """Return the build params of a captured index, flattened, without type and metric."""
    params: dict[str, Any] = {}
    for k, v in (idx.get("params") or {}).items():
        if k == "params" and isinstance(v, dict):
            params.update(v)
        elif k not in ("index_type", "metric_type", "field_name", "index_name"):
            params[k] = v
    return params


def metric(idx: dict[str, Any]) -> str | None:
    """Return the metric of a captured index, ``None`` for scalar indexes."""
    m = idx.get("metric_type")
    return None if m in (None, "", "NONE") else str(m)


def fingerprint_of(arguments: dict[str, Any]) -> str:
    """Return the fingerprint of a restore's arguments (what a resume must match)."""
    raw = json.dumps(arguments, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def check_manifest_entry(backup: str, meta: dict[str, Any]) -> None:
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


def make_plan(
    ctx: Context,
    client: MilvusClient,
    milvus: MilvusParams,
    manifest: dict[str, Any],
    requested: Iterable[str] | None,
    opts: RestoreOptions,
    restore_id: str | None,
) -> Plan:
    """Return the plan of a restore: resolve the selection and targets and check everything first."""
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
        default_db = DEFAULT_DB if DEFAULT_DB in available or len(available) != 1 else next(iter(available))
        selection = select_collections(requested, available, default_db, where=where)
    renames = opts.collection_renames or {}
    check_rename_sources(renames, available, where)
    target_db = restore_database(opts.target_db_name, milvus.db_name)

    pairs: list[tuple[dict[str, Any], str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for db, coll in selection:
        check_manifest_entry(name, by_source[(db, coll)])
        tdb, tname = map_target(db, coll, suffix=opts.collection_suffix, renames=renames, target_db=target_db)
        validate_milvus_name(tdb, "database")
        validate_milvus_name(tname, "collection")
        if (tdb, tname) in seen:
            raise InvalidArgumentError(
                f"Collections {seen[(tdb, tname)]} and {qualified(db, coll)} of {where} would both be "
                f"restored to {qualified(tdb, tname)} (a restore goes into the connection's database "
                "unless target_db_name or a rule says otherwise); keep each source database with "
                f'collection_renames={{"{db}.*": "{db}.*"}}, or change collection_renames or '
                "collection_suffix so every target is unique."
            )
        seen[(tdb, tname)] = qualified(db, coll)
        pairs.append((by_source[(db, coll)], tdb, tname))

    arguments = {
        "backup_name": name,
        "backup_id": manifest["id"],
        "target": {"address": milvus.address, "db_name": milvus.db_name or DEFAULT_DB},
        "collections": [[c["db_name"] + "." + c["name"], qualified(d, n)] for c, d, n in pairs],
        "options": opts.fingerprint_fields(),
    }
    fingerprint = fingerprint_of(arguments)
    prior = find_prior(ctx, name, restore_id, fingerprint)
    rid = restore_id or (prior["restore_id"] if prior else new_restore_id())
    if prior is not None and prior.get("state") == SUCCESS:
        return Plan(
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
        c = client_for(milvus, db)
        try:
            collections_of[db] = set(c.list_collections())
        finally:
            c.close()

    prior_entries = {c["target"]: c for c in (prior or {}).get("collections", [])}
    targets: list[Target] = []
    databases: dict[str, dict[str, str]] = {}
    for meta, tdb, tname in pairs:
        check_fields(meta, server, milvus)
        exists = tname in collections_of.get(tdb, set())
        if tdb not in existing_dbs and tdb not in databases:
            databases[tdb] = db_properties(manifest, meta["db_name"])
        pe = prior_entries.get(qualified(tdb, tname))
        action = decide_action(meta, tdb, tname, exists, pe, opts, milvus)
        keep_keys, auto_prop = key_policy(ctx, client, meta, tdb, tname, action, server, opts, milvus)
        targets.append(Target(meta, tdb, tname, action, keep_keys, auto_prop))
    method, reason = choose_method(ctx, plan_targets=targets, server=server, opts=opts, prior=prior)
    plan = Plan(
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
        preflight.check_listing(ctx, plan)
        # types, row counts and vector dims from each object's footer, before anything is created
        integrity.check_footers(
            ctx.storage, name, preflight.pending_files(plan, with_meta=True), ctx.parallelism
        )
        if method == "bulk_import":
            preflight.verify_objects(ctx, plan)
    return plan


def check_rename_sources(renames: Mapping[str, str], available: Mapping[str, list[str]], where: str) -> None:
    """Refuse rename rules whose source database or collection is not in the backup."""
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


def decide_action(
    meta: dict[str, Any],
    tdb: str,
    tname: str,
    exists: bool,
    prior_entry: dict[str, Any] | None,
    opts: RestoreOptions,
    milvus: MilvusParams,
) -> str:
    """Return what to do with one target (create, replace, existing, resume or done), or refuse."""
    target = qualified(tdb, tname)
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


def key_policy(
    ctx: Context,
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
        c = client_for(milvus, tdb)
        try:
            desc = c.describe_collection(tname)
        finally:
            c.close()
        check_compatible(meta, desc, qualified(tdb, tname))
        target_auto_id = bool(desc.get("auto_id"))
    if not target_auto_id:
        return True, False
    if server.keeps_auto_id:
        return True, True
    if opts.accept_new_primary_keys or opts.meta_only:
        return False, False
    pk = primary_field(meta)["name"]
    raise UnsupportedError(
        f"{qualified(meta['db_name'], meta['name'])} has an auto_id primary key {pk!r}; {server.label} "
        f"at {milvus.address} cannot keep the backed-up keys (it has no '{AUTO_ID_PROPERTY}' property, "
        "and its bulk import refuses an auto_id key column). Pass accept_new_primary_keys=True to let "
        "Milvus generate new keys, or restore to Milvus 2.6+ / Milvus Lite."
    )


def check_compatible(meta: dict[str, Any], desc: dict[str, Any], target: str) -> None:
    """Raise :class:`SchemaMismatchError` naming the first field the existing target cannot take."""
    src = qualified(meta["db_name"], meta["name"])
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
                raise mismatch(name, "it is a function output in the backup but a plain field in the target")
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


def choose_method(
    ctx: Context,
    *,
    plan_targets: list[Target],
    server: ServerInfo,
    opts: RestoreOptions,
    prior: dict[str, Any] | None,
) -> tuple[str, str]:
    """Return the method (insert or bulk_import) and why."""
    if prior is not None and prior.get("method") in ("insert", "bulk_import"):
        return str(prior["method"]), "resumed with the method it started with"
    if opts.meta_only:
        return "insert", "meta_only: no data"
    blockers = bulk_blockers(ctx.storage, plan_targets, server, opts)
    if opts.method == "insert":
        return "insert", "asked for"
    if opts.method == "bulk_import":
        if blockers:
            raise UnsupportedError(
                "method='bulk_import' cannot work here: " + "; ".join(blockers) + ". Use method='insert' or "
                "'auto'."
            )
        return "bulk_import", "asked for"
    if blockers:
        return "insert", "bulk import cannot work: " + "; ".join(blockers)
    return "bulk_import", "the target Milvus reads the backup's bucket"


def db_properties(manifest: dict[str, Any], source_db: str) -> dict[str, str]:
    """Return the captured properties of a source database that a new database can take."""
    props = (manifest.get("databases") or {}).get(source_db) or {}
    return {str(k): str(v) for k, v in props.items() if str(k).lower() not in _DB_INFO_KEYS}


def plan_from_status(
    ctx: Context, client: MilvusClient, milvus: MilvusParams, body: dict[str, Any], manifest: dict[str, Any]
) -> Plan:
    """Return the plan of a submitted restore, rebuilt from its status and manifest."""
    opts = RestoreOptions.build(body["arguments"]["options"])
    by_source = {qualified(c["db_name"], c["name"]): c for c in manifest["collections"]}
    server = ServerInfo.detect(str(client.get_server_version()), milvus.is_lite)
    targets = []
    for entry in body["collections"]:
        meta = by_source[entry["source"]]
        db, name = entry["target"].split(".", 1)
        t = Target(
            meta,
            db,
            name,
            entry["action"],
            entry.get("keys") == "kept",
            AUTO_ID_PROPERTY in entry.get("temp_properties", []),
            entry,
        )
        targets.append(t)
    return Plan(
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
