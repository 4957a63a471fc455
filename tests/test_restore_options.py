"""Restore options: what ``RestoreOptions.build`` refuses; a fingerprint that later options leave alone."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.restore.options import (
    FINGERPRINT_FIELDS,
    METHODS,
    Method,
    RestoreOptions,
    check_restore_id,
)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"nope": 1}, "Unknown restore option(s) ['nope']; known options: ["),
        ({"drop_existing": "yes"}, "Restore option drop_existing must be True or False, got 'yes'"),
        ({"restore_index": 1}, "Restore option restore_index must be True or False, got 1"),
        (
            {"method": "fast"},
            "Invalid restore method 'fast': use one of ['auto', 'insert', 'bulk_import', 'binlog_import']",
        ),
        ({"drop_existing": True, "skip_create": True}, "drop_existing=True and skip_create=True contradict"),
        ({"meta_only": True, "skip_create": True}, "meta_only=True with skip_create=True would do nothing"),
        ({"use_auto_index": True, "restore_index": False}, "use_auto_index=True needs restore_index=True"),
        ({"target_db_name": "a-b"}, "database"),
        ({"collection_suffix": "a/b"}, "collection_suffix"),
        (
            {"collection_renames": {"db1.*": "c2"}},
            "Invalid rename 'db1.*' -> 'c2': map 'db.*' only onto 'db.*'",
        ),
        ({"collection_renames": ["c1"]}, "collection_renames must be a mapping"),
    ],
)
def test_build_refuses_bad_options_naming_them(options, words):
    with pytest.raises(InvalidArgumentError) as e:
        RestoreOptions.build(options)
    assert words in str(e.value)


def test_build_normalises():
    opts = RestoreOptions.build(
        {
            "target_db_name": "",
            "collection_renames": {},
            "bulk_import_root": "/milvus/data/",
            "method": "insert",
        }
    )
    assert opts.target_db_name is None
    assert opts.collection_renames is None
    assert opts.bulk_import_root == "milvus/data"
    assert opts.method == Method.INSERT
    assert RestoreOptions.build({}) == RestoreOptions()


def test_methods_are_auto_and_the_method_values():
    assert METHODS == ("auto", "insert", "bulk_import", "binlog_import")
    assert [m.value for m in Method] == ["insert", "bulk_import", "binlog_import"]
    assert Method("bulk_import") is Method.BULK_IMPORT
    assert json.dumps(Method.INSERT) == '"insert"'
    assert RestoreOptions.build({"method": Method.BULK_IMPORT}).method == "bulk_import"


def test_restore_id_rules():
    assert check_restore_id("r20260101T020000_1a2b3c4d") == "r20260101T020000_1a2b3c4d"
    for bad in ["", "a/b", "x" * 65, "é", None]:
        with pytest.raises(InvalidArgumentError, match="Invalid restore_id"):
            check_restore_id(bad)


def test_the_fingerprint_fields_are_the_declared_ones():
    opts = RestoreOptions.build({"collection_suffix": "_r", "method": "insert"})
    out = opts.fingerprint_fields()
    assert tuple(out) == FINGERPRINT_FIELDS
    assert (out["collection_suffix"], out["method"]) == ("_r", "insert")


@dataclasses.dataclass
class _NextRelease(RestoreOptions):
    """The options as a later release may have them: one more, whose default does what this release does."""

    new_option: bool = False
    new_limit: int | None = None


def test_an_option_added_later_at_its_default_leaves_the_fingerprint_alone():
    values: dict[str, Any] = {"collection_suffix": "_r", "drop_existing": True}
    today = RestoreOptions.build(values).fingerprint_fields()
    assert _NextRelease.build(values).fingerprint_fields() == today
    changed = _NextRelease.build({**values, "new_option": True}).fingerprint_fields()
    assert changed == {**today, "new_option": True}
