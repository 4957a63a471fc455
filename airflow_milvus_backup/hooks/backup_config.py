"""Read a Milvus Backup ``backup.yaml``, so its users reuse the file they have.

Keys read (everything else is ignored)::

    milvus:
      address: localhost          # host, host:port, or a full http(s):// URI
      port: 19530
      user: root
      password: Milvus
      tlsMode: 0                  # 0 none, 1 one-way TLS, 2 mutual TLS
      caCertPath: ""              # CA / server certificate (tlsMode 1 and 2)
      serverName: ""
      mtlsCertPath: ""            # client certificate and key (tlsMode 2)
      mtlsKeyPath: ""
    minio:
      storageType: minio          # minio, s3, aws, gcp, ali, tc (S3-compatible) or local
      address: localhost
      port: 9000
      region: ""
      accessKeyID: minioadmin
      secretAccessKey: minioadmin
      useSSL: false
      useIAM: false
      bucketName: a-bucket        # Milvus' own bucket (bulk import reads restore files from it)
      rootPath: files             # Milvus' own root path: with the keys above, where its binlogs are
      backupStorageType / backupAddress / backupPort / backupRegion / backupAccessKeyID /
      backupSecretAccessKey / backupUseSSL: where backups go, when not the same as above
      backupBucketName: a-bucket  # backups live in backupBucketName/backupRootPath
      backupRootPath: backup

A malformed file is one :class:`~airflow_milvus_backup.exceptions.MilvusBackupConfigError` naming the file
and the key; values are never echoed for secret keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from airflow_milvus_backup.engine.client import MilvusParams
from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.physical.milvus_storage import DEFAULT_MILVUS_ROOT, MilvusStorageSettings
from airflow_milvus_backup.exceptions import MilvusBackupConfigError

_S3_TYPES = {"minio", "s3", "aws", "gcp", "ali", "aliyun", "tc", "tencent"}
_SECRET_KEYS = {"password", "secretAccessKey", "backupSecretAccessKey", "token", "backupToken"}


@dataclass(frozen=True)
class BackupConfig:
    """What a ``backup.yaml`` says about Milvus and the backup storage.

    :param path: the file it was read from.
    :param milvus: how to reach Milvus, or ``None`` when the file has no ``milvus`` section.
    :param bucket_name: the bucket of backups (``minio.backupBucketName``, else ``minio.bucketName``).
    :param root_path: the prefix of backups (``minio.backupRootPath``).
    :param milvus_bucket_name: Milvus' own bucket (``minio.bucketName``), where bulk import reads files.
    :param endpoint_url: the S3 endpoint of the backup storage, ``None`` for AWS' default.
    :param access_key: S3 access key id, ``None`` to use the Airflow AWS connection.
    :param secret_key: S3 secret key.
    :param region: S3 region.
    :param local_path: a local directory instead of S3 (``backupStorageType: local``).
    :param milvus_storage: Milvus' own storage (``minio.address``, ``bucketName``, ``rootPath``, its keys),
        where a physical backup copies binlogs from; ``None`` when Milvus stores its files locally.
    """

    path: str
    milvus: MilvusParams | None = None
    bucket_name: str | None = None
    root_path: str | None = None
    milvus_bucket_name: str | None = None
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None
    local_path: str | None = None
    milvus_storage: MilvusStorageSettings | None = None

    def secrets(self) -> list[str]:
        """Return the secret values in the file (Milvus password, S3 secret keys)."""
        out = [s for s in (self.secret_key,) if s]
        if self.milvus_storage is not None:
            out += self.milvus_storage.secrets()
        if self.milvus is not None:
            out += self.milvus.secrets()
        return out


class _Reader:
    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def error(self, key: str, problem: str) -> MilvusBackupConfigError:
        return MilvusBackupConfigError(f"Milvus Backup config {self.path}: key {key!r} {problem}.")

    def section(self, name: str) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(name, f"must be a mapping of settings, got {type(value).__name__}")
        return value

    def _raw(self, section: str, key: str) -> Any:
        sec = self.section(section) or {}
        return sec.get(key)

    def get_str(self, section: str, key: str, default: str = "") -> str:
        value = self._raw(section, key)
        if value is None:
            return default
        if isinstance(value, (dict, list)):
            raise self.error(f"{section}.{key}", "must be a string, not a mapping or list")
        if isinstance(value, bool):
            raise self.error(f"{section}.{key}", "must be a string, not true/false")
        return str(value).strip()

    def get_int(self, section: str, key: str, default: int, lo: int, hi: int) -> int:
        value = self._raw(section, key)
        if value is None or value == "":
            return default
        shown = "a secret value" if key in _SECRET_KEYS else repr(value)
        if isinstance(value, bool):
            raise self.error(f"{section}.{key}", f"must be an integer from {lo} to {hi}, got {shown}")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise self.error(
                f"{section}.{key}", f"must be an integer from {lo} to {hi}, got {shown}"
            ) from None
        if not lo <= number <= hi:
            raise self.error(f"{section}.{key}", f"must be an integer from {lo} to {hi}, got {number}")
        return number

    def get_bool(self, section: str, key: str, default: bool) -> bool:
        value = self._raw(section, key)
        try:
            parsed = parse_bool(value)
        except ValueError:
            raise self.error(f"{section}.{key}", f"must be true or false, got {value!r}") from None
        return default if parsed is None else parsed


def parse_bool(value: Any) -> bool | None:
    """Return a setting's boolean (``true/false``, ``yes/no``, ``on/off``, ``1/0``); ``None`` when unset.

    :raises ValueError: any other value; callers turn it into their own error naming the setting.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(value)


def _endpoint(address: str, port: int | None, ssl: bool) -> str:
    if "://" in address:
        return address
    scheme = "https" if ssl else "http"
    host = address
    if port and ":" not in address:
        host = f"{address}:{port}"
    return f"{scheme}://{host}"


def load_backup_config(path: str | os.PathLike[str]) -> BackupConfig:
    """Read and check a Milvus Backup ``backup.yaml``.

    :param path: the file's path.
    :raises MilvusBackupConfigError: the file is missing, not YAML, or a key has a wrong type or value; the
        message names the file and the key.
    """
    import yaml

    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise MilvusBackupConfigError(
            f"Milvus Backup config {p} does not exist; fix backup_config (the path of backup.yaml)."
        ) from None
    except OSError as e:
        raise MilvusBackupConfigError(f"Milvus Backup config {p} cannot be read: {e.strerror}.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise MilvusBackupConfigError(
            f"Milvus Backup config {p} is not valid YAML{where}: {problem}."
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MilvusBackupConfigError(
            f"Milvus Backup config {p} must be a mapping with 'milvus' and 'minio' sections, "
            f"got {type(data).__name__}."
        )
    r = _Reader(p, data)
    milvus = _milvus_params(r) if r.section("milvus") is not None else None

    minio = r.section("minio")
    if minio is None:
        return BackupConfig(path=p, milvus=milvus)

    def backup_or_plain(key: str) -> str:
        """Return ``minio.backup<Key>`` if set, else ``minio.<key>``."""
        backup_key = "backup" + key[0].upper() + key[1:]
        return r.get_str("minio", backup_key) or r.get_str("minio", key)

    storage_type = (backup_or_plain("storageType") or "minio").lower()
    bucket = r.get_str("minio", "backupBucketName") or r.get_str("minio", "bucketName") or None
    root = r.get_str("minio", "backupRootPath") or None
    milvus_bucket = r.get_str("minio", "bucketName") or None
    milvus_storage = _milvus_storage(r)
    if storage_type == "local":
        return BackupConfig(
            path=p,
            milvus=milvus,
            root_path="",
            local_path=root or "backup",
            milvus_bucket_name=milvus_bucket,
            milvus_storage=milvus_storage,
        )
    if storage_type not in _S3_TYPES:
        key = "minio.backupStorageType" if r.get_str("minio", "backupStorageType") else "minio.storageType"
        raise r.error(
            key,
            f"is {storage_type!r}, which this provider cannot reach: use an S3-compatible storage "
            f"({', '.join(sorted(_S3_TYPES))}) or 'local'",
        )
    address = backup_or_plain("address")
    if r.get_str("minio", "backupAddress"):
        port = r.get_int("minio", "backupPort", 0, 0, 65535) or None
        ssl = r.get_bool("minio", "backupUseSSL", r.get_bool("minio", "useSSL", False))
    else:
        port = r.get_int("minio", "port", 0, 0, 65535) or None
        ssl = r.get_bool("minio", "useSSL", False)
    endpoint: str | None = None
    if address and not (storage_type in ("aws", "s3") and address.endswith("amazonaws.com")):
        endpoint = _endpoint(address, port, ssl)
    use_iam = r.get_bool("minio", "useIAM", False)
    access = None if use_iam else (backup_or_plain("accessKeyID") or None)
    secret = None if use_iam else (backup_or_plain("secretAccessKey") or None)
    if access and not secret:
        raise r.error("minio.backupSecretAccessKey", "is empty while an access key id is set; set both")
    return BackupConfig(
        path=p,
        milvus=milvus,
        bucket_name=bucket,
        root_path=root,
        milvus_bucket_name=milvus_bucket,
        endpoint_url=endpoint,
        access_key=access,
        secret_key=secret,
        region=backup_or_plain("region") or None,
        milvus_storage=milvus_storage,
    )


def _milvus_storage(r: _Reader) -> MilvusStorageSettings | None:
    """Return Milvus' own storage (the ``minio`` keys without ``backup``), ``None`` if not S3 or no bucket."""
    storage_type = (r.get_str("minio", "storageType") or "minio").lower()
    bucket = r.get_str("minio", "bucketName")
    if storage_type not in _S3_TYPES or not bucket:
        return None
    address = r.get_str("minio", "address")
    ssl = r.get_bool("minio", "useSSL", False)
    port = r.get_int("minio", "port", 0, 0, 65535) or None
    endpoint = None
    if address and not (storage_type in ("aws", "s3") and address.endswith("amazonaws.com")):
        endpoint = _endpoint(address, port, ssl)
    use_iam = r.get_bool("minio", "useIAM", False)
    root = r.get_str("minio", "rootPath", DEFAULT_MILVUS_ROOT)
    try:
        return MilvusStorageSettings(
            bucket=bucket,
            root_path=root,
            endpoint_url=endpoint,
            access_key=None if use_iam else (r.get_str("minio", "accessKeyID") or None),
            secret_key=None if use_iam else (r.get_str("minio", "secretAccessKey") or None),
            region=r.get_str("minio", "region") or None,
            use_iam=use_iam,
            source=f"Milvus Backup config {r.path}",
        )
    except InvalidArgumentError as e:
        raise r.error("minio.secretAccessKey", f"is wrong for Milvus' own storage: {e}") from None


def _milvus_params(r: _Reader) -> MilvusParams:
    address = r.get_str("milvus", "address")
    if not address:
        raise r.error("milvus.address", "is missing or empty; set the Milvus proxy's host name")
    port = r.get_int("milvus", "port", 19530, 1, 65535)
    tls_mode = r.get_int("milvus", "tlsMode", 0, 0, 2)
    ca = r.get_str("milvus", "caCertPath")
    cert = r.get_str("milvus", "mtlsCertPath")
    key = r.get_str("milvus", "mtlsKeyPath")
    if tls_mode == 2 and bool(cert) != bool(key):
        raise r.error(
            "milvus.mtlsKeyPath" if cert else "milvus.mtlsCertPath",
            "is empty while tlsMode is 2 and the other client file is set; set both mtlsCertPath and "
            "mtlsKeyPath",
        )
    for k, v in (("caCertPath", ca), ("mtlsCertPath", cert), ("mtlsKeyPath", key)):
        if v and tls_mode and not os.path.isfile(v):
            raise r.error(f"milvus.{k}", f"names {v}, which is not a file on this worker")
    if address.startswith(("http://", "https://")):
        uri = address if address.rsplit(":", 1)[-1].isdigit() else f"{address.rstrip('/')}:{port}"
    else:
        uri = _endpoint(address, port, tls_mode > 0)
    password = r.get_str("milvus", "password")
    return MilvusParams(
        uri=uri,
        user=r.get_str("milvus", "user"),
        password=password,
        secure=True if tls_mode > 0 else None,
        server_name=r.get_str("milvus", "serverName"),
        server_pem_path=ca if tls_mode else "",
        client_pem_path=cert if tls_mode == 2 else "",
        client_key_path=key if tls_mode == 2 else "",
    )
