"""A Milvus user with fewer privileges than root: what it may back up, and errors that say which privilege.

Also: on a server without MVCC timestamps (Milvus 2.3.5) the backup never reads "as of" the client's clock
(pymilvus' fallback), which missed rows written just before it whenever Milvus' timestamp oracle ran ahead.
"""

from __future__ import annotations

import logging
import threading

import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams
from airflow_milvus_backup.engine.client import MilvusParams as Params
from airflow_milvus_backup.engine.client import milvus_errors
from airflow_milvus_backup.engine.errors import MilvusAuthenticationError
from airflow_milvus_backup.engine.failures import is_permission_denied
from airflow_milvus_backup.engine.pymilvus_logs import used_client_side_ts

ROOT = "root:Milvus"
_ITER_LOG = logging.getLogger("pymilvus.client.iterator.query_iterator")


def test_a_fallback_to_the_clients_clock_is_seen_on_its_own_thread_only() -> None:
    def falls_back() -> None:
        _ITER_LOG.warning("failed to get mvccTs from milvus server, use client-side ts instead")

    assert used_client_side_ts(falls_back) is True
    assert used_client_side_ts(lambda: None) is False
    other = threading.Thread(target=falls_back)
    seen: list[bool] = []

    def mine() -> None:
        other.start()
        other.join()

    seen.append(used_client_side_ts(mine))
    assert seen == [False]  # another thread's fallback is not this iterator's


def test_permission_denied_is_told_apart_from_a_bad_login() -> None:
    denied = MilvusException(code=65535, message="PrivilegeListDatabases: permission deny to plain_user")
    assert is_permission_denied(denied)
    assert not is_permission_denied(MilvusException(code=1, message="auth check failure, check password"))
    with pytest.raises(MilvusAuthenticationError, match=r"denied the connection's user a privilege .*Grant"):
        with milvus_errors(Params(uri="http://127.0.0.1:1"), "Backup 'b'"):
            raise denied


@pytest.mark.milvus235
def test_a_user_without_list_databases_backs_up_the_collections_it_may_read(milvus235_auth, tmp_path) -> None:
    srv = milvus235_auth
    root = MilvusClient(uri=srv.uri, token=ROOT)
    name = "priv_c"
    if root.has_collection(name):
        root.drop_collection(name)
    root.create_collection(name, dimension=4)
    root.insert(name, [{"id": i, "vector": [0.1 * i, 0.2, 0.3, 0.4]} for i in range(25)])
    if "reader" not in root.list_users():
        root.create_user("reader", "Reader123!")
    if "reader_role" not in root.list_roles():
        root.create_role("reader_role")
    root.grant_privilege("reader_role", "Collection", "*", name)
    root.grant_role("reader", "reader_role")
    # still loading when the backup starts, as right after a create or a restart: the reader may not Load
    # and Milvus 2.3 guards GetLoadingProgress with Load, so the backup waits on the state alone
    root.release_collection(name)
    root.load_collection(name, _async=True)
    root.close()
    storage = LocalStorage(tmp_path / "b", "backup")
    summary = BackupEngine(storage).create(
        MilvusParams(uri=srv.uri, token="reader:Reader123!"), "by_reader", [name]
    )
    assert summary["rows"] == 25  # every row, though the oracle may run ahead of the wall clock
