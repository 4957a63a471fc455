"""How the Airflow layer fails: a hung S3 endpoint in bounded time, refused credentials without retries.

The hung endpoint is real: a TCP server on 127.0.0.1 that accepts connections and never answers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_milvus_backup.engine import errors as engine_errors
from airflow_milvus_backup.exceptions import (
    MilvusBackupAuthenticationError,
    MilvusBackupException,
    to_airflow_error,
)
from airflow_milvus_backup.hooks.milvus_backup import S3_CLIENT_DEFAULTS, MilvusBackupHook
from tests.support.process import silent_listener

pytestmark = pytest.mark.timeout(180)


def aws_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, endpoint: str, **extra: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "access-key",
                "password": "secret-key",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1", **extra},
            }
        ),
    )


def client_config(hook: MilvusBackupHook) -> Any:
    """The botocore config of the S3 client the hook hands to the engine."""
    return hook.get_s3_hook().get_conn().meta.config


# ------------------------------------------------------------------------------------------- S3 timeouts
def test_s3_client_gets_bounded_timeouts_when_the_connection_sets_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws_conn(monkeypatch, "aws_plain", "http://127.0.0.1:9")
    cfg = client_config(MilvusBackupHook(aws_conn_id="aws_plain", bucket_name="b"))
    assert (cfg.connect_timeout, cfg.read_timeout) == (10, 20)
    # three attempts in all: a hung endpoint fails in about a minute, not minutes
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 3}
    assert S3_CLIENT_DEFAULTS["retries"] == {"total_max_attempts": 3, "mode": "standard"}


def test_s3_client_keeps_every_value_the_connection_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    aws_conn(
        monkeypatch,
        "aws_tuned",
        "http://127.0.0.1:9",
        config_kwargs={
            "read_timeout": 300,
            "retries": {"max_attempts": 8, "mode": "adaptive"},
            "s3": {"addressing_style": "path"},
        },
    )
    cfg = client_config(MilvusBackupHook(aws_conn_id="aws_tuned", bucket_name="b"))
    assert cfg.read_timeout == 300
    assert cfg.retries == {"mode": "adaptive", "total_max_attempts": 9}
    assert cfg.s3 == {"addressing_style": "path"}
    assert cfg.connect_timeout == 10  # not set by the user: the bounded default


def test_backup_yaml_s3_client_gets_bounded_timeouts(tmp_path: Path) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text(
        "minio:\n  address: 127.0.0.1\n  port: 9\n  accessKeyID: ak\n  secretAccessKey: sk\n"
        "  backupBucketName: b\n"
    )
    cfg = client_config(MilvusBackupHook(backup_config=str(path)))
    assert (cfg.connect_timeout, cfg.read_timeout) == (10, 20)
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 3}


def test_hung_s3_endpoint_fails_a_hook_storage_call_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    with silent_listener() as port:
        endpoint = f"http://127.0.0.1:{port}"
        # the user's values are honoured (2 s, one attempt per call); connect_timeout keeps its default
        aws_conn(
            monkeypatch,
            "aws_hung",
            endpoint,
            config_kwargs={"read_timeout": 2, "retries": {"total_max_attempts": 1, "mode": "standard"}},
        )
        hook = MilvusBackupHook(aws_conn_id="aws_hung", bucket_name="backups")
        began = time.monotonic()
        with pytest.raises(MilvusBackupException) as e:
            hook.list_backups()
        elapsed = time.monotonic() - began
    assert not isinstance(e.value, AirflowFailException)  # an unreachable S3 is retried by Airflow
    msg = str(e.value)
    assert "cannot reach S3" in msg
    assert endpoint in msg
    assert "Check that the endpoint is up" in msg
    # at most 6 calls of 2 s with backoff in the storage layer, about 30 s; with a 60 s read timeout the
    # first call alone would take a minute
    assert elapsed < 45, elapsed


# ----------------------------------------------------------------------------------- errors not retried
def test_refused_milvus_credentials_fail_the_task_without_retries() -> None:
    message = "Milvus at http://milvus:19530 refused the credentials; check the user and password or token."
    mapped = to_airflow_error(engine_errors.MilvusAuthenticationError(message))
    assert isinstance(mapped, MilvusBackupAuthenticationError)
    assert isinstance(mapped, AirflowFailException)
    assert str(mapped) == message
    # an unreachable Milvus (the parent class) stays retryable
    unreachable = to_airflow_error(engine_errors.MilvusConnectionError("Milvus at http://milvus failed."))
    assert isinstance(unreachable, MilvusBackupException)
    assert not isinstance(unreachable, AirflowFailException)


def test_refused_s3_credentials_fail_the_task_without_retries() -> None:
    message = "List '/': S3 refused access to s3://b/backup (InvalidAccessKeyId). Check the AWS connection."
    mapped = to_airflow_error(engine_errors.StorageAccessError(message))
    assert isinstance(mapped, MilvusBackupAuthenticationError)
    assert isinstance(mapped, AirflowFailException)
    unreachable = to_airflow_error(engine_errors.StorageConnectionError("cannot reach S3 at http://x"))
    assert not isinstance(unreachable, AirflowFailException)
