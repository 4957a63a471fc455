"""Nightly backup of every collection of a Milvus database to S3, verified; the last 7 are kept.

Connections: ``milvus_default`` (Milvus) and ``aws_default`` (S3; ``endpoint_url`` in its extra for MinIO).
The bucket comes from the environment variable ``MILVUS_BACKUP_BUCKET`` (default ``milvus-backups``); the
database from the Airflow Variable ``milvus_backup_db`` (default ``default``). Each backup emits an event on
the Asset ``milvus-backup://<bucket>/backup``, which schedules ``milvus_restore_drill``. The backup task runs
in the Airflow pool ``milvus_lite`` (``MILVUS_BACKUP_POOL``; create it with one slot: a Milvus Lite file is
opened by one process at a time).

**Physical backups**: ``MILVUS_BACKUP_MODE=physical`` (or ``auto``) copies Milvus' flushed segment files
server-side instead of reading every row (Milvus standalone or cluster whose data is in S3; the ``milvus``
connection's extra names Milvus' bucket: ``milvus_bucket``, ``milvus_root_path``, ``milvus_storage_conn_id``).
``milvus_restore_drill`` drills such a backup as it drills any other.

**Pausing**: the DAG starts paused (Airflow's default, kept so nothing backs up before the connections are
set). Triggering it with "Unpause on trigger" ticked (the dialog's default) also unpauses it, and the
scheduler then starts the run of the last ``@daily`` interval too: two backups, and two drills, start at once
(``max_active_runs=1`` queues the second). To get one backup, untick "Unpause on trigger", or unpause first
and let the schedule run. ``milvus_restore_drill`` starts paused as well: unpause it, or no drill runs.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_milvus_backup.operators import (
    MilvusBackupOperator,
    MilvusBackupRetentionOperator,
    backup_asset,
)

BUCKET = os.environ.get("MILVUS_BACKUP_BUCKET", "milvus-backups")
POOL = os.environ.get("MILVUS_BACKUP_POOL", "milvus_lite")
MODE = os.environ.get("MILVUS_BACKUP_MODE", "logical")

with DAG(
    dag_id="milvus_nightly_backup",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["milvus", "backup"],
    doc_md=__doc__,
):
    # Named milvus_nightly_backup_<run_after>, e.g. milvus_nightly_backup_20260101_000000.
    backup = MilvusBackupOperator(
        task_id="backup",
        db_name="{{ var.value.get('milvus_backup_db', 'default') }}",
        bucket_name=BUCKET,
        verify=True,
        mode=MODE,
        outlets=[backup_asset(BUCKET, "backup")],
        pool=POOL,
    )
    retention = MilvusBackupRetentionOperator(
        task_id="retention",
        keep_last=7,
        backup_prefix="milvus_nightly_backup_",
        bucket_name=BUCKET,
    )
    backup >> retention
