"""Collections a logical backup must load before it reads them, and releases again afterwards.

``query_iterator`` needs a loaded collection. A released one (or one Milvus did not load again after a
restart) is loaded for the backup and released when the export ends; one Milvus is still loading is waited
for, not loaded again (that would need the Load privilege a reading user lacks, and the load is not ours).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine import server_api
from airflow_milvus_backup.engine.client import MilvusParams, milvus_errors
from airflow_milvus_backup.engine.server_api import use_database

if TYPE_CHECKING:
    from pymilvus import MilvusClient

LOADING_WAIT_S = 300.0


def load_for_export(
    client: MilvusClient, milvus: MilvusParams, name: str, metas: list[dict[str, Any]], log: logging.Logger
) -> list[tuple[str, str]]:
    """Load the collections of ``metas`` that are not loaded; return the ``(db, collection)`` loaded here.

    Their captured ``load_state`` stays the original one.

    :param client: a client on the server (switched between databases here).
    :param milvus: the connection, for error messages.
    :param name: the backup's name, for error messages.
    :param metas: the captured collections (``db_name``, ``name``, ``load_state``).
    :param log: the backup's logger.
    """
    loaded: list[tuple[str, str]] = []
    try:
        with milvus_errors(milvus, f"Backup {name!r}"):
            for meta in metas:
                if meta.get("load_state") == "Loaded":
                    continue
                use_database(client, meta["db_name"])
                if meta.get("load_state") == "Loading" and _wait_loaded(client, meta, log):
                    continue
                log.info(
                    "Loading %s.%s for the backup (it is %s; it is released again afterwards)",
                    meta["db_name"],
                    meta["name"],
                    meta.get("load_state"),
                )
                client.load_collection(meta["name"])
                loaded.append((meta["db_name"], meta["name"]))
    except BaseException:
        release(client, loaded, log)
        raise
    return loaded


def _wait_loaded(client: MilvusClient, meta: dict[str, Any], log: logging.Logger) -> bool:
    """Wait for a collection Milvus is already loading; return whether it got loaded in time."""
    log.info("Waiting for %s.%s, which Milvus is loading, before the backup", meta["db_name"], meta["name"])
    deadline = time.monotonic() + LOADING_WAIT_S
    while time.monotonic() < deadline:
        if server_api.load_state(client, meta["name"]) == "Loaded":
            return True
        time.sleep(0.5)
    return False


def release(client: MilvusClient, loaded: list[tuple[str, str]], log: logging.Logger) -> None:
    """Release what :func:`load_for_export` loaded (a failure is a warning: the backup matters more)."""
    for db, coll in loaded:
        try:
            use_database(client, db)
            client.release_collection(coll)
        except Exception as e:  # noqa: BLE001 - the backup's own outcome matters more
            log.warning("Could not release %s.%s after the backup: %s", db, coll, e)
