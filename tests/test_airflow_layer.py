"""Unit tests of the Airflow layer's shape: location arguments declared once, templated arguments parsed once,
the restore trigger that only polls, the Asset scheme. No server is needed."""

from __future__ import annotations

import asyncio
import inspect
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_milvus_backup.exceptions import MilvusBackupException, MilvusBackupInvalidArgument
from airflow_milvus_backup.get_provider_info import get_provider_info
from airflow_milvus_backup.hooks.location import BackupLocation
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
from airflow_milvus_backup.operators import (
    MilvusBackupOperator,
    MilvusBackupRetentionOperator,
    MilvusRestoreOperator,
)
from airflow_milvus_backup.sensors import MilvusBackupSensor
from airflow_milvus_backup.triggers import MilvusBackupTrigger, MilvusRestoreTrigger

OPERATORS = [MilvusBackupOperator, MilvusRestoreOperator, MilvusBackupRetentionOperator, MilvusBackupSensor]
#: Arguments that are not templated: how the task runs, decided when the DAG is written.
NOT_TEMPLATED = {"deferrable"}


def own_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Every parameter of the class's ``__init__`` chain up to (not including) Airflow's base classes."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass.__module__.startswith("airflow.") or "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name != "self":
                out.setdefault(name, p)
    return out


# ------------------------------------------------------------------------------------- location arguments
@pytest.mark.parametrize("cls", [MilvusBackupHook, *OPERATORS, MilvusBackupTrigger, MilvusRestoreTrigger])
def test_every_class_takes_every_location_argument_with_one_default(cls: type) -> None:
    params = own_parameters(cls)
    for name, default in BackupLocation.defaults().items():
        assert name in params, (cls.__name__, name)
        assert params[name].default == default, (cls.__name__, name)


def test_hook_keeps_its_positional_location_arguments() -> None:
    hook = MilvusBackupHook("m", "a", "bucket", "root", None, None, region_name="eu-west-1")
    assert hook.location == BackupLocation("m", "a", "bucket", "root", region_name="eu-west-1")
    assert hook.milvus_conn_id == "m"
    with pytest.raises(TypeError, match="multiple values for argument 'bucket_name'"):
        MilvusBackupHook("m", "a", "b1", bucket_name="b2")


def test_default_args_and_partial_reach_the_location_arguments() -> None:
    with DAG(
        "t_defaults",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        default_args={"bucket_name": "from-defaults", "milvus_conn_id": "milvus_prod"},
    ):
        sensor = MilvusBackupSensor(task_id="wait")
        restore = MilvusRestoreOperator(task_id="restore", sse="AES256")
        # Airflow checks partial() arguments against the signatures: the location ones are accepted.
        MilvusBackupOperator.partial(task_id="mapped", bucket_name="b").expand(
            collection_names=[["c1"], ["c2"]]
        )
    assert (sensor.bucket_name, sensor.milvus_conn_id) == ("from-defaults", "milvus_prod")
    assert (restore.bucket_name, restore.milvus_conn_id, restore.sse) == (
        "from-defaults",
        "milvus_prod",
        "AES256",
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'bucket'"):
        MilvusBackupOperator.partial(task_id="bad", bucket="b")


# ------------------------------------------------------------------------------------- templated arguments
@pytest.mark.parametrize("cls", OPERATORS)
def test_every_argument_is_templated(cls: type) -> None:
    params = set(own_parameters(cls)) - NOT_TEMPLATED
    fields = set(cls.template_fields)
    attribute = {"dry_run": "dry_run_mode"}  # ``dry_run`` is BaseOperator's method
    assert {attribute.get(p, p) for p in params} == fields
    assert len(cls.template_fields) == len(fields)  # no field twice


def render(op: Any, **params: Any) -> None:
    """Render the operator's templated fields the way a task run does, with ``params`` in the context."""
    from airflow.sdk.definitions._internal.templater import NativeEnvironment

    op.render_template_fields({"params": params}, jinja_env=NativeEnvironment())


def test_templated_booleans_and_numbers_are_parsed_once_rendered(tmp_path: Path) -> None:
    op = MilvusRestoreOperator(
        task_id="restore",
        backup_name="b1",
        restore_aliases="{{ params.aliases }}",
        auto_index_fallback="{{ params.fallback }}",
        top_k="{{ params.top_k }}",
        allow_root_at_top="{{ params.at_top }}",
        local_path=str(tmp_path),
    )
    render(op, aliases="false", fallback="yes", top_k="7", at_top="False")
    kwargs = op.restore_kwargs()
    assert (kwargs["restore_aliases"], kwargs["auto_index_fallback"]) == (False, True)
    assert op.backup_location.allow_root_at_top is False  # the string "False" is not true
    assert op._verify_arguments() is True
    assert op.top_k == 7


@pytest.mark.parametrize(
    ("cls", "argument", "value", "message"),
    [
        (
            MilvusRestoreOperator,
            "restore_load_state",
            "sometimes",
            "restore_load_state must be true or false",
        ),
        (MilvusRestoreOperator, "top_k", "ten", "top_k must be a whole number"),
        (MilvusBackupOperator, "verify", "maybe", "verify must be true or false"),
        (MilvusBackupOperator, "allow_root_at_top", "perhaps", "allow_root_at_top must be true or false"),
        (MilvusBackupOperator, "parallelism", "2.5", "parallelism must be a whole number"),
        (MilvusBackupRetentionOperator, "dry_run", "dunno", "dry_run must be true or false"),
    ],
)
def test_a_bad_rendered_value_is_refused_naming_the_argument(
    cls: type, argument: str, value: str, message: str, tmp_path: Path
) -> None:
    kw: dict[str, Any] = (
        {"backup_name": "b1"} if cls is not MilvusBackupRetentionOperator else {"keep_last": 1}
    )
    op = cls(task_id="t", local_path=str(tmp_path), **kw, **{argument: value})
    with pytest.raises(MilvusBackupInvalidArgument, match=message):
        op.execute(context={})


def test_a_number_that_is_not_finite_is_kept_as_text_once_rendered() -> None:
    # Airflow sends rendered fields as JSON (no inf): as text, execute() refuses it naming the argument.
    op = MilvusBackupRetentionOperator(task_id="retention", keep_last=1, max_age=math.inf)
    render(op)
    assert op.max_age == "inf"
    with pytest.raises(MilvusBackupInvalidArgument, match=r"max_age must be .*, got 'inf' \(not a finite"):
        op.execute(context={})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- restore trigger
class _ImportingHook:
    """Stands in for the hook: import jobs that run for two polls, then are done (or failed)."""

    def __init__(self, final: str = "imported", error: str | None = None) -> None:
        self.final, self.error = final, error
        self.polls = 0
        self.completed: list[tuple[str, str]] = []

    def scrub(self, text: str) -> str:
        return text

    def restore_import_state(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        self.polls += 1
        state = "executing" if self.polls < 3 else self.final
        return {
            "state": state,
            "restore_id": restore_id,
            "backup_name": backup_name,
            "totals": {"files": 4, "files_done": min(self.polls, 4), "rows_restored": 0, "rows_expected": 80},
            "error": self.error if state == "failed" else None,
        }

    def poll_restore(self, *args: Any) -> dict[str, Any]:
        raise AssertionError("the trigger must not finish the restore")

    def complete_restore(self, backup_name: str, restore_id: str) -> dict[str, Any]:
        self.completed.append((backup_name, restore_id))
        return {
            "state": "success",
            "restore_id": restore_id,
            "method": "bulk_import",
            "collections": [{"source": "default.c1", "target": "default.c1_r", "state": "done"}],
            "totals": {"files": 4, "files_done": 4, "rows_restored": 80, "rows_expected": 80},
        }


def first_event(trigger: Any) -> Any:
    async def run() -> Any:
        async for event in trigger.run():
            return event

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_restore_trigger_only_polls_and_sends_a_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _ImportingHook()
    trigger = MilvusRestoreTrigger(backup_name="b1", restore_id="r1", poll_interval=0.01)
    monkeypatch.setattr(trigger, "_hook", lambda: hook)
    event = first_event(trigger)
    assert hook.polls == 3
    assert event.payload == {
        "status": "success",
        "backup_name": "b1",
        "restore_id": "r1",
        "state": "imported",
        "totals": {"files": 4, "files_done": 3, "rows_restored": 0, "rows_expected": 80},
        "error": None,
    }
    assert hook.completed == []  # nothing finished in the triggerer


def test_restore_trigger_reports_a_failed_import(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _ImportingHook(final="failed", error="import job 7 failed: bad file")
    trigger = MilvusRestoreTrigger(backup_name="b1", restore_id="r1", poll_interval=0.01)
    monkeypatch.setattr(trigger, "_hook", lambda: hook)
    event = first_event(trigger)
    assert event.payload["status"] == "error"
    assert event.payload["message"] == "Restore r1 of backup 'b1' failed: import job 7 failed: bad file"
    assert (event.payload["state"], event.payload["restore_id"]) == ("failed", "r1")


def test_restore_trigger_turns_an_exception_into_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable(_ImportingHook):
        def restore_import_state(self, backup_name: str, restore_id: str) -> dict[str, Any]:
            raise MilvusBackupException("Milvus at http://m:19530 is unreachable")

    trigger = MilvusRestoreTrigger(backup_name="b1", restore_id="r1", poll_interval=0.01)
    monkeypatch.setattr(trigger, "_hook", Unreachable)
    event = first_event(trigger)
    assert event.payload == {
        "status": "error",
        "message": "Restore r1 of backup 'b1': Milvus at http://m:19530 is unreachable",
        "error_type": "MilvusBackupException",
        "backup_name": "b1",
        "restore_id": "r1",
    }


def test_execute_complete_finishes_the_restore_on_the_worker() -> None:
    op = MilvusRestoreOperator(task_id="restore", backup_name="b1", verify=False, deferrable=True)
    hook = _ImportingHook()
    op.hook = hook  # type: ignore[assignment]
    event = {"status": "success", "backup_name": "b1", "restore_id": "r1", "state": "imported", "totals": {}}
    result = op.execute_complete({}, event)  # type: ignore[arg-type]
    assert hook.completed == [("b1", "r1")]
    assert (result["backup_name"], result["restore_id"], result["verify"]) == ("b1", "r1", None)
    assert result["restore"]["collections"][0]["target"] == "default.c1_r"
    with pytest.raises(MilvusBackupException, match="import job 7 failed"):
        op.execute_complete(
            {}, {"status": "error", "message": "Restore r1 of backup 'b1' failed: import job 7 failed"}
        )  # type: ignore[arg-type]


def test_restore_operator_passes_every_engine_option() -> None:
    from dataclasses import fields

    from airflow_milvus_backup.engine.restore import RestoreOptions

    op = MilvusRestoreOperator(
        task_id="restore", backup_name="b1", restore_id="r20260101T000000_abcd1234", deferrable=True
    )
    hook = _SubmitRecorder()
    op.hook = hook  # type: ignore[assignment]
    with pytest.raises(TaskDeferred):
        op.execute(context={})  # type: ignore[arg-type]
    sent = hook.kwargs
    assert {f.name for f in fields(RestoreOptions)} | {"restore_id"} == set(sent)
    assert sent["restore_id"] == "r20260101T000000_abcd1234"
    assert (sent["restore_aliases"], sent["restore_load_state"], sent["auto_index_fallback"]) == (
        True,
        True,
        False,
    )


class _SubmitRecorder(_ImportingHook):
    """Records the options the operator submits."""

    milvus_bucket_name = None
    milvus_params = SimpleNamespace(db_name="default")
    kwargs: dict[str, Any]

    def submit_restore(self, backup_name: str, collections: Any, **kwargs: Any) -> dict[str, Any]:
        self.kwargs = kwargs
        return {"restore_id": kwargs["restore_id"], "state": "executing"}


# ------------------------------------------------------------------------------------- the sensor's check
def test_sensor_and_trigger_check_through_the_hook(tmp_path: Path) -> None:
    hook = MilvusBackupHook(local_path=str(tmp_path))
    assert hook.find_complete_backup("nightly_1") is None
    assert hook.find_complete_backup(backup_prefix="nightly_") is None
    with pytest.raises(MilvusBackupInvalidArgument, match="newer_than must be an ISO 8601 time"):
        hook.find_complete_backup(backup_prefix="nightly_", newer_than="yesterday")


def test_old_trigger_classpaths_still_import() -> None:
    from airflow_milvus_backup.triggers.milvus_backup import MilvusBackupTrigger as Old
    from airflow_milvus_backup.triggers.milvus_backup import MilvusRestoreTrigger as OldRestore

    assert (Old, OldRestore) == (MilvusBackupTrigger, MilvusRestoreTrigger)
    # and an event of the earlier trigger (its "report") still completes the restore
    op = MilvusRestoreOperator(task_id="restore", backup_name="b1", verify=False)
    hook = _ImportingHook()
    op.hook = hook  # type: ignore[assignment]
    old_event = {"status": "success", "backup_name": "b1", "restore_id": "r1", "report": {"state": "success"}}
    assert op.execute_complete({}, old_event)["restore"]["state"] == "success"  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- the Asset scheme
def test_asset_scheme_is_declared_with_its_handler() -> None:
    import importlib

    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["milvus-backup"]
    module, _, name = entry["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    uri = urlsplit("milvus-backup://milvus-backups/backup")
    assert handler(uri) == uri
    with pytest.raises(ValueError, match="must name the bucket of backups"):
        handler(urlsplit("milvus-backup:///backup"))


def test_providers_manager_registers_the_asset_scheme() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from airflow_milvus_backup.assets import sanitize_uri

    assert ProvidersManagerTaskRuntime().asset_uri_handlers["milvus-backup"] is sanitize_uri
