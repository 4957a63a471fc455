"""One schema comparison, two policies: plain dicts, no server."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_milvus_backup.engine.errors import SchemaMismatchError
from airflow_milvus_backup.engine.schema_compare import (
    SchemaPolicy,
    require_takes_rows,
    schema_differences,
)

TAKES, SAME = SchemaPolicy.TAKES_ROWS, SchemaPolicy.SAME


def backup(**kw: Any) -> dict[str, Any]:
    """Return a captured collection: id (pk), vec (dim 8), title (varchar 64), tags (array of varchar)."""
    fields = [
        {"name": "id", "type": "INT64", "params": {}, "is_primary": True},
        {"name": "vec", "type": "FLOAT_VECTOR", "params": {"dim": 8}},
        {"name": "title", "type": "VARCHAR", "params": {"max_length": 64}},
        {
            "name": "tags",
            "type": "ARRAY",
            "element_type": "VARCHAR",
            "params": {"max_capacity": 4, "max_length": 9},
        },
    ]
    return {"db_name": "default", "name": "src", "enable_dynamic_field": False, "fields": fields, **kw}


def target(meta: dict[str, Any], **changes: dict[str, Any]) -> dict[str, Any]:
    """Return a describe_collection-like dict of ``meta``, with some fields changed (``None``: dropped)."""
    fields = []
    for f in meta["fields"]:
        if f["name"] in changes and changes[f["name"]] is None:
            continue
        g = {**f, "params": dict(f.get("params") or {})}
        for k, v in (changes.get(f["name"]) or {}).items():
            if k == "params":
                g["params"].update(v)
            else:
                g[k] = v
        fields.append(g)
    return {"fields": fields, "enable_dynamic_field": meta["enable_dynamic_field"]}


def whys(diffs: list[Any]) -> list[tuple[str, str]]:
    return [(d.field, d.why) for d in diffs]


def test_an_equal_target_has_no_difference_under_either_policy() -> None:
    meta = backup()
    assert schema_differences(meta, target(meta), TAKES) == []
    assert schema_differences(meta, target(meta), SAME) == []


def test_a_target_with_wider_strings_takes_the_rows_but_is_not_the_same() -> None:
    meta = backup()
    wider = target(meta, title={"params": {"max_length": 256}}, tags={"params": {"max_capacity": 8}})
    assert schema_differences(meta, wider, TAKES) == []
    assert [d.text for d in schema_differences(meta, wider, SAME)] == [
        "field 'title': max_length 256 instead of 64",
        "field 'tags': max_capacity 8 instead of 4",
    ]


def test_takes_rows_names_each_field_the_target_cannot_take() -> None:
    meta = backup()
    t = target(
        meta,
        vec={"params": {"dim": 4}},
        title={"params": {"max_length": 10}},
        tags={"element_type": "INT64"},
    )
    assert whys(schema_differences(meta, t, TAKES)) == [
        ("vec", "dim 4 in the target, 8 in the backup"),
        ("title", "max_length 10 in the target is smaller than 64 in the backup"),
        ("tags", "array of INT64 in the target, of VARCHAR in the backup"),
    ]


def test_takes_rows_type_primary_nullable_and_partition_key() -> None:
    meta = backup()
    meta["fields"][2]["nullable"] = True
    t = target(
        meta, id={"type": "VARCHAR", "is_primary": False}, title={"nullable": False, "is_partition_key": True}
    )
    assert whys(schema_differences(meta, t, TAKES)) == [
        ("id", "type VARCHAR in the target, INT64 in the backup"),
        ("id", "primary key in one and not in the other"),
        ("title", "nullable in the backup but not in the target"),
        ("title", "partition key in one and not in the other"),
    ]


def test_takes_rows_missing_required_and_optional_target_fields() -> None:
    meta = backup()
    t = target(meta, title=None)
    t["fields"] += [
        {"name": "must", "type": "INT32", "params": {}},
        {"name": "maybe", "type": "INT32", "params": {}, "nullable": True},
        {"name": "dflt", "type": "INT32", "params": {}, "default_value": 3},
    ]
    assert whys(schema_differences(meta, t, TAKES)) == [
        ("title", "the target has no such field"),
        ("must", "the target requires it and the backup has no values for it"),
    ]
    assert [d.text for d in schema_differences(meta, t, SAME)] == [
        "field 'title' is missing",
        "field 'must' is not in the backup",
        "field 'maybe' is not in the backup",
        "field 'dflt' is not in the backup",
    ]


def test_function_outputs_are_compared_by_kind_only_when_taking_rows() -> None:
    meta = backup()
    meta["fields"].append(
        {"name": "sparse", "type": "SPARSE_FLOAT_VECTOR", "params": {}, "is_function_output": True}
    )
    assert schema_differences(meta, target(meta, sparse=None), TAKES) == []
    plain = target(meta, sparse={"is_function_output": False})
    assert whys(schema_differences(meta, plain, TAKES)) == [
        ("sparse", "it is a function output in the backup but a plain field in the target")
    ]
    assert [d.text for d in schema_differences(meta, plain, SAME)] == [
        "field 'sparse': is_function_output False instead of True"
    ]


def test_the_dynamic_field() -> None:
    meta = backup(enable_dynamic_field=True)
    t = {**target(meta), "enable_dynamic_field": False}
    assert whys(schema_differences(meta, t, TAKES)) == [
        ("$meta", "the backup has a dynamic field and the target does not")
    ]
    assert [d.text for d in schema_differences(meta, t, SAME)] == ["dynamic field False instead of True"]
    # a target with a dynamic field the backup lacks takes the rows, but is not the backed-up collection
    plain = backup()
    t2 = {**target(plain), "enable_dynamic_field": True}
    assert schema_differences(plain, t2, TAKES) == []
    assert [d.text for d in schema_differences(plain, t2, SAME)] == ["dynamic field True instead of False"]


def test_same_ignores_an_unreported_max_length_and_compares_defaults() -> None:
    meta = backup()
    meta["fields"][2]["default_value"] = "x"
    t = target(meta, title={"default_value": "y"})
    del t["fields"][3]["params"]["max_length"]  # Milvus Lite does not report an array element's max_length
    assert [d.text for d in schema_differences(meta, t, SAME)] == [
        "field 'title': default 'y' instead of 'x'"
    ]


def test_same_reads_describe_collection_as_pymilvus_returns_it() -> None:
    from pymilvus import DataType

    meta = backup()
    desc = target(meta)
    desc["fields"][1] = {"name": "vec", "type": DataType.FLOAT_VECTOR, "params": {"dim": "8"}}
    assert schema_differences(meta, desc, SAME) == []


def test_require_takes_rows_raises_on_the_first_difference_with_the_restore_message() -> None:
    meta = backup()
    t = target(meta, vec={"params": {"dim": 4}}, title=None)
    with pytest.raises(SchemaMismatchError) as e:
        require_takes_rows(meta, t, "db2.dst")
    assert str(e.value) == (
        "skip_create: field 'vec' of target db2.dst does not match backup collection default.src: dim 4 in "
        "the target, 8 in the backup. Restore into a new collection (collection_suffix) or pass "
        "drop_existing=True instead."
    )
    require_takes_rows(meta, target(meta), "db2.dst")  # a compatible target passes
