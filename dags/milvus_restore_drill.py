"""Restore drill, after every backup: restore the backup that triggered the run under a ``_drill`` suffix,
verify it against the backup and the source collections, report, and always drop the drill collections (a
teardown task).

Scheduled on the Asset that ``milvus_nightly_backup`` updates: the run drills the backup named by its
triggering Asset event (``backup_name`` and ``backup_id`` in the event's extra; if several backups landed
before the run started, the newest of them, and the log names the others). A manual run (no triggering
event) drills the newest complete backup; the log of ``backup_to_drill`` says which one and why.

**Unpause this DAG**: like every new DAG it starts paused (``[core] dags_are_paused_at_creation``), and a
paused DAG ignores Asset events, so no drill runs after a backup until you unpause it (the toggle in the UI,
or ``airflow dags unpause milvus_restore_drill``). It is not created unpaused on purpose: a drill restores
into your Milvus, and you decide when that starts.

The drill report (with the backup's name and id) is in the log and in the XCom of ``drill_report``. The
tasks that open Milvus run in the Airflow pool ``milvus_lite`` (``MILVUS_BACKUP_POOL``), so a drill never
overlaps the next backup on a Milvus Lite file.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task, teardown

from airflow_milvus_backup.assets import backups_from_asset_events
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from airflow_milvus_backup.operators import MilvusRestoreOperator, backup_asset

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

    @task
    def backup_to_drill(triggering_asset_events: Any = None) -> dict[str, Any]:
        """Return the backup to drill: the triggering event's, or the newest complete one on a manual run."""
        landed = backups_from_asset_events(triggering_asset_events)
        if landed:
            chosen = landed[-1]
            log.info(
                "Drilling backup %s (id %s): the Asset event of %s that triggered this run named it.",
                chosen["backup_name"],
                chosen.get("backup_id"),
                chosen["asset"],
            )
            if len(landed) > 1:
                log.warning(
                    "%d backups landed before this run started; drilling the newest. Not drilled: %s",
                    len(landed),
                    ", ".join(b["backup_name"] for b in landed[:-1]),
                )
            return {
                "name": chosen["backup_name"],
                "id": chosen.get("backup_id"),
                "collections": list(chosen.get("collections") or []),
                "chosen_because": "triggering Asset event",
            }
        newest = MilvusBackupHook(bucket_name=BUCKET).latest_backup()
        log.info(
            "No triggering Asset event (a manual run): drilling the newest complete backup, %s (id %s).",
            newest["name"],
            newest.get("id"),
        )
        return {
            "name": newest["name"],
            "id": newest.get("id"),
            "collections": list(newest.get("collections") or []),
            "chosen_because": "newest complete backup (manual run)",
        }

    chosen = backup_to_drill()

    restore = MilvusRestoreOperator(
        task_id="restore",
        backup_name="{{ ti.xcom_pull(task_ids='backup_to_drill')['name'] }}",
        collection_suffix=SUFFIX,
        drop_existing=True,
        verify=True,
        source_milvus_conn_id="milvus_default",
        bucket_name=BUCKET,
        pool=POOL,
    )

    @task(multiple_outputs=False)
    def drill_report(result: dict[str, Any], backup: dict[str, Any]) -> dict[str, Any]:
        checks = {c["target"]: c for c in (result["verify"] or {}).get("collections", [])}
        report = {
            "backup_name": result["backup_name"],
            "backup_id": backup.get("id"),
            "chosen_because": backup.get("chosen_because"),
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

    chosen >> restore >> drill_report(restore.output, chosen) >> drop_drill_collections(chosen)
