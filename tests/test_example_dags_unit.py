"""The example DAGs as a user meets them, without servers: the drill's backup, the restore form, metadata."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from importlib import resources
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from airflow.sdk import Connection

from airflow_milvus_backup.assets import backup_asset, backups_from_asset_events
from airflow_milvus_backup.engine.names import SUFFIX_RE, validate_suffix
from airflow_milvus_backup.get_provider_info import get_provider_info
from airflow_milvus_backup.hooks.milvus_backup import milvus_params_from_connection
from airflow_milvus_backup.operators.restore import MilvusRestoreOperator
from tests.support.airflow_env import DAGS_FOLDER


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag.dags


def _event(name: str, backup_id: str, minute: int) -> SimpleNamespace:
    # what the backup operator puts in the extra of its Asset event (operators/backup.py)
    extra = {"backup_name": name, "backup_id": backup_id, "collections": ["default.hello_milvus"], "rows": 3}
    return SimpleNamespace(extra=extra, timestamp=datetime(2026, 1, 2, 0, minute, tzinfo=timezone.utc))


# -------------------------------------------------------------------------------- the drill's backup
def test_two_backups_back_to_back_each_drill_run_takes_its_own(
    dags: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pick = dags["milvus_restore_drill"].task_dict["backup_to_drill"].python_callable
    asset = backup_asset("milvus-backups", "backup")
    first, second = _event("nightly_1", "id-1", 0), _event("nightly_2", "id-2", 1)
    with caplog.at_level(logging.INFO, logger="milvus_restore_drill"):
        run_1 = pick(triggering_asset_events={asset: [first]})
    assert (run_1["name"], run_1["id"]) == ("nightly_1", "id-1")  # not the newest, nightly_2
    assert run_1["collections"] == ["default.hello_milvus"]
    assert "Drilling backup nightly_1 (id id-1): the Asset event" in caplog.text
    run_2 = pick(triggering_asset_events={asset: [second]})
    assert (run_2["name"], run_2["id"]) == ("nightly_2", "id-2")
    # both landed before one run started: the newest, and the log names the one not drilled
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="milvus_restore_drill"):
        both = pick(triggering_asset_events={asset: [second, first]})
    assert both["name"] == "nightly_2"
    assert "Not drilled: nightly_1" in caplog.text


def test_manual_drill_run_takes_the_newest_backup_and_says_so(
    dags: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

    newest = {"name": "nightly_9", "id": "id-9", "collections": ["default.c"]}
    monkeypatch.setattr(MilvusBackupHook, "latest_backup", lambda self, prefix="": newest)
    pick = dags["milvus_restore_drill"].task_dict["backup_to_drill"].python_callable
    with caplog.at_level(logging.INFO, logger="milvus_restore_drill"):
        chosen = pick(triggering_asset_events={})
    assert (chosen["name"], chosen["id"]) == ("nightly_9", "id-9")
    assert "No triggering Asset event (a manual run): drilling the newest complete backup" in caplog.text


def test_drill_report_names_the_backup_and_its_id(dags: dict[str, Any]) -> None:
    report = dags["milvus_restore_drill"].task_dict["drill_report"].python_callable
    result = {
        "backup_name": "nightly_1",
        "restore_id": "r1",
        "verify": {"ok": True, "collections": [{"target": "default.c_drill", "data_equal": True}]},
        "restore": {
            "collections": [{"source": "default.c", "target": "default.c_drill", "rows_restored": 3}]
        },
    }
    out = report(result, {"name": "nightly_1", "id": "id-1", "chosen_because": "triggering Asset event"})
    assert (out["backup_name"], out["backup_id"], out["verified"]) == ("nightly_1", "id-1", True)
    assert (
        dags["milvus_restore_drill"]
        .task_dict["restore"]
        .backup_name.startswith("{{ ti.xcom_pull(task_ids='backup_to_drill')")
    )


def test_events_without_a_backup_name_are_ignored() -> None:
    asset = backup_asset("b")
    other = SimpleNamespace(extra={}, timestamp=None)
    assert backups_from_asset_events(None) == []
    assert backups_from_asset_events({asset: [other]}) == []
    (only,) = backups_from_asset_events({asset: [other, _event("n", "i", 0)]})
    assert (only["backup_name"], only["asset"]) == ("n", "milvus-backup://b/backup")


# ---------------------------------------------------------------------------------- the restore form
def _restore_kwargs(**values: Any) -> dict[str, Any]:
    op = MilvusRestoreOperator(task_id="r", bucket_name="b", **values)
    return op.restore_kwargs()


def test_restore_form_matches_what_the_operator_accepts(dags: dict[str, Any]) -> None:
    params = dags["milvus_restore"].params
    schemas = {k: params.get_param(k).schema for k in params}
    defaults = {k: params[k] for k in params}
    # required in the form (a type without null) only where empty is not valid
    required = {k for k, s in schemas.items() if "null" not in (s.get("type") or []) and "enum" not in s}
    assert required == {"backup_name"}
    assert all(params.get_param(k).description for k in params)
    # the options the engine's messages name are offered
    assert {"skip_create", "target_db_name", "collection_renames", "restore_index"} <= set(schemas)
    for key, schema in schemas.items():
        jsonschema.validate(defaults[key], schema)  # defaults valid
    # the suffix rule is the engine's, and what the form lets through the operator accepts
    assert schemas["collection_suffix"]["pattern"] == SUFFIX_RE.pattern == "^[A-Za-z0-9_]{0,64}$"
    for ok in ("", "_drill", "x" * 64):
        jsonschema.validate(ok, schemas["collection_suffix"])
        validate_suffix(ok)
    for bad in ("a-b", "a.b", "x" * 65):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schemas["collection_suffix"])
    for db in ("", "db2"):
        jsonschema.validate(db or None, schemas["target_db_name"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("2db", schemas["target_db_name"])
    # every enum value and every empty/false value is accepted by the operator
    for method in schemas["method"]["enum"]:
        assert _restore_kwargs(method=method)["method"] == method
    empty = _restore_kwargs(
        collection_names=None,
        collection_suffix=None,
        collection_renames=None,
        target_db_name=None,
        drop_existing=None,
        skip_create=None,
        restore_index=None,
    )
    assert (empty["collection_suffix"], empty["collection_renames"], empty["target_db_name"]) == (
        "",
        None,
        None,
    )
    assert (empty["drop_existing"], empty["skip_create"]) == (False, False)
    kwargs = _restore_kwargs(
        **{
            "collection_suffix": defaults["collection_suffix"],
            "collection_renames": {"c1": "c1_copy"},
            "target_db_name": "db2",
            "skip_create": True,
            "restore_index": False,
        }
    )
    assert kwargs["collection_renames"] == {"c1": "c1_copy"}
    assert (kwargs["target_db_name"], kwargs["skip_create"], kwargs["restore_index"]) == ("db2", True, False)
    # the task passes every form field on
    task = dags["milvus_restore"].task_dict["restore"]
    for key, attr in {"collections": "collection_names"}.items() | {
        (k, k) for k in schemas if k != "collections"
    }:
        assert f"params.{key}" in str(getattr(task, attr)), key


# ------------------------------------------------------------------------- metadata and the connection
def test_provider_info_shape_is_valid_for_airflow() -> None:
    info = get_provider_info()
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    (conn_type,) = info["connection-types"]
    fields = conn_type["conn-fields"]
    # Airflow 3.3's form shows an extra field's examples, not a placeholder: the URI example is shown
    assert fields["uri"]["schema"]["examples"] == ["http://localhost:19530"]
    assert all(f["label"] and f["description"] for f in fields.values())
    assert set(conn_type["ui-field-behaviour"]["relabeling"]) <= {
        "host",
        "login",
        "schema",
        "port",
        "password",
    }


def test_documentation_url_is_in_the_package_metadata() -> None:
    from importlib.metadata import metadata

    urls = metadata("airflow-milvus-backup").get_all("Project-URL") or []
    assert any(u.split(",", 1)[0].strip().lower() == "documentation" for u in urls), urls


def test_connection_saved_by_the_ui_with_null_extras_and_port_0_means_unset() -> None:
    # Airflow 3.3's form saves every extra field, null when left empty, and an empty Port as 0
    nulls = {"uri": None, "token": None, "server_name": None, "server_pem_path": None, "timeout": None}
    conn = Connection(
        conn_id="m", conn_type="milvus", host="milvus.example.com", port=0, extra=json.dumps(nulls)
    )
    p = milvus_params_from_connection(conn)
    assert p.uri == "http://milvus.example.com:19530"
    assert [p.token, p.server_name, p.server_pem_path] == ["", "", ""]  # unset, not the text "None"
    assert p.timeout == 30.0


def test_demo_summary_names_where_the_backup_landed_and_how_to_open_the_ui() -> None:
    import sys

    sys.path.insert(0, str(DAGS_FOLDER.parent / "scripts"))
    import demo

    args = SimpleNamespace(bucket="milvus-backups", airflow_home=".demo/airflow")
    text = demo.summary(args, {"backup_name": "milvus_nightly_backup_1", "backup_id": "id-1"})
    assert "s3://milvus-backups/backup/milvus_nightly_backup_1/" in text
    assert "id-1" in text
    assert "airflow standalone" in text
    assert ".venv/bin" in text
