"""Finish a restore: flush, temporary properties removed, load state, aliases, row counts; status success.

Load state: release + load after a bulk import so the imported rows are visible (Milvus 2.3). Aliases are
``alias + collection_suffix``; an alias taken on the target is reported and never moved.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.client import MilvusParams, is_connection_failure
from airflow_milvus_backup.engine.restore.context import Context, client_for, milvus_exception
from airflow_milvus_backup.engine.restore.options import IMPORT_METHODS, Method

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.restore.plan import Plan, Target
    from airflow_milvus_backup.engine.restore.status import Status


def finish(ctx: Context, client: MilvusClient, milvus: MilvusParams, plan: Plan, status: Status) -> None:
    """Flush, drop temporary properties, restore load state and aliases; mark the restore a success."""
    for t in plan.targets:
        if t.action == "done":
            continue
        began = time.monotonic()
        c = client_for(milvus, t.db)
        try:
            if not plan.opts.meta_only and status.of(t).files_total and plan.method == "insert":
                c.flush(t.name)  # seal the inserted segments (imported ones are sealed already)
            for prop in list(status.of(t).temp_properties):
                c.drop_collection_properties(t.name, property_keys=[prop])
                status.temp_property_dropped(t, prop)
            restore_load_state(ctx, c, plan, t, status)
            if plan.opts.restore_aliases:
                restore_aliases(ctx, c, plan, t, status)
            rows_found = None
            if state_name(c.get_load_state(t.name)) == "Loaded":
                res = c.query(t.name, filter="", output_fields=["count(*)"], consistency_level="Strong")
                rows_found = int(res[0]["count(*)"]) if res else 0
                if plan.method == Method.BINLOG_IMPORT and not plan.opts.meta_only:
                    from airflow_milvus_backup.engine.physical.restore import verify_partitions

                    status.partitions_verified(t, verify_partitions(c, t, status))
            status.collection_succeeded(t, rows_found, time.monotonic() - began)
        finally:
            c.close()
    status.succeeded()


def restore_load_state(ctx: Context, c: MilvusClient, plan: Plan, t: Target, status: Status) -> None:
    """Load or release a target as the source was; record what was done."""
    source = t.meta.load_state
    before = state_name(c.get_load_state(t.name))
    report: dict[str, Any] = {"source": source, "before": before}
    if not plan.opts.restore_load_state or t.action == "existing":
        report["action"] = "unchanged"
    elif source in ("Loaded", "Loading"):
        if before == "Loaded" and plan.method in IMPORT_METHODS and not plan.opts.meta_only:
            c.release_collection(t.name)  # imported segments show only after a reload (Milvus 2.3)
        try:
            c.load_collection(t.name)
            report["action"] = "loaded"
        except Exception as e:
            if not milvus_exception(e) or is_connection_failure(e) or plan.opts.restore_index:
                raise
            report["action"] = "not loaded"
            report["reason"] = f"restore_index=False left the vector fields without an index ({e})"
            ctx.log.warning("%s is not loaded: %s", t.target, report["reason"])
    else:
        if before == "Loaded":
            c.release_collection(t.name)
            report["action"] = "released"
        else:
            report["action"] = "left released"
    after = state_name(c.get_load_state(t.name))
    report["target"] = after
    if source not in ("Loaded", "Loading") and after == "Loaded" and report["action"] != "unchanged":
        report["note"] = f"{plan.server.label} loads collections by itself"
    status.load_state_restored(t, report)


def restore_aliases(ctx: Context, c: MilvusClient, plan: Plan, t: Target, status: Status) -> None:
    """Create the source's aliases (with the suffix) on a target; report the ones taken elsewhere."""
    restored: list[str] = []
    skipped: list[dict[str, str]] = []
    if t.meta.aliases and not plan.server.has(server_api.ALIASES):
        # documented: a server without aliases (Milvus Lite 2.5) gets the collection without them
        reason = f"{plan.server.label} has no aliases (ListAliases is unimplemented)"
        skipped = [{"alias": a + plan.opts.collection_suffix, "reason": reason} for a in t.meta.aliases]
        ctx.log.warning("Aliases %s of %s not restored: %s", [s["alias"] for s in skipped], t.target, reason)
    elif t.meta.aliases:
        taken = set(server_api.list_aliases(c, plan.address))
        mine = set(server_api.list_aliases(c, plan.address, t.name))
        for a in t.meta.aliases:
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
                ctx.log.warning("Alias %s of %s not restored: %s", alias, t.target, reason)
                continue
            c.create_alias(t.name, alias)
            restored.append(alias)
    status.aliases_restored(t, restored, skipped)


def state_name(state: Any) -> str:
    """Return a load state's name (``Loaded``, ``NotLoad``...) from what pymilvus returns."""
    s = state.get("state") if isinstance(state, dict) else state
    return getattr(s, "name", None) or str(s)
