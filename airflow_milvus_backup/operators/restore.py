"""MilvusRestoreOperator: restore a backup (by name, or the newest one), then verify it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf

from airflow_milvus_backup.exceptions import (
    MilvusBackupException,
    MilvusBackupIntegrityError,
    MilvusBackupInvalidArgument,
)
from airflow_milvus_backup.operators.base import (
    HOOK_TEMPLATE_FIELDS,
    MilvusBackupBaseOperator,
    as_bool,
    as_count,
    as_mapping,
    as_name_list,
    as_seconds,
)
from airflow_milvus_backup.triggers.milvus_backup import MilvusRestoreTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

METHODS = ("auto", "insert", "bulk_import")
LATEST = "latest"


class MilvusRestoreOperator(MilvusBackupBaseOperator):
    """Restore collections from a backup, verify them, and return both reports to XCom.

    XCom: ``{"backup_name", "restore_id", "restore": <restore report>, "verify": <verification report>}``.

    :param backup_name: the backup to restore (templated); ``"latest"`` or ``None`` for the newest complete
        backup whose name starts with ``backup_prefix``.
    :param backup_prefix: with ``backup_name="latest"``, the prefix of names to consider (templated).
    :param collection_names: collections of the backup to restore (``"c1"``, ``"db1.c1"``, ``"db1.*"``;
        templated); default all.
    :param collection_suffix: appended to each restored collection's name (templated), e.g. ``"_recover"``.
    :param collection_renames: ``{"c1": "c2"}``, ``{"db1.c1": "db2.c2"}`` or ``{"db1.*": "db2.*"}``
        (templated; a dict or a JSON object).
    :param target_db_name: restore into this database (templated); default the database of the Milvus
        connection (its Schema, ``default`` when empty), whatever database the backup came from. A rename
        rule with an explicit database (``{"db1.c1": "db2.c2"}``) wins for its collections.
    :param drop_existing: drop a target collection that exists before restoring it (templated); the log
        names each one (``db.collection``) before it is dropped.
    :param skip_create: restore data into target collections that exist already (same schema).
    :param meta_only: create collections, partitions and indexes, no data.
    :param restore_index: create the backed-up indexes.
    :param use_auto_index: create AUTOINDEX instead of the backed-up index types.
    :param method: ``"auto"`` (bulk import where it can work, else insert), ``"insert"`` (through the
        client) or ``"bulk_import"`` (Milvus import jobs) (templated).
    :param accept_new_primary_keys: allow an auto-id collection's primary keys to change (insert restore).
    :param bulk_import_bucket: Milvus' own bucket, where bulk import reads its files (templated; default
        ``backup_config``'s ``minio.bucketName``).
    :param verify: after the restore, compare the restored collections with the backup (row counts,
        schema, sample searches); a mismatch fails the task (not retried).
    :param sample_searches: vector searches compared per collection when verifying.
    :param top_k: hits per compared search.
    :param source_milvus_conn_id: also compare sample searches with the collections of this Milvus (the
        source of the backup; templated).
    :param deferrable: with bulk import, submit the import jobs and wait in the triggerer
        (:class:`~airflow_milvus_backup.triggers.milvus_backup.MilvusRestoreTrigger`).
    :param poll_interval: seconds between two polls of the import jobs when deferred.
    """

    template_fields: Sequence[str] = (
        "backup_name",
        "backup_prefix",
        "collection_names",
        "collection_suffix",
        "collection_renames",
        "target_db_name",
        "drop_existing",
        "method",
        "bulk_import_bucket",
        "source_milvus_conn_id",
        *HOOK_TEMPLATE_FIELDS,
    )
    template_fields_renderers = {"collection_renames": "json"}

    def __init__(
        self,
        *,
        backup_name: str | None = LATEST,
        backup_prefix: str = "",
        collection_names: list[str] | str | None = None,
        collection_suffix: str | None = "",
        collection_renames: dict[str, str] | str | None = None,
        target_db_name: str | None = None,
        drop_existing: bool | str = False,
        skip_create: bool = False,
        meta_only: bool = False,
        restore_index: bool = True,
        use_auto_index: bool = False,
        method: str = "auto",
        accept_new_primary_keys: bool = False,
        bulk_import_bucket: str | None = None,
        verify: bool = True,
        sample_searches: int = 10,
        top_k: int = 10,
        source_milvus_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backup_name = backup_name
        self.backup_prefix = backup_prefix
        self.collection_names = collection_names
        self.collection_suffix = collection_suffix
        self.collection_renames = collection_renames
        self.target_db_name = target_db_name
        self.drop_existing = drop_existing
        self.skip_create = skip_create
        self.meta_only = meta_only
        self.restore_index = restore_index
        self.use_auto_index = use_auto_index
        self.method = method
        self.accept_new_primary_keys = accept_new_primary_keys
        self.bulk_import_bucket = bulk_import_bucket
        self.verify = verify
        self.sample_searches = sample_searches
        self.top_k = top_k
        self.source_milvus_conn_id = source_milvus_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self._running: tuple[str, str] | None = None

    # ----------------------------------------------------------------------------------------- helpers
    def resolve_backup_name(self) -> str:
        """Return the backup to restore: ``backup_name``, or the newest complete one for ``"latest"``."""
        name = str(self.backup_name or "").strip()
        if not name or name.lower() == LATEST or name == "None":
            latest = self.hook.latest_backup(self.backup_prefix or "")
            self.log.info(
                "Newest complete backup%s: %s (created %s)",
                f" named {self.backup_prefix}*" if self.backup_prefix else "",
                latest["name"],
                latest.get("created_at"),
            )
            return str(latest["name"])
        return name

    def restore_kwargs(self) -> dict[str, Any]:
        """Return the engine's restore options, checked."""
        method = str(self.method or "auto").strip().lower()
        if method not in METHODS:
            raise MilvusBackupInvalidArgument(
                f"method must be one of {', '.join(METHODS)}, got {self.method!r}."
            )
        suffix = self.collection_suffix
        return {
            "collection_suffix": "" if suffix in (None, "None") else str(suffix),
            "collection_renames": as_mapping(self.collection_renames, "collection_renames"),
            "target_db_name": self.target_db_name or None,
            "drop_existing": as_bool(self.drop_existing, "drop_existing"),
            "skip_create": as_bool(self.skip_create, "skip_create"),
            "meta_only": as_bool(self.meta_only, "meta_only"),
            "restore_index": as_bool(self.restore_index, "restore_index"),
            "use_auto_index": as_bool(self.use_auto_index, "use_auto_index"),
            "method": method,
            "accept_new_primary_keys": as_bool(self.accept_new_primary_keys, "accept_new_primary_keys"),
            "bulk_import_bucket": self.bulk_import_bucket or self.hook.milvus_bucket_name,
        }

    # --------------------------------------------------------------------------------------- execution
    def execute(self, context: Context) -> dict[str, Any]:
        """Restore (or submit the restore and defer); verify; return the reports."""
        # every argument is checked before anything is read or created
        self.sample_searches = as_count(self.sample_searches, "sample_searches", minimum=0, maximum=10_000)
        self.top_k = as_count(self.top_k, "top_k", maximum=16_384)
        self.poll_interval = as_seconds(self.poll_interval, "poll_interval", minimum=0.1)
        collections = as_name_list(self.collection_names, "collection_names")
        kwargs = self.restore_kwargs()
        name = self.resolve_backup_name()
        self.log.info(
            "Restoring %s of backup %s into database %s (method %s%s%s)",
            ", ".join(collections) if collections else "every collection",
            name,
            kwargs["target_db_name"] or self.hook.milvus_params.db_name,
            kwargs["method"],
            f", suffix {kwargs['collection_suffix']!r}" if kwargs["collection_suffix"] else "",
            ", dropping existing targets" if kwargs["drop_existing"] else "",
        )
        if not self.deferrable:
            report = self.hook.restore(name, collections, **kwargs)
            return self._finish(context, name, report)
        status = self.hook.submit_restore(name, collections, **kwargs)
        restore_id = str(status["restore_id"])
        self._running = (name, restore_id)
        state = str(status.get("state", "")).lower()
        if state == "success":
            return self._finish(context, name, status)
        if state == "failed":
            raise MilvusBackupException(
                f"Restore {restore_id} of backup {name!r} failed: {status.get('error') or status}"
            )
        self.log.info(
            "Restore %s of backup %s submitted; deferring until the import jobs finish", restore_id, name
        )
        self.defer(
            trigger=MilvusRestoreTrigger(
                backup_name=name,
                restore_id=restore_id,
                poll_interval=float(self.poll_interval),
                **self.hook_kwargs(),
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout or None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the trigger's event, then verify; raise with the trigger's message on error."""
        if not isinstance(event, dict) or "status" not in event:
            raise MilvusBackupException(f"Restore: the trigger sent an invalid event {event!r}.")
        if event["status"] == "error":
            raise MilvusBackupException(str(event.get("message") or "the restore failed in the triggerer"))
        if event["status"] != "success" or "backup_name" not in event:
            raise MilvusBackupException(f"Restore: unexpected trigger event {event!r}.")
        name = str(event["backup_name"])
        report = event.get("report") or self.hook.restore_status(name, str(event["restore_id"]))
        return self._finish(context, name, report)

    def _finish(self, context: Context, name: str, report: dict[str, Any]) -> dict[str, Any]:
        self._running = None
        restore_id = report.get("restore_id")
        totals = report.get("totals") or {}
        self.log.info(
            "Restore %s of backup %s: %s, %s of %s rows, method %s",
            restore_id,
            name,
            report.get("state"),
            totals.get("rows_restored"),
            totals.get("rows_expected"),
            report.get("method"),
        )
        for c in report.get("collections") or []:
            self.log.info(
                "  %s -> %s: %s, %s rows",
                c.get("source"),
                c.get("target"),
                c.get("state"),
                c.get("rows_restored"),
            )
        result: dict[str, Any] = {
            "backup_name": name,
            "restore_id": restore_id,
            "restore": report,
            "verify": None,
        }
        if not as_bool(self.verify, "verify"):
            return result
        source = None
        if self.source_milvus_conn_id:
            source = self.hook.milvus_params_for(self.source_milvus_conn_id)
        self.log.info(
            "Verifying restore %s against backup %s%s",
            restore_id,
            name,
            f" and the source collections at {source.address}" if source else "",
        )
        verification = self.hook.verify_restore(
            name,
            report,
            sample_searches=int(self.sample_searches),
            top_k=int(self.top_k),
            source_milvus=source,
        )
        result["verify"] = verification
        if not verification.get("ok"):
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key="failed_verification", value=result)
            errors = verification.get("errors") or ["differences in the report"]
            raise MilvusBackupIntegrityError(
                f"Restore {restore_id} of backup {name!r} did not verify: {'; '.join(map(str, errors[:5]))}. "
                "The restored collections differ from the backup; the full report is in XCom "
                "'failed_verification'."
            )
        self.log.info("Restore %s verified: the restored collections equal the backup", restore_id)
        return result

    def on_kill(self) -> None:
        """Mark a submitted restore as cancelled; log how to resume one interrupted in this process.

        Milvus cannot cancel import jobs: jobs already submitted run to their end. An insert restore stops
        with this process; running the task again with the same arguments resumes it.
        """
        if self._running is None:
            self.log.warning(
                "Restore interrupted; run the task again with the same arguments to resume it (data files "
                "already restored are skipped)."
            )
            return
        name, restore_id = self._running
        try:
            self.hook.restore_engine().cancel(self.hook.milvus_params, name, restore_id)
            self.log.info("Marked restore %s of backup %s as cancelled", restore_id, name)
        except Exception as e:  # noqa: BLE001 - best effort while the task is being killed
            self.log.warning("Could not mark restore %s of backup %s as cancelled: %s", restore_id, name, e)
