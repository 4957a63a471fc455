"""Every kind of backup in one storage: listed with its kind, got, verified, pruned, deleted.

Backups laid out as Milvus Backup writes them (current format, v0.5, v0.4, without group folders) are built
from its structs (tests/support/mbfixtures.py) with small fake binlogs; our logical backups are a manifest
of this package; our physical backups add our sidecar. Local storage, and the rclone S3 server for one run.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine import ownership
from airflow_milvus_backup.engine.catalog import Catalog
from airflow_milvus_backup.engine.errors import IncompleteBackupError, IntegrityError, NotABackupError
from airflow_milvus_backup.engine.physical import kinds, layout, mbcatalog, mbwrite
from airflow_milvus_backup.engine.retention import BackupInfo, RetentionPolicy, prune
from airflow_milvus_backup.engine.storage import LocalStorage, S3Storage, Storage
from airflow_milvus_backup.engine.verify import verify_backup
from airflow_milvus_backup.hooks.summaries import backup_summary
from tests.support.mbfixtures import sample_info, write_mb_backup, write_physical_backup

if TYPE_CHECKING:
    from tests.support.s3server import S3Server


def logical_manifest(name: str, started: str) -> bytes:
    """A manifest of this package (one collection, no data files): what a logical backup commits."""
    coll = {
        "name": "docs",
        "db_name": "default",
        "auto_id": False,
        "enable_dynamic_field": False,
        "fields": [{"name": "id", "type": "INT64", "is_primary": True}],
        "data": [{"partition": "_default", "rows": 0, "files": []}],
        "row_count": 0,
    }
    doc = {
        "format": mf.FORMAT_NAME,
        "format_version": 1,
        "name": name,
        "id": "abc",
        "state": "complete",
        "started_at": started,
        "finished_at": started,
        "collections": [coll],
    }
    return json.dumps(doc, sort_keys=True).encode()


def write_logical(storage: Storage, name: str, started: str) -> None:
    storage.put_bytes(ownership.marker_key(name), ownership.marker_body(name, "abc"))
    storage.put_bytes(mf.manifest_key(name), logical_manifest(name, started))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "backups", "backup")


def fill(storage: Storage) -> None:
    write_mb_backup(storage, "mb_current")
    write_mb_backup(storage, "mb_v05", version=mbwrite.V05)
    write_mb_backup(storage, "mb_v04", version=mbwrite.V04, no_groups=True)
    write_physical_backup(storage, "ours_physical")
    write_logical(storage, "ours_logical", "2030-01-01T00:00:00+00:00")


def test_every_kind_is_listed_with_its_kind_and_state(storage: LocalStorage) -> None:
    fill(storage)
    entries = {e["name"]: e for e in Catalog(storage).list()}
    assert {n: e["kind"] for n, e in entries.items()} == {
        "mb_current": "milvus-backup",
        "mb_v05": "milvus-backup",
        "mb_v04": "milvus-backup",
        "ours_physical": "physical",
        "ours_logical": "logical",
    }
    assert all(e["state"] == "complete" for e in entries.values()), entries
    assert entries["mb_v04"]["meta_version"] == "v0.4"
    assert entries["mb_v05"]["meta_version"] == "v0.5"
    assert entries["mb_current"]["meta_version"] == "current"
    for n in ("mb_current", "mb_v05", "mb_v04", "ours_physical"):
        assert entries[n]["collections"] == ["default.docs", "default.tenants"]
        assert entries[n]["rows"] == 18
        assert entries[n]["server_version"] == "v2.3.5"
    assert entries["ours_physical"]["owned"] is True
    assert entries["mb_current"]["owned"] is False
    # v0.5 records start_time (ms); the others the hybrid backup_timestamp; ours its sidecar's time
    assert entries["mb_v05"]["created_at"] == "2023-11-14T22:13:20+00:00"
    assert entries["ours_physical"]["created_at"] == "2026-01-01T00:00:00+00:00"
    names = [e["name"] for e in Catalog(storage).list()]
    assert names[0] == "ours_logical"  # 2030: newest first across kinds
    assert Catalog(storage).latest()["name"] == "ours_logical"
    assert Catalog(storage).latest(kind="physical")["name"] == "ours_physical"


def test_get_returns_the_meta_tree_and_the_sidecar(storage: LocalStorage) -> None:
    fill(storage)
    got = Catalog(storage).get("ours_physical")
    assert got["kind"] == "physical"
    assert got["sidecar"]["producer"]["package"] == "airflow-milvus-backup"
    assert [c["collection_name"] for c in got["backup_info"]["collection_backups"]] == ["docs", "tenants"]
    assert backup_summary(got)["kind"] == "physical"
    assert backup_summary(got)["collections"] == ["default.docs", "default.tenants"]
    mb = Catalog(storage).get("mb_v04")
    assert mb["kind"] == "milvus-backup"
    assert mb["sidecar"] is None
    assert Catalog(storage).get("ours_logical")["kind"] == "logical"


def test_read_backup_gives_the_same_tree_for_every_version(storage: LocalStorage) -> None:
    fill(storage)
    want = [s.segment_id for s in sample_info("x").segments()]
    for name in ("mb_current", "mb_v05", "mb_v04", "ours_physical"):
        info, sidecar = mbcatalog.read_backup(storage, name)
        assert [s.segment_id for s in info.segments()] == want, name
        assert (sidecar is not None) == (name == "ours_physical")


def test_verify_every_kind_and_name_a_missing_or_truncated_binlog(storage: LocalStorage) -> None:
    fill(storage)
    for name in ("mb_current", "mb_v05", "mb_v04", "ours_physical"):
        report = verify_backup(storage, name)
        assert report["ok"], report
        assert report["files_checked"] == len(layout.backup_binlogs(name, sample_info(name)))
    assert verify_backup(storage, "ours_physical")["sha256_checked"] > report["files_checked"] - 1
    keys = [
        b.key for b in layout.backup_binlogs("mb_v04", sample_info("mb_v04", legacy=True, no_groups=True))
    ]
    storage.delete([keys[3]])
    with pytest.raises(IntegrityError, match=keys[3]):
        verify_backup(storage, "mb_v04")
    # a binlog cut short, in a backup of ours and in one of Milvus Backup
    for name in ("ours_physical", "mb_current"):
        key = layout.backup_binlogs(name, sample_info(name))[1].key
        storage.put_bytes(key, storage.get_bytes(key)[:-1])
        report = verify_backup(storage, name, raise_on_error=False)
        assert not report["ok"]
        assert report["errors"][0]["key"] == key
        assert "truncated" in report["errors"][0]["error"]


def test_verify_catches_a_changed_binlog_by_the_sidecar_sha256(storage: LocalStorage) -> None:
    write_physical_backup(storage, "ours_physical")
    key = layout.backup_binlogs("ours_physical", sample_info("ours_physical"))[0].key
    body = bytearray(storage.get_bytes(key))
    body[0] ^= 1
    storage.put_bytes(key, bytes(body))
    report = verify_backup(storage, "ours_physical", raise_on_error=False)
    assert report["errors"] == [{"key": key, "error": "changed: its SHA-256 differs from the sidecar's"}]


@pytest.mark.parametrize(
    ("digest", "algorithm"), [("md5", "MD5"), ("server", "SHA-256"), ("sha256", "SHA-256")]
)
def test_verify_reads_every_binlog_for_the_digest_its_sidecar_records(
    storage: LocalStorage, digest: str, algorithm: str
) -> None:
    """An MD5 ETag, the server's ChecksumSHA256 or our SHA-256: each is computed again from the bytes."""
    write_physical_backup(storage, "ours", digest=digest)
    binlogs = layout.backup_binlogs("ours", sample_info("ours"))
    report = verify_backup(storage, "ours")
    checked = report["md5_checked"] if digest == "md5" else report["sha256_checked"]
    assert checked >= len(binlogs)
    assert report["size_only"] == 0
    # one byte changed (same size): named by its digest; one cut short: named by its size
    changed, cut = binlogs[0].key, binlogs[2].key
    body = bytearray(storage.get_bytes(changed))
    body[-1] ^= 0x40
    storage.put_bytes(changed, bytes(body))
    storage.put_bytes(cut, storage.get_bytes(cut)[:-3])
    report = verify_backup(storage, "ours", raise_on_error=False)
    errors = {e["key"]: e["error"] for e in report["errors"]}
    assert set(errors) == {changed, cut}
    assert errors[changed] == f"changed: its {algorithm} differs from the sidecar's"
    assert errors[cut].startswith("truncated or changed: ")
    with pytest.raises(IntegrityError, match=r"truncated or changed.*\(and 1 more problem"):
        verify_backup(storage, "ours")


def test_verify_a_sidecar_mixing_digest_kinds(storage: LocalStorage) -> None:
    write_physical_backup(storage, "ours", digest="mixed")
    binlogs = layout.backup_binlogs("ours", sample_info("ours"))
    report = verify_backup(storage, "ours")
    # binlogs cycle sha256, md5, server; the meta files are SHA-256 of the bytes written
    assert report["md5_checked"] == len(range(1, len(binlogs), 3))
    assert report["sha256_checked"] > len(binlogs) - report["md5_checked"]
    for b in binlogs:
        body = bytearray(storage.get_bytes(b.key))
        body[0] ^= 1
        storage.put_bytes(b.key, bytes(body))
    report = verify_backup(storage, "ours", raise_on_error=False)
    assert {e["key"] for e in report["errors"]} == {b.key for b in binlogs}


def test_a_meta_file_that_does_not_parse_is_named(storage: LocalStorage) -> None:
    write_mb_backup(storage, "mb")
    key = layout.meta_key("mb", layout.SEGMENT_META)
    storage.put_bytes(key, b'{"infos":[{"segment_id":"x"}]}')
    report = verify_backup(storage, "mb", raise_on_error=False)
    assert report["errors"][0]["key"] == key
    assert "infos[0].segment_id" in report["errors"][0]["error"]


def test_incomplete_and_failed_milvus_backup_backups(storage: LocalStorage) -> None:
    info = sample_info("mb_partial")
    files = mbwrite.meta_files(info)
    for f in (layout.COLLECTION_META, layout.FULL_META):  # Milvus Backup died before backup_meta.json
        storage.put_bytes(layout.meta_key("mb_partial", f), files[f])
    failed = sample_info("mb_failed", legacy=True)
    from dataclasses import replace

    write_mb_backup(storage, "mb_failed", version=mbwrite.V05, info=replace(failed, state_code=3))
    entries = {e["name"]: e for e in Catalog(storage).list()}
    assert (entries["mb_partial"]["kind"], entries["mb_partial"]["state"]) == ("milvus-backup", "partial")
    assert entries["mb_failed"]["state"] == "partial"
    assert "BACKUP_FAIL" in entries["mb_failed"]["reason"]
    with pytest.raises(IncompleteBackupError):
        Catalog(storage).get("mb_partial")
    with pytest.raises(NotABackupError):
        Catalog(storage).delete("mb_partial")  # Milvus Backup may be writing it
    # retention never touches it either
    listed = [BackupInfo.from_listing(e) for e in Catalog(storage).list()]
    decision = prune(
        listed, RetentionPolicy(keep_last=0, partial_grace=timedelta(0)), datetime.now(timezone.utc)
    )
    assert "mb_partial" not in [v.name for v in decision.delete]


def test_an_interrupted_physical_backup_of_ours_is_ours_and_partial(storage: LocalStorage) -> None:
    name = "ours_interrupted"
    storage.put_bytes(ownership.marker_key(name), ownership.marker_body(name, "id1", kind="physical"))
    key = layout.backup_binlogs(name, sample_info(name))[0].key
    storage.put_bytes(key, b"x")
    e = Catalog(storage).list()[0]
    assert (e["kind"], e["state"], e["owned"]) == ("physical", "partial", True)
    Catalog(storage).delete(name)
    assert not list(storage.list(f"{name}/"))


def test_retention_prunes_across_kinds(storage: LocalStorage) -> None:
    fill(storage)
    listed = [BackupInfo.from_listing(e) for e in Catalog(storage).list()]
    decision = prune(listed, RetentionPolicy(keep_last=2), datetime.now(timezone.utc))
    kept = [v.name for v in decision.kept]
    assert kept[0] == "ours_logical"
    assert len(kept) == 2
    deleted = [v.name for v in decision.delete]
    assert set(kept) | set(deleted) == {"mb_current", "mb_v05", "mb_v04", "ours_physical", "ours_logical"}
    for name in deleted:
        Catalog(storage).delete(name)
    assert sorted(e["name"] for e in Catalog(storage).list()) == sorted(kept)
    only_logical = prune(listed, RetentionPolicy(keep_last=0, kinds=("logical",)), datetime.now(timezone.utc))
    assert [v.name for v in only_logical.kept] == ["ours_logical"]
    assert not only_logical.delete


def test_our_logical_backup_is_not_taken_for_milvus_backup_and_vice_versa(storage: LocalStorage) -> None:
    write_logical(storage, "ours_logical", "2030-01-01T00:00:00+00:00")
    write_mb_backup(storage, "mb")
    raw_ours = storage.get_bytes(mf.manifest_key("ours_logical"))
    raw_mb = storage.get_bytes(layout.meta_key("mb", layout.BACKUP_META))
    assert kinds.sniff_backup_meta(raw_ours) == kinds.LOGICAL
    assert kinds.sniff_backup_meta(raw_mb) == kinds.MILVUS_BACKUP
    # What Milvus Backup's list needs besides backup_meta.json (collection_meta.json or full_meta.json):
    # our logical backups have neither, so its meta.Read fails and List skips them.
    assert not storage.exists(layout.meta_key("ours_logical", layout.COLLECTION_META))
    assert not storage.exists(layout.meta_key("ours_logical", layout.FULL_META))


def test_on_the_s3_server(s3_server: S3Server, bucket: str) -> None:
    storage = S3Storage(s3_server.client(), bucket, "backup")
    write_mb_backup(storage, "mb_v05", version=mbwrite.V05)
    write_physical_backup(storage, "ours_physical")
    entries = {e["name"]: (e["kind"], e["state"]) for e in Catalog(storage).list()}
    assert entries == {"mb_v05": ("milvus-backup", "complete"), "ours_physical": ("physical", "complete")}
    assert verify_backup(storage, "ours_physical")["ok"]
    key = layout.backup_binlogs("mb_v05", sample_info("mb_v05", legacy=True))[2].key
    storage.delete([key])
    with pytest.raises(IntegrityError, match="missing"):
        verify_backup(storage, "mb_v05")
    Catalog(storage).delete("mb_v05")
    assert [e["name"] for e in Catalog(storage).list()] == ["ours_physical"]


def test_the_sensor_check_sees_every_kind(storage: LocalStorage) -> None:
    from airflow_milvus_backup.engine.backup import BackupEngine
    from airflow_milvus_backup.hooks.summaries import complete_backup

    fill(storage)
    engine = BackupEngine(storage)
    for name, kind in (
        ("mb_v04", "milvus-backup"),
        ("ours_physical", "physical"),
        ("ours_logical", "logical"),
    ):
        found = complete_backup(engine, name)
        assert found is not None
        assert (found["kind"], found["state"]) == (kind, "complete")
    storage.delete([layout.meta_key("mb_v05", layout.BACKUP_META)])  # not committed: not there yet
    assert complete_backup(engine, "mb_v05") is None
    assert complete_backup(engine, None, "mb_")["name"] in ("mb_current", "mb_v04")
