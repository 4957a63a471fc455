"""Turn a ``milvus`` connection into engine parameters; the S3 client's bounded defaults; secret masking."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.uri import split_uri
from airflow_milvus_backup.exceptions import MilvusBackupConfigError, MilvusBackupInvalidArgument
from airflow_milvus_backup.hooks.backup_config import parse_bool

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import Connection
    from botocore.config import Config

    from airflow_milvus_backup.engine.storage import Storage
    from airflow_milvus_backup.hooks.backup_config import BackupConfig
    from airflow_milvus_backup.hooks.location import BackupLocation

DEFAULT_PORT = 19530
#: The folder of backups in the bucket or directory when neither the arguments nor backup_config name one.
DEFAULT_ROOT_PATH = "backup"
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


def s3_hook(aws_conn_id: str | None, region_name: str | None, cfg: BackupConfig | None) -> S3Hook:
    """Return the Amazon provider's ``S3Hook`` for the backup storage.

    Its client gets bounded timeouts and retries (:data:`S3_CLIENT_DEFAULTS`) wherever the connection's
    extra ``config_kwargs`` sets none, so a hung S3 endpoint fails the task in bounded time. When ``cfg`` (a
    ``backup.yaml``) carries an access key, the hook reads it instead of the ``aws`` connection.

    :param aws_conn_id: the ``aws`` connection.
    :param region_name: the S3 region, if not the connection's (or ``cfg``'s).
    :param cfg: the parsed ``backup_config``, or ``None``.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    region = region_name or (cfg.region if cfg else None)
    if cfg is None or not cfg.access_key:
        hook = S3Hook(aws_conn_id=aws_conn_id, region_name=region)
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


def open_storage(
    location: BackupLocation, cfg: BackupConfig | None, get_s3_hook: Callable[[], S3Hook]
) -> Storage:
    """Return the engine storage of the backups: an S3 bucket through ``S3Hook``, or a local directory.

    :param location: the location arguments.
    :param cfg: the parsed ``backup_config``, or ``None``.
    :param get_s3_hook: returns the ``S3Hook`` (only called for S3).
    :raises MilvusBackupInvalidArgument: both a bucket and a directory, or neither.
    """
    from airflow_milvus_backup.engine.storage import LocalStorage, S3Storage

    loc = location
    if loc.local_path and loc.bucket_name:
        raise MilvusBackupInvalidArgument(
            f"Both bucket_name {loc.bucket_name!r} and local_path {loc.local_path!r} are set: "
            "choose S3 or a local directory."
        )
    root = loc.root_path if loc.root_path is not None else (cfg.root_path if cfg else None)
    local = loc.local_path or (None if loc.bucket_name else (cfg.local_path if cfg else None))
    # a backup.yaml of storage type local names the directory of backups itself (Milvus Backup's layout)
    yaml_local = bool(cfg and cfg.local_path and local == cfg.local_path and root == "")
    if local:
        return LocalStorage(
            local,
            root if root is not None else DEFAULT_ROOT_PATH,
            allow_root_at_top=loc.allow_root_at_top or yaml_local,
        )
    s3 = get_s3_hook()
    bucket = (
        loc.bucket_name or (cfg.bucket_name if cfg else None) or (s3.service_config or {}).get("bucket_name")
    )
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
        sse=loc.sse,
        sse_kms_key_id=loc.sse_kms_key_id,
        allow_root_at_top=loc.allow_root_at_top,
    )


def mask_secrets(secrets: Iterable[str]) -> None:
    """Register secret values with Airflow's secrets masker, so no log line shows them."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDK
        return
    for s in secrets:
        if s:
            mask_secret(s)


def rbac_passwords_from_connection(conn: Connection) -> dict[str, str]:
    """Return the passwords of users a restore with ``rbac=True`` creates, from a connection's extra.

    The extra is ``{"passwords": {"user_1": "...", ...}}`` (any connection type; Airflow masks values under a
    key named like ``passwords``). The values are registered with the secrets masker as well.

    :raises MilvusBackupInvalidArgument: the extra has no such object (naming the connection, not a value).
    """
    passwords = (conn.extra_dejson or {}).get("passwords")
    if not isinstance(passwords, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in passwords.items()
    ):
        raise MilvusBackupInvalidArgument(
            f"Connection {conn.conn_id!r} (rbac_passwords_conn_id) must hold the users' passwords in its "
            'extra as {"passwords": {"user": "password", ...}} with non-empty strings.'
        )
    mask_secrets(passwords.values())
    return dict(passwords)
