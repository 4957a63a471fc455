"""Restore a Milvus backup on demand: trigger with the form (backup name, collections, suffix, drop existing,
method). ``latest`` restores the newest complete backup. The restore is verified against the backup. It runs
in the Airflow pool ``milvus_lite`` (``MILVUS_BACKUP_POOL``), like every example DAG task that opens Milvus.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param

from airflow_milvus_backup.operators import MilvusRestoreOperator

BUCKET = os.environ.get("MILVUS_BACKUP_BUCKET", "milvus-backups")
POOL = os.environ.get("MILVUS_BACKUP_POOL", "milvus_lite")

with DAG(
    dag_id="milvus_restore",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["milvus", "restore"],
    doc_md=__doc__,
    params={
        "backup_name": Param(
            "latest",
            type="string",
            title="Backup name",
            description="The backup to restore, or 'latest' for the newest complete one.",
        ),
        "collections": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Collections",
            description="One per line: name, db.name or db.*. Empty restores all.",
        ),
        "collection_suffix": Param(
            "_restored",
            type="string",
            pattern="^[A-Za-z0-9_]*$",
            title="Collection suffix",
            description="Appended to each restored collection's name; may be empty.",
        ),
        "drop_existing": Param(
            False,
            type="boolean",
            title="Drop existing",
            description="Drop a target collection that exists already (in the connection's database).",
        ),
        "method": Param(
            "auto",
            enum=["auto", "insert", "bulk_import"],
            title="Method",
            description="insert: through the client; bulk_import: Milvus import jobs.",
        ),
    },
):
    MilvusRestoreOperator(
        task_id="restore",
        backup_name="{{ params.backup_name }}",
        collection_names="{{ params.collections }}",
        collection_suffix="{{ params.collection_suffix }}",
        drop_existing="{{ params.drop_existing }}",
        method="{{ params.method }}",
        verify=True,
        bucket_name=BUCKET,
        pool=POOL,
    )
