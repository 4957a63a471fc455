"""Where Milvus' own bucket is (connection extra, backup.yaml) and the "can we read it?" check, on rclone."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from airflow.sdk import Connection

from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.physical.milvus_storage import (
    MilvusStorageSettings,
    check_milvus_storage,
    open_milvus_bucket,
)
from airflow_milvus_backup.exceptions import MilvusBackupConfigError
from airflow_milvus_backup.hooks.backup_config import load_backup_config
from airflow_milvus_backup.hooks.milvus_storage import milvus_storage_from_extra, resolve_milvus_storage
from tests.support.process import free_port
from tests.support.s3 import S3Server, boto_client

SECRET = "s3cr3t-value-never-shown"


def _settings(s3: S3Server, bucket: str, **kw: object) -> MilvusStorageSettings:
    values: dict[str, object] = {
        "bucket": bucket,
        "root_path": "files",
        "endpoint_url": s3.endpoint_url,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "region": "us-east-1",
    }
    values.update(kw)
    return MilvusStorageSettings(**values)  # type: ignore[arg-type]


def test_settings_never_show_the_secret() -> None:
    s = MilvusStorageSettings("mb", "/files/", "http://minio:9000", "AK", SECRET, session_token="tok")
    assert SECRET not in repr(s)
    assert "tok" not in repr(s)
    assert s.describe() == "s3://mb/files at http://minio:9000"
    assert s.root_path == "files"
    assert set(s.secrets()) == {SECRET, "tok"}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"bucket": ""}, "milvus_bucket"), ({"bucket": "b", "access_key": "AK"}, "no secret key")],
)
def test_settings_refuse_half_values(kwargs: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        MilvusStorageSettings(**kwargs)  # type: ignore[arg-type]


def test_check_a_readable_bucket(s3_server: S3Server, bucket: str) -> None:
    s3_server.client().put_object(Bucket=bucket, Key="files/insert_log/1/2/3/100/1", Body=b"x")
    storage = _settings(s3_server, bucket).open()
    check = check_milvus_storage(storage)
    assert check.ok
    assert bool(check)
    assert "is readable" in check.reason
    assert [o.key for o in storage.list("insert_log/")] == ["insert_log/1/2/3/100/1"]
    assert storage.full_key("insert_log/1/2/3/100/1") == "files/insert_log/1/2/3/100/1"


def test_check_an_empty_root_says_so(s3_server: S3Server, bucket: str) -> None:
    s3_server.client().put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")
    check = check_milvus_storage(_settings(s3_server, bucket, root_path="files").open())
    assert check.ok
    assert "nothing under 'files'" in check.reason
    assert "minio.rootPath" in check.reason


def test_check_a_missing_bucket(s3_server: S3Server) -> None:
    check = check_milvus_storage(_settings(s3_server, f"nope-{uuid.uuid4().hex[:8]}").open())
    assert not check.ok
    assert "does not exist" in check.reason


def test_check_refused_credentials_without_the_secret(s3_server: S3Server, bucket: str) -> None:
    client = boto_client(s3_server.endpoint_url, s3_server.access_key, SECRET)
    check = check_milvus_storage(open_milvus_bucket(client, bucket, "files"))
    assert not check.ok
    assert "refused access" in check.reason
    assert SECRET not in check.reason


def test_check_an_unreachable_endpoint_is_quick_and_not_ok() -> None:
    s = MilvusStorageSettings(
        "mb", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b"
    )
    storage = s.open(s.client(connect_timeout=1, retries={"total_max_attempts": 1}), retry_attempts=1)
    check = check_milvus_storage(storage)
    assert not check.ok
    assert "cannot reach S3" in check.reason


# ------------------------------------------------------------------------------------------- backup.yaml
def _yaml(tmp_path: Path, minio: dict[str, object]) -> Path:
    import yaml

    p = tmp_path / "backup.yaml"
    p.write_text(yaml.safe_dump({"minio": minio}))
    return p


def test_backup_yaml_names_milvus_storage(tmp_path: Path) -> None:
    path = _yaml(
        tmp_path,
        {
            "address": "minio.internal",
            "port": 9000,
            "accessKeyID": "AK",
            "secretAccessKey": SECRET,
            "bucketName": "milvus-bucket",
            "rootPath": "milvus-files",
            "backupBucketName": "backups",
            "backupRootPath": "backup",
            "backupAddress": "other.internal",
            "backupAccessKeyID": "BK",
            "backupSecretAccessKey": "other-secret",
        },
    )
    cfg = load_backup_config(path)
    ms = cfg.milvus_storage
    assert ms is not None
    assert (ms.bucket, ms.root_path, ms.endpoint_url, ms.access_key) == (
        "milvus-bucket",
        "milvus-files",
        "http://minio.internal:9000",
        "AK",
    )
    assert cfg.endpoint_url == "http://other.internal"  # the backups' own storage is unchanged
    assert SECRET in cfg.secrets()
    assert SECRET not in repr(cfg)


def test_backup_yaml_defaults_and_iam(tmp_path: Path) -> None:
    cfg = load_backup_config(
        _yaml(tmp_path, {"storageType": "aws", "bucketName": "mb", "useIAM": True, "accessKeyID": "AK"})
    )
    ms = cfg.milvus_storage
    assert ms is not None
    assert ms.root_path == "files"
    assert ms.use_iam
    assert ms.access_key is None
    assert ms.endpoint_url is None


def test_backup_yaml_with_local_milvus_storage_has_none(tmp_path: Path) -> None:
    cfg = load_backup_config(
        _yaml(tmp_path, {"storageType": "local", "bucketName": "mb", "rootPath": "/data"})
    )
    assert cfg.milvus_storage is None


# ------------------------------------------------------------------------------------ connection extras
def test_extra_keys() -> None:
    assert milvus_storage_from_extra("m", {}) is None
    assert milvus_storage_from_extra("m", {"milvus_bucket": None, "milvus_root_path": None}) is None
    assert milvus_storage_from_extra("m", {"milvus_bucket": "mb"}) == ("mb", "files", None)
    assert milvus_storage_from_extra(
        "m", {"milvus_bucket": "mb", "milvus_root_path": "/a/b/", "milvus_storage_conn_id": "minio"}
    ) == ("mb", "a/b", "minio")
    assert milvus_storage_from_extra("m", {"milvus_bucket": "mb", "milvus_root_path": "/"}) == (
        "mb",
        "",
        None,
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"milvus_root_path": "files"}, "'milvus_bucket' is not"),
        ({"milvus_bucket": 3}, "must be a string"),
        ({"milvus_bucket": "mb", "milvus_root_path": "a/../b"}, "not allowed"),
    ],
)
def test_bad_extra_keys(extra: dict[str, object], words: str) -> None:
    with pytest.raises(MilvusBackupConfigError, match=words) as e:
        milvus_storage_from_extra("milvus_x", extra)
    assert "milvus_x" in str(e.value)


def test_connection_wins_over_backup_yaml_and_reaches_the_bucket(
    s3_server: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = {
        "conn_type": "aws",
        "login": s3_server.access_key,
        "password": s3_server.secret_key,
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_MINIO", json.dumps(aws))
    s3_server.client().put_object(Bucket=bucket, Key="root/insert_log/1", Body=b"x")
    conn = Connection(
        conn_id="m",
        conn_type="milvus",
        host="h",
        extra=json.dumps(
            {"milvus_bucket": bucket, "milvus_root_path": "root", "milvus_storage_conn_id": "milvus_minio"}
        ),
    )
    cfg = load_backup_config(
        _yaml(tmp_path, {"bucketName": "from-yaml", "accessKeyID": "a", "secretAccessKey": "b"})
    )
    ref = resolve_milvus_storage(conn, cfg, "aws_default")
    assert ref is not None
    assert ref.bucket == bucket
    assert ref.aws_conn_id == "milvus_minio"
    assert "connection 'm'" in ref.describe()
    check = ref.check()
    assert check.ok, check.reason
    # no extra: backup.yaml's minio section; neither: None
    plain = Connection(conn_id="p", conn_type="milvus", host="h")
    from_yaml = resolve_milvus_storage(plain, cfg, "aws_default")
    assert from_yaml is not None
    assert from_yaml.bucket == "from-yaml"
    assert from_yaml.settings is not None
    assert resolve_milvus_storage(plain, None, "aws_default") is None
    # the backups' aws connection when the extra names none
    only_bucket = Connection(
        conn_id="b", conn_type="milvus", host="h", extra=json.dumps({"milvus_bucket": "mb"})
    )
    ref2 = resolve_milvus_storage(only_bucket, None, "aws_default")
    assert ref2 is not None
    assert ref2.aws_conn_id == "aws_default"
    assert ref2.root_path == "files"
