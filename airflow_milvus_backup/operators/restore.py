"""MilvusRestoreOperator: restore a backup (by name, or the newest one), then verify it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf

from airflow_milvus_backup.engine.restore import METHODS, RestoreOptions
from airflow_milvus_backup.exceptions import (
    MilvusBackupException,
    MilvusBackupIntegrityError,
    MilvusBackupInvalidArgument,
)
from airflow_milvus_backup.operators.base import (
    MilvusBackupBaseOperator,
    as_bool,
    as_count,
    as_mapping,
    as_name_list,
    as_seconds,
)
from airflow_milvus_backup.triggers.restore import MilvusRestoreTrigger, progress_text

if TYPE_CHECKING:
    from airflow.sdk import Context

LATEST = "latest"
#: The engine's restore options and their defaults: each is an argument of the operator, of the same name
#: (but ``rbac_passwords``, a secret: the operator reads it from a connection, ``rbac_passwords_conn_id``).
RESTORE_OPTIONS: dict[str, Any] = {
    f.name: f.default for f in fields(RestoreOptions) if f.name != "rbac_passwords"
}


def _optional_text(value: Any) -> str | None:
    """Return a templated optional string; empty, or a template that rendered ``None``, is ``None``."""
    text = "" if value is None else str(value).strip()
    return None if text in ("", "None") else text


class MilvusRestoreOperator(MilvusBackupBaseOperator):
    """Restore collections from a backup, verify them, and return both reports to XCom.

    XCom: ``{"backup_name", "restore_id", "restore": <restore report>, "verify": <verification report>}``.
    Every argument but ``deferrable`` is templated; booleans and numbers are checked once rendered. Takes the
    location arguments (connections, bucket, ...) of :class:`MilvusBackupBaseOperator`, and:

    :param backup_name: the backup to restore (templated); ``"latest"`` or ``None`` for the newest complete
        backup whose name starts with ``backup_prefix``.
    :param backup_prefix: with ``backup_name="latest"``, the prefix of names to consider (templated).
    :param collection_names: collections of the backup to restore (``"c1"``, ``"db1.c1"``, ``"db1.*"``;
        templated); default all.
    :param collection_suffix: appended to each restored collection's name, e.g. ``"_recover"``; also to
        aliases.
    :param collection_renames: ``{"c1": "c2"}``, ``{"db1.c1": "db2.c2"}`` or ``{"db1.*": "db2.*"}`` (a dict or
        a JSON object).
    :param target_db_name: restore into this database; default the database of the Milvus
        connection (its Schema, ``default`` when empty), whatever database the backup came from. A rename
        rule with an explicit database (``{"db1.c1": "db2.c2"}``) wins for its collections.
    :param drop_existing: drop a target collection that exists before restoring it; the log names each one
        (``db.collection``) before it is dropped.
    :param skip_create: restore data into target collections that exist already (same schema).
    :param meta_only: create collections, partitions and indexes, no data.
    :param restore_index: create the backed-up indexes (same names and params); ``False`` creates none.
    :param use_auto_index: create AUTOINDEX (with the original metric) instead of the backed-up index types.
    :param auto_index_fallback: create AUTOINDEX where the target cannot build the backed-up index.
    :param restore_aliases: create the backed-up aliases (``alias + collection_suffix``); taken ones are
        reported.
    :param restore_load_state: load the collections that were loaded, release the others.
    :param method: ``"auto"`` (bulk import where it can work, else insert), ``"insert"`` (through the
        client) or ``"bulk_import"`` (Milvus import jobs); a physical backup is always restored by
        ``"binlog_import"`` (``"auto"`` picks it), which needs Milvus' own bucket (the ``milvus`` connection's
        ``milvus_bucket`` / ``milvus_root_path``, as for a physical backup).
    :param accept_new_primary_keys: allow an auto-id collection's primary keys to change (insert restore).
    :param restore_id: the restore's id, to resume that one; default: resume the newest failed or interrupted
        restore with the same arguments, else a new id.
    :param bulk_import_bucket: Milvus' own bucket, where bulk import reads its files (default
        ``backup_config``'s ``minio.bucketName``).
    :param bulk_import_root: the prefix Milvus resolves import paths against (default: the bucket's root, as
        Milvus 2.3 to 2.5 do).
    :param rbac: also restore the backup's users, roles and grants (the backup must have been made with
        ``rbac=True``); nothing that exists is dropped or changed. Not on Milvus Lite.
    :param rbac_passwords_conn_id: a connection whose extra is ``{"passwords": {"user": "password"}}``: the
        passwords of the users to create (Milvus cannot give passwords back; users without one are skipped and
        named in the report).
    :param verify: after the restore, compare the restored collections with the backup (row counts,
        schema, sample searches); a mismatch fails the task (not retried).
    :param sample_searches: vector searches compared per collection when verifying.
    :param top_k: hits per compared search.
    :param source_milvus_conn_id: also compare sample searches with the collections of this Milvus (the
        source of the backup).
    :param deferrable: with bulk import, submit the import jobs and wait in the triggerer
        (:class:`~airflow_milvus_backup.triggers.restore.MilvusRestoreTrigger`); a worker finishes the
        restore (flush, indexes, load state, aliases) in ``execute_complete``.
    :param poll_interval: seconds between two polls of the import jobs when deferred.
    """

    template_fields: Sequence[str] = (
        "backup_name",
        "backup_prefix",
        "collection_names",
        *RESTORE_OPTIONS,
        "restore_id",
        "rbac_passwords_conn_id",
        "verify",
        "sample_searches",
        "top_k",
        "source_milvus_conn_id",
        "poll_interval",
        *MilvusBackupBaseOperator.template_fields,
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
        auto_index_fallback: bool = False,
        restore_aliases: bool = True,
        restore_load_state: bool = True,
        method: str = "auto",
        accept_new_primary_keys: bool = False,
        restore_id: str | None = None,
        bulk_import_bucket: str | None = None,
        bulk_import_root: str | None = None,
        rbac: bool = False,
        rbac_passwords_conn_id: str | None = None,
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
        self.auto_index_fallback = auto_index_fallback
        self.restore_aliases = restore_aliases
        self.restore_load_state = restore_load_state
        self.method = method
        self.accept_new_primary_keys = accept_new_primary_keys
        self.restore_id = restore_id
        self.bulk_import_bucket = bulk_import_bucket
        self.bulk_import_root = bulk_import_root
        self.rbac = rbac
        self.rbac_passwords_conn_id = rbac_passwords_conn_id
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
        flags = {
            name: as_bool(getattr(self, name), name)
            for name, default in RESTORE_OPTIONS.items()
            if isinstance(default, bool)
        }
        return {
            "collection_suffix": "" if suffix in (None, "None") else str(suffix),
            "collection_renames": as_mapping(self.collection_renames, "collection_renames"),
            "target_db_name": self.target_db_name or None,
            **flags,
            "method": method,
            "restore_id": _optional_text(self.restore_id),
            "bulk_import_bucket": _optional_text(self.bulk_import_bucket) or self.hook.milvus_bucket_name,
            "bulk_import_root": _optional_text(self.bulk_import_root),
            **self._rbac_passwords(),
        }

    def _rbac_passwords(self) -> dict[str, Any]:
        """Return ``{"rbac_passwords": ...}`` from ``rbac_passwords_conn_id`` (``None`` without it)."""
        conn_id = _optional_text(self.rbac_passwords_conn_id)
        if not conn_id:
            return {"rbac_passwords": None}
        from airflow_milvus_backup.hooks.connection import rbac_passwords_from_connection

        return {"rbac_passwords": rbac_passwords_from_connection(self.hook.get_connection(conn_id))}

    def _verify_arguments(self) -> bool:
        """Check the rendered verification arguments (``sample_searches``, ``top_k``); return ``verify``."""
        self.sample_searches = as_count(self.sample_searches, "sample_searches", minimum=0, maximum=10_000)
        self.top_k = as_count(self.top_k, "top_k", maximum=16_384)
        return as_bool(self.verify, "verify")

    # --------------------------------------------------------------------------------------- execution
    def execute(self, context: Context) -> dict[str, Any]:
        """Restore (or submit the restore and defer); verify; return the reports."""
        # every argument is checked before anything is read or created
        verify = self._verify_arguments()
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
            return self._finish(context, name, report, verify=verify)
        status = self.hook.submit_restore(name, collections, **kwargs)
        restore_id = str(status["restore_id"])
        self._running = (name, restore_id)
        state = str(status.get("state", "")).lower()
        if state == "success":
            return self._finish(context, name, status, verify=verify)
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
                **self.backup_location.as_kwargs(),
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout or None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the trigger's event, finish the imported restore on this worker, then verify.

        :raises MilvusBackupException: the trigger's message, when the import failed or the trigger did.
        """
        if not isinstance(event, dict) or "status" not in event:
            raise MilvusBackupException(f"Restore: the trigger sent an invalid event {event!r}.")
        if event["status"] == "error":
            raise MilvusBackupException(str(event.get("message") or "the restore failed in the triggerer"))
        if event["status"] != "success" or "backup_name" not in event or "restore_id" not in event:
            raise MilvusBackupException(f"Restore: unexpected trigger event {event!r}.")
        verify = self._verify_arguments()
        name, restore_id = str(event["backup_name"]), str(event["restore_id"])
        self._running = (name, restore_id)
        self.log.info("Import jobs of restore %s done; finishing the restore", restore_id)
        report = self.hook.complete_restore(name, restore_id)
        state = str(report.get("state", "")).lower()
        self.log.info(
            "Restore %s of backup %r: %s, %s", restore_id, name, state, progress_text(report.get("totals"))
        )
        if state != "success":
            self._running = None
            raise MilvusBackupException(
                f"Restore {restore_id} of backup {name!r} failed: {report.get('error') or report}"
            )
        return self._finish(context, name, report, verify=verify)

    def _finish(self, context: Context, name: str, report: dict[str, Any], *, verify: bool) -> dict[str, Any]:
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
        if not verify:
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
