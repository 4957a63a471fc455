"""Backup, restore and verification against Milvus 2.5's core (milvus-lite 2.5.1, the ``milvus25`` fixture).

One backup of two collections is taken per module and restored once: the vector types Milvus Lite 3 lacks
(FLOAT16, BFLOAT16, BINARY) and sparse vectors, a dynamic field, named indexes with build
params, a collection left released. The tests then read what the restore made. Other tests reuse the server
for what it does its own way: a BM25 function it does not describe (recovered by the backup), a partition-key
collection on which it refuses every filter (read by offset up to its query window), auto_id keys it cannot
keep (no AlterCollection), and the connection test without GetVersion. The APIs this server lacks
(partitions, aliases, databases, properties: see :mod:`~airflow_milvus_backup.engine.server_api`) and the
nullable fields it refuses are met with backups taken from Milvus Lite 3, whose restore here is refused with
the fix or, for aliases, done without them and a warning.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams, UnsupportedError
from airflow_milvus_backup.engine.paging import QUERY_WINDOW, offset_plan, pk_pages
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.schema import capture_collection, complete_functions, primary_field
from airflow_milvus_backup.engine.verify import verify_backup, verify_restore
from tests.support.datagen import canon_rows, read_backup_rows, source_rows
from tests.support.lite import open_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.lite25 import Lite25Server

ROWS = 300
TYPES, RELEASED = "types25", "released25"


def _types_collection(client: MilvusClient, name: str) -> None:
    """FLOAT16, BFLOAT16, BINARY and sparse vectors, a text, JSON, array and dynamic keys."""
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True, description="2.5 types")
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("f16", DataType.FLOAT16_VECTOR, dim=8)
    s.add_field("bf16", DataType.BFLOAT16_VECTOR, dim=8)
    s.add_field("bin", DataType.BINARY_VECTOR, dim=16)
    s.add_field("sp", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("text", DataType.VARCHAR, max_length=256, enable_analyzer=True)
    s.add_field("j", DataType.JSON)
    s.add_field("arr", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    ip = client.prepare_index_params()
    ip.add_index("f16", index_type="FLAT", metric_type="L2", index_name="f16_flat")  # local mode: FLAT only
    ip.add_index("bf16", index_type="FLAT", metric_type="IP", index_name="bf16_flat")
    ip.add_index("bin", index_type="BIN_FLAT", metric_type="JACCARD", index_name="bin_flat")
    ip.add_index(
        "sp",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="IP",
        index_name="sp_inv",
        params={"drop_ratio_build": 0.1},
    )
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")
    rng = np.random.default_rng(25)
    rows = []
    for i in range(ROWS):
        row: dict[str, Any] = {
            "id": i * 7 - 100,
            "f16": rng.random(8).astype(np.float16),
            # bytes: pymilvus 3 sends float32 values as fp32 for the server to convert, which 2.5 cannot read
            "bf16": (rng.random(8).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes(),
            "bin": rng.integers(0, 256, 2, dtype=np.uint8).tobytes(),
            "sp": {int(k): float(np.float32(rng.random())) for k in rng.integers(0, 5000, 3)},
            "text": f"row {i} " + " ".join(rng.choice(["milvus", "backup", "airflow", "s3"], 4)),
            "j": {"i": i, "u": "é", "f": 0.1},
            "arr": [int(x) for x in rng.integers(-(2**40), 2**40, i % 5)],
        }
        if i % 2:
            row["tag"] = f"t{i % 3}"
        rows.append(row)
    client.insert(name, rows[: ROWS // 2])
    client.insert(name, rows[ROWS // 2 :])


def _released_collection(client: MilvusClient, name: str) -> None:
    """A VARCHAR primary key, an INVERTED scalar index with a name; left released."""
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    s.add_field("n", DataType.INT64)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="COSINE", index_name="vec_flat")
    ip.add_index("n", index_type="INVERTED", index_name="n_inv")
    client.create_collection(name, schema=s, index_params=ip)
    client.insert(name, [{"pk": f"k{i}", "n": i % 5, "vec": [i, 1.0, 0.5, -i]} for i in range(ROWS)])
    client.release_collection(name)


class Round:
    """What the module's backup and restore made."""

    def __init__(self, server: Lite25Server, storage: LocalStorage, client: MilvusClient) -> None:
        self.server, self.storage, self.client = server, storage, client
        self.params = MilvusParams(uri=server.uri)
        self.summary: dict[str, Any] = {}
        self.manifest: dict[str, Any] = {}
        self.report: dict[str, Any] = {}
        self.backup = f"b25_{uuid.uuid4().hex[:6]}"

    def meta(self, name: str) -> dict[str, Any]:
        return next(c for c in self.manifest["collections"] if c["name"] == name)

    def rows(self, name: str, meta: dict[str, Any]) -> dict[Any, dict[str, Any]]:
        pk, dyn = primary_field(meta)["name"], meta["enable_dynamic_field"]
        return canon_rows(source_rows(self.client, name, meta["fields"], dyn), meta["fields"], pk, dyn)


@pytest.fixture(scope="module")
def round25(milvus25: Lite25Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Round]:
    client = open_client(milvus25.uri)
    for name in client.list_collections():
        client.drop_collection(name)
    _types_collection(client, TYPES)
    _released_collection(client, RELEASED)
    r = Round(milvus25, LocalStorage(tmp_path_factory.mktemp("b25"), "backup"), client)
    engine = BackupEngine(r.storage)
    r.summary = engine.create(r.params, r.backup, [TYPES, RELEASED])
    r.manifest = engine.get(r.backup)
    r.report = RestoreEngine(r.storage).restore(r.params, r.backup, collection_suffix="_r")
    try:
        yield r
    finally:
        for name in client.list_collections():
            client.drop_collection(name)
        client.close()


def test_backup_of_every_25_type_is_bit_for_bit(round25: Round) -> None:
    assert round25.summary["rows"] == 2 * ROWS
    assert round25.manifest["server_version"] == ""  # not reported; assumed 2.5.0
    for name in (TYPES, RELEASED):
        meta = round25.meta(name)
        pk, dyn = primary_field(meta)["name"], meta["enable_dynamic_field"]
        got = canon_rows(read_backup_rows(round25.storage, round25.backup, meta), meta["fields"], pk, dyn)
        assert got == round25.rows(name, meta), name
    types = round25.meta(TYPES)
    assert [f["type"] for f in types["fields"]][:5] == [
        "INT64",
        "FLOAT16_VECTOR",
        "BFLOAT16_VECTOR",
        "BINARY_VECTOR",
        "SPARSE_FLOAT_VECTOR",
    ]
    assert types["partitions"] == ["_default"]  # ShowPartitions unimplemented: assumed
    assert types["aliases"] == []
    assert round25.meta(RELEASED)["load_state"] == "NotLoad"


def test_restore_gives_the_same_rows_schema_indexes_and_load_state(round25: Round) -> None:
    client = round25.client
    assert round25.report["state"] == "success"
    assert round25.report["method"] == "insert"
    for name in (TYPES, RELEASED):
        meta = round25.meta(name)
        if name == RELEASED:
            client.load_collection(f"{name}_r")  # released, as the source was: load to read it
            client.load_collection(name)
        assert round25.rows(f"{name}_r", meta) == round25.rows(name, meta), name
        src = capture_collection(client, name, "default")
        dst = capture_collection(client, f"{name}_r", "default")
        for key in (
            "fields",
            "functions",
            "enable_dynamic_field",
            "num_partitions",
            "description",
            "indexes",
        ):
            assert dst[key] == src[key], (name, key)
        # the index names, types, metrics and build params, as describe_index reports them
        for idx in meta["indexes"]:
            info = client.describe_index(f"{name}_r", idx["index_name"])
            assert info["index_type"] == idx["index_type"]
            assert info.get("metric_type") == idx["metric_type"]
            for k, v in idx["params"].items():
                assert str(info.get(k)) == str(v), (name, idx["index_name"], k)
        if name == RELEASED:
            client.release_collection(name)
    loads = {c["target"]: c["load_state"] for c in round25.report["collections"]}
    assert loads[f"default.{TYPES}_r"]["target"] == "Loaded"
    assert loads[f"default.{RELEASED}_r"]["action"] in ("left released", "released")


def test_verify_backup_and_the_restore(round25: Round) -> None:
    checked = verify_backup(round25.storage, round25.backup)
    assert checked["ok"], checked["errors"]
    assert checked["rows"] == 2 * ROWS
    verified = verify_restore(
        round25.params, round25.storage, round25.backup, round25.report, sample_searches=3
    )
    assert verified["ok"], verified["errors"]
    assert all(c["data_equal"] for c in verified["collections"])


def test_meta_only_and_drop_existing(round25: Round) -> None:
    restore = RestoreEngine(round25.storage)
    meta_only = restore.restore(
        round25.params, round25.backup, [TYPES], collection_suffix="_m", meta_only=True
    )
    assert meta_only["state"] == "success"
    client = round25.client
    assert client.query(f"{TYPES}_m", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
    assert sorted(client.list_indexes(f"{TYPES}_m")) == sorted(
        i["index_name"] for i in round25.meta(TYPES)["indexes"]
    )
    again = restore.restore(
        round25.params, round25.backup, [TYPES], collection_suffix="_m", drop_existing=True
    )
    assert again["state"] == "success"
    assert again["collections"][0]["rows_found"] == ROWS
    client.drop_collection(f"{TYPES}_m")


# -- what the server lacks: backups taken from Milvus Lite 3 -------------------------------------------------
@pytest.fixture(scope="module")
def from_lite3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStorage]:
    """A Milvus Lite 3 backup ``lite3``: parts (partition p1), aliased, props, keyed, nullish (nullable)."""
    from airflow_milvus_backup.engine import lite

    base = tmp_path_factory.mktemp("lite3-for-25")
    uri = str(base / "milvus.db")
    client = MilvusClient(uri)
    try:
        for name in ("parts", "aliased", "props"):
            s = MilvusClient.create_schema(auto_id=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
            ip = client.prepare_index_params()
            ip.add_index("vec", index_type="FLAT", metric_type="L2")
            props = {"collection.ttl.seconds": "86400"} if name == "props" else None
            client.create_collection(name, schema=s, index_params=ip, properties=props)
            client.insert(name, [{"id": i, "vec": [float(i)] * 4} for i in range(20)])
        s = MilvusClient.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("note", DataType.VARCHAR, max_length=16, nullable=True)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_collection("nullish", schema=s, index_params=ip)
        client.insert(
            "nullish", [{"id": i, "note": None if i % 2 else "n", "vec": [1.0] * 4} for i in range(4)]
        )
        client.create_partition("parts", "p1")
        client.insert("parts", [{"id": 100, "vec": [1.0] * 4}], partition_name="p1")
        client.create_alias("aliased", "aliased_alias")
        # a partition key (milvus-lite 2.5.1 refuses every filter on such a collection it holds, so the
        # round trip of one starts here)
        s = MilvusClient.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("tenant", DataType.INT64, is_partition_key=True)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_collection("keyed", schema=s, index_params=ip, num_partitions=8)
        client.insert("keyed", [{"id": i, "tenant": i % 3, "vec": [float(i)] * 4} for i in range(30)])
        storage = LocalStorage(base / "backups", "backup")
        BackupEngine(storage).create(MilvusParams(uri=uri), "lite3")
    finally:
        client.close()
        lite.release(uri)
    return storage


def test_partitions_databases_and_properties_are_refused_with_the_fix(
    round25: Round, from_lite3: LocalStorage
) -> None:
    restore = RestoreEngine(from_lite3)
    with pytest.raises(UnsupportedError) as e:
        restore.restore(round25.params, "lite3", ["parts"], collection_suffix="_x")
    assert "default.parts has partitions p1 besides _default, but Milvus (version not reported" in str(
        e.value
    )
    assert "has no partitions API (ShowPartitions is unimplemented)" in str(e.value)
    with pytest.raises(
        UnsupportedError, match=r"into database 'db1'.*no databases API.*target_db_name='default'"
    ):
        restore.restore(round25.params, "lite3", ["aliased"], target_db_name="db1")
    with pytest.raises(
        UnsupportedError, match=r"collection properties \['collection.ttl.seconds'\].*no properties"
    ):
        restore.restore(round25.params, "lite3", ["props"], collection_suffix="_x")
    assert not [n for n in round25.client.list_collections() if n.endswith("_x")]  # refused before creating


def test_aliases_are_skipped_with_a_warning(
    round25: Round, from_lite3: LocalStorage, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        report = RestoreEngine(from_lite3).restore(
            round25.params, "lite3", ["aliased"], collection_suffix="_a"
        )
    assert report["state"] == "success"
    [c] = report["collections"]
    assert c["aliases"]["restored"] == []
    assert [s["alias"] for s in c["aliases"]["skipped"]] == ["aliased_alias_a"]
    assert "has no aliases (ListAliases is unimplemented)" in c["aliases"]["skipped"][0]["reason"]
    assert "Aliases ['aliased_alias_a'] of default.aliased_a not restored" in caplog.text
    assert c["rows_found"] == 20
    round25.client.drop_collection("aliased_a")


def test_a_partition_key_collection_is_restored_with_its_partition_count(
    round25: Round, from_lite3: LocalStorage
) -> None:
    report = RestoreEngine(from_lite3).restore(round25.params, "lite3", ["keyed"], collection_suffix="_k")
    assert report["state"] == "success"
    assert report["collections"][0]["rows_found"] == 30
    client = round25.client
    desc = client.describe_collection("keyed_k")
    assert desc.get("num_partitions") in (0, 16)  # milvus-lite 2.5.1 reports 0
    assert [f["name"] for f in desc["fields"] if f.get("is_partition_key")] == ["tenant"]
    rows = client.query(
        "keyed_k", filter="", output_fields=["id", "tenant"], limit=100
    )  # no filter: see above
    assert sorted((r["id"], r["tenant"]) for r in rows) == [(i, i % 3) for i in range(30)]
    client.drop_collection("keyed_k")


def test_a_nullable_field_is_refused_naming_the_collection(round25: Round, from_lite3: LocalStorage) -> None:
    with pytest.raises(UnsupportedError) as e:
        RestoreEngine(from_lite3).restore(round25.params, "lite3", ["nullish"], collection_suffix="_n")
    assert "Milvus (version not reported, assumed 2.5.0) at " in str(e.value)
    assert "refused to create default.nullish_n with the schema of default.nullish" in str(e.value)
    assert "MilvusLite doesn't support nullable" in str(e.value)
    assert "nullish_n" not in round25.client.list_collections()


def test_restore_options_rename_load_state_and_new_keys_for_auto_id(round25: Round) -> None:
    client, params = round25.client, round25.params
    s = MilvusClient.create_schema(auto_id=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2", index_name="v")
    client.create_collection("auto25", schema=s, index_params=ip, consistency_level="Strong")
    client.insert("auto25", [{"vec": [float(i), 0.0, 1.0, 2.0]} for i in range(50)])
    backup = f"ao_{uuid.uuid4().hex[:6]}"
    BackupEngine(round25.storage).create(params, backup, ["auto25", RELEASED])
    restore = RestoreEngine(round25.storage)
    # explicit keys cannot go into an auto_id collection here (no AlterCollection): refused, with the fix
    with pytest.raises(UnsupportedError, match="accept_new_primary_keys=True"):
        restore.restore(params, backup, ["auto25"], collection_suffix="_o")
    report = restore.restore(
        params,
        backup,
        collection_renames={"auto25": "auto25_new", RELEASED: "released_new"},
        accept_new_primary_keys=True,
        restore_load_state=False,
    )
    assert report["state"] == "success", report
    loads = {c["target"]: c["load_state"] for c in report["collections"]}
    assert loads["default.released_new"]["action"] == "unchanged"  # as the insert left it
    assert loads["default.released_new"]["target"] == client.get_load_state("released_new")["state"].name
    assert sorted(client.list_indexes("released_new")) == ["n_inv", "vec_flat"]
    verified = verify_restore(params, round25.storage, backup, report, sample_searches=2)
    assert verified["ok"], verified["errors"]
    keys = {c["target"]: c["keys"] for c in verified["collections"]}
    assert keys == {"default.auto25_new": "new", "default.released_new": "kept"}
    for name in ("auto25", "auto25_new", "released_new"):
        client.drop_collection(name)


# -- BM25 and a partition key, backed up from this server ----------------------------------------------------
def _bm25_collection(client: MilvusClient, name: str) -> None:
    """A text with a BM25 function into a sparse field (which the server describes without the function)."""
    from pymilvus import Function, FunctionType

    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("body", DataType.VARCHAR, max_length=256, enable_analyzer=True)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    s.add_function(
        Function(
            name="body_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["body"],
            output_field_names=["sparse"],
        )
    )
    ip = client.prepare_index_params()
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", index_name="sparse_bm25")
    ip.add_index("vec", index_type="FLAT", metric_type="L2", index_name="vec_flat")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")
    words = ["milvus", "backup", "airflow", "restore", "vector", "search"]
    client.insert(
        name,
        [
            {
                "id": i,
                "body": f"{words[i % 6]} {words[(i * 5) % 6]} doc{i}",
                "vec": [float(i), 1.0, 0.0, -1.0],
            }
            for i in range(60)
        ],
    )


def _keyed_collection(client: MilvusClient, name: str, rows: int, dim: int = 4) -> None:
    """A VARCHAR primary key (quotes included) and an INT64 partition key, keys inserted out of order."""
    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    s.add_field("tenant", DataType.INT64, is_partition_key=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip, num_partitions=4, consistency_level="Strong")
    order = np.random.default_rng(7).permutation(rows)
    data = [{"pk": f"k'{i}\"", "tenant": int(i) % 3, "vec": [float(i)] * dim} for i in order]
    for start in range(0, rows, 5000):
        client.insert(name, data[start : start + 5000])


def _all(client: MilvusClient, name: str, fields: list[str]) -> list[dict[str, Any]]:
    """Every row of a small collection without a filter (2.5.1 refuses filters on a partition-key one)."""
    return [dict(r) for r in client.query(name, filter="", output_fields=fields, limit=QUERY_WINDOW)]


def test_bm25_and_partition_key_collections_back_up_and_restore(round25: Round) -> None:
    client, params = round25.client, round25.params
    _bm25_collection(client, "bm25")
    _keyed_collection(client, "keyed25", 700)
    backup = f"fk_{uuid.uuid4().hex[:6]}"
    engine = BackupEngine(round25.storage)
    summary = engine.create(params, backup, ["bm25", "keyed25"])
    assert summary["rows"] == 760
    manifest = {c["name"]: c for c in engine.get(backup)["collections"]}
    # the server lists no function; the backup recovers it from the output field and its BM25 index
    assert [
        (f["type"], f["input_field_names"], f["output_field_names"]) for f in manifest["bm25"]["functions"]
    ] == [("BM25", ["body"], ["sparse"])]
    assert "sparse" not in {c for c in _parquet_columns(round25.storage, backup, manifest["bm25"])}
    keyed_meta = manifest["keyed25"]
    got = canon_rows(read_backup_rows(round25.storage, backup, keyed_meta), keyed_meta["fields"], "pk")
    assert got == canon_rows(_all(client, "keyed25", ["pk", "tenant", "vec"]), keyed_meta["fields"], "pk")
    assert len(got) == 700

    report = RestoreEngine(round25.storage).restore(params, backup, collection_suffix="_r")
    assert report["state"] == "success", report
    desc = client.describe_collection("bm25_r")
    assert [f["name"] for f in desc["fields"] if f.get("is_function_output")] == ["sparse"]
    bm25_meta = manifest["bm25"]
    src = canon_rows(source_rows(client, "bm25", bm25_meta["fields"], False), bm25_meta["fields"], "id")
    dst = canon_rows(source_rows(client, "bm25_r", bm25_meta["fields"], False), bm25_meta["fields"], "id")
    assert dst == src
    # full-text search on the restored collection: the sparse values were regenerated by its BM25 function
    hits = {
        n: {h["id"] for h in client.search(n, ["airflow doc2"], anns_field="sparse", limit=10)[0]}
        for n in ("bm25", "bm25_r")
    }
    assert hits["bm25_r"] == hits["bm25"]
    assert 2 in hits["bm25_r"]
    assert sorted(client.list_indexes("bm25_r")) == ["sparse_bm25", "vec_flat"]
    keyed = _all(client, "keyed25_r", ["pk", "tenant", "vec"])
    assert canon_rows(keyed, keyed_meta["fields"], "pk") == got
    assert [
        f["name"] for f in client.describe_collection("keyed25_r")["fields"] if f.get("is_partition_key")
    ] == ["tenant"]
    verified = verify_restore(params, round25.storage, backup, report, sample_searches=3)
    assert verified["ok"], verified["errors"]
    assert all(c["data_equal"] for c in verified["collections"])
    # the scan that compares the partition-key collection sees a row the backup lacks (2.5.1 fails upserts)
    client.insert("keyed25_r", [{"pk": "extra", "tenant": 1, "vec": [9.5] * 4}])
    verified = verify_restore(params, round25.storage, backup, {"default.keyed25": "default.keyed25_r"})
    [res] = verified["collections"]
    assert not verified["ok"]
    assert (res["data_equal"], res["rows_found"]) == (False, 701)
    # the pages, read by offset once the key filter is refused, are every row once and in key order
    pages = list(pk_pages(client, "keyed25", pk="pk", dtype="VARCHAR", output_fields=["pk"], batch=100))
    keys = [r["pk"] for page in pages for r in page]
    assert len(pages) == 7
    assert keys == sorted(keys) == sorted(got)
    for name in ("bm25", "bm25_r", "keyed25", "keyed25_r"):
        client.drop_collection(name)


def _parquet_columns(storage: LocalStorage, backup: str, meta: dict[str, Any]) -> set[str]:
    return set().union(*(r.keys() for r in read_backup_rows(storage, backup, meta)))


def test_a_partition_key_collection_beyond_the_query_window_is_refused_with_the_fix(round25: Round) -> None:
    client = round25.client
    _keyed_collection(client, "keyed_big", QUERY_WINDOW + 1, dim=2)
    with pytest.raises(UnsupportedError) as e:
        BackupEngine(round25.storage).create(round25.params, f"big_{uuid.uuid4().hex[:6]}", ["keyed_big"])
    msg = str(e.value)
    assert "Cannot read 'keyed_big': the server rejects every filter on it (Invalid expr" in msg
    assert f"only its first {QUERY_WINDOW} of {QUERY_WINDOW + 1} rows" in msg
    assert "Back the collection up from a Milvus standalone or cluster" in msg
    client.drop_collection("keyed_big")


def test_the_hooks_connection_test_succeeds_and_says_the_version_was_assumed(
    milvus25: Lite25Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

    conn = {"conn_type": "milvus", "host": "127.0.0.1", "port": milvus25.port, "extra": {"timeout": 10}}
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_25", json.dumps(conn))
    ok, message = MilvusBackupHook(milvus_conn_id="milvus_25").test_connection()
    assert ok, message
    assert message.startswith(
        "Connected to Milvus (version not reported: GetVersion is unimplemented; assumed 2.5.0) at "
        f"http://127.0.0.1:{milvus25.port}: "
    )
    assert message.endswith("collection(s) in database 'default'.")


# -- the decisions, without a server -------------------------------------------------------------------------
def test_offset_plan_reads_up_to_the_window_and_refuses_beyond_it() -> None:
    assert offset_plan("c", None, 10, 10, "Invalid expr") == 10
    with pytest.raises(UnsupportedError, match=r"partition 'p' of 'c'.*first 10 of 11 rows"):
        offset_plan("c", "p", 11, 10, "Invalid expr")


def _field(name: str, dtype: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": dtype, "params": extra.pop("params", {}), **extra}


def test_complete_functions_marks_outputs_and_recovers_an_undescribed_bm25() -> None:
    fn = {"name": "f", "type": "BM25", "input_field_names": ["t"], "output_field_names": ["s"], "params": {}}
    fields = [_field("t", "VARCHAR", params={"enable_analyzer": "true"}), _field("s", "SPARSE_FLOAT_VECTOR")]
    assert complete_functions("c", fields, [fn], [], "a") == [fn]
    assert fields[1]["is_function_output"] is True  # marked from the function's outputs
    fields = [
        _field("t", "VARCHAR", params={"enable_analyzer": "true"}),
        _field("u", "VARCHAR"),
        _field("s", "SPARSE_FLOAT_VECTOR", is_function_output=True),
    ]
    bm25 = [{"field_name": "s", "metric_type": "BM25"}]
    [got] = complete_functions("c", fields, [], bm25, "a")
    assert (got["type"], got["input_field_names"], got["output_field_names"]) == ("BM25", ["t"], ["s"])
    fields.append(_field("t2", "VARCHAR", params={"enable_analyzer": True}))  # two candidates: ambiguous
    with pytest.raises(UnsupportedError, match=r"fields \['s'\] of 'c' as function outputs"):
        complete_functions("c", fields, [], bm25, "a")
