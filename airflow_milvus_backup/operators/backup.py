"""MilvusBackupOperator: back up Milvus collections, optionally verify, and emit an Asset event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_milvus_backup.assets import ASSET_SCHEME, backup_asset
from airflow_milvus_backup.exceptions import engine_errors_as_airflow
from airflow_milvus_backup.operators.base import MilvusBackupBaseOperator, as_bool, as_name_list

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ASSET_SCHEME", "MilvusBackupOperator", "backup_asset", "default_backup_name"]


def default_backup_name(context: Context, prefix: str | None = None) -> str:
    """Return a backup name unique per run and task map index: ``<prefix or dag_id>_<run_after UTC>``.

    Derived from ``run_after`` (set for manual runs too, unlike the logical date) and sanitized to the
    backup name rule, e.g. ``milvus_nightly_backup_20260101_020000``.
    """
    from datetime import timezone

    from airflow_milvus_backup.engine.names import sanitize_name

    dag_run = context["dag_run"]
    when = dag_run.run_after.astimezone(timezone.utc)
    base = prefix or dag_run.dag_id
    name = f"{base}_{when:%Y%m%d_%H%M%S}"
    map_index = getattr(context.get("ti"), "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        name += f"_m{map_index}"
    return sanitize_name(name)


class MilvusBackupOperator(MilvusBackupBaseOperator):
    """Back up Milvus collections to S3 (or a directory); return a JSON summary to XCom.

    The summary: ``backup_name``, ``backup_id``, ``collections`` (``db.name``), ``rows``, ``bytes``,
    ``files``, ``seconds``, ``storage``; with ``verify=True`` also ``verify`` (the verification report).
    Each Asset in ``outlets`` gets an event whose extra holds the backup's name (see :func:`backup_asset`).

    Takes the location arguments (connections, bucket, ...) of :class:`MilvusBackupBaseOperator`, and:

    :param backup_name: the backup's name (templated); default ``<backup_name_prefix or dag_id>_<run_after>``,
        unique per run. Names follow the Milvus Backup rule: letters, digits and ``_``.
    :param backup_name_prefix: the prefix of default names (templated); default the DAG id.
    :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"`` (templated); default every
        collection of ``db_name``.
    :param db_name: the database whose collections are backed up, and of bare collection names (templated);
        default the connection's database (``default``).
    :param overwrite: replace an existing backup of the same name (templated).
    :param verify: after the backup, re-read every file and check it against the manifest (templated).
    :param allow_empty: succeed (and emit the Asset event) even when there is no collection to back up
        (templated); by default that fails the task: it usually means a wrong database or Milvus Lite path.
    :param mode: ``"logical"`` (default: rows read through Milvus), ``"physical"`` (flushed segments copied
        server-side from Milvus' own bucket, in Milvus Backup's format; the ``milvus`` connection's extra
        ``milvus_bucket`` / ``milvus_root_path`` / ``milvus_storage_conn_id`` or ``backup_config``'s ``minio``
        section names that bucket) or ``"auto"`` (physical when that bucket can be read, else logical; the
        log says why) (templated).
    :param rbac: also back up users (with their roles), roles and grants, as Milvus Backup's ``--rbac``
        (templated); never passwords. Not on Milvus Lite (it has no RBAC).
    """

    template_fields: Sequence[str] = (
        "backup_name",
        "backup_name_prefix",
        "collection_names",
        "db_name",
        "overwrite",
        "verify",
        "allow_empty",
        "mode",
        "rbac",
        *MilvusBackupBaseOperator.template_fields,
    )

    def __init__(
        self,
        *,
        backup_name: str | None = None,
        backup_name_prefix: str | None = None,
        collection_names: list[str] | str | None = None,
        db_name: str | None = None,
        overwrite: bool = False,
        verify: bool = False,
        allow_empty: bool = False,
        mode: str = "logical",
        rbac: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backup_name = backup_name
        self.backup_name_prefix = backup_name_prefix
        self.collection_names = collection_names
        self.db_name = db_name
        self.overwrite = overwrite
        self.verify = verify
        self.allow_empty = allow_empty
        self.mode = mode
        self.rbac = rbac

    def execute(self, context: Context) -> dict[str, Any]:
        """Back up, verify if asked, emit the Asset events; return the summary."""
        from airflow_milvus_backup.engine.names import validate_backup_name

        default_name = not self.backup_name
        name = self.backup_name or default_backup_name(context, self.backup_name_prefix)
        with engine_errors_as_airflow():
            validate_backup_name(name)
        collections = as_name_list(self.collection_names, "collection_names")
        overwrite = as_bool(self.overwrite, "overwrite")
        allow_empty = as_bool(self.allow_empty, "allow_empty")
        verify = as_bool(self.verify, "verify")
        if default_name and not overwrite:
            self._remove_own_partial(context, name)
        self.log.info(
            "Backing up %s of database %r to backup %s",
            ", ".join(collections) if collections else "every collection",
            self.db_name or self.hook.milvus_params.db_name,
            name,
        )
        summary = self.hook.create_backup(
            name,
            collections,
            db_name=self.db_name or None,
            overwrite=overwrite,
            allow_empty=allow_empty,
            mode=str(self.mode or "logical").strip().lower(),
            rbac=as_bool(self.rbac, "rbac"),
        )
        if verify:
            self.log.info("Verifying backup %s", name)
            summary["verify"] = self.hook.verify_backup(name)
            self.log.info("Backup %s verified", name)
        self._emit_asset_events(context, summary)
        return summary

    def _remove_own_partial(self, context: Context, name: str) -> None:
        """On a retry, remove the partial backup an interrupted earlier try of this task left behind."""
        ti = context.get("ti")
        if ti is None or int(getattr(ti, "try_number", 1) or 1) <= 1:
            return
        for b in self.hook.list_backups(prefix=name):
            if b["name"] == name and b.get("state") == "partial":
                self.log.warning("Removing partial backup %s left by an interrupted earlier try", name)
                self.hook.delete_backup(name)

    def _emit_asset_events(self, context: Context, summary: dict[str, Any]) -> None:
        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        extra = {
            "backup_name": summary["backup_name"],
            "backup_id": summary.get("backup_id"),
            "storage": summary.get("storage"),
            "collections": summary.get("collections", []),
            "rows": summary.get("rows"),
            "bytes": summary.get("bytes"),
        }
        for outlet in self.outlets or []:
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra = extra
