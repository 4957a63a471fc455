"""Filters built from primary keys, and paging by them, on the real servers (Milvus Lite 3, Milvus 2.3.5).

Keys are drawn by hypothesis from all of Unicode with a bias towards what breaks expression grammars:
quotes, backslashes (alone and before letters that make escapes), control characters, NUL, line breaks,
U+2028, emoji, the empty string; INT64 keys from the whole range with the extremes. Properties:

* ``query(filter=pk_in(keys))`` returns exactly the stored ones among ``keys``;
* ``pk_compare(op, k)`` returns exactly the stored keys ``op k`` in Python's order (UTF-8 byte order), and
  ``pk_range(low, high)`` those between;
* a backup whose pages end on such keys (256 rows a page) holds every row exactly once; its restore verifies
  (``verify_restore``); a restore interrupted inside a file and run again deletes exactly that file's
  half-inserted keys before inserting them again (no duplicates, no loss).

Milvus 2.3.5 cannot return a row whose INT64 key is 9223372036854775807 from any query (seen: ``pk == ...``,
``pk % 2 == 1``, an empty filter; search finds it): that key is left out there (see FAULTS.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import BackupEngine, InvalidArgumentError, LocalStorage, MilvusParams
from airflow_milvus_backup.engine.filters import (
    INT64_MAX,
    INT64_MIN,
    Grammar,
    grammar_for,
    pk_compare,
    pk_in,
    pk_range,
    string_literal,
)
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import verify_restore
from tests.support.datagen import read_backup_rows
from tests.support.lite import open_client

TRICKY = ['"', "'", "\\", "\\n", "\\u0041", "\\x41", "\\0", "\n", "\r", "\t", "\x00", "\x01", "\x1b", "\x7f"]
TRICKY += ["\u2028", "\ufeff", "é", "😀", "{", "}", "[", "]", "?", " ", "a", "z", "0", "\U0010ffff"]
PIECES = st.one_of(st.sampled_from(TRICKY), st.text(st.characters(codec="utf-8"), max_size=3))
STR_KEYS = st.lists(PIECES, max_size=5).map("".join)
EXTREMES = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]
OPS = [">", ">=", "<", "<=", "==", "!="]
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def int_keys(server: str) -> st.SearchStrategy[int]:
    keys = st.one_of(st.sampled_from(EXTREMES), st.integers(INT64_MIN, INT64_MAX))
    # Milvus 2.3.5 hides the row keyed INT64_MAX from every query (a server bug): left out there
    return keys.filter(lambda k: k != INT64_MAX) if server == "milvus235" else keys


def key_strategy(server: str, dtype: str) -> st.SearchStrategy[Any]:
    return STR_KEYS if dtype == "VARCHAR" else int_keys(server)


# ---------------------------------------------------------------------------------------- pure builders
def test_string_literal_escapes_only_what_every_grammar_reads():
    assert string_literal('a"b\\c') == '"a\\"b\\\\c"'
    assert string_literal("\n\r\t") == '"\\n\\r\\t"'
    assert string_literal("\x00\x01\x7f\u2028😀'") == '"\x00\x01\x7f\u2028😀\'"'
    assert string_literal("") == '""'


def test_int64_minimum_is_said_without_its_literal_for_milvus():
    assert pk_in("id", "INT64", [1, INT64_MIN], Grammar.MILVUS) == "(id in [1] or id < -9223372036854775807)"
    assert pk_in("id", "INT64", [INT64_MIN], Grammar.MILVUS) == "id < -9223372036854775807"
    assert pk_in("id", "INT64", [INT64_MIN], Grammar.LITE) == "id in [-9223372036854775808]"
    assert pk_compare("id", "INT64", ">", INT64_MIN, Grammar.MILVUS) == "id >= -9223372036854775807"
    assert pk_compare("id", "INT64", ">", INT64_MAX, Grammar.MILVUS) == "id > 9223372036854775807"
    assert pk_in("id", "INT64", [], Grammar.MILVUS) == "id in []"
    assert pk_range("id", "INT64", None, None, Grammar.MILVUS) == ""
    assert pk_range("id", "INT64", 1, 2, Grammar.MILVUS) == "(id >= 1) and (id <= 2)"


def test_grammar_from_server_version():
    assert grammar_for("milvus_lite-3.2.2") is Grammar.LITE
    assert grammar_for("v2.3.5-lite") is Grammar.MILVUS  # what Milvus 2.3.5 standalone answers
    assert grammar_for("v2.6.1") is Grammar.MILVUS
    assert grammar_for("") is Grammar.MILVUS


@pytest.mark.parametrize(
    ("field", "dtype", "value", "words"),
    [
        ("id or 1 == 1", "INT64", 1, "Field name 'id or 1 == 1'"),
        ("id", "INT64", True, "must be an integer"),
        ("id", "INT64", 2**63, "outside the int64 range"),
        ("id", "VARCHAR", 3, "must be a string"),
        ("id", "FLOAT", 3, "INT64 or VARCHAR"),
    ],
)
def test_bad_field_or_key_is_refused_naming_it(field, dtype, value, words):
    with pytest.raises(InvalidArgumentError, match=words.replace("(", r"\(")):
        pk_in(field, dtype, [value], Grammar.MILVUS)


# ------------------------------------------------------------------------------------------ servers
@pytest.fixture(scope="module")
def lite_module_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = str(tmp_path_factory.mktemp("filters-lite") / "milvus.db")
    yield uri
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


@pytest.fixture(params=["lite", pytest.param("milvus235", marks=pytest.mark.milvus235)])
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(``lite`` or ``milvus235``, its URI)."""
    if request.param == "lite":
        return "lite", request.getfixturevalue("lite_module_uri")
    return "milvus235", request.getfixturevalue("milvus235").uri


def make_collection(client: MilvusClient, name: str, dtype: str) -> None:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    if dtype == "VARCHAR":
        s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=512)
    else:
        s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("n", DataType.INT64)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


def rows_for(keys: list[Any]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(len(keys))
    return [{"pk": k, "n": i, "vec": rng.random(2, dtype=np.float32).tolist()} for i, k in enumerate(keys)]


def stored_keys(client: MilvusClient, name: str, expr: str) -> list[Any]:
    rows = client.query(name, filter=expr, output_fields=["pk"], limit=16384, consistency_level="Strong")
    return [r["pk"] for r in rows]


def holds(op: str, a: Any, b: Any) -> bool:
    return {
        ">": a > b,
        ">=": a >= b,
        "<": a < b,
        "<=": a <= b,
        "==": a == b,
        "!=": a != b,
    }[op]


@pytest.mark.parametrize("dtype", ["VARCHAR", "INT64"])
def test_pk_in_and_comparisons_match_exactly_the_keys(server, dtype):
    kind, uri = server
    client = open_client(uri)
    grammar = grammar_for(str(client.get_server_version()))
    name = f"filters_{dtype.lower()}_{uuid.uuid4().hex[:8]}"
    make_collection(client, name, dtype)
    present: set[Any] = set()
    keys = key_strategy(kind, dtype)

    @SETTINGS
    @given(
        new=st.lists(keys, min_size=1, max_size=12, unique=True),
        absent=st.lists(keys, max_size=4),
        op=st.sampled_from(OPS),
        pivot=keys,
        other=keys,
    )
    def check(new: list[Any], absent: list[Any], op: str, pivot: Any, other: Any) -> None:
        client.upsert(name, rows_for(new))
        present.update(new)
        probe = new[: len(new) // 2 + 1] + absent
        got = stored_keys(client, name, pk_in("pk", dtype, probe, grammar))
        assert sorted(got) == sorted(set(probe) & present)
        got = stored_keys(client, name, pk_compare("pk", dtype, op, pivot, grammar))
        assert sorted(got) == sorted(k for k in present if holds(op, k, pivot)), (op, pivot)
        low, high = min(pivot, other), max(pivot, other)
        got = stored_keys(client, name, pk_range("pk", dtype, low, high, grammar))
        assert sorted(got) == sorted(k for k in present if low <= k <= high), (low, high)

    try:
        check()
    finally:
        client.drop_collection(name)
        client.close()


class _Interrupt(Exception):
    """Raised from the progress callback: stops a restore between two batches of one file."""


@pytest.mark.parametrize("dtype", ["VARCHAR", "INT64"])
def test_backup_restore_resume_and_verify_with_any_keys(server, dtype, tmp_path: Path):
    kind, uri = server
    client = open_client(uri)
    params = MilvusParams(uri=uri)
    keys = key_strategy(kind, dtype)

    @settings(
        max_examples=2,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(keys, min_size=24, max_size=30, unique=True))
    def check(base: list[Any]) -> None:
        # 560+ keys from a few drawn ones: every key is as tricky as the drawn ones (pairs of strings), so
        # the keys at the page ends are too
        if dtype == "VARCHAR":
            all_keys = list(dict.fromkeys(a + b for a in base for b in base[:24]))
        else:
            extremes = [k for k in EXTREMES if kind == "lite" or k != INT64_MAX]
            all_keys = list(dict.fromkeys([*base, *extremes, *range(-300, 300)]))
        name = f"pages_{dtype.lower()}_{uuid.uuid4().hex[:8]}"
        make_collection(client, name, dtype)
        try:
            client.insert(name, rows_for(all_keys))
            storage = LocalStorage(tmp_path / uuid.uuid4().hex[:8], "backup")
            # 256 rows a page, one file a page: the keys at the page ends are as arbitrary as the rest
            BackupEngine(storage, file_bytes=1, batch_bytes=1).create(params, "b1", [name])
            meta = BackupEngine(storage).get("b1")["collections"][0]
            backed_up = [r["pk"] for r in read_backup_rows(storage, "b1", meta)]
            assert len(backed_up) == len(all_keys)
            assert sorted(backed_up) == sorted(all_keys)

            # a restore stopped after the first batches of a file, then run again: the file is redone
            def interrupt(figures: dict[str, Any]) -> None:
                if 0 < figures["rows"] < len(all_keys) and figures["rows"] % 256 == 100:
                    raise _Interrupt(figures["rows"])

            first = RestoreEngine(
                storage, parallelism=1, insert_batch_rows=50, progress_interval=0, progress_callback=interrupt
            )
            with pytest.raises(_Interrupt):
                first.restore(params, "b1", [name], collection_suffix="_r")
            target = f"{name}_r"
            report = RestoreEngine(storage, parallelism=1, insert_batch_rows=50).restore(
                params, "b1", [name], collection_suffix="_r"
            )
            assert report["attempts"] == 2
            restored = stored_keys(client, target, "")
            assert len(restored) == len(all_keys), "a half-inserted file was not deleted exactly"
            assert sorted(restored) == sorted(all_keys)
            v = verify_restore(params, storage, "b1", report, sample_searches=2)
            assert v["ok"], v["errors"]
            client.drop_collection(target)
        finally:
            client.drop_collection(name)

    try:
        check()
    finally:
        client.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("dtype", "keys"),
    [
        ("VARCHAR", ["a\\", "\\", "\\\\n", 'x\\"', "\\u0041", "b", "", "\x01"]),
        ("INT64", EXTREMES),
    ],
)
def test_verify_restore_passes_with_backslash_and_extreme_keys(server, dtype, keys, tmp_path: Path):
    kind, uri = server
    if kind == "milvus235":
        keys = [k for k in keys if k != INT64_MAX]  # hidden from every query by the server (module docstring)
    client = open_client(uri)
    params = MilvusParams(uri=uri)
    name = f"verify_{dtype.lower()}_{uuid.uuid4().hex[:8]}"
    make_collection(client, name, dtype)
    try:
        client.insert(name, rows_for(keys))
        storage = LocalStorage(tmp_path, "backup")
        BackupEngine(storage).create(params, "b1", [name])
        report = RestoreEngine(storage).restore(params, "b1", [name], collection_suffix="_r")
        v = verify_restore(params, storage, "b1", report, sample_searches=2)
        assert v["ok"], v["errors"]
        [c] = v["collections"]
        assert (c["rows_found"], c["missing"], c["mismatches"]) == (len(keys), [], [])
    finally:
        client.drop_collection(name)
        if client.has_collection(f"{name}_r"):
            client.drop_collection(f"{name}_r")
        client.close()


@pytest.mark.milvus235
def test_backup_warns_when_milvus_235_hides_the_int64_maximum_key(milvus235, tmp_path: Path, caplog):
    """Milvus 2.3.5 counts the row keyed INT64_MAX but no query returns it: the backup says so loudly."""
    client = open_client(milvus235.uri)
    name = f"maxkey_{uuid.uuid4().hex[:8]}"
    make_collection(client, name, "INT64")
    try:
        client.insert(name, rows_for([INT64_MIN, 0, INT64_MAX]))
        storage = LocalStorage(tmp_path, "backup")
        with caplog.at_level("WARNING", logger="airflow_milvus_backup"):
            BackupEngine(storage).create(MilvusParams(uri=milvus235.uri), "b1", [name])
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(
            f"Milvus counts 3 rows in default.{name} but queries returned 2" in w
            and "9223372036854775807" in w
            for w in warnings
        ), warnings
    finally:
        client.drop_collection(name)
        client.close()


def test_backup_does_not_warn_when_every_row_is_exported(lite_uri: str, tmp_path: Path, caplog):
    client = MilvusClient(lite_uri)
    make_collection(client, "allkeys", "INT64")
    client.insert("allkeys", rows_for([INT64_MIN, 0, INT64_MAX]))
    client.close()
    with caplog.at_level("WARNING", logger="airflow_milvus_backup"):
        BackupEngine(LocalStorage(tmp_path, "backup")).create(MilvusParams(uri=lite_uri), "b1", ["allkeys"])
    assert not [r for r in caplog.records if "Milvus counts" in r.getMessage()]
