"""Restore a Milvus backup on demand: trigger with the form (backup name, collections, suffix, renames,
target database, drop existing, skip create, restore indexes, method). ``latest`` restores the newest complete
backup; every field but the backup name may be left empty. The restore is verified against the backup. It runs
in the Airflow pool ``milvus_lite`` (``MILVUS_BACKUP_POOL``), like every example DAG task that opens Milvus.

It has no schedule, so pausing it only matters for "Unpause on trigger" in the trigger dialog: ticked, the
trigger also unpauses the DAG, which starts nothing else here (no schedule, no catchup).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param

from airflow_milvus_backup.engine.names import MILVUS_NAME_RE, SUFFIX_RE
from airflow_milvus_backup.engine.restore.options import METHODS
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
            minLength=1,
            title="Backup name",
            description="The backup to restore, or 'latest' for the newest complete one.",
        ),
        "collections": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            title="Collections",
            description="One per line: name, db.name or db.*. Empty restores every collection of the backup.",
        ),
        "collection_suffix": Param(
            "_restored",
            type=["string", "null"],
            pattern=SUFFIX_RE.pattern,
            maxLength=64,
            title="Collection suffix",
            description="Appended to each restored collection's name: up to 64 letters, digits or _ "
            "(no spaces, dots or dashes); may be empty to restore under the original names.",
        ),
        "collection_renames": Param(
            {},
            type=["object", "null"],
            title="Collection renames",
            description='A JSON object, e.g. {"c1": "c1_copy", "db1.c2": "db2.c2", "db1.*": "db2.*"}; '
            "an exact rule wins over a db.* rule, and a renamed collection gets no suffix. Empty: none.",
        ),
        "target_db_name": Param(
            None,
            type=["string", "null"],
            pattern=f"^({MILVUS_NAME_RE.pattern.strip('^$')})?$",
            title="Target database",
            description="Restore into this database (created if missing). Empty: the connection's database.",
        ),
        "drop_existing": Param(
            False,
            type=["boolean", "null"],
            title="Drop existing",
            description="Drop a target collection that exists already. Off: an existing target stops the "
            "restore, unless Skip create is on.",
        ),
        "skip_create": Param(
            False,
            type=["boolean", "null"],
            title="Skip create",
            description="Restore the data into target collections that exist already (same schema) instead "
            "of creating them. Not with Drop existing.",
        ),
        "restore_index": Param(
            True,
            type=["boolean", "null"],
            title="Restore indexes",
            description="Build the backed-up indexes on the restored collections.",
        ),
        "method": Param(
            "auto",
            enum=list(METHODS),
            title="Method",
            description="auto: bulk_import when Milvus can read the backup's bucket, else insert; insert: "
            "through the client; bulk_import: Milvus import jobs.",
        ),
    },
):
    MilvusRestoreOperator(
        task_id="restore",
        backup_name="{{ params.backup_name }}",
        collection_names="{{ params.collections }}",
        collection_suffix="{{ params.collection_suffix }}",
        collection_renames="{{ params.collection_renames }}",
        target_db_name="{{ params.target_db_name }}",
        drop_existing="{{ params.drop_existing }}",
        skip_create="{{ params.skip_create }}",
        restore_index="{{ params.restore_index }}",
        method="{{ params.method }}",
        verify=True,
        bucket_name=BUCKET,
        pool=POOL,
    )
