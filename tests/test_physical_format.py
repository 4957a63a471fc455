"""Milvus Backup's meta format: Go encoding/json exactness, every version, layout, sidecar, kinds (pure)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest

from airflow_milvus_backup.engine.errors import ManifestError
from airflow_milvus_backup.engine.physical import gojson, kinds, layout, mbread, mbwrite
from airflow_milvus_backup.engine.physical import mbmodel as m
from airflow_milvus_backup.engine.physical.sidecar import Sidecar, SidecarObject, expected_digest
from tests.support.mbfixtures import sample_info

# collection_meta.json as Milvus Backup v0.3/v0.4 wrote it (debug log in milvus-backup issue #163), one entry.
GOLDEN_V04_COLLECTIONS = (
    '{"infos":[{"collection_id":442931627905253834,"db_name":"default","collection_name":"VectorDBBenchCollection",'
    '"schema":{"name":"VectorDBBenchCollection","fields":[{"fieldID":100,"name":"pk","is_primary_key":true,'
    '"data_type":5},{"fieldID":101,"name":"id","data_type":5},{"fieldID":102,"name":"vector","data_type":101,'
    '"type_params":[{"key":"dim","value":"768"}]}]},"shards_num":1,"consistency_level":1,'
    '"backup_timestamp":442952571682816,"size":0,"has_index":true,"index_infos":[{"field_name":"vector",'
    '"index_name":"vector_idx","index_type":"FLAT","params":{"index_type":"FLAT","metric_type":"L2",'
    '"params":"{}"}}],"load_state":"Loaded","backup_physical_timestamp":1689729964}]}'
)


def test_go_string_escapes_as_go():
    assert gojson.go_string('a"b\\c') == '"a\\"b\\\\c"'
    assert gojson.go_string("<&>") == '"\\u003c\\u0026\\u003e"'
    assert gojson.go_string("\n\r\t\b\f\x01\x1f") == '"\\n\\r\\t\\b\\f\\u0001\\u001f"'
    assert gojson.go_string("\u2028\u2029é✓") == '"\\u2028\\u2029é✓"'


def test_go_dumps_sorts_map_keys_and_is_compact():
    assert gojson.go_dumps({"b": 1, "a": [True, None, "x"]}) == '{"a":[true,null,"x"],"b":1}'


def test_zero_values_omitted_except_fields_without_omitempty():
    assert m.Binlog().to_go_json() == '{"log_size":0}'
    assert m.SegmentBackupInfo().to_go_json() == '{"size":0}'
    assert m.PartitionBackupInfo().to_go_json() == '{"size":0}'
    assert m.CollectionBackupInfo().to_go_json() == '{"size":0,"has_index":false}'
    assert m.BackupInfo().to_go_json() == '{"state_code":0,"size":0}'
    # a non-nil pointer to an empty struct is {} (omitempty never drops a non-nil pointer)
    assert m.BackupInfo(rbac_meta=m.RBACMeta()).to_go_json() == '{"state_code":0,"size":0,"rbac_meta":{}}'


def test_json_tag_exceptions_and_order():
    f = m.FieldSchema(field_id=100, name="id", is_primary_key=True, data_type=5, auto_id=True, nullable=True)
    assert (
        f.to_go_json()
        == '{"fieldID":100,"name":"id","is_primary_key":true,"data_type":5,"autoID":true,"nullable":true}'
    )
    assert m.FieldBinlog(field_id=7).to_go_json() == '{"fieldID":7}'
    assert m.CollectionSchema(auto_id=True).to_go_json() == '{"autoID":true}'


def test_golden_v04_collection_meta_round_trips_byte_for_byte():
    level = m.CollectionLevelBackupInfo.from_go_json(GOLDEN_V04_COLLECTIONS)
    assert level.to_go_json() == GOLDEN_V04_COLLECTIONS
    c = level.infos[0]
    assert c.collection_name == "VectorDBBenchCollection"
    assert c.schema is not None
    assert [f.field_id for f in c.schema.fields] == [100, 101, 102]
    assert c.index_infos[0].params["metric_type"] == "L2"
    assert c.state_code is None  # no task fields in this struct


def test_fresh_objects_write_as_current_and_round_trip():
    info = sample_info("b1")
    text = info.to_go_json()
    back = m.BackupInfo.from_go_json(text)
    assert back == info
    assert back.to_go_json() == text


@pytest.mark.parametrize("version", mbwrite.VERSIONS)
def test_every_meta_file_of_every_version_round_trips(version):
    info = sample_info("b1", legacy=version != mbwrite.CURRENT)
    files = mbwrite.meta_files(info, version)
    classes = {
        layout.BACKUP_META: m.BackupInfo,
        layout.FULL_META: m.BackupInfo,
        layout.COLLECTION_META: m.CollectionLevelBackupInfo,
        layout.PARTITION_META: m.PartitionLevelBackupInfo,
        layout.SEGMENT_META: m.SegmentLevelBackupInfo,
    }
    for f, raw in files.items():
        if f == layout.CHANNEL_CP_META:
            assert json.loads(raw) == {
                "docs": [{"name": "by-dev-rootcoord-dml_0", "position": "AAEC"}],
                "tenants": [],
            }
            continue
        assert classes[f].from_go_json(raw).to_go_bytes() == raw, f


def test_current_backup_meta_has_no_collections_and_state_code_zero():
    files = mbwrite.meta_files(sample_info("b1"))
    top = json.loads(files[layout.BACKUP_META])
    assert "collection_backups" not in top
    assert top["state_code"] == 0
    assert top["name"] == "b1"
    assert list(top) == ["id", "state_code", "name", "backup_timestamp", "size", "milvus_version"]
    colls = json.loads(files[layout.COLLECTION_META])["infos"]
    assert all("partition_backups" not in c for c in colls)
    parts = json.loads(files[layout.PARTITION_META])["infos"]
    assert all("segment_backups" not in p for p in parts)
    assert len(parts) == 3
    assert len(json.loads(files[layout.SEGMENT_META])["infos"]) == 4


def test_v05_and_v04_top_levels():
    v05 = json.loads(mbwrite.meta_files(sample_info("b1", legacy=True), mbwrite.V05)[layout.BACKUP_META])
    assert list(v05)[:7] == [
        "id",
        "state_code",
        "errorMessage",
        "start_time",
        "end_time",
        "progress",
        "name",
    ] or (list(v05)[:6] == ["id", "state_code", "start_time", "end_time", "progress", "name"])
    assert v05["state_code"] == 2
    assert v05["progress"] == 100
    files04 = mbwrite.meta_files(sample_info("b1", legacy=True), mbwrite.V04)
    assert layout.FULL_META not in files04
    assert layout.CHANNEL_CP_META not in files04
    c = json.loads(files04[layout.COLLECTION_META])["infos"][0]
    assert "id" not in c
    assert "partition_backups" not in c
    assert c["has_index"] is True


def test_level_to_tree_rebuilds_the_tree_and_sums_sizes():
    info = sample_info("b1")
    files = mbwrite.meta_files(info)
    tree = mbread.level_to_tree(
        m.BackupInfo.from_go_json(files[layout.BACKUP_META]),
        m.CollectionLevelBackupInfo.from_go_json(files[layout.COLLECTION_META]),
        m.PartitionLevelBackupInfo.from_go_json(files[layout.PARTITION_META]),
        m.SegmentLevelBackupInfo.from_go_json(files[layout.SEGMENT_META]),
    )
    assert [s.segment_id for s in tree.segments()] == [s.segment_id for s in info.segments()]
    assert tree.size == info.size == sum(s.size for s in info.segments())


def test_unmarshal_is_tolerant_like_go():
    doc = '{"ID":"x","Name":"n","unknown":{"a":1},"size":null,"collection_backups":null}'
    info = m.BackupInfo.from_go_json(doc)
    assert (info.id, info.name, info.size, info.collection_backups) == ("x", "n", 0, ())
    assert info.go_extra == {"unknown": {"a": 1}}


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ('{"size":"12"}', "size"),
        (
            '{"collection_backups":[{"partition_backups":[{"segment_backups":[{"num_of_rows":1.5}]}]}]}',
            "collection_backups[0].partition_backups[0].segment_backups[0].num_of_rows",
        ),
        ('{"name":5}', "name"),
        ("[1]", "not a JSON object"),
        ('{"name":', "not valid JSON"),
    ],
)
def test_unmarshal_errors_name_the_path(doc, path):
    with pytest.raises(ManifestError, match=path.replace("[", r"\[").replace("]", r"\]")):
        m.BackupInfo.from_go_json(doc, "'b/meta/backup_meta.json'")


def test_layout_keys_with_and_without_group():
    assert layout.meta_key("b", layout.BACKUP_META) == "b/meta/backup_meta.json"
    assert layout.sidecar_key("b") == "b/meta/airflow_milvus_backup.json"
    assert layout.insert_log_key("b", 1, 2, 3, 3, 100, 9) == "b/binlogs/insert_log/1/2/3/3/100/9"
    assert layout.insert_log_key("b", 1, 2, None, 3, 100, 9) == "b/binlogs/insert_log/1/2/3/100/9"
    assert layout.delta_log_key("b", 1, 2, 3, 3, 9) == "b/binlogs/delta_log/1/2/3/3/9"
    assert layout.group_folder(0) is None
    assert layout.group_folder(5, 2) == 5
    assert layout.group_folder(5, -1, delta=True) is None
    assert layout.milvus_insert_log_key("files", 1, 2, 3, 4, 5) == "files/insert_log/1/2/3/4/5"
    assert layout.milvus_delta_log_key("", 1, 2, 3, 5) == "delta_log/1/2/3/5"


def test_parse_milvus_log_paths():
    p = layout.parse_milvus_log_path("files/insert_log/1/2/3/100/9")
    assert p == layout.LogPath("files", 1, 2, 3, 100, 9)
    assert layout.parse_milvus_log_path("delta_log/1/-1/3/9") == layout.LogPath("", 1, -1, 3, None, 9)
    assert layout.parse_milvus_log_path("files/insert_log/1/2/3/") is None
    assert layout.log_id_of(0, "files/insert_log/1/2/3/100/42") == 42
    with pytest.raises(ValueError, match="no log id"):
        layout.log_id_of(0, "")


def test_segment_binlogs_use_log_path_tail_in_old_meta():
    info = sample_info("b1", legacy=True, no_groups=True)
    keys = [b.key for b in layout.backup_binlogs("b1", info)]
    assert keys
    assert all(k.startswith("b1/binlogs/") for k in keys)
    seg = info.segments()[0]
    assert seg.binlogs[0].binlogs[0].log_id == 0
    folder = f"b1/binlogs/insert_log/{seg.collection_id}/{seg.partition_id}/{seg.segment_id}"
    assert keys[0] == f"{folder}/0/{seg.segment_id * 10}"
    ins, dl = layout.import_dirs("b1", seg)
    assert ins == f"b1/binlogs/insert_log/{seg.collection_id}/{seg.partition_id}/"
    grouped = sample_info("b1").segments()[0]
    assert layout.import_dirs("b1", grouped)[1].endswith(f"/{grouped.group_id}/")


def test_meta_state_rules():
    assert mbread.meta_state(m.BackupInfo(name="x")).state == "complete"
    legacy = dict(start_time=1, end_time=2, progress=100)
    assert mbread.meta_state(m.BackupInfo(state_code=2, **legacy)).state == "complete"
    assert mbread.meta_state(m.BackupInfo(state_code=1, progress=10, start_time=1)).state == "in_progress"
    st = mbread.meta_state(m.BackupInfo(state_code=3, error_message="boom", **legacy))
    assert st.state == "partial"
    assert "BACKUP_FAIL" in (st.reason or "")
    assert "boom" in (st.reason or "")


def test_sniff_backup_meta():
    ours = json.dumps(
        {
            "format": "airflow-milvus-backup",
            "format_version": 1,
            "name": "b",
            "id": "x",
            "state": "complete",
            "collections": [],
        }
    ).encode()
    assert kinds.sniff_backup_meta(ours) == kinds.LOGICAL
    assert (
        kinds.sniff_backup_meta(mbwrite.meta_files(sample_info("b"))[layout.BACKUP_META])
        == kinds.MILVUS_BACKUP
    )
    assert kinds.sniff_backup_meta(b'{"format":"something-else"}') is None
    assert kinds.sniff_backup_meta(b'{"size":"x"}') is None
    assert kinds.sniff_backup_meta(b"not json") is None


def test_sidecar_round_trip_and_checks():
    sc = Sidecar(
        name="b",
        id="1",
        producer={"package": "p", "version": "1"},
        objects=(
            SidecarObject(key="binlogs/insert_log/1/2/3/3/100/9", size=3, sha256="ab"),
            SidecarObject(key="meta/full_meta.json", size=5, checksum={"crc32c": "AAAA"}),
        ),
    )
    raw = sc.to_bytes()
    back = Sidecar.parse(raw, "b")
    assert back.to_bytes() == raw
    assert back.by_key()["meta/full_meta.json"].sha256 is None
    with pytest.raises(ManifestError, match="not a sidecar"):
        Sidecar.parse(b'{"format":"x"}', "b")
    with pytest.raises(ManifestError, match=r"objects\[0\]\.size"):
        Sidecar.parse(json.dumps({**json.loads(raw), "objects": [{"key": "k", "size": "3"}]}).encode(), "b")


def test_sidecar_digest_kinds_old_and_new():
    """What verify checks per object: SHA-256 first, the server's whole-object SHA-256, then the MD5."""
    data = b"binlog bytes"
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    server = base64.b64encode(hashlib.sha256(data).digest()).decode()
    # a sidecar written before MD5s were recorded: sha256 only, no "md5" key; read and checked as it is
    old = {
        "format": "airflow-milvus-backup-physical",
        "format_version": 1,
        "name": "b",
        "id": "1",
        "objects": [{"key": "binlogs/x", "size": len(data), "sha256": sha, "etag": md5}],
    }
    (o,) = Sidecar.parse(json.dumps(old).encode(), "b").objects
    assert (o.md5, expected_digest(o)) == (None, ("sha256", sha))
    new = SidecarObject(key="binlogs/y", size=len(data), md5=md5.upper(), etag=md5)
    assert new.to_json() == {"key": "binlogs/y", "size": len(data), "md5": md5.upper(), "etag": md5}
    assert expected_digest(new) == ("md5", md5)
    assert expected_digest(replace(new, sha256=sha)) == ("sha256", sha)
    assert expected_digest(replace(new, checksum={"sha256": server})) == ("sha256", sha)
    # a composite multipart checksum or an unknown algorithm is no digest of the bytes
    assert expected_digest(SidecarObject(key="k", size=1, checksum={"sha256": server + "-2"})) is None
    assert expected_digest(SidecarObject(key="k", size=1, checksum={"crc32c": "AAAA"})) is None
    assert expected_digest(SidecarObject(key="k", size=1, etag=md5)) is None  # an ETag alone proves nothing
