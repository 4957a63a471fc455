"""Name rules, selection and rename maps (pure logic)."""

from __future__ import annotations

import pytest

from airflow_milvus_backup.engine.errors import BackupNameError, CollectionNotFoundError, InvalidArgumentError
from airflow_milvus_backup.engine.names import (
    map_target,
    sanitize_name,
    select_collections,
    validate_backup_name,
    validate_renames,
    validate_suffix,
)


@pytest.mark.parametrize("name", ["a", "_x", "Backup_2026_01_01", "x" * 128])
def test_valid_backup_names(name):
    assert validate_backup_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "../x", "a/b", "x" * 129, "9lives", "bаckup", "ｂackup", "a-b", "a.b", " a", None, 5]
)
def test_invalid_backup_names(name):
    with pytest.raises(BackupNameError, match="Invalid backup name"):
        validate_backup_name(name)


def test_sanitize_run_ids():
    assert sanitize_name("manual__2026-11-24T00:16:23.123+00:00") == "manual__2026_11_24T00_16_23_123_00_00"
    assert sanitize_name("123") == "backup_123"
    assert validate_backup_name(sanitize_name("scheduled__" + "x" * 300))


def test_suffix_rules():
    assert validate_suffix("_recover") == "_recover"
    for bad in ["-x", "a/b", "é", "a.b"]:
        with pytest.raises(InvalidArgumentError, match="collection_suffix"):
            validate_suffix(bad)


def test_select_collections():
    avail = {"default": ["a1", "a2", "b"], "db1": ["x", "y"]}
    assert select_collections(None, avail) == [("default", "a1"), ("default", "a2"), ("default", "b")]
    assert select_collections(["a*", "db1.*", "a1"], avail) == [
        ("default", "a1"),
        ("default", "a2"),
        ("db1", "x"),
        ("db1", "y"),
    ]
    with pytest.raises(CollectionNotFoundError, match="'zz'"):
        select_collections(["zz"], avail)
    with pytest.raises(CollectionNotFoundError, match="q\\*"):
        select_collections(["q*"], avail)


def test_rename_targets():
    r = validate_renames({"c1": "c2", "db1.c1": "db2.c2", "db3.*": "db4.*"})
    assert map_target("default", "c1", renames=r) == ("default", "c2")
    assert map_target("db1", "c1", renames=r) == ("db2", "c2")
    assert map_target("db3", "any", renames=r) == ("db4", "any")
    assert map_target("default", "hello_milvus", suffix="_recover") == ("default", "hello_milvus_recover")
    with pytest.raises(InvalidArgumentError):
        validate_renames({"db1.*": "c2"})
    with pytest.raises(InvalidArgumentError):
        validate_renames({"a/b": "c"})
