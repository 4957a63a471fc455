"""The I/O of planning a restore: read the target Milvus and the backup's storage, then plan.

:func:`prepare` is what the :class:`~.engine.RestoreEngine` facade calls. It resolves the selection
(:func:`~.selection.select_targets`, pure), reads the status of the restore to resume
(:func:`~.status.find_prior`), gathers a :class:`TargetSnapshot` of the target and hands all of it to the pure
:func:`~.plan.make_plan`. A restore that already succeeded asks nothing of Milvus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.client import server_version
from airflow_milvus_backup.engine.names import DEFAULT_DB
from airflow_milvus_backup.engine.restore.capabilities import ServerInfo, apis_needed
from airflow_milvus_backup.engine.restore.context import client_for
from airflow_milvus_backup.engine.restore.plan import arguments_of, fingerprint_of, make_plan
from airflow_milvus_backup.engine.restore.selection import select_targets
from airflow_milvus_backup.engine.restore.status import SUCCESS
from airflow_milvus_backup.engine.restore.status_store import find_prior

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.manifest import Manifest
    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.options import RestoreOptions
    from airflow_milvus_backup.engine.restore.plan import Plan
    from airflow_milvus_backup.engine.restore.selection import Pair
    from airflow_milvus_backup.engine.storage import ImportLocation


@dataclass(frozen=True)
class TargetSnapshot:
    """The target of a restore as it is before anything is touched, and where Milvus could import from.

    :param databases: the databases that exist in the target Milvus.
    :param collections: the collections of each existing target database (only the selection's databases).
    :param described: ``describe_collection`` of existing targets, by ``(database, collection)`` (gathered
        for ``skip_create``, whose compatibility check and key policy read them).
    :param import_location: where the target Milvus could bulk-import the backup from (``None``: nowhere).
    :param storage: the backup storage's description, for messages.
    """

    databases: frozenset[str] = frozenset({DEFAULT_DB})
    collections: Mapping[str, frozenset[str]] = field(default_factory=dict)
    described: Mapping[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    import_location: ImportLocation | None = None
    storage: str = ""


def server_info(
    client: MilvusClient, milvus: MilvusParams, pairs: Iterable[Pair] = (), opts: RestoreOptions | None = None
) -> ServerInfo:
    """Return what the target Milvus is: its version, and which of the APIs a restore needs it lacks.

    :param pairs: the restore's selection (none: no API is asked for).
    :param opts: its options.
    """
    version = server_version(client, milvus.address)
    needed = apis_needed(((p.meta, p.db) for p in pairs), opts) if opts else frozenset()
    return ServerInfo.detect(version, milvus.is_lite, server_api.lacking(client, milvus.address, needed))


def gather_snapshot(
    ctx: Context, client: MilvusClient, milvus: MilvusParams, pairs: Iterable[Pair], *, describe: bool
) -> TargetSnapshot:
    """Return the snapshot of the targets of ``pairs``: databases, their collections, the existing targets.

    :param ctx: the restore's context (its storage).
    :param client: a client of the target Milvus.
    :param milvus: the target Milvus (one client per database is opened from it).
    :param pairs: the selection.
    :param describe: describe the existing targets (``skip_create``).
    """
    pairs = list(pairs)
    existing_dbs = set(server_api.list_databases(client, milvus.address)) or {DEFAULT_DB}
    collections: dict[str, frozenset[str]] = {}
    described: dict[tuple[str, str], dict[str, Any]] = {}
    for db in sorted({p.db for p in pairs} & existing_dbs):
        # one client per database: MilvusClient.use_database needs describe_database (not in Milvus 2.3)
        c = client_for(milvus, db)
        try:
            collections[db] = frozenset(c.list_collections())
            if describe:
                for p in pairs:
                    if p.db == db and p.name in collections[db]:
                        described[(db, p.name)] = c.describe_collection(p.name)
        finally:
            c.close()
    return TargetSnapshot(
        frozenset(existing_dbs),
        collections,
        described,
        ctx.storage.import_location(),
        ctx.storage.description,
    )


def prepare(
    ctx: Context,
    client: MilvusClient,
    milvus: MilvusParams,
    manifest: Manifest,
    requested: Iterable[str] | None,
    opts: RestoreOptions,
    restore_id: str | None,
) -> Plan:
    """Return the plan of a restore: select, find the restore to resume, read the target, decide.

    :param ctx: the restore's context.
    :param client: a client of the target Milvus.
    :param milvus: the target Milvus.
    :param manifest: the backup's manifest.
    :param requested: the selection; empty: every collection of the backup.
    :param opts: the restore's options.
    :param restore_id: the restore id asked for, or ``None``.
    """
    pairs = select_targets(manifest, opts, requested, milvus.db_name)
    arguments = arguments_of(manifest, pairs, opts, milvus.address, milvus.db_name)
    prior = find_prior(ctx, manifest.name, restore_id, fingerprint_of(arguments), arguments)
    if prior is not None and prior.get("state") == SUCCESS:
        server, snapshot = ServerInfo.detect("", milvus.is_lite), None  # nothing to do: Milvus is not asked
    else:
        server = server_info(client, milvus, pairs, opts)
        snapshot = gather_snapshot(ctx, client, milvus, pairs, describe=opts.skip_create)
    return make_plan(
        manifest,
        opts,
        server,
        snapshot,
        pairs,
        prior,
        restore_id,
        address=milvus.address,
        connection_db=milvus.db_name,
    )
