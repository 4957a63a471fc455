"""Restore drill, after every backup: restore the newest backup under a ``_drill`` suffix, verify it against
the backup and the source collections, report, and always drop the drill collections (a teardown task).

Scheduled on the Asset that ``milvus_nightly_backup`` updates. The drill report is in the log and in the
XCom of ``drill_report``. The tasks that open Milvus run in the Airflow pool ``milvus_lite``
(``MILVUS_BACKUP_POOL``), so a drill never overlaps the next backup on a Milvus Lite file.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task, teardown

from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from airflow_milvus_backup.operators import MilvusRestoreOperator, backup_asset
from airflow_milvus_backup.sensors import MilvusBackupSensor

BUCKET = os.environ.get("MILVUS_BACKUP_BUCKET", "milvus-backups")
POOL = os.environ.get("MILVUS_BACKUP_POOL", "milvus_lite")
SUFFIX = "_drill"
log = logging.getLogger("milvus_restore_drill")

with DAG(
    dag_id="milvus_restore_drill",
    schedule=[backup_asset(BUCKET, "backup")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["milvus", "restore"],
    doc_md=__doc__,
):
    newest = MilvusBackupSensor(task_id="newest_backup", bucket_name=BUCKET, timeout=600, poke_interval=30)

    restore = MilvusRestoreOperator(
        task_id="restore",
        backup_name="{{ ti.xcom_pull(task_ids='newest_backup')['name'] }}",
        collection_suffix=SUFFIX,
        drop_existing=True,
        verify=True,
        source_milvus_conn_id="milvus_default",
        bucket_name=BUCKET,
        pool=POOL,
    )

    @task(multiple_outputs=False)
    def drill_report(result: dict[str, Any]) -> dict[str, Any]:
        checks = {c["target"]: c for c in (result["verify"] or {}).get("collections", [])}
        report = {
            "backup_name": result["backup_name"],
            "restore_id": result["restore_id"],
            # nothing compared is not verified (an empty backup: wrong database or Milvus Lite path?)
            "verified": bool((result["verify"] or {}).get("ok")) and bool(checks),
            "collections": [
                {
                    "source": c["source"],
                    "target": c["target"],
                    "rows": c["rows_restored"],
                    "data_equal": checks.get(c["target"], {}).get("data_equal"),
                    "search_overlap": checks.get(c["target"], {}).get("search_overlap"),
                    "search_note": checks.get(c["target"], {}).get("search_note"),
                }
                for c in result["restore"]["collections"]
            ],
        }
        log.info("Drill report: %s", json.dumps(report, sort_keys=True))
        return report

    @teardown
    @task(pool=POOL)
    def drop_drill_collections(backup: dict[str, Any]) -> list[str]:
        # the drill restored into the connection's database (no target_db_name), whatever the source's was
        hook = MilvusBackupHook()
        db = hook.milvus_params.db_name
        client = hook.get_conn()
        dropped = []
        try:
            for qualified in backup["collections"]:
                name = qualified.split(".", 1)[1] + SUFFIX
                if client.has_collection(name):
                    client.drop_collection(name)
                    dropped.append(f"{db}.{name}")
        finally:
            client.close()
        log.info("Dropped drill collections: %s", dropped)
        return dropped

    newest >> restore >> drill_report(restore.output) >> drop_drill_collections(newest.output)
