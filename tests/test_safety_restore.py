"""Data safety: where a restore goes, deleting a backup a restore reads, empty backups.

* The target database of a restore is the connection's database (``MilvusParams.db_name``, the Airflow
  connection's Schema) unless ``target_db_name`` says otherwise: never the source database behind the user's
  back (Milvus 2.3.5 and Milvus Lite, engine and operator).
* A backup a live restore reads is not deleted without ``force=True``; a forced delete makes the restore fail
  with "deleted while restoring", and its status never re-creates the deleted backup's folder.
* Backing up zero collections is an error unless allowed; a Milvus Lite path that does not exist is refused
  before Milvus Lite creates an empty database there; ``latest`` skips backups without collections; a
  verification with nothing to compare does not pass.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported
import numpy as np
import pendulum
import pytest
from airflow.sdk import DAG
from airflow_env import Conns, milvus_conn_json, run_dag, task_states, xcoms
from pymilvus import DataType, MilvusClient
from servers import open_client

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams
from airflow_milvus_backup.engine.names import map_target
from airflow_milvus_backup.engine.restore import RestoreEngine

pytest_plugins = ["airflow_env"]  # its fixtures: airflow_db, airflow_conns

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------------------------ helpers
def make_collection(client: MilvusClient, name: str, rows: int, first_pk: int = 0) -> None:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip)
    add_rows(client, name, first_pk, rows)


def add_rows(client: MilvusClient, name: str, first_pk: int, rows: int) -> None:
    rng = np.random.default_rng(first_pk + rows)
    data = [{"id": first_pk + i, "vec": rng.random(4, dtype=np.float32).tolist()} for i in range(rows)]
    client.insert(name, data)
    client.flush(name)


def pks(client: MilvusClient, name: str) -> list[int]:
    client.load_collection(name)
    rows = client.query(name, filter="id >= 0", output_fields=["id"], consistency_level="Strong", limit=16384)
    return sorted(int(r["id"]) for r in rows)


def db_client(uri: str, db: str) -> MilvusClient:
    # one client per database: MilvusClient.use_database needs describe_database (not in Milvus 2.3)
    return open_client(uri, db_name=db)


# ------------------------------------------------------------------------------------- target database
@pytest.mark.parametrize(
    ("target_db_name", "connection_db", "expected"),
    [
        (None, "staging", ("staging", "c1")),
        (None, "default", ("default", "c1")),
        ("prod", "staging", ("prod", "c1")),
    ],
)
def test_map_target_goes_to_the_connection_database_unless_target_db_name_says_otherwise(
    target_db_name: str | None, connection_db: str, expected: tuple[str, str]
) -> None:
    from airflow_milvus_backup.engine.names import restore_database

    db = restore_database(target_db_name, connection_db)
    assert map_target("default", "c1", target_db=db) == expected
    # an explicit database in a rename rule still wins; a bare rename target is in the target database
    assert map_target("default", "c1", renames={"c1": "other.c9"}, target_db=db) == ("other", "c9")
    assert map_target("default", "c1", renames={"c1": "c9"}, target_db=db) == (expected[0], "c9")


def _staging_setup(uri: str, coll: str, tmp_path: Path) -> tuple[LocalStorage, MilvusParams]:
    """default.<coll> with 30 rows backed up, then 10 rows more; staging.<coll> with 5 other rows."""
    default = db_client(uri, "default")
    try:
        if "staging" not in default.list_databases():
            default.create_database("staging")
        make_collection(default, coll, 30)
    finally:
        default.close()
    staging = db_client(uri, "staging")
    try:
        make_collection(staging, coll, 5, first_pk=1000)
    finally:
        staging.close()
    storage = LocalStorage(tmp_path / "backups")
    BackupEngine(storage).create(MilvusParams(uri=uri), "b_default", [coll])
    default = db_client(uri, "default")
    try:
        add_rows(default, coll, 100, 10)  # written after the backup: a restore must never lose them
    finally:
        default.close()
    return storage, MilvusParams(uri=uri, db_name="staging")


def _assert_restored_into_staging(uri: str, coll: str, report: dict[str, Any]) -> None:
    default = db_client(uri, "default")
    staging = db_client(uri, "staging")
    try:
        assert pks(staging, coll) == list(range(30)), "staging.<coll> is the backup's copy"
        assert pks(default, coll) == [*range(30), *range(100, 110)], "default.<coll> is untouched"
    finally:
        default.close()
        staging.close()
    assert [(c["source"], c["target"]) for c in report["collections"]] == [
        (f"default.{coll}", f"staging.{coll}")
    ]
    assert report["target"]["db_name"] == "staging"
    assert report["arguments"]["target"]["db_name"] == "staging"


def _drop_everywhere(uri: str, coll: str) -> None:
    for db in ("default", "staging"):
        c = db_client(uri, db)
        try:
            if c.has_collection(coll):
                c.drop_collection(coll)
        finally:
            c.close()


@pytest.mark.milvus235
def test_restore_with_drop_existing_replaces_the_connection_databases_collection_on_235(
    milvus235: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coll = f"c1_{uuid.uuid4().hex[:6]}"
    storage, staging_params = _staging_setup(milvus235.uri, coll, tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="airflow_milvus_backup"):
            report = RestoreEngine(storage).restore(staging_params, "b_default", drop_existing=True)
        _assert_restored_into_staging(milvus235.uri, coll, report)
        # the log names the fully qualified collection it drops, before it drops it
        assert f"Dropping existing collection staging.{coll}" in caplog.text
        assert f"default.{coll} -> staging.{coll}" in caplog.text
        # target_db_name still says otherwise: the source database, explicitly
        report = RestoreEngine(storage).restore(
            staging_params, "b_default", target_db_name="default", collection_suffix="_copy"
        )
        assert [c["target"] for c in report["collections"]] == [f"default.{coll}_copy"]
        assert report["target"]["db_name"] == "default"
        c = db_client(milvus235.uri, "default")
        try:
            assert pks(c, f"{coll}_copy") == list(range(30))
            c.drop_collection(f"{coll}_copy")
        finally:
            c.close()
    finally:
        _drop_everywhere(milvus235.uri, coll)


def _dag(dag_id: str) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args={"retries": 0},
    )


def test_restore_operator_with_a_staging_connection_restores_into_staging(
    airflow_conns: Conns, lite_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_backup.operators import MilvusRestoreOperator

    coll = "c1"
    storage, _ = _staging_setup(lite_uri, coll, tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_STAGING", milvus_conn_json(lite_uri, db_name="staging"))
    with _dag("t_restore_staging") as dag:
        MilvusRestoreOperator(
            task_id="restore",
            milvus_conn_id="milvus_staging",
            backup_name="b_default",
            drop_existing=True,
            local_path=str(storage.base),
        )
    dr = run_dag(dag)
    assert task_states(dr) == {"restore": "success"}
    result = xcoms("t_restore_staging", dr.run_id)[("restore", "return_value")]
    _assert_restored_into_staging(lite_uri, coll, result["restore"])
    assert result["verify"]["ok"]
    assert [c["target"] for c in result["verify"]["collections"]] == [f"staging.{coll}"]
