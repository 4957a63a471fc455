"""MilvusBackupHook: turns Airflow connections (or a Milvus Backup ``backup.yaml``) into engine arguments.

Milvus comes from a ``milvus`` connection (:mod:`.connection`); S3 from the Amazon provider's :class:`S3Hook`
and its ``aws`` connection (an ``endpoint_url`` in its extra reaches MinIO or any S3-compatible store), or a
local directory; where they are is a :class:`~.location.BackupLocation`. Every method delegates to the engine
and maps its errors onto :mod:`airflow_milvus_backup.exceptions`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_milvus_backup.exceptions import (
    MilvusBackupConfigError,
    MilvusBackupInvalidArgument,
    engine_errors_as_airflow,
)
from airflow_milvus_backup.hooks.backup_config import BackupConfig, load_backup_config
from airflow_milvus_backup.hooks.connection import (
    S3_CLIENT_DEFAULTS,
    check_lite_path,
    mask_secrets,
    milvus_params_from_connection,
    open_storage,
    s3_client_config,
    s3_hook,
)
from airflow_milvus_backup.hooks.location import DEFAULT_MILVUS_CONN_ID, BackupLocation, takes_location
from airflow_milvus_backup.hooks.physical import milvus_storage_for, restore_engine_for
from airflow_milvus_backup.hooks.summaries import backup_summary, complete_backup

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.backup import BackupEngine
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.pymilvus_logs import PymilvusLogRouter
    from airflow_milvus_backup.engine.restore import RestoreEngine
    from airflow_milvus_backup.engine.storage import Storage

# importable from here as before
__all__ = [
    "S3_CLIENT_DEFAULTS",
    "MilvusBackupHook",
    "backup_summary",
    "check_lite_path",
    "milvus_params_from_connection",
    "s3_client_config",
]


class MilvusBackupHook(BaseHook):
    """Reach Milvus and the backup storage; back up, list, restore and verify through the engine.

    Takes the location arguments of :class:`~airflow_milvus_backup.hooks.location.BackupLocation`
    (``milvus_conn_id``, ``aws_conn_id``, ``bucket_name``, ``root_path``, ``backup_config``, ``local_path``,
    also positional in that order; ``region_name``, ``sse``, ``sse_kms_key_id``, ``allow_root_at_top``), and:

    :param parallelism: partitions or collections processed at the same time.
    :param progress_interval: seconds between progress lines in the log.
    :param logger: where engine progress goes (operators pass their task logger).
    """

    conn_name_attr = "milvus_conn_id"
    default_conn_name = DEFAULT_MILVUS_CONN_ID
    conn_type = "milvus"
    hook_name = "Milvus"

    @takes_location(positional=6)
    def __init__(
        self,
        *args: Any,
        parallelism: int = 2,
        progress_interval: float = 5.0,
        logger: logging.Logger | None = None,
        **kwargs: Any,
    ) -> None:
        location = BackupLocation(**BackupLocation.take(kwargs, args))
        super().__init__(**kwargs)
        self.location = location
        self.milvus_conn_id = location.milvus_conn_id  # the attribute ``conn_name_attr`` names
        self.parallelism = parallelism
        self.progress_interval = progress_interval
        self._engine_logger = logger

    # ------------------------------------------------------------------------------------ configuration
    @cached_property
    def config(self) -> BackupConfig | None:
        """The parsed ``backup_config``, or ``None``."""
        if not self.location.backup_config:
            return None
        cfg = load_backup_config(self.location.backup_config)
        mask_secrets(cfg.secrets())
        return cfg

    @cached_property
    def milvus_params(self) -> MilvusParams:
        """How the engine reaches Milvus (from ``backup_config`` or the ``milvus`` connection)."""
        if self.config is not None and self.config.milvus is not None:
            check_lite_path(self.config.milvus)
            return self.config.milvus
        return self.milvus_params_for(self.milvus_conn_id)

    def milvus_params_for(self, conn_id: str | None) -> MilvusParams:
        """Return engine parameters for any ``milvus`` connection (e.g. the source of a restore drill).

        :param conn_id: the connection id.
        """
        if not conn_id:
            raise MilvusBackupInvalidArgument(
                "No Milvus connection: set milvus_conn_id (or backup_config with a 'milvus' section)."
            )
        params = milvus_params_from_connection(self.get_connection(conn_id))
        mask_secrets(params.secrets())
        check_lite_path(params)
        return params

    @property
    def engine_logger(self) -> logging.Logger:
        """Where engine progress lines go."""
        return self._engine_logger or self.log  # type: ignore[return-value]

    def secrets(self) -> list[str]:
        """Return every secret value this hook knows, so callers can check they appear nowhere."""
        out: list[str] = []
        if self.config is not None:
            out += self.config.secrets()
        try:
            out += self.milvus_params.secrets()
        except Exception:  # noqa: BLE001 - no connection: no secret
            pass
        return out

    def _loaded_secrets(self) -> list[str]:
        """Return the secrets of what is loaded already (never reads a connection or a file)."""
        out: list[str] = []
        cfg = self.__dict__.get("config")
        if cfg is not None:
            out += cfg.secrets()
        params = self.__dict__.get("milvus_params")
        if params is not None:
            out += params.secrets()
        return out

    def scrub(self, text: str) -> str:
        """Replace every secret loaded so far in ``text`` by ``***`` (safe in an event loop: no I/O)."""
        for s in self._loaded_secrets():
            text = text.replace(s, "***")
        return text

    @cached_property
    def pymilvus_logs(self) -> PymilvusLogRouter:
        """Routes pymilvus' log lines to :attr:`engine_logger` while the engine works (once per hook)."""
        from airflow_milvus_backup.engine.pymilvus_logs import PymilvusLogRouter

        return PymilvusLogRouter(self.engine_logger, self.milvus_params.address, self.scrub)

    @contextmanager
    def _milvus_work(self) -> Iterator[None]:
        """Map engine errors, and route pymilvus' log lines to the task log (not stderr: ERROR in Airflow)."""
        with engine_errors_as_airflow(self.scrub):
            router = self.pymilvus_logs
            with router:
                yield

    # ------------------------------------------------------------------------------------------- Milvus
    def get_conn(self) -> MilvusClient:
        """Return a connected ``MilvusClient`` for the configured database."""
        from airflow_milvus_backup.engine.client import connect

        with engine_errors_as_airflow(self.scrub):
            return connect(self.milvus_params)

    @cached_property
    def conn(self) -> MilvusClient:
        """A cached ``MilvusClient`` (see :meth:`get_conn`)."""
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """Connect to Milvus and list the collections of the database; return ``(ok, message)``.

        A Milvus Lite file is released afterwards (unless this process used it already), so other processes
        can open it.
        """
        from pymilvus.exceptions import MilvusException

        from airflow_milvus_backup.engine import lite, server_api
        from airflow_milvus_backup.engine.client import connect, server_version
        from airflow_milvus_backup.engine.errors import MilvusBackupError

        try:
            params = self.milvus_params  # a Milvus Lite path that does not exist is refused here
            # The Test button runs in the API server, which lives on: it must not keep the file's lock.
            with lite.released_after(params.uri) if params.is_lite else nullcontext():
                client = connect(params)
                try:
                    version = server_api.version_label(server_version(client, params.address))
                    names = client.list_collections()
                finally:
                    client.close()
        except (MilvusBackupError, MilvusException, MilvusBackupConfigError) as e:
            return False, self.scrub(str(getattr(e, "message", None) or e))
        return True, (
            f"Connected to Milvus {version} at {params.address}: {len(names)} collection(s) in database "
            f"{params.db_name!r}."
        )

    # ------------------------------------------------------------------------------------------ storage
    def get_s3_hook(self) -> S3Hook:
        """Return the Amazon provider's ``S3Hook`` for the backup storage.

        Its client gets bounded timeouts and retries (:data:`S3_CLIENT_DEFAULTS`) wherever the connection's
        extra ``config_kwargs`` sets none, so a hung S3 endpoint fails the task in bounded time.
        """
        loc = self.location
        return s3_hook(loc.aws_conn_id, loc.region_name, self.config)

    @cached_property
    def storage(self) -> Storage:
        """Where backups live: an S3 bucket through ``S3Hook``, or a local directory."""
        with engine_errors_as_airflow(self.scrub):
            return open_storage(self.location, self.config, self.get_s3_hook)

    @property
    def milvus_bucket_name(self) -> str | None:
        """Milvus' own bucket (from ``backup_config``), where bulk import reads its files."""
        return self.config.milvus_bucket_name if self.config else None

    # -------------------------------------------------------------------------------------------- engine
    def backup_engine(self) -> BackupEngine:
        """Return a :class:`~airflow_milvus_backup.engine.backup.BackupEngine` over :attr:`storage`."""
        from airflow_milvus_backup.engine.backup import BackupEngine

        return BackupEngine(
            self.storage,
            parallelism=self.parallelism,
            logger=self.engine_logger,
            progress_interval=self.progress_interval,
        )

    def restore_engine(self) -> RestoreEngine:
        """Return a :class:`~airflow_milvus_backup.engine.restore.RestoreEngine` over :attr:`storage`.

        With Milvus' own bucket, read only for a physical backup (:func:`.physical.restore_engine_for`).
        """
        return restore_engine_for(self)

    def create_backup(
        self,
        backup_name: str,
        collection_names: Iterable[str] | None = None,
        *,
        db_name: str | None = None,
        overwrite: bool = False,
        allow_empty: bool = False,
        mode: str = "logical",
        rbac: bool = False,
    ) -> dict[str, Any]:
        """Back up collections; return the summary (backup_name, backup_id, mode, collections, rows, ...).

        :param backup_name: the backup's name.
        :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"``; default: every collection of
            ``db_name``.
        :param db_name: the database of bare names (default: the connection's).
        :param overwrite: replace an existing backup of that name.
        :param allow_empty: back up a database without collections on purpose (otherwise refused).
        :param mode: ``"logical"``, ``"physical"`` or ``"auto"`` (see ``BackupEngine.create``).
        :param rbac: also back up users, roles and grants (not passwords; not on Milvus Lite).
        """
        with self._milvus_work():
            return self.backup_engine().create(
                self.milvus_params,
                backup_name,
                collection_names,
                db_name=db_name,
                overwrite=overwrite,
                allow_empty=allow_empty,
                mode=mode,
                milvus_storage=milvus_storage_for(self, mode),
                rbac=rbac,
            )

    def list_backups(self, prefix: str = "") -> list[dict[str, Any]]:
        """Return every backup whose name starts with ``prefix``, newest first, with its state."""
        with engine_errors_as_airflow(self.scrub):
            return [b for b in self.backup_engine().list() if b["name"].startswith(prefix or "")]

    def get_backup(self, backup_name: str) -> dict[str, Any]:
        """Return the manifest of a complete backup.

        :param backup_name: the backup's name.
        """
        with engine_errors_as_airflow(self.scrub):
            return self.backup_engine().get(backup_name)

    def latest_backup(self, prefix: str = "", *, allow_empty: bool = False) -> dict[str, Any]:
        """Return the list entry of the newest complete backup with data whose name starts with ``prefix``.

        :param prefix: only names starting with it count.
        :param allow_empty: also count complete backups without collections.
        """
        with engine_errors_as_airflow(self.scrub):
            return self.backup_engine().latest(prefix or "", allow_empty=allow_empty)

    def find_complete_backup(
        self, backup_name: str | None = None, backup_prefix: str = "", newer_than: str | None = None
    ) -> dict[str, Any] | None:
        """Check once for a complete backup; return its summary (:func:`backup_summary`), else ``None``.

        What the sensor pokes and its trigger polls. A missing, partial or in-progress backup is ``None``; a
        corrupt manifest raises.

        :param backup_name: a backup name; ``None`` for the newest complete backup matching ``backup_prefix``.
        :param backup_prefix: the prefix of names to consider without ``backup_name``.
        :param newer_than: only a backup created after this ISO 8601 time counts.
        """
        with engine_errors_as_airflow(self.scrub):
            return complete_backup(self.backup_engine(), backup_name, backup_prefix, newer_than)

    def delete_backup(self, backup_name: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a backup (complete or partial).

        Refused while a live process writes it or a live restore reads it (the message names the restore, its
        host and pid).

        :param backup_name: the backup's name.
        :param force: delete even then (a restore reading it stops with "deleted while restoring").
        """
        with engine_errors_as_airflow(self.scrub):
            return self.backup_engine().delete(backup_name, force=force)

    def verify_backup(self, backup_name: str, *, raise_on_error: bool = True) -> dict[str, Any]:
        """Check every file of a backup against its manifest (sha256, size, rows); return the report.

        :param backup_name: the backup's name.
        :param raise_on_error: raise (``MilvusBackupIntegrityError``) on the first problem.
        """
        from airflow_milvus_backup.engine import verify

        with engine_errors_as_airflow(self.scrub):
            return verify.verify_backup(
                self.storage, backup_name, raise_on_error=raise_on_error, logger=self.engine_logger
            )

    def restore(
        self, backup_name: str, collection_names: Iterable[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Restore a backup and wait for it; return the engine's report (see ``RestoreEngine.restore``).

        The collections go into the connection's database (its Schema; ``default`` when empty) unless
        ``target_db_name`` names another one.

        :param backup_name: the backup's name.
        :param collection_names: which collections of the backup; default all.
        :param kwargs: the engine's restore options (``collection_suffix``, ``drop_existing``, ``method``...).
        """
        with self._milvus_work():
            return self.restore_engine().restore(self.milvus_params, backup_name, collection_names, **kwargs)

    def submit_restore(
        self, backup_name: str, collection_names: Iterable[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Start a restore without waiting for bulk import jobs; return its status (with ``restore_id``)."""
        with self._milvus_work():
            return self.restore_engine().submit(self.milvus_params, backup_name, collection_names, **kwargs)

    def poll_restore(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Advance a submitted restore; return its status (``state``: executing, success or failed)."""
        with self._milvus_work():
            return self.restore_engine().poll(self.milvus_params, backup_name, restore_id)

    def restore_import_state(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Check a submitted restore's import jobs once; return a summary (what the restore trigger polls).

        Records the jobs' progress in the restore status and does nothing else in Milvus. The summary:
        ``state`` (``executing``; ``imported``: every job done, :meth:`complete_restore` still to run;
        ``success``; ``failed``), ``restore_id``, ``backup_name``, ``totals`` and ``error``.

        :param backup_name: the backup being restored.
        :param restore_id: the id :meth:`submit_restore` returned.
        """
        with self._milvus_work():
            return self.restore_engine().import_state(self.milvus_params, backup_name, restore_id)

    def complete_restore(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Finish an imported restore (flush, indexes, load state, aliases, counts); return its report.

        A restore that is already ``success`` or ``failed`` is returned as it is.

        :param backup_name: the backup being restored.
        :param restore_id: the id :meth:`submit_restore` returned.
        """
        with self._milvus_work():
            return self.restore_engine().complete(self.milvus_params, backup_name, restore_id)

    def restore_status(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        """Return the stored status of a restore."""
        with engine_errors_as_airflow(self.scrub):
            return self.restore_engine().status(backup_name, restore_id)

    def list_restores(self, backup_name: str) -> list[dict[str, Any]]:
        """Return the restores recorded for a backup."""
        with engine_errors_as_airflow(self.scrub):
            return self.restore_engine().list_restores(backup_name)

    def verify_restore(
        self,
        backup_name: str,
        restore_report: Mapping[str, Any],
        *,
        sample_searches: int = 10,
        top_k: int = 10,
        source_milvus: MilvusParams | None = None,
    ) -> dict[str, Any]:
        """Compare restored collections with the backup (rows, schema, sample searches); return the report.

        :param backup_name: the backup's name.
        :param restore_report: what :meth:`restore` returned.
        :param sample_searches: vector searches compared per collection.
        :param top_k: hits per search.
        :param source_milvus: also compare search results with the collections of this Milvus.
        """
        from airflow_milvus_backup.engine import verify

        with self._milvus_work():
            return verify.verify_restore(
                self.milvus_params,
                self.storage,
                backup_name,
                dict(restore_report),
                sample_searches=sample_searches,
                top_k=top_k,
                source_milvus=source_milvus,
                logger=self.engine_logger,
            )

    def running_restores(self, backup_name: str) -> list[dict[str, Any]]:
        """Return the live restores reading a backup (live lease with a running state under ``restores/``).

        :param backup_name: the backup's name.
        """
        from airflow_milvus_backup.engine import readers

        with engine_errors_as_airflow(self.scrub):
            return readers.live_restores(self.storage, backup_name)
