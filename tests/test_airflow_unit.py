"""Unit tests of the Airflow layer's pure logic: provider registration, connection and backup.yaml parsing,
error mapping, trigger serialisation, TaskDeferred. No server is needed."""

from __future__ import annotations

import asyncio
import inspect
import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from airflow_milvus_backup.engine import errors as engine_errors
from airflow_milvus_backup.exceptions import (
    MilvusBackupConfigError,
    MilvusBackupException,
    MilvusBackupIntegrityError,
    MilvusBackupInvalidArgument,
    MilvusBackupNotFound,
    to_airflow_error,
)
from airflow_milvus_backup.get_provider_info import get_provider_info
from airflow_milvus_backup.hooks.backup_config import load_backup_config
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook, milvus_params_from_connection
from airflow_milvus_backup.operators.backup import backup_asset, default_backup_name
from airflow_milvus_backup.operators.base import as_bool, as_mapping, as_name_list
from airflow_milvus_backup.operators.restore import MilvusRestoreOperator
from airflow_milvus_backup.sensors.backup import MilvusBackupSensor
from airflow_milvus_backup.triggers import MilvusBackupTrigger, MilvusRestoreTrigger
from tests.support.airflow_env import MILVUS_PASSWORD, MILVUS_TOKEN


# ------------------------------------------------------------------------------------------ registration
def test_provider_info_names_the_distribution_and_the_milvus_connection() -> None:
    from importlib.metadata import entry_points, metadata

    info = get_provider_info()
    assert info["package-name"] == metadata("airflow-milvus-backup")["Name"] == "airflow-milvus-backup"
    eps = [e for e in entry_points(group="apache_airflow_provider") if e.dist.name == "airflow-milvus-backup"]
    assert [e.value for e in eps] == ["airflow_milvus_backup.get_provider_info:get_provider_info"]
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "milvus"
    assert conn_type["hook-class-name"] == "airflow_milvus_backup.hooks.milvus_backup.MilvusBackupHook"
    # Every module the metadata names imports.
    import importlib

    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_providers_manager_sees_the_milvus_connection_type_and_its_form() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "airflow-milvus-backup" in pm.providers
    hook = ProvidersManagerTaskRuntime().hooks["milvus"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_milvus_backup.hooks.milvus_backup.MilvusBackupHook"
    assert hook.connection_id_attribute_name == "milvus_conn_id"
    widgets = pm.connection_form_widgets
    for field in ("uri", "token", "secure", "server_name", "server_pem_path", "client_pem_path", "timeout"):
        assert f"extra__milvus__{field}" in widgets, field
    assert widgets["extra__milvus__token"].is_sensitive
    assert widgets["extra__milvus__secure"].field["schema"]["type"] == ["boolean", "null"]
    assert widgets["extra__milvus__server_pem_path"].field["schema"]["title"] == "CA certificate path"
    behaviour = pm.field_behaviours["milvus"]
    assert behaviour["relabeling"]["schema"] == "Database"
    assert behaviour["relabeling"]["login"] == "User"
    assert "extra__milvus__uri" in behaviour["placeholders"]


# ------------------------------------------------------------------------------------------ connections
def test_connection_uri_form() -> None:
    conn = Connection(
        conn_id="m",
        uri=f"milvus://root:{MILVUS_PASSWORD}@milvus.example.com:19531/analytics?secure=true"
        "&server_name=milvus.internal&server_pem_path=%2Fetc%2Fca.pem&timeout=12",
    )
    p = milvus_params_from_connection(conn)
    assert p.uri == "https://milvus.example.com:19531"
    assert (p.user, p.password, p.db_name, p.secure) == ("root", MILVUS_PASSWORD, "analytics", True)
    assert (p.server_name, p.server_pem_path, p.timeout) == ("milvus.internal", "/etc/ca.pem", 12.0)
    assert MILVUS_PASSWORD not in repr(p)


def test_connection_json_forms_lite_path_full_uri_and_token() -> None:
    lite = Connection.from_json(
        json.dumps({"conn_type": "milvus", "host": "/data/milvus.db"}), conn_id="lite"
    )
    assert milvus_params_from_connection(lite).uri == "/data/milvus.db"
    assert milvus_params_from_connection(lite).is_lite

    cloud = Connection.from_json(
        json.dumps(
            {
                "conn_type": "milvus",
                "host": "https://in03-abc.zillizcloud.com",
                "extra": {"token": MILVUS_TOKEN},
            }
        ),
        conn_id="cloud",
    )
    p = milvus_params_from_connection(cloud)
    assert (p.uri, p.token, p.user) == ("https://in03-abc.zillizcloud.com", MILVUS_TOKEN, "")

    by_uri = Connection.from_json(
        json.dumps({"conn_type": "milvus", "host": "ignored", "extra": {"uri": "http://h:1"}}), conn_id="u"
    )
    assert milvus_params_from_connection(by_uri).uri == "http://h:1"

    # A password without a user is a token (an API key pasted into the Password field).
    key_only = Connection(conn_id="k", conn_type="milvus", host="h", password=MILVUS_TOKEN)
    p = milvus_params_from_connection(key_only)
    assert (p.uri, p.token, p.password) == ("http://h:19530", MILVUS_TOKEN, "")

    # The prefixed extra names of older UIs work too.
    old = Connection(
        conn_id="o", conn_type="milvus", host="h", extra=json.dumps({"extra__milvus__secure": True})
    )
    assert milvus_params_from_connection(old).uri == "https://h:19530"


def test_connection_without_host_is_a_clear_error() -> None:
    with pytest.raises(MilvusBackupConfigError, match="Milvus connection 'empty' names no Milvus"):
        milvus_params_from_connection(Connection(conn_id="empty", conn_type="milvus"))


def test_connection_from_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_ENV",
        f"milvus://root:{MILVUS_PASSWORD}@localhost:19530/default?token={MILVUS_TOKEN}",
    )
    hook = MilvusBackupHook(milvus_conn_id="milvus_env")
    assert hook.milvus_params.uri == "http://localhost:19530"
    assert hook.scrub(f"x {MILVUS_PASSWORD} y {MILVUS_TOKEN}") == "x *** y ***"


# ------------------------------------------------------------------------------------------ backup.yaml
FULL_YAML = """
milvus:
  address: milvus.prod
  port: 19530
  user: root
  password: "{password}"
  tlsMode: 0
minio:
  storageType: minio
  address: minio.prod
  port: 9000
  accessKeyID: milvusaccess
  secretAccessKey: milvussecret123
  useSSL: false
  bucketName: milvus-bucket
  rootPath: files
  backupBucketName: backup-bucket
  backupRootPath: nightly
"""


def test_backup_yaml_gives_milvus_bucket_root_and_s3(tmp_path: Path) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text(FULL_YAML.format(password=MILVUS_PASSWORD))
    cfg = load_backup_config(path)
    assert cfg.milvus is not None
    assert (cfg.milvus.uri, cfg.milvus.user, cfg.milvus.password) == (
        "http://milvus.prod:19530",
        "root",
        MILVUS_PASSWORD,
    )
    assert (cfg.bucket_name, cfg.root_path, cfg.milvus_bucket_name) == (
        "backup-bucket",
        "nightly",
        "milvus-bucket",
    )
    assert (cfg.endpoint_url, cfg.access_key) == ("http://minio.prod:9000", "milvusaccess")
    assert set(cfg.secrets()) == {MILVUS_PASSWORD, "milvussecret123"}

    hook = MilvusBackupHook(backup_config=str(path), milvus_conn_id="does_not_exist")
    assert hook.milvus_params.uri == "http://milvus.prod:19530"  # the connection is not read
    s3 = hook.get_s3_hook()
    assert s3.conn_config.endpoint_url == "http://minio.prod:9000"
    assert s3.conn_config.aws_access_key_id == "milvusaccess"


def test_restore_engine_gets_milvus_bucket_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_backup.engine.physical.restore import milvus_storage_of

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_PHYS", "milvus://localhost:19530/default?milvus_bucket=mbkt")
    path = tmp_path / "backup.yaml"
    path.write_text(FULL_YAML.format(password=MILVUS_PASSWORD))
    hook = MilvusBackupHook(backup_config=str(path), milvus_conn_id="milvus_phys")
    engine = hook.restore_engine()
    assert callable(engine.ctx.milvus_storage)  # a logical restore never resolves it
    ms = milvus_storage_of(engine.ctx)
    assert ms is not None
    assert ms.bucket == "mbkt"  # the connection's milvus_bucket: where binlogs are imported from


def test_backup_yaml_tls_and_backup_specific_storage(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "backup.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            milvus: {{address: milvus.prod, port: 443, tlsMode: 1, caCertPath: {ca}, serverName: m.local}}
            minio:
              address: milvus-minio
              bucketName: a-bucket
              backupStorageType: s3
              backupAddress: s3.amazonaws.com
              backupRegion: eu-west-1
              backupUseSSL: true
              backupAccessKeyID: AKIA123
              backupSecretAccessKey: topsecret
              backupBucketName: backups
            """
        )
    )
    cfg = load_backup_config(path)
    assert cfg.milvus is not None
    assert (cfg.milvus.uri, cfg.milvus.secure, cfg.milvus.server_pem_path) == (
        "https://milvus.prod:443",
        True,
        str(ca),
    )
    assert cfg.milvus.server_name == "m.local"
    assert (cfg.endpoint_url, cfg.region, cfg.bucket_name, cfg.root_path) == (
        None,
        "eu-west-1",
        "backups",
        None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("milvus: [1, 2", r"is not valid YAML at line 1"),
        ("- a\n- b\n", r"must be a mapping with 'milvus' and 'minio' sections"),
        ("milvus: localhost\n", r"key 'milvus' must be a mapping"),
        (
            "milvus:\n  address: h\n  port: abc\n",
            r"key 'milvus.port' must be an integer from 1 to 65535, got 'abc'",
        ),
        (
            "milvus:\n  address: h\n  tlsMode: 5\n",
            r"key 'milvus.tlsMode' must be an integer from 0 to 2, got 5",
        ),
        ("milvus:\n  port: 19530\n", r"key 'milvus.address' is missing"),
        (
            "milvus:\n  address: h\n  tlsMode: 1\n  caCertPath: /nope/ca.pem\n",
            r"key 'milvus.caCertPath' names /nope",
        ),
        ("minio:\n  useSSL: maybe\n", r"key 'minio.useSSL' must be true or false"),
        ("minio:\n  storageType: azure\n", r"key 'minio.storageType' is 'azure'"),
        ("minio:\n  accessKeyID: a\n", r"key 'minio.backupSecretAccessKey' is empty"),
    ],
)
def test_malformed_backup_yaml_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text(text)
    with pytest.raises(MilvusBackupConfigError, match=message) as err:
        load_backup_config(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, AirflowFailException)


def test_missing_backup_yaml(tmp_path: Path) -> None:
    with pytest.raises(MilvusBackupConfigError, match=r"backup.yaml.* does not exist; fix backup_config"):
        load_backup_config(tmp_path / "backup.yaml")


def test_backup_yaml_never_echoes_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text(f"milvus:\n  address: h\n  password: [{MILVUS_PASSWORD}]\n")
    with pytest.raises(MilvusBackupConfigError, match="milvus.password") as err:
        load_backup_config(path)
    assert MILVUS_PASSWORD not in str(err.value)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("engine_error", "airflow_class", "retried"),
    [
        (engine_errors.IntegrityError, MilvusBackupIntegrityError, False),
        (engine_errors.ManifestError, MilvusBackupIntegrityError, False),
        (engine_errors.BackupNameError, MilvusBackupInvalidArgument, False),
        (engine_errors.TargetExistsError, AirflowFailException, False),
        (engine_errors.SchemaMismatchError, AirflowFailException, False),
        (engine_errors.BackupNotFoundError, MilvusBackupNotFound, True),
        (engine_errors.BackupDeletedError, AirflowFailException, False),
        (engine_errors.EmptyBackupError, MilvusBackupInvalidArgument, False),
        (engine_errors.NotABackupError, MilvusBackupInvalidArgument, False),
        (engine_errors.RowRejectedError, AirflowFailException, False),
        (engine_errors.MilvusLiteLockedError, MilvusBackupException, True),
        (engine_errors.MilvusConnectionError, MilvusBackupException, True),
        (engine_errors.StorageConnectionError, MilvusBackupException, True),
        (engine_errors.BackupInProgressError, MilvusBackupException, True),
    ],
)
def test_engine_errors_map_to_airflow_errors(
    engine_error: type[Exception], airflow_class: type[Exception], retried: bool
) -> None:
    mapped = to_airflow_error(
        engine_error(f"Backup 'b' broke near {MILVUS_PASSWORD}; fix it."),
        lambda s: s.replace(MILVUS_PASSWORD, "***"),
    )
    assert isinstance(mapped, airflow_class)
    assert isinstance(mapped, AirflowException)
    assert isinstance(mapped, AirflowFailException) is not retried
    assert str(mapped) == "Backup 'b' broke near ***; fix it."
    if engine_error is engine_errors.BackupNameError:
        assert isinstance(mapped, ValueError)


# ------------------------------------------------------------------------------------------ arguments
def test_templated_argument_helpers() -> None:
    assert as_name_list("a, db.b", "c") == ["a", "db.b"]
    assert as_name_list('["a", "b"]', "c") == ["a", "b"]
    assert as_name_list("['a']", "c") == ["a"]
    assert as_name_list([], "c") is None
    assert as_name_list("", "c") is None
    assert as_bool("True", "x") is True
    assert as_bool("false", "x") is False
    assert as_mapping('{"a": "b"}', "m") == {"a": "b"}
    with pytest.raises(MilvusBackupInvalidArgument, match="drop_existing must be true or false"):
        as_bool("perhaps", "drop_existing")


def test_default_backup_name_is_unique_per_run_and_valid() -> None:
    run = SimpleNamespace(
        dag_id="milvus-nightly.backup", run_after=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    )
    ctx: Any = {"dag_run": run, "ti": SimpleNamespace(map_index=-1)}
    assert default_backup_name(ctx) == "milvus_nightly_backup_20260102_030405"
    assert default_backup_name(ctx, "nightly") == "nightly_20260102_030405"
    ctx["ti"] = SimpleNamespace(map_index=3)
    assert default_backup_name(ctx) == "milvus_nightly_backup_20260102_030405_m3"
    run.dag_id = "2fast"
    assert default_backup_name(ctx).startswith("backup_2fast_")


def test_backup_asset_uri() -> None:
    assert backup_asset("milvus-backups", "backup").uri == "milvus-backup://milvus-backups/backup"


# ------------------------------------------------------------------------------------------ triggers
HOOK_KW = {
    "milvus_conn_id": "m",
    "aws_conn_id": "a",
    "bucket_name": "b",
    "root_path": "r",
    "backup_config": None,
    "local_path": None,
    "region_name": "eu-west-1",
    "sse": None,
    "sse_kms_key_id": None,
    "poll_interval": 3.0,
    "allow_root_at_top": False,
}


@pytest.mark.parametrize(
    ("trigger", "own"),
    [
        (
            MilvusBackupTrigger,
            {"backup_name": None, "backup_prefix": "nightly_", "newer_than": "2026-01-01T00:00:00+00:00"},
        ),
        (MilvusRestoreTrigger, {"backup_name": "nightly_1", "restore_id": "r20260101T000000_abcd1234"}),
    ],
)
def test_trigger_serialize_round_trip_has_every_argument(trigger: type, own: dict[str, Any]) -> None:
    t = trigger(**HOOK_KW, **own)
    classpath, kwargs = t.serialize()
    assert classpath == f"{trigger.__module__}.{trigger.__qualname__}"
    assert kwargs == {**HOOK_KW, **own}
    params = set(inspect.signature(trigger.__init__).parameters) | set(
        inspect.signature(trigger.__mro__[1].__init__).parameters
    )
    assert set(kwargs) == params - {"self", "kwargs"}
    json.dumps(kwargs)
    again = trigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_sensor_defers_to_its_trigger_when_the_backup_is_not_there(tmp_path: Path) -> None:
    sensor = MilvusBackupSensor(
        task_id="wait",
        backup_prefix="nightly_",
        local_path=str(tmp_path),
        deferrable=True,
        poke_interval=7,
        timeout=60,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})  # type: ignore[arg-type]
    assert isinstance(deferred.value.trigger, MilvusBackupTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=60)
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["backup_prefix"], kwargs["local_path"], kwargs["poll_interval"]) == (
        "nightly_",
        str(tmp_path),
        7.0,
    )


def test_sensor_execute_complete_raises_the_trigger_message() -> None:
    sensor = MilvusBackupSensor(task_id="wait", backup_name="b1")
    with pytest.raises(MilvusBackupException, match="S3 refused access"):
        sensor.execute_complete(
            {}, {"status": "error", "message": "Waiting for backup b1: S3 refused access"}
        )  # type: ignore[arg-type]
    with pytest.raises(MilvusBackupException, match="invalid event"):
        sensor.execute_complete({}, None)  # type: ignore[arg-type]
    backup = {"name": "b1", "collections": []}
    assert sensor.execute_complete({}, {"status": "success", "backup": backup}) == backup  # type: ignore[arg-type]


class _SubmittingHook:
    """Stands in for the hook: a bulk import that was submitted and still runs."""

    milvus_bucket_name = None
    milvus_params = SimpleNamespace(db_name="default")

    def latest_backup(self, prefix: str = "") -> dict[str, Any]:
        return {"name": "nightly_2", "created_at": "2026-01-02T00:00:00+00:00"}

    def submit_restore(self, backup_name: str, collections: Any, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["method"] == "bulk_import"
        assert kwargs["collection_suffix"] == "_r"
        return {"restore_id": "r20260102T000000_0a1b2c3d", "state": "executing"}


def test_restore_defers_after_submitting_bulk_import() -> None:
    op = MilvusRestoreOperator(
        task_id="restore",
        backup_prefix="nightly_",
        collection_suffix="_r",
        method="bulk_import",
        deferrable=True,
        poll_interval=4,
    )
    op.hook = _SubmittingHook()  # type: ignore[assignment]
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context={})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, MilvusRestoreTrigger)
    assert (trigger.backup_name, trigger.restore_id, trigger.poll_interval) == (
        "nightly_2",
        "r20260102T000000_0a1b2c3d",
        4.0,
    )
    assert deferred.value.method_name == "execute_complete"


class _CancellingHook(_SubmittingHook):
    """Records which restore ``on_kill`` cancels."""

    def __init__(self) -> None:
        self.cancelled: list[tuple[str, str]] = []

    def restore_engine(self) -> Any:
        return SimpleNamespace(cancel=lambda milvus, name, rid: self.cancelled.append((name, rid)))


def test_on_kill_cancels_the_restore_this_task_submitted() -> None:
    op = MilvusRestoreOperator(
        task_id="restore",
        backup_prefix="nightly_",
        collection_suffix="_r",
        method="bulk_import",
        deferrable=True,
    )
    hook = _CancellingHook()
    op.hook = hook  # type: ignore[assignment]
    op.on_kill()  # nothing submitted yet: nothing to cancel
    assert hook.cancelled == []
    with pytest.raises(TaskDeferred):
        op.execute(context={})  # type: ignore[arg-type]
    op.on_kill()
    assert hook.cancelled == [("nightly_2", "r20260102T000000_0a1b2c3d")]


def test_restore_rejects_a_bad_method_before_touching_anything() -> None:
    op = MilvusRestoreOperator(task_id="restore", backup_name="nightly_2", method="copy")
    op.hook = _SubmittingHook()  # type: ignore[assignment]
    with pytest.raises(
        MilvusBackupInvalidArgument,
        match="method must be one of auto, insert, bulk_import, binlog_import, got 'copy'",
    ):
        op.execute(context={})  # type: ignore[arg-type]


def test_trigger_turns_a_corrupt_backup_into_an_error_event(tmp_path: Path) -> None:
    manifest = tmp_path / "backup" / "broken_1" / "meta" / "backup_meta.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"format_version": 1, "name": "broken_1"')  # truncated
    trigger = MilvusBackupTrigger(
        backup_name="broken_1", local_path=str(tmp_path), root_path="backup", poll_interval=0.1
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    event = asyncio.run(asyncio.wait_for(first_event(), 30))
    assert event.payload["status"] == "error"
    assert (
        "Manifest 'broken_1/meta/backup_meta.json' of backup 'broken_1' is not valid JSON"
        in event.payload["message"]
    )
