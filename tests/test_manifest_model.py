"""The manifest model (:mod:`~airflow_milvus_backup.engine.manifest`), without a server.

It reads every manifest this package wrote, writes the same bytes back, keeps the keys of a newer writer and
refuses a malformed one with the message that names the path in the document."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_backup import __version__
from airflow_milvus_backup.engine import errors
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.storage import LocalStorage

if TYPE_CHECKING:
    from pathlib import Path

MODELS = (mf.DataFile, mf.PartitionData, mf.CollectionEntry, mf.Totals, mf.Manifest)


def captured_meta(name: str = "c1") -> dict[str, Any]:
    """What ``schema.capture_collection`` returns for a small collection (every key it writes)."""
    return {
        "db_name": "default",
        "name": name,
        "description": "",
        "auto_id": False,
        "enable_dynamic_field": True,
        "num_shards": 1,
        "num_partitions": None,
        "consistency_level": 2,
        "consistency_level_name": "Bounded",
        "properties": {"collection.ttl.seconds": "3600"},
        "fields": [
            {"name": "id", "type": "INT64", "description": "", "params": {}, "is_primary": True},
            {"name": "vec", "type": "FLOAT_VECTOR", "description": "", "params": {"dim": 4}},
            {
                "name": "tags",
                "type": "ARRAY",
                "description": "",
                "params": {"max_capacity": 8},
                "element_type": "VARCHAR",
                "nullable": True,
                "default_value": None,
            },
        ],
        "functions": [],
        "partitions": ["_default", "p1"],
        "indexes": [
            {
                "index_name": "vec",
                "field_name": "vec",
                "index_type": "HNSW",
                "metric_type": "L2",
                "params": {"M": 8, "efConstruction": 64},
            }
        ],
        "aliases": ["c1_alias"],
        "load_state": "Loaded",
        "collection_id": 451234567890123456,
        "created_timestamp": 452000000000000000,
    }


def exported(partition: str | None, rows: int, snapshot_ts: int | None, start: int) -> dict[str, Any]:
    files = [
        {
            "key": mf.data_file_key("default", "c1", partition, 0),
            "rows": rows,
            "min_pk": start,
            "max_pk": start + rows - 1,
            "size": 1000 + rows,
            "sha256": "ab" * 32,
        }
    ]
    return {"partition": partition, "rows": rows, "files": files, "snapshot_ts": snapshot_ts}


def old_writer(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Build a manifest exactly as ``BackupEngine`` built it before the model (dicts mutated in place)."""
    meta = captured_meta()
    meta["stats_row_count"] = 7
    meta["data"] = parts
    meta["row_count"] = sum(p["rows"] for p in meta["data"])
    snaps = [p.get("snapshot_ts") for p in meta["data"] if p.get("snapshot_ts")]
    meta["snapshot_ts"] = min(snaps) if snaps else None
    metas = [meta]
    files = [f for m in metas for p in m["data"] for f in p["files"]]
    return {
        "format": mf.FORMAT_NAME,
        "format_version": mf.FORMAT_VERSION,
        "name": "nightly_1",
        "id": "0123abcd",
        "state": "complete",
        "started_at": "2026-01-01T02:00:00+00:00",
        "finished_at": "2026-01-01T02:00:05+00:00",
        "producer": {"package": "airflow-milvus-backup", "version": "0.1.0"},
        "source": {"address": "http://127.0.0.1:19530", "lite": False, "server_version": "2.3.5"},
        "server_version": "2.3.5",
        "databases": {"default": {}},
        "collections": metas,
        "totals": {
            "collections": len(metas),
            "rows": sum(m["row_count"] for m in metas),
            "files": len(files),
            "bytes": sum(f["size"] for f in files),
        },
    }


def new_writer(parts: list[dict[str, Any]]) -> mf.Manifest:
    """Build the same manifest the way ``BackupEngine`` does now, through the model."""
    data = [
        mf.PartitionData(
            partition=p["partition"],
            rows=p["rows"],
            snapshot_ts=p["snapshot_ts"],
            files=tuple(mf.DataFile(**f) for f in p["files"]),
        )
        for p in parts
    ]
    entries = (mf.CollectionEntry.captured(captured_meta(), stats_row_count=7, data=data),)
    return mf.Manifest(
        name="nightly_1",
        id="0123abcd",
        started_at="2026-01-01T02:00:00+00:00",
        finished_at="2026-01-01T02:00:05+00:00",
        producer={"package": "airflow-milvus-backup", "version": "0.1.0"},
        source={"address": "http://127.0.0.1:19530", "lite": False, "server_version": "2.3.5"},
        server_version="2.3.5",
        databases={"default": {}},
        collections=entries,
        totals=mf.Totals.of(entries),
    )


PARTS = [exported("_default", 3, 452000000000000001, 0), exported("p1", 4, 452000000000000000, 3)]


#: A manifest with only the keys a reader requires (files without key ranges, no totals, no producer), as
#: an older or a foreign-but-compatible writer may have written it.
MINIMAL = """{"format": "airflow-milvus-backup", "format_version": 1, "name": "b", "id": "abc",
 "state": "complete", "collections": [{"name": "c", "db_name": "default", "auto_id": false,
 "enable_dynamic_field": false, "fields": [{"name": "pk", "type": "INT64", "params": {}}],
 "partitions": ["_default"], "data": [{"partition": null, "rows": 1,
 "files": [{"key": "data/x.parquet", "rows": 1, "size": 3, "sha256": "ab"}]}]}]}"""


def minimal() -> dict[str, Any]:
    """Return :data:`MINIMAL`, parsed (a fresh copy each time)."""
    doc: dict[str, Any] = json.loads(MINIMAL)
    return doc


def test_the_model_writes_the_bytes_the_dict_writer_wrote() -> None:
    for parts in (PARTS, [exported(None, 5, None, 0)], []):
        old = mf.dumps(old_writer([json.loads(json.dumps(p)) for p in parts]))
        new = new_writer(parts)
        assert new.dumps() == old
        assert mf.dumps(new) == old
        assert mf.parse_manifest(old, "nightly_1") == new


def test_round_trip_keeps_every_byte() -> None:
    for doc, name in ((old_writer(PARTS), "nightly_1"), (minimal(), "b")):
        raw = mf.dumps(doc)
        m = mf.parse_manifest(raw, name)
        assert m.dumps() == raw
        assert m.to_json() == doc
        assert mf.Manifest.from_json(json.loads(raw), name) == m


def test_a_manifest_of_the_previous_layout_still_reads() -> None:
    """Only the required keys: optional ones read as None and are not written back."""
    m = mf.parse_manifest(mf.dumps(minimal()), "b")
    assert (m.name, m.id, m.totals, m.producer, m.started_at) == ("b", "abc", None, None, None)
    coll = m.collections[0]
    assert coll.qualified_name == "default.c"
    assert (coll.functions, coll.indexes, coll.aliases, coll.row_count, coll.load_state) == (None,) * 5
    assert coll.fields == ({"name": "pk", "type": "INT64", "params": {}},)
    ((c, p, f),) = m.files()
    assert (c, p.partition, f.key, f.size, f.min_pk, f.max_pk) == (
        coll,
        None,
        "data/x.parquet",
        3,
        None,
        None,
    )
    assert "min_pk" not in m.to_json()["collections"][0]["data"][0]["files"][0]
    # a value given to a key the document lacked is written
    f2 = dataclasses.replace(f, min_pk=1)
    assert f2.to_json()["min_pk"] == 1


def test_keys_of_a_newer_writer_survive_a_read_and_a_write() -> None:
    doc = minimal()
    doc["retention_hint"] = {"days": 7}
    coll = doc["collections"][0]
    coll["tiering"] = "cold"
    coll["fields"][0]["future_flag"] = True
    coll["data"][0]["checksum_kind"] = "sha256"
    coll["data"][0]["files"][0]["crc32c"] = "00ff"
    doc["totals"] = {"collections": 1, "rows": 1, "files": 1, "bytes": 3, "objects": 2}
    raw = mf.dumps(doc)
    m = mf.parse_manifest(raw, "b")
    assert m.extra == {"retention_hint": {"days": 7}}
    assert m.collections[0].extra == {"tiering": "cold"}
    assert m.collections[0].data[0].extra == {"checksum_kind": "sha256"}
    assert m.collections[0].data[0].files[0].extra == {"crc32c": "00ff"}
    assert m.totals is not None
    assert m.totals.extra == {"objects": 2}
    assert m.collections[0].fields[0]["future_flag"] is True
    assert m.dumps() == raw
    # and the model gives them back as read
    assert m.to_json() == doc


def test_what_the_capture_records_for_information_is_kept_in_extra() -> None:
    entry = mf.CollectionEntry.captured(captured_meta(), stats_row_count=7, data=[])
    assert entry.extra == {"collection_id": 451234567890123456, "created_timestamp": 452000000000000000}
    assert (entry.row_count, entry.snapshot_ts, entry.stats_row_count, entry.data) == (0, None, 7, ())
    assert entry.consistency_level_name == "Bounded"


def test_the_spec_names_exactly_the_fields_of_each_model() -> None:
    for model in MODELS:
        names = {f.name for f in dataclasses.fields(model)} - {"extra", "absent"}
        assert names == set(model.SPEC), model.__name__


DROP = object()
C0 = ("collections", 0)
FILE0 = (*C0, "data", 0, "files", 0)
#: (where in the document, the value put there (DROP: the key removed), what the error says)
CASES: list[tuple[tuple[Any, ...], Any, str]] = [
    ((*C0, "fields", 0, "name"), None, "collections[0].fields[0].name must be a string, not null"),
    ((*FILE0, "size"), "3", 'collections[0].data[0].files[0].size must be a whole number, not "3"'),
    ((*C0, "data", 0, "rows"), True, "collections[0].data[0].rows must be a whole number, not true"),
    ((*C0, "partitions"), [1], "collections[0].partitions[0] must be a string, not 1"),
    ((*C0, "auto_id"), DROP, "collections[0].auto_id is missing"),
    ((*FILE0, "sha256"), DROP, "collections[0].data[0].files[0].sha256 is missing"),
    (
        ("totals",),
        {"collections": 1, "rows": 1.5, "files": 1, "bytes": 3},
        "totals.rows must be a whole number, not 1.5",
    ),
    (C0, [], "collections[0] must be an object, not []"),
    (("collections",), {}, "collections must be a list, not {}"),
    ((*C0, "indexes"), [{"params": 3}], "collections[0].indexes[0].params must be an object, not 3"),
    ((*C0, "consistency_level_name"), 2, "collections[0].consistency_level_name must be a string, not 2"),
    (("format_version",), "1", 'format_version must be a whole number, not "1"'),
]


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """Return :func:`minimal` with ``value`` at ``path`` (or the key at ``path`` removed)."""
    m = minimal()
    target: Any = m
    for step in path[:-1]:
        target = target[step]
    if value is DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return m


def test_each_malformed_shape_is_refused_naming_its_path() -> None:
    for path, value, where in CASES:
        m = changed(path, value)
        with pytest.raises(errors.ManifestError) as err:
            mf.parse_manifest(mf.dumps(m), "b")
        text = str(err.value)
        assert text.startswith(f"Manifest 'b/meta/backup_meta.json' of backup 'b' is malformed: {where}"), (
            text
        )
        assert text.endswith("The backup cannot be trusted: restore another one."), text
        with pytest.raises(errors.ManifestError, match=re.escape(where)):
            mf.Manifest.from_json(m, "b")


def test_not_a_manifest_of_ours_or_of_this_version() -> None:
    base = minimal()
    cases: list[tuple[Any, type[Exception], str]] = [
        (
            {**base, "format_version": 2},
            errors.FormatVersionError,
            "format version 2; this package reads up to 1",
        ),
        ({k: v for k, v in base.items() if k != "format"}, errors.ForeignManifestError, "no 'format' key"),
        (
            {**base, "format": "milvus-backup"},
            errors.ForeignManifestError,
            'another tool (format "milvus-backup")',
        ),
        (
            {k: v for k, v in base.items() if k not in ("id", "state")},
            errors.ManifestError,
            "lacks ['id', 'state']",
        ),
        (
            {**base, "name": "other"},
            errors.ManifestError,
            "names backup 'other', not 'b': it was copied by hand",
        ),
        ({**base, "state": "running"}, errors.ManifestError, "is in state 'running', not 'complete'"),
        ("just a string", errors.UnreadableManifestError, "is a JSON str, not an object"),
        ([[]] * 2, errors.UnreadableManifestError, "is a JSON list, not an object"),
    ]
    for doc, error, text in cases:
        with pytest.raises(error, match=re.escape(text)):
            mf.Manifest.from_json(doc, "b")
    deep: Any = {}
    for _ in range(mf.MAX_DEPTH + 1):
        deep = {"x": deep}
    for doc in ({**base, "source": deep}, [deep]):
        with pytest.raises(errors.UnreadableManifestError, match="nested deeper than 64 levels"):
            mf.Manifest.from_json(doc, "b")
    with pytest.raises(errors.UnreadableManifestError, match="nested deeper"):
        mf.parse_manifest(b"[" * 1_000_000 + b"]" * 1_000_000, "b")
    with pytest.raises(errors.UnreadableManifestError, match="not valid JSON"):
        mf.parse_manifest(mf.dumps(base)[:-5], "b")
    with pytest.raises(errors.UnreadableManifestError, match="bigger than 64 MiB"):
        mf.parse_manifest(b" " * (mf.MAX_MANIFEST_BYTES + 1), "b")


def test_check_entry_names_refuses_what_a_restore_must_not_use() -> None:
    good = minimal()["collections"][0]
    mf.check_entry_names("b", good)
    mf.check_entry_names("b", mf.Manifest.from_json(minimal(), "b").collections[0])
    tail = (
        "It is in the manifest of backup 'b' (collection 'default.c'), which was damaged or edited by hand; "
        "nothing was restored. Restore another backup, or run verify_backup."
    )
    outside = json.loads(json.dumps(good))
    outside["data"][0]["files"][0]["key"] = "meta/x.parquet"
    with pytest.raises(errors.InvalidArgumentError) as err:
        mf.check_entry_names("b", outside)
    assert str(err.value) == f"Invalid storage key 'meta/x.parquet': data objects are under 'data/'. {tail}"
    for change in (
        lambda e: e["data"][0]["files"][0].update(key="data/../../outside.txt"),
        lambda e: e.update(partitions=["bad name"]),
        lambda e: e["data"][0].update(partition="p/../x"),
    ):
        bad = json.loads(json.dumps(good))
        change(bad)
        with pytest.raises(errors.InvalidArgumentError, match=re.escape(tail)):
            mf.check_entry_names("b", bad)
    # from_json takes such a manifest (it lists, get and verify_backup read it); only a restore refuses it
    hostile = minimal()
    hostile["collections"][0]["data"][0]["files"][0]["key"] = "data/../../outside.txt"
    entry = mf.Manifest.from_json(hostile, "b").collections[0]
    with pytest.raises(errors.InvalidArgumentError, match=re.escape(tail)):
        mf.check_entry_names("b", entry)
    bad = json.loads(json.dumps(good))
    bad["db_name"] = "db-1"
    with pytest.raises(errors.InvalidArgumentError, match=re.escape("(collection 'db-1.c')")):
        mf.check_entry_names("b", bad)


def test_load_manifest_reads_the_model(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path), root_path="backup")
    with pytest.raises(errors.BackupNotFoundError, match="'nightly_1' does not exist"):
        mf.load_manifest(storage, "nightly_1")
    storage.put_bytes("nightly_1/data/default/c1/_default/part-00000.parquet", b"x")
    with pytest.raises(errors.IncompleteBackupError, match="has no manifest"):
        mf.load_manifest(storage, "nightly_1")
    doc = old_writer(PARTS)
    storage.put_bytes(mf.manifest_key("nightly_1"), mf.dumps(doc))
    m = mf.load_manifest(storage, "nightly_1")
    assert m.to_json() == doc
    assert list(m.to_json()) == sorted(doc)
    keys = [f["key"] for c in doc["collections"] for p in c["data"] for f in p["files"]]
    assert [f.key for _, _, f in m.files()] == keys


def test_the_producer_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert __version__ == version("airflow-milvus-backup")
