"""JSON values survive a backup and a restore as the exact text Milvus returns, and verify_restore compares
them exactly: numbers wider than 64 bits, high-precision decimals, -0.0, escapes, key order, and JSON
documents that are a bare scalar (string, number, bool, null) or an array."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import canonical_value, verify_restore
from tests.support.lite import open_client

if TYPE_CHECKING:
    from pathlib import Path

# JSON text as a user inserts it (pymilvus sends a str value of a JSON field verbatim)
DOCUMENTS = [
    '{"big": 123456789012345678901234567890}',
    '{"neg": -123456789012345678901234567890}',
    '{"dec": 0.10000000000000000000000001, "pi": 3.14159265358979323846264338327950288}',
    '{"z": -0.0, "one": 1.0, "e": 1e-7, "max": 18446744073709551616}',
    '{"u": "\\u00e9\\ud83d\\ude00", "q": "a\\"b\\\\c\\u0001"}',
    '{"b": 1, "a": 2, "c": {"z": 0, "y": [-9223372036854775809, 9223372036854775808]}}',
    "{}",
]
# Milvus Lite also stores arrays and strings as a document (it returns a string without its quotes, and
# refuses numbers and bools); Milvus 2.3.5 stores only objects and null
LITE_ONLY = ['[1, 2, "x", 123456789012345678901234567890]', '"hello"', '""', '"x\\"y"', '"a b"']
M235_ONLY = ["null"]


def make_collection(client: MilvusClient, name: str, docs: list[str], nullable: bool) -> None:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("j", DataType.JSON)
    if nullable:  # (not in 2.3.5) nullable JSON goes through pymilvus' row packing
        s.add_field("jn", DataType.JSON, nullable=True)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip)
    rows = []
    for i, d in enumerate(docs):
        rows.append(
            {
                "id": i,
                "vec": [0.5, float(i)],
                "j": d,
                **({"jn": None if i % 3 == 2 else d} if nullable else {}),
                "dyn_s": "é\u0001",
                "dyn_n": [-0.0, 9223372036854775807, 1.5],
                "dyn_b": i % 2 == 0,
                "dyn_null": None,
            }
        )
    client.insert(name, rows)
    client.flush(name)


def raw_json(client: MilvusClient, name: str) -> dict[tuple[int, str], bytes | None]:
    """Return the JSON bytes Milvus returns for every row and JSON field (``$meta`` included)."""
    client.load_collection(name)
    res = client.query(name, filter="id >= 0", output_fields=["*"], consistency_level="Strong")
    ids = [r["id"] for r in list.__getitem__(res, slice(None))]
    out: dict[tuple[int, str], bytes | None] = {}
    for fd in res._lazy_field_data:
        if fd.field_name in ("j", "jn", "$meta") or fd.is_dynamic:
            data, valid = list(fd.scalars.json_data.data), list(fd.valid_data)
            for i, pk in enumerate(ids):
                out[(pk, fd.field_name)] = None if valid and not valid[i] else data[i]
    return out


def round_trip(params: MilvusParams, tmp_path: Path, docs: list[str], name: str, nullable: bool) -> None:
    client = open_client(params.uri)
    try:
        for n in (name, f"{name}_r"):
            if client.has_collection(n):
                client.drop_collection(n)
        make_collection(client, name, docs, nullable)
        storage = LocalStorage(tmp_path / "b")
        BackupEngine(storage).create(params, "j1", [name])
        report = RestoreEngine(storage).restore(params, "j1", [name], collection_suffix="_r", method="insert")

        source, restored = raw_json(client, name), raw_json(client, f"{name}_r")
        assert len(source) == (3 if nullable else 2) * len(docs)
        assert restored == source  # the exact bytes Milvus returns, not merely equal values
        ok = verify_restore(params, storage, "j1", report, sample_searches=0)
        assert ok["ok"], ok["errors"]

        # one digit changed in the 30-digit number (its float64 is the same): verify_restore reports it
        changed = docs[0].replace("890", "891")
        assert changed != docs[0]
        row = {"id": 0, "vec": [0.5, 0.0], "j": changed, **({"jn": changed} if nullable else {})}
        client.upsert(f"{name}_r", [row])
        bad = verify_restore(params, storage, "j1", report, sample_searches=0)
        assert not bad["ok"]
        assert bad["collections"][0]["mismatches"] == [0]
    finally:
        for n in (name, f"{name}_r"):
            if client.has_collection(n):
                client.drop_collection(n)
        client.close()


def test_json_round_trip_is_exact_on_lite(lite_uri: str, tmp_path: Path) -> None:
    round_trip(MilvusParams(uri=lite_uri), tmp_path, DOCUMENTS + LITE_ONLY, "jx", nullable=True)


@pytest.mark.milvus235
def test_json_round_trip_is_exact_on_235(milvus235: Any, tmp_path: Path) -> None:
    name = f"jx_{uuid.uuid4().hex[:8]}"
    round_trip(MilvusParams(uri=milvus235.uri), tmp_path, DOCUMENTS + M235_ONLY, name, nullable=False)


# ------------------------------------------------------------------------------------------------ pure
def test_exact_json_text_keeps_every_digit_and_the_key_order() -> None:
    from airflow_milvus_backup.engine.arrow import exact_json_text

    for doc in [*DOCUMENTS, *LITE_ONLY, *M235_ONLY, "42", "-0.0", "true"]:
        assert json.loads(exact_json_text(doc.encode())) == json.loads(doc)
    assert exact_json_text(b'{"big": 123456789012345678901234567890}') == (
        '{"big": 123456789012345678901234567890}'
    )


def test_canonical_json_tells_values_apart_that_floats_would_merge() -> None:
    field = {"name": "j", "type": "JSON"}

    def canon(text: str) -> Any:
        return canonical_value(text, field)

    big = '{"big": 123456789012345678901234567890}'
    assert canon(big) != canon(big.replace("890", "891"))
    assert canon('{"d": 0.10000000000000000000000001}') != canon('{"d": 0.1}')
    assert canon('{"z": -0.0}') != canon('{"z": 0.0}')
    assert canon('"42"') != canon("42")
    assert canon("true") != canon("1")
    assert canon("null") != canon('"null"')
    # the same value written differently is equal: whitespace, key order, escapes, exponent form
    assert canon('{"b": 1, "a": [1.0, "\\u00e9"]}') == canon('{"a":[1.0,"é"],"b":1}')
    assert canon('{"x": 1e2}') == canon('{"x": 100.0}')
    # a decoded value (as pymilvus returns it) and its text are equal
    assert canon('{"a": [1, "x", null, true]}') == canonical_value({"a": [1, "x", None, True]}, field)


@pytest.mark.milvus235
def test_json_string_document_into_a_server_that_cannot_store_it_names_field_and_row(
    lite_uri: str, milvus235: Any, tmp_path: Path
) -> None:
    """A Lite backup whose JSON field holds a bare string, restored into 2.3.5 (objects only): one message
    naming the collection, the field and the row key, and no target left behind."""
    from airflow_milvus_backup.engine.errors import UnsupportedError

    lite = open_client(lite_uri)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("j", DataType.JSON)
    ip = lite.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    lite.create_collection("js", schema=s, index_params=ip)
    lite.insert(
        "js", [{"id": i, "vec": [0.0, 1.0], "j": '{"a": 1}' if i != 7 else '"hello"'} for i in range(10)]
    )
    lite.close()
    storage = LocalStorage(tmp_path / "b")
    BackupEngine(storage).create(MilvusParams(uri=lite_uri), "js1")

    target = f"js_{uuid.uuid4().hex[:8]}"
    m235 = MilvusParams(uri=milvus235.uri)
    with pytest.raises(UnsupportedError) as e:
        RestoreEngine(storage).restore(m235, "js1", collection_renames={"js": target}, method="insert")
    msg = str(e.value)
    assert "Field 'j' of default.js holds a JSON string" in msg
    assert "id=7" in msg
    assert "stores only JSON null, object documents" in msg
    client = open_client(milvus235.uri)
    try:
        assert not client.has_collection(target)
    finally:
        client.close()


def test_json_kinds_each_server_stores() -> None:
    from airflow_milvus_backup.engine.integrity import ALL_JSON_KINDS, json_kind, json_kinds_stored

    assert [json_kind(t) for t in ['{"a":1}', " [1]", '"x"', "-0.0", "42", "true", "false", "null"]] == [
        "object",
        "array",
        "string",
        "number",
        "number",
        "bool",
        "bool",
        "null",
    ]
    assert json_kinds_stored(False, (2, 3, 5)) == {"object", "null"}
    assert json_kinds_stored(True, None) == {"object", "array", "string", "null"}
    assert json_kinds_stored(False, (2, 5, 4)) == ALL_JSON_KINDS
    assert json_kinds_stored(False, None) == ALL_JSON_KINDS


@pytest.mark.milvus235
def test_json_with_new_primary_keys_verifies_without_a_false_alarm_on_235(
    milvus235: Any, tmp_path: Path
) -> None:
    """Rows restored with new keys are compared as a multiset of query_iterator rows, which pymilvus only
    gives decoded (JSON numbers as float64): numbers wider than float64 must not be reported as changed."""
    name = f"jn_{uuid.uuid4().hex[:8]}"
    client = open_client(milvus235.uri)
    try:
        s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
        s.add_field("j", DataType.JSON)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_collection(name, schema=s, index_params=ip)
        client.insert(name, [{"vec": [0.5, float(i)], "j": d} for i, d in enumerate(DOCUMENTS)])
        client.flush(name)
        params = MilvusParams(uri=milvus235.uri)
        storage = LocalStorage(tmp_path / "b")
        BackupEngine(storage).create(params, "jn1", [name])
        report = RestoreEngine(storage).restore(
            params, "jn1", [name], collection_suffix="_r", method="insert", accept_new_primary_keys=True
        )
        assert report["collections"][0]["keys"] == "new"
        ok = verify_restore(params, storage, "jn1", report, sample_searches=0)
        assert ok["ok"], ok["errors"]
    finally:
        for n in (name, f"{name}_r"):
            if client.has_collection(n):
                client.drop_collection(n)
        client.close()


def test_json_compared_as_float_where_one_side_is_decoded() -> None:
    field = {"name": "j", "type": "JSON"}
    text = '{"d": 0.10000000000000000000000001, "big": 123456789012345678901234567890}'
    decoded = {"d": 0.1, "big": 1.2345678901234568e29}
    assert canonical_value(text, field) != canonical_value(decoded, field)
    assert canonical_value(text, field, json_as_float=True) == canonical_value(
        decoded, field, json_as_float=True
    )
    assert canonical_value('{"z": -0.0}', field, True) != canonical_value('{"z": 0.0}', field, True)
