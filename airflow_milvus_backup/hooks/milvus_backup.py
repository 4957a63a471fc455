"""MilvusBackupHook: turns Airflow connections (or a Milvus Backup ``backup.yaml``) into engine arguments.

Milvus comes from a ``milvus`` connection; S3 from the Amazon provider's :class:`S3Hook` and its ``aws``
connection (an ``endpoint_url`` in its extra reaches MinIO or any S3-compatible store), or a local directory.
Every method delegates to the engine and maps its errors onto :mod:`airflow_milvus_backup.exceptions`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.uri import split_uri
from airflow_milvus_backup.exceptions import (
    MilvusBackupConfigError,
    MilvusBackupInvalidArgument,
    engine_errors_as_airflow,
)
from airflow_milvus_backup.hooks.backup_config import BackupConfig, load_backup_config, parse_bool

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import Connection
    from botocore.config import Config
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.backup import BackupEngine
    from airflow_milvus_backup.engine.pymilvus_logs import PymilvusLogRouter
    from airflow_milvus_backup.engine.restore import RestoreEngine
    from airflow_milvus_backup.engine.storage import Storage

DEFAULT_ROOT_PATH = "backup"
DEFAULT_PORT = 19530
#: The state of a restore status under ``<backup>/restores/`` while it reads the backup.
RESTORE_EXECUTING = "executing"
#: botocore settings of the S3 client wherever the AWS connection's extra ``config_kwargs`` sets none
#: (botocore's own: 60 s read timeout, 5 attempts). Against an endpoint that accepts and never answers, one S3
#: call then fails after 3 attempts of 20 s; set ``config_kwargs`` for other values.
S3_CLIENT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 20,
    "retries": {"total_max_attempts": 3, "mode": "standard"},
}


def _as_bool(value: Any, what: str) -> bool | None:
    try:
        return parse_bool(value)
    except ValueError:
        raise MilvusBackupConfigError(f"{what} must be true or false, got {value!r}.") from None


def _looks_like_lite_path(text: str) -> bool:
    return text.endswith(".db") or text.startswith(("/", "./", "../", "~"))


def check_lite_path(params: MilvusParams) -> None:
    """Refuse a Milvus Lite path that does not exist, before anything opens it.

    Opening a Milvus Lite path creates an empty database there: a typo would back up nothing (and pass),
    or restore into a file nobody reads. Create a new Milvus Lite file on purpose before pointing a
    connection at it.

    :raises MilvusBackupConfigError: the path does not exist.
    """
    if params.is_lite and not os.path.exists(params.uri):
        raise MilvusBackupConfigError(
            f"Milvus Lite database file {params.uri} does not exist here; check Host or URI."
        )


def milvus_params_from_connection(conn: Connection) -> MilvusParams:
    """Build engine parameters from a ``milvus`` connection.

    Host may be a host name (with Port, default 19530), a full ``http(s)://`` URI, or the path of a Milvus
    Lite ``.db`` file; the extra ``uri`` overrides both. Schema is the database. Login and Password are the
    user and password; the extra ``token`` (or a Password without a Login) is a token or API key.

    :param conn: the Airflow connection.
    :raises MilvusBackupConfigError: the connection names no Milvus, or a field has a wrong type.
    """
    extra = conn.extra_dejson or {}

    def x(name: str) -> Any:
        value = extra.get(name)
        if value in (None, ""):
            value = extra.get(f"extra__milvus__{name}")
        return None if value == "" else value

    where = f"Milvus connection {conn.conn_id!r}"
    secure = _as_bool(x("secure"), f"{where}: extra 'secure'")
    uri = str(x("uri") or "").strip()
    host = (conn.host or "").strip()
    if not uri:
        if not host:
            raise MilvusBackupConfigError(
                f"{where} names no Milvus: set Host (a host name, an http(s):// URI or a Milvus Lite .db "
                "path) or the extra 'uri'."
            )
        if "://" in host:
            # credentials in Host stay in the URI: MilvusParams takes them out (and the hook masks them)
            parts = split_uri(host)
            scheme, rest = parts.uri.split("://", 1)
            netloc, sep, path = rest.partition("/")
            if conn.port and netloc and ":" not in netloc:
                netloc = f"{netloc}:{conn.port}"
            userinfo = f"{parts.raw}@" if parts.raw else ""
            uri = f"{scheme}://{userinfo}{netloc}{sep}{path}"
        elif _looks_like_lite_path(host):
            uri = host
        else:
            uri = f"{'https' if secure else 'http'}://{host}:{conn.port or DEFAULT_PORT}"
    if uri.startswith("~"):
        uri = os.path.expanduser(uri)
    timeout = x("timeout")
    try:
        timeout_s = float(timeout) if timeout is not None else 30.0
    except (TypeError, ValueError):
        raise MilvusBackupConfigError(f"{where}: extra 'timeout' must be a number of seconds.") from None
    login = (conn.login or "").strip()
    password = conn.password or ""
    token = str(x("token") or "")
    if not login and password and not token:
        token, password = password, ""
    return MilvusParams(
        uri=uri,
        token=token,
        user=login,
        password=password if login else "",
        db_name=(conn.schema or "").strip() or str(x("db_name") or "") or "default",
        secure=secure,
        server_name=str(x("server_name") or ""),
        server_pem_path=str(x("server_pem_path") or x("ca_pem_path") or ""),
        client_pem_path=str(x("client_pem_path") or ""),
        client_key_path=str(x("client_key_path") or ""),
        timeout=timeout_s,
    )


def s3_client_config(user: Config | None) -> Config:
    """Return the backup S3 client's botocore config: ``user``'s, over :data:`S3_CLIENT_DEFAULTS`.

    Every option the user set (the AWS connection's extra ``config_kwargs``) is kept as it is; only the
    timeouts and retries left unset get this provider's bounded values.

    :param user: the config from the AWS connection, or ``None``.
    """
    from botocore.config import Config

    defaults = Config(**S3_CLIENT_DEFAULTS)
    return defaults.merge(user) if user is not None else defaults


def _mask(secrets: Iterable[str]) -> None:
    """Register secret values with Airflow's secrets masker, so no log line shows them."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDK
        return
    for s in secrets:
        if s:
            mask_secret(s)


class MilvusBackupHook(BaseHook):
    """Reach Milvus and the backup storage; back up, list, restore and verify through the engine.

    Settings come from, in order of precedence: the arguments given here, then ``backup_config`` (a Milvus
    Backup ``backup.yaml``), then the Airflow connections.

    :param milvus_conn_id: the ``milvus`` connection (not read when ``backup_config`` has a ``milvus``
        section).
    :param aws_conn_id: the ``aws`` connection of the Amazon provider (credentials, ``endpoint_url`` in its
        extra). Not read when ``backup_config`` carries an access key, or with ``local_path``.
    :param bucket_name: the bucket of backups; default: ``backup_config``'s ``minio.backupBucketName``, else
        the AWS connection's ``service_config.s3.bucket_name``.
    :param root_path: the prefix of backups in the bucket, or their folder in ``local_path``; default
        ``backup_config``'s ``minio.backupRootPath``, else ``"backup"``. An empty or ``"/"`` root is refused
        unless ``allow_root_at_top``.
    :param backup_config: path of a Milvus Backup ``backup.yaml`` (Milvus address, port, user, password, TLS;
        bucket, root path and S3 endpoint and keys of backups).
    :param local_path: keep backups in this local (or mounted) directory instead of S3.
    :param region_name: the S3 region, if not the connection's.
    :param sse: server-side encryption of uploads: ``"AES256"`` or ``"aws:kms"``.
    :param sse_kms_key_id: the KMS key id with ``sse="aws:kms"``.
    :param parallelism: partitions or collections processed at the same time.
    :param progress_interval: seconds between progress lines in the log.
    :param logger: where engine progress goes (operators pass their task logger).
    :param allow_root_at_top: accept an empty ``root_path``: backups at the top of the bucket or directory,
        next to anything else kept there (never touched: see FORMAT.md).
    """

    conn_name_attr = "milvus_conn_id"
    default_conn_name = "milvus_default"
    conn_type = "milvus"
    hook_name = "Milvus"

    def __init__(
        self,
        milvus_conn_id: str | None = default_conn_name,
        aws_conn_id: str | None = "aws_default",
        bucket_name: str | None = None,
        root_path: str | None = None,
        backup_config: str | None = None,
        local_path: str | None = None,
        *,
        region_name: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        parallelism: int = 2,
        progress_interval: float = 5.0,
        logger: logging.Logger | None = None,
        allow_root_at_top: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.allow_root_at_top = allow_root_at_top
        self.milvus_conn_id = milvus_conn_id
        self.aws_conn_id = aws_conn_id
        self.bucket_name = bucket_name or None
        self.root_path = root_path
        self.backup_config = backup_config or None
        self.local_path = local_path or None
        self.region_name = region_name
        self.sse = sse or None
        self.sse_kms_key_id = sse_kms_key_id or None
        self.parallelism = parallelism
        self.progress_interval = progress_interval
        self._engine_logger = logger

    # ------------------------------------------------------------------------------------ configuration
    @cached_property
    def config(self) -> BackupConfig | None:
        """The parsed ``backup_config``, or ``None``."""
        if not self.backup_config:
            return None
        cfg = load_backup_config(self.backup_config)
        _mask(cfg.secrets())
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
        _mask(params.secrets())
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

        from airflow_milvus_backup.engine import lite
        from airflow_milvus_backup.engine.client import connect
        from airflow_milvus_backup.engine.errors import MilvusBackupError

        try:
            params = self.milvus_params  # a Milvus Lite path that does not exist is refused here
            # The Test button runs in the API server, which lives on: it must not keep the file's lock.
            with lite.released_after(params.uri) if params.is_lite else nullcontext():
                client = connect(params)
                try:
                    version = client.get_server_version()
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
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        cfg = self.config
        region = self.region_name or (cfg.region if cfg else None)
        if cfg is None or not cfg.access_key:
            hook = S3Hook(aws_conn_id=self.aws_conn_id, region_name=region)
            # S3Hook(config=...) would replace the connection's config_kwargs; merging keeps them
            wrapper = hook.conn_config
            wrapper.botocore_config = s3_client_config(wrapper.botocore_config)
            return hook
        # backup.yaml carries the keys: an S3Hook over an in-memory connection (never stored anywhere).
        from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
        from airflow.sdk import Connection

        hook = S3Hook(aws_conn_id=None, region_name=region)
        conn = Connection(
            conn_id="milvus_backup_yaml",
            conn_type="aws",
            login=cfg.access_key,
            password=cfg.secret_key,
            extra=json.dumps({"endpoint_url": cfg.endpoint_url} if cfg.endpoint_url else {}),
        )
        hook.conn_config = AwsConnectionWrapper(
            conn=conn, region_name=region, botocore_config=s3_client_config(None)
        )
        return hook

    @cached_property
    def storage(self) -> Storage:
        """Where backups live: an S3 bucket through ``S3Hook``, or a local directory."""
        from airflow_milvus_backup.engine.storage import LocalStorage, S3Storage

        cfg = self.config
        if self.local_path and self.bucket_name:
            raise MilvusBackupInvalidArgument(
                f"Both bucket_name {self.bucket_name!r} and local_path {self.local_path!r} are set: "
                "choose S3 or a local directory."
            )
        root = self.root_path if self.root_path is not None else (cfg.root_path if cfg else None)
        local = self.local_path or (None if self.bucket_name else (cfg.local_path if cfg else None))
        # a backup.yaml of storage type local names the directory of backups itself (Milvus Backup's layout)
        yaml_local = bool(cfg and cfg.local_path and local == cfg.local_path and root == "")
        at_top = self.allow_root_at_top or yaml_local
        with engine_errors_as_airflow(self.scrub):
            if local:
                return LocalStorage(
                    local, root if root is not None else DEFAULT_ROOT_PATH, allow_root_at_top=at_top
                )
            s3 = self.get_s3_hook()
            bucket = self.bucket_name or (cfg.bucket_name if cfg else None)
            if not bucket:
                bucket = (s3.service_config or {}).get("bucket_name")
            if not bucket:
                raise MilvusBackupInvalidArgument(
                    "No bucket for backups: set bucket_name (or backup_config's minio.backupBucketName, or "
                    "'service_config': {'s3': {'bucket_name': ...}} in the AWS connection's extra), or "
                    "local_path for a directory."
                )
            return S3Storage(
                s3.get_conn(),
                bucket,
                root if root is not None else DEFAULT_ROOT_PATH,
                sse=self.sse,
                sse_kms_key_id=self.sse_kms_key_id,
                allow_root_at_top=self.allow_root_at_top,
            )

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
        """Return a :class:`~airflow_milvus_backup.engine.restore.RestoreEngine` over :attr:`storage`."""
        from airflow_milvus_backup.engine.restore import RestoreEngine

        return RestoreEngine(
            self.storage,
            parallelism=self.parallelism,
            logger=self.engine_logger,
            progress_interval=self.progress_interval,
        )

    def create_backup(
        self,
        backup_name: str,
        collection_names: Iterable[str] | None = None,
        *,
        db_name: str | None = None,
        overwrite: bool = False,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        """Back up collections; return the summary (backup_name, backup_id, collections, rows, bytes...).

        :param backup_name: the backup's name.
        :param collection_names: ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"``; default: every collection of
            ``db_name``.
        :param db_name: the database of bare names (default: the connection's).
        :param overwrite: replace an existing backup of that name.
        :param allow_empty: back up a database without collections on purpose (otherwise refused).
        """
        with self._milvus_work():
            return self.backup_engine().create(
                self.milvus_params,
                backup_name,
                collection_names,
                db_name=db_name,
                overwrite=overwrite,
                allow_empty=allow_empty,
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

    def with_database(self, db_name: str) -> MilvusParams:
        """Return :attr:`milvus_params` for another database."""
        return replace(self.milvus_params, db_name=db_name)
