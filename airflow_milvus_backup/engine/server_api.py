"""Which optional Milvus APIs a server answers, decided in one place from gRPC ``UNIMPLEMENTED``.

Milvus Lite 2.5.1 (the C++ Milvus Lite on Milvus 2.5's core, served over gRPC) answers ``UNIMPLEMENTED`` for
the partition RPCs (ShowPartitions, HasPartition, CreatePartition, Load/ReleasePartitions), the alias RPCs,
the database RPCs, AlterCollection (properties), RenameCollection and GetVersion. A server without one of
these APIs is read as a server with the least of it:

=============  ===================================================================================
API            assumed when the server lacks it
=============  ===================================================================================
partitions     every collection has only the ``_default`` partition
aliases        no collection has an alias (a restore skips aliases with a warning)
databases      there is only the ``default`` database
properties     collection properties cannot be altered (``allow_insert_auto_id`` cannot be set)
version        the server is Milvus :data:`UNREPORTED_VERSION` (2.5.0; see :func:`version_label`)
=============  ===================================================================================

The readers here (:func:`list_partitions`, :func:`list_aliases`, :func:`list_databases`) ask the server every
time (decisions are never taken from a stale memory) and fall back to the assumption on ``UNIMPLEMENTED``
only; any other error is raised. What was assumed is logged once per server address and API.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.failures import (
    FailureKind,
    causes,
    classify,
    grpc_status_name,
    is_permission_denied,
)

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.client import MilvusParams

log = logging.getLogger(__name__)

PARTITIONS = "partitions"
ALIASES = "aliases"
DATABASES = "databases"
PROPERTIES = "properties"
VERSION = "version"

#: What is assumed of a server that lacks an API, by API (the log line and the messages say it).
ASSUMED = {
    PARTITIONS: "every collection has only the _default partition",
    ALIASES: "no collection has an alias",
    DATABASES: "there is only the default database",
    PROPERTIES: "collection properties cannot be altered",
    VERSION: "it is Milvus 2.5.0",
}
#: The RPCs whose answer tells, by API (for the log line).
RPCS = {
    PARTITIONS: "ShowPartitions",
    ALIASES: "ListAliases",
    DATABASES: "ListDatabases",
    PROPERTIES: "AlterCollection",
    VERSION: "GetVersion",
}

#: The version assumed for a Milvus that does not answer GetVersion. Every Milvus 2.x server answers it;
#: the one known server that does not is Milvus Lite 2.5.x (Milvus 2.5's core). 2.5.0 is its honest floor:
#: 2.5's types and functions (BM25, nullable) are allowed by version, 2.6's behaviours (explicit keys in an
#: auto_id collection) are not assumed.
UNREPORTED_VERSION = (2, 5, 0)

#: A collection name no one uses, to ask a server whether it has an API without touching anything.
PROBE_COLLECTION = "amb_probe_absent_7f3c9d2e"
_DEFAULT_PARTITION = "_default"
_DEFAULT_DB = "default"
_CONNECTION_KINDS = (FailureKind.UNREACHABLE, FailureKind.AUTH)
_logged: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def is_unimplemented(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an error it came from) is the server saying it lacks the RPC.

    :param exc: what pymilvus raised: the gRPC error itself, or a ``MilvusException`` wrapping it.
    """
    for e in causes(exc):
        if grpc_status_name(e) == "UNIMPLEMENTED" or "StatusCode.UNIMPLEMENTED" in str(e):
            return True
    return False


def note_lacking(address: str, api: str) -> None:
    """Log that the server lacks ``api`` and what is assumed (once per ``address`` and ``api`` per process).

    :param address: the server's address (no secret: :attr:`.client.MilvusParams.address`).
    :param api: one of :data:`ASSUMED`'s keys.
    """
    with _logged_lock:
        if (address, api) in _logged:
            return
        _logged.add((address, api))
    log.warning(
        "Milvus at %s does not implement %s (gRPC UNIMPLEMENTED): assuming %s",
        address,
        RPCS[api],
        ASSUMED[api],
    )


def version_label(reported: str) -> str:
    """Return the server's version for a message: as reported, or what is assumed when it is not.

    :param reported: :func:`~.client.server_version`'s answer (``""`` when GetVersion is unimplemented).
    """
    if reported:
        return reported
    assumed = ".".join(map(str, UNREPORTED_VERSION))
    return f"(version not reported: {RPCS[VERSION]} is unimplemented; assumed {assumed})"


def lacking_message(api: str, label: str, address: str, need: str, fix: str) -> str:
    """Return the message of a restore that needs an API the server lacks: the lack, the need and the fix.

    :param api: one of :data:`ASSUMED`'s keys.
    :param label: the server's label (``Milvus (version not reported...)``).
    :param address: the server's address.
    :param need: what needs it (``"db1.c1 has partitions p1, p2"``).
    :param fix: what the user can do.
    """
    return f"{need}, but {label} at {address} has no {api} API ({RPCS[api]} is unimplemented). {fix}"


def list_partitions(client: MilvusClient, collection: str, address: str) -> list[str]:
    """Return a collection's partitions; ``["_default"]`` on a server without the partitions API."""
    try:
        return list(client.list_partitions(collection))
    except Exception as e:
        if not is_unimplemented(e):
            raise
    note_lacking(address, PARTITIONS)
    return [_DEFAULT_PARTITION]


def list_aliases(client: MilvusClient, address: str, collection: str = "") -> list[str]:
    """Return the aliases of ``collection`` (every alias of the database if empty); none without the API."""
    try:
        got = client.list_aliases(collection) if collection else client.list_aliases()
        return list(got.get("aliases", []))
    except Exception as e:
        if not is_unimplemented(e):
            raise
    note_lacking(address, ALIASES)
    return []


def list_databases(client: MilvusClient, address: str) -> list[str]:
    """Return the server's databases; ``["default"]`` on a server without the databases API."""
    try:
        return list(client.list_databases())
    except Exception as e:
        if not is_unimplemented(e):
            raise
    note_lacking(address, DATABASES)
    return [_DEFAULT_DB]


def lacking(client: MilvusClient, address: str, apis: Iterable[str]) -> frozenset[str]:
    """Return which of ``apis`` the server lacks, by asking it (for a restore's plan, before any change).

    Databases and aliases are asked with a plain listing. Partitions and properties are asked of a
    collection that does not exist (:data:`PROBE_COLLECTION`): a server with the API answers "collection not
    found", one without it UNIMPLEMENTED; nothing is changed either way.

    :param client: a client of the server.
    :param address: its address.
    :param apis: some of :data:`PARTITIONS`, :data:`ALIASES`, :data:`DATABASES`, :data:`PROPERTIES`.
    """
    asks: dict[str, Callable[[], object]] = {
        DATABASES: client.list_databases,
        ALIASES: client.list_aliases,
        PARTITIONS: lambda: client.list_partitions(PROBE_COLLECTION),
        PROPERTIES: lambda: client.alter_collection_properties(PROBE_COLLECTION, {"probe": "1"}),
    }
    out: set[str] = set()
    for api in dict.fromkeys(apis):
        try:
            asks[api]()
        except Exception as e:
            if not is_unimplemented(e):
                if api in (PARTITIONS, PROPERTIES) and classify(e) not in _CONNECTION_KINDS:
                    continue  # "collection not found": the API is there
                raise
            note_lacking(address, api)
            out.add(api)
    return frozenset(out)


def rejects_filter(exc: BaseException) -> bool:
    """Return whether ``exc`` is the server refusing a filter expression (``Invalid expr``, code 1100).

    Milvus Lite 2.5.1 answers so to every filter on a partition-key collection (``id > 5``, ``id in [1]``);
    :func:`~airflow_milvus_backup.engine.paging.pk_pages` then reads by offset.

    :param exc: what pymilvus raised.
    """
    return any("Invalid expr" in str(getattr(e, "message", None) or e) for e in causes(exc))


def load_state(client: MilvusClient, collection: str, partition: str = "") -> str:
    """The load state of ``collection`` (or of its ``partition``): ``Loaded``, ``Loading``, ``NotLoad``.

    pymilvus' ``MilvusClient.get_load_state`` also asks for the loading progress while a collection is
    ``Loading``, and Milvus 2.3 guards that RPC with the Load privilege: a user who may only read a collection
    failed a backup taken while it was still loading. This asks for the state alone.

    :param client: a client on the collection's database.
    :param collection: the collection's name.
    :param partition: a partition's name, or empty for the whole collection.
    """
    conn = client._get_connection()  # noqa: SLF001 - the state without the progress call pymilvus adds
    state = conn.get_load_state(collection, [partition] if partition else None)
    return str(getattr(state, "name", state))


# ------------------------------------------------------------------------------------ databases
def use_database(client: MilvusClient, db: str) -> None:
    """Switch ``client`` to database ``db``.

    pymilvus' ``use_database`` first calls DescribeDatabase, which Milvus before 2.4 does not implement. The
    callers only switch to databases the server listed, so there the switch is made without that check.
    """
    config = getattr(client, "_config", None)
    if (getattr(config, "db_name", None) or _DEFAULT_DB) == db:
        return
    try:
        client.use_database(db)
    except Exception as e:
        text = str(e).lower()
        if config is None or ("unimplemented" not in text and "describedatabase" not in text):
            raise
        config.db_name = db


def collections_by_database(
    client: MilvusClient,
    milvus: MilvusParams,
    db_name: str,
    requested: Iterable[Any] | None,
    logger: logging.Logger,
) -> dict[str, list[str]]:
    """Return the collections of ``db_name`` and of every database a ``db.collection`` in ``requested`` names.

    A user without ListDatabases (Milvus 2.3+ RBAC) may still read its collections: the databases asked for
    are then tried as they are (one that does not exist fails on :func:`use_database`, named). The client is
    switched back to the connection's database.
    """
    dbs = {db_name}
    for item in requested or []:
        if isinstance(item, str) and "." in item:
            dbs.add(item.split(".", 1)[0])
    try:
        known = set(list_databases(client, milvus.address))
    except Exception as e:
        if not is_permission_denied(e):
            raise
        logger.info("Milvus did not let the user list databases: reading %s as asked", sorted(dbs))
        known = dbs
    out: dict[str, list[str]] = {}
    for db in sorted(dbs & known):
        use_database(client, db)
        out[db] = list(client.list_collections())
    use_database(client, milvus.db_name or _DEFAULT_DB)
    return out


def database_properties(client: MilvusClient, db: str, version: str, lite: bool) -> dict[str, Any]:
    """Return a database's properties (``{}`` before Milvus 2.4, which has no DescribeDatabase)."""
    from airflow_milvus_backup.engine.restore.capabilities import ServerInfo

    if not ServerInfo.detect(version, lite).at_least(2, 4):
        return {}  # no DescribeDatabase before 2.4: calling it logs pymilvus' RPC error
    try:
        d = dict(client.describe_database(db))
    except Exception:  # noqa: BLE001 - not implemented before Milvus 2.4.x
        return {}
    d.pop("name", None)
    return {str(k): str(v) for k, v in d.items()}
