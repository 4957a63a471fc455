"""Set up the targets of a restore: databases, collections, partitions, indexes; undo it if it fails.

Missing databases are created with the captured properties, collections with the exact captured schema
(functions, partition key and its partition count, nullable and default values, dynamic field, consistency
level, shards, properties). If this step fails, the collections and databases it created are dropped again;
when that leaves Milvus as it was and the restore is a new one, its status object is deleted too (a failed
restore that changed nothing leaves no state behind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.client import MilvusParams, is_connection_failure
from airflow_milvus_backup.engine.errors import UnsupportedError
from airflow_milvus_backup.engine.indexes import create_index
from airflow_milvus_backup.engine.restore import rbac_step
from airflow_milvus_backup.engine.restore.capabilities import AUTO_ID_PROPERTY, VECTOR_TYPES
from airflow_milvus_backup.engine.restore.context import Context, client_for, milvus_exception
from airflow_milvus_backup.engine.schema import build_schema

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.manifest import CollectionEntry
    from airflow_milvus_backup.engine.restore.plan import Plan, Target
    from airflow_milvus_backup.engine.restore.status import Status


@dataclass
class UndoLog:
    """What a setup did, so that a failed one can be undone: what it created, and what it cannot undo.

    :param collections: targets this setup created (dropped again by :func:`rollback`).
    :param databases: databases this setup created (dropped again, after their collections).
    :param irreversible: changes a rollback does not undo (an existing collection dropped, a property set, a
        partition or index added to a collection that is not this restore's), for the log.
    """

    collections: list[Target] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    irreversible: list[str] = field(default_factory=list)

    def created(self, t: Target) -> None:
        """Record that this setup created ``t``'s collection."""
        self.collections.append(t)

    def created_database(self, db: str) -> None:
        """Record that this setup created database ``db``."""
        self.databases.append(db)

    def cannot_undo(self, change: str) -> None:
        """Record a change that a rollback leaves in place."""
        self.irreversible.append(change)

    def owns(self, t: Target) -> bool:
        """Return whether ``t``'s collection is this restore's (created now, or by the attempt it resumes)."""
        return t in self.collections or t.action == "resume"


def setup(ctx: Context, client: MilvusClient, milvus: MilvusParams, plan: Plan, status: Status) -> None:
    """Create databases, collections, partitions and indexes; undo what this call created if it fails.

    When the undo leaves Milvus as it was (a new restore that only created things, all dropped again),
    ``status.untouched`` is set: the failed restore leaves no state behind, not even its status object.
    """
    undo = UndoLog()
    rbac_step.apply(ctx, client, milvus, plan, status)  # first, as Milvus Backup; never undone (only adds)
    try:
        existing_dbs = set(client.list_databases()) if plan.databases else set()
        for db, props in plan.databases.items():
            if db in existing_dbs:
                continue
            ctx.log.info("Creating database %s%s", db, f" with properties {props}" if props else "")
            if props:
                client.create_database(db, properties=props)
            else:
                client.create_database(db)
            undo.created_database(db)
            status.database_created(db)
        for t in plan.targets:
            if t.action == "done":
                continue
            c = client_for(milvus, t.db)
            try:
                setup_one(ctx, c, plan, t, status, undo)
            finally:
                c.close()
    except BaseException:
        undone = rollback(ctx, client, milvus, undo, status)
        status.untouched = undone and not undo.irreversible and plan.prior is None
        if undo.irreversible:
            ctx.log.warning(
                "The failed setup of restore %s left: %s", plan.restore_id, "; ".join(undo.irreversible)
            )
        raise


def setup_one(
    ctx: Context,
    c: MilvusClient,
    plan: Plan,
    t: Target,
    status: Status,
    undo: UndoLog,
) -> None:
    """Set up one target: drop/replace, create, properties, partitions, indexes, early load."""
    exists = c.has_collection(t.name)
    if t.action == "replace" and exists and not status.of(t).created:
        undo.cannot_undo(f"existing collection {t.target} dropped")
        aliases = server_api.list_aliases(c, plan.address, t.name)
        for a in aliases:
            c.drop_alias(a)
        ctx.log.info(
            "Dropping existing collection %s%s", t.target, f" (aliases {aliases})" if aliases else ""
        )
        c.drop_collection(t.name)
        status.existing_dropped(t, aliases)
        exists = False
    if not exists and t.action in ("resume", "create", "replace"):
        if t.action == "resume":
            ctx.log.warning("Collection %s of an interrupted restore is gone; creating it again", t.target)
        # recorded before the call: a restore killed right after it still knows the collection is its own
        status.collection_created(
            t, [AUTO_ID_PROPERTY] if t.auto_id_property else [], anew=t.action == "resume"
        )
        undo.created(t)
        create_collection(ctx, c, plan, t)
    elif t.action == "existing" and t.auto_id_property:
        props = c.describe_collection(t.name).get("properties") or {}
        if str(props.get(AUTO_ID_PROPERTY, "")).lower() != "true":
            undo.cannot_undo(f"property {AUTO_ID_PROPERTY} set on {t.target}")
            c.alter_collection_properties(t.name, {AUTO_ID_PROPERTY: "true"})
            status.temp_property_set(t, AUTO_ID_PROPERTY)
    elif t.action == "resume" and t.auto_id_property and not plan.opts.meta_only:
        c.alter_collection_properties(t.name, {AUTO_ID_PROPERTY: "true"})
    # a collection this call created is dropped again by a rollback, with its partitions and indexes; a
    # resumed one belongs to this restore (its status says so); any other one is someone else's
    foreign = not undo.owns(t)
    if not t.partition_key:
        have = set(server_api.list_partitions(c, t.name, plan.address))
        for p in t.meta.partitions or ():
            if p not in have:
                if foreign:
                    undo.cannot_undo(f"partition {p} created in {t.target}")
                c.create_partition(t.name, p)
    if t.action != "existing":
        if foreign:
            undo.cannot_undo(f"indexes created on {t.target}")
        create_indexes(ctx, c, plan, t, status)
    if (
        plan.method == "insert"
        and not plan.opts.meta_only
        and plan.opts.restore_load_state
        and t.action != "existing"
        and t.meta.load_state in ("Loaded", "Loading")
    ):
        # Loaded now, the inserted rows stream into the loaded collection; loaded at the end, Milvus
        # reads them all back from object storage (bench/: about 5 s per 100k 768-d rows on 2.3.5).
        try:
            c.load_collection(t.name)
        except Exception as e:  # noqa: BLE001 - the final load decides and reports (e.g. no index)
            if not milvus_exception(e) or is_connection_failure(e):
                raise
            ctx.log.debug("%s not loaded before inserting: %s", t.target, e)


def create_collection(ctx: Context, c: MilvusClient, plan: Plan, t: Target) -> None:
    """Create a target collection with the captured schema, properties and partitions count."""
    meta = t.meta
    schema = build_schema(meta)
    props = {str(k): str(v) for k, v in (meta.properties or {}).items()}
    if t.auto_id_property and not plan.opts.meta_only:
        props[AUTO_ID_PROPERTY] = "true"
    kwargs: dict[str, Any] = {"schema": schema, "num_shards": int(meta.num_shards or 1)}
    level = meta.consistency_level_name or meta.consistency_level
    if level is not None:
        kwargs["consistency_level"] = level
    if props:
        kwargs["properties"] = props
    n = partition_key_count(meta)
    if n:
        kwargs["num_partitions"] = n
    ctx.log.info("Creating collection %s (from %s)", t.target, t.source)
    try:
        c.create_collection(t.name, **kwargs)
    except Exception as e:
        # the server refusing the schema (milvus-lite 2.5.1: "doesn't support nullable") is not retryable
        if not milvus_exception(e) or is_connection_failure(e) or "invalid parameter" not in str(e):
            raise
        why = str(getattr(e, "message", None) or e)
        raise UnsupportedError(
            f"{plan.server.label} at {plan.address} refused to create {t.target} with the schema of "
            f"{t.source}: {why}. Restore it to a Milvus that supports its fields."
        ) from e


def wanted_indexes(ctx: Context, plan: Plan, t: Target) -> list[dict[str, Any]]:
    """Return the index specs to build on a target (AUTOINDEX on vectors with ``use_auto_index``)."""
    if not plan.opts.restore_index:
        return []
    types = {f["name"]: f["type"] for f in t.meta.fields}
    out = []
    for idx in t.meta.indexes or ():
        is_vector = types.get(idx["field_name"]) in VECTOR_TYPES
        spec = {
            "index_name": idx.get("index_name") or idx["field_name"],
            "field_name": idx["field_name"],
            "index_type": idx.get("index_type"),
            "metric_type": metric(idx),
            "params": index_params(idx),
            "vector": is_vector,
        }
        if plan.opts.use_auto_index and is_vector:
            spec.update(index_type="AUTOINDEX", params={})
        out.append(spec)
    return out


def create_indexes(ctx: Context, c: MilvusClient, plan: Plan, t: Target, status: Status) -> None:
    """Build the wanted indexes a target does not have yet; record them in the status."""
    wanted = wanted_indexes(ctx, plan, t)
    if not wanted:
        return
    have_fields = set()
    for n in c.list_indexes(t.name):
        info = c.describe_index(t.name, n) or {}
        have_fields.add(info.get("field_name") or n)
    results = []
    for spec in wanted:
        if spec["field_name"] in have_fields:
            prior = next((r for r in status.of(t).indexes if r["field_name"] == spec["field_name"]), None)
            results.append(prior or {**index_report(spec), "status": "exists"})
            continue
        results.append(build_index(ctx, c, plan, t, spec))
    status.indexes_built(t, results)


def build_index(ctx: Context, c: MilvusClient, plan: Plan, t: Target, spec: dict[str, Any]) -> dict[str, Any]:
    """Build one index; with ``auto_index_fallback`` fall back to AUTOINDEX (or INVERTED)."""

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
        return {**index_report(spec), "status": "created"}
    except Exception as e:
        if not milvus_exception(e) or is_connection_failure(e):
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
            if not milvus_exception(e) or is_connection_failure(e):
                raise
            continue
        ctx.log.warning(
            "%s cannot be built on %s (%s); built %s instead", what, plan.server.label, reason, alt
        )
        return {
            **index_report(spec),
            "index_type": alt,
            "params": {},
            "status": "fallback",
            "reason": reason,
        }
    raise UnsupportedError(
        f"{what}: {plan.server.label} cannot build it ({reason}), nor {' or '.join(fallbacks)}. Pass "
        "restore_index=False."
    )


def rollback(
    ctx: Context,
    client: MilvusClient,
    milvus: MilvusParams,
    undo: UndoLog,
    status: Status,
) -> bool:
    """Drop what a failed setup created (its undo log), collections first; return whether all is gone."""
    undone = True
    for t in undo.collections:
        try:
            c = client_for(milvus, t.db)
            try:
                c.drop_collection(t.name)
            finally:
                c.close()
            status.collection_undone(t)
            ctx.log.info("Dropped %s again: the restore failed while setting it up", t.target)
        except Exception as e:  # noqa: BLE001 - the original error matters more
            undone = False
            ctx.log.warning("Could not drop %s after the failed setup: %s; drop it by hand", t.target, e)
    for db in undo.databases:
        try:
            client.drop_database(db)
            status.database_dropped(db)
            ctx.log.info("Dropped database %s again: the restore failed while setting it up", db)
        except Exception as e:  # noqa: BLE001 - the original error matters more
            undone = False
            ctx.log.warning("Could not drop database %s after the failed setup: %s", db, e)
    return undone


def index_report(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the part of an index spec the report shows."""
    return {k: spec[k] for k in ("index_name", "field_name", "index_type", "metric_type", "params")}


def partition_key_count(meta: CollectionEntry) -> int | None:
    """Return the number of partitions to ask for on a partition-key collection.

    Milvus names them ``_default_N``; Milvus Lite always makes 16 ``_pk_N`` (plus a ``_default``) and reports
    17.
    """
    if not any(f.get("is_partition_key") for f in meta.fields):
        return None
    parts = meta.partitions or ()
    keyed = [p for p in parts if re.fullmatch(r"_(default|pk)_\d+", p)]
    if keyed:
        return len(keyed)
    n = meta.num_partitions
    return int(n) if n else None


def index_params(idx: dict[str, Any]) -> dict[str, Any]:
    """Return the build params of a captured index, flattened, without type, metric and ``dim``.

    Milvus Lite 2.5 reports the vector field's ``dim`` (as a string) among an index's params; it is the
    field's, and a server refuses it as an index param ("dim must be of int").
    """
    params: dict[str, Any] = {}
    for k, v in (idx.get("params") or {}).items():
        if k == "params" and isinstance(v, dict):
            params.update(v)
        elif k not in ("index_type", "metric_type", "field_name", "index_name", "dim"):
            params[k] = v
    return params


def metric(idx: dict[str, Any]) -> str | None:
    """Return the metric of a captured index, ``None`` for scalar indexes."""
    m = idx.get("metric_type")
    return None if m in (None, "", "NONE") else str(m)
