"""RBAC in physical backups (issue 10 item 5): users, roles and grants stored as Milvus Backup stores them.

Milvus Backup keeps what Milvus' ``BackupRBAC`` returns in ``BackupInfo.rbac_meta`` (``backup_meta.json`` and
``full_meta.json``): every user but ``root`` (with its roles and password hash), every role but ``admin`` and
``public``, the grants of those roles, the privilege groups. The conversions are tested without a server; a
physical backup with ``rbac=True`` runs on Milvus 2.3.5 with authorization on (``milvus235_auth``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from airflow_milvus_backup.engine.physical import layout, mbread
from airflow_milvus_backup.engine.physical import mbmodel as m
from airflow_milvus_backup.engine.physical.mbrbac import (
    rbac_counts_of,
    rbac_meta_from_snapshot,
    snapshot_from_rbac_meta,
)
from airflow_milvus_backup.engine.rbac import Grant, PrivilegeGroup, RbacSnapshot, RbacUser

ROOT = "root:Milvus"

SNAP = RbacSnapshot(
    users=(RbacUser("root"), RbacUser("user_1", ("roleA", "roleB")), RbacUser("user_2", ("roleB",))),
    roles=("admin", "public", "roleA", "roleB"),
    grants=(
        Grant("public", "Global", "*", "DescribeCollection", "*", "root"),
        Grant("roleA", "Collection", "c1", "Search", "default", "root"),
        Grant("roleA", "User", "user_1", "SelectUser", "default", "root"),
        Grant("roleB", "Collection", "*", "Query", "db2", ""),
    ),
    privilege_groups=(PrivilegeGroup("readers", ("Query", "Search")),),
)


# ------------------------------------------------------------------------------------ conversions (no server)
def test_rbac_meta_leaves_out_the_built_ins_as_milvus_backup_rbac_does() -> None:
    meta = rbac_meta_from_snapshot(SNAP)
    assert [u.user for u in meta.users] == ["user_1", "user_2"]
    assert [r.name for r in meta.roles] == ["roleA", "roleB"]
    assert [(g.role.name if g.role else "", g.object_name) for g in meta.grants] == [
        ("roleA", "c1"),
        ("roleA", "user_1"),
        ("roleB", "*"),
    ]
    assert rbac_counts_of(meta) == {"users": 2, "roles": 2, "grants": 3, "privilege_groups": 1}
    # the exact JSON Go's encoding/json writes for backuppb.RBACMeta
    assert json.loads(m.BackupInfo(rbac_meta=meta).to_go_json())["rbac_meta"] == {
        "users": [
            {"user": "user_1", "roles": [{"name": "roleA"}, {"name": "roleB"}]},
            {"user": "user_2", "roles": [{"name": "roleB"}]},
        ],
        "roles": [{"name": "roleA"}, {"name": "roleB"}],
        "grants": [
            {
                "role": {"name": "roleA"},
                "object": {"name": "Collection"},
                "object_name": "c1",
                "grantor": {"user": {"name": "root"}, "privilege": {"name": "Search"}},
                "db_name": "default",
            },
            {
                "role": {"name": "roleA"},
                "object": {"name": "User"},
                "object_name": "user_1",
                "grantor": {"user": {"name": "root"}, "privilege": {"name": "SelectUser"}},
                "db_name": "default",
            },
            {
                "role": {"name": "roleB"},
                "object": {"name": "Collection"},
                "object_name": "*",
                "grantor": {"user": {}, "privilege": {"name": "Query"}},
                "db_name": "db2",
            },
        ],
        "privilege_groups": [
            {"group_name": "readers", "privileges": [{"name": "Query"}, {"name": "Search"}]}
        ],
    }


def test_conversions_round_trip_and_agree_with_the_snapshots_own_go_json() -> None:
    whole = rbac_meta_from_snapshot(SNAP, builtins=True)
    assert snapshot_from_rbac_meta(whole) == SNAP
    # the struct's Go JSON is the dict RbacSnapshot.to_go_json() gives (one shape, two writers)
    assert json.loads(whole.to_go_json()) == SNAP.to_go_json()
    back = snapshot_from_rbac_meta(m.RBACMeta.from_go_json(whole.to_go_bytes()))
    assert back == SNAP
    assert [g.grantor for g in back.grants] == [g.grantor for g in SNAP.grants]
    assert snapshot_from_rbac_meta(None) == RbacSnapshot()
    assert snapshot_from_rbac_meta(m.RBACMeta()) == RbacSnapshot()


def test_a_password_hash_milvus_backup_stored_is_kept_and_nil_pointers_read_as_empty() -> None:
    raw = (
        '{"users":[{"user":"u","password":"HASH","roles":[{"name":"r"}]}],"roles":[{"name":"r"}],'
        '"grants":[{"role":{"name":"r"},"object":{"name":"Global"},"object_name":"*"},{"role":{}}]}'
    )
    snap = snapshot_from_rbac_meta(m.RBACMeta.from_go_json(raw))
    assert snap.users == (RbacUser("u", ("r",)),)
    assert snap.users[0].password_hash == "HASH"
    assert snap.grants == (Grant("r", "Global", "*", "", ""), Grant("", "", "", "", ""))
    # written back as it was read (a Milvus Backup restore sets the hash itself)
    assert rbac_meta_from_snapshot(snap).users[0].password == "HASH"
    assert "HASH" not in json.dumps(snap.to_manifest())


# ------------------------------------------------------------------------------------ Milvus 2.3.5, auth on
def _prepare(c: Any, tag: str) -> dict[str, str]:
    n = {k: f"pr_{k}_{tag}" for k in ("user", "user2", "coll")}
    n.update(role=f"pr_ra_{tag}", role2=f"pr_rb_{tag}")  # sorted as Milvus lists them
    c.create_user(user_name=n["user"], password="P@ssw0rd1")
    c.create_user(user_name=n["user2"], password="P@ssw0rd2")
    c.create_role(role_name=n["role"])
    c.create_role(role_name=n["role2"])
    c.grant_privilege(n["role"], "Collection", "Search", n["coll"])
    c.grant_privilege(n["role"], "Global", "CreateCollection", "*")
    c.grant_privilege(n["role2"], "User", "SelectUser", n["user"])
    c.grant_role(n["user"], n["role"])
    c.grant_role(n["user"], n["role2"])
    c.grant_role(n["user2"], n["role2"])
    c.create_collection(n["coll"], dimension=4)
    c.insert(n["coll"], [{"id": i, "vector": [0.1 * i, 0.2, 0.3, 0.4]} for i in range(20)])
    return n


def _cleanup(c: Any, n: dict[str, str]) -> None:
    for user in (n["user"], n["user2"]):
        if user in c.list_users():
            c.drop_user(user)
    for role in (n["role"], n["role2"]):
        if role in c.list_roles():
            for p in c.describe_role(role)["privileges"]:
                c.revoke_privilege(role, p["object_type"], p["privilege"], p["object_name"])
            c.drop_role(role)
    if c.has_collection(n["coll"]):
        c.drop_collection(n["coll"])


@pytest.mark.milvus235
def test_physical_backup_with_rbac_holds_them_as_milvus_backup_would(milvus235_auth: Any) -> None:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine import BackupEngine, MilvusParams, S3Storage
    from airflow_milvus_backup.engine.physical.milvus_storage import open_milvus_bucket
    from airflow_milvus_backup.engine.rbac_server import capture_rbac
    from airflow_milvus_backup.engine.verify import verify_backup

    srv = milvus235_auth
    c = MilvusClient(uri=srv.uri, token=ROOT)
    n = _prepare(c, uuid.uuid4().hex[:6])
    try:
        storage = S3Storage(srv.s3.client(), srv.s3.create_bucket(f"prbac-{uuid.uuid4().hex[:8]}"), "backup")
        summary = BackupEngine(storage).create(
            MilvusParams(uri=srv.uri, token=ROOT),
            "phys_rbac",
            [n["coll"]],
            mode="physical",
            milvus_storage=open_milvus_bucket(srv.s3.client(), srv.bucket, srv.root_path),
            rbac=True,
        )
        live = capture_rbac(c)
    finally:
        _cleanup(c, n)
        c.close()
    assert summary["mode"] == "physical"
    top = json.loads(storage.get_bytes(layout.meta_key("phys_rbac", layout.BACKUP_META)))
    full = json.loads(storage.get_bytes(layout.meta_key("phys_rbac", layout.FULL_META)))
    rbac = top["rbac_meta"]
    assert full["rbac_meta"] == rbac  # both files hold it, as Milvus Backup's meta.Write does
    assert rbac == json.loads(rbac_meta_from_snapshot(live).to_go_json())
    assert summary["rbac"] == {
        k: len(rbac.get(k, [])) for k in ("users", "roles", "grants", "privilege_groups")
    }
    # as Milvus' BackupRBAC: no root, no admin/public, no grant of a built-in role, no password read back
    assert "root" not in [u["user"] for u in rbac["users"]]
    assert not {"admin", "public"} & {r["name"] for r in rbac["roles"]}
    assert all(g["role"]["name"] not in ("admin", "public") for g in rbac["grants"])
    assert all("password" not in u for u in rbac["users"])
    assert "P@ssw0rd" not in json.dumps(top)
    users = {u["user"]: u for u in rbac["users"]}
    assert users[n["user"]] == {"user": n["user"], "roles": [{"name": n["role"]}, {"name": n["role2"]}]}
    assert users[n["user2"]] == {"user": n["user2"], "roles": [{"name": n["role2"]}]}
    mine = [g for g in rbac["grants"] if g["role"]["name"] in (n["role"], n["role2"])]
    assert sorted(mine, key=json.dumps) == sorted(
        [
            {
                "role": {"name": n["role"]},
                "object": {"name": "Collection"},
                "object_name": n["coll"],
                "grantor": {"user": {"name": "root"}, "privilege": {"name": "Search"}},
                "db_name": "default",
            },
            {
                "role": {"name": n["role"]},
                "object": {"name": "Global"},
                "object_name": "*",
                "grantor": {"user": {"name": "root"}, "privilege": {"name": "CreateCollection"}},
                "db_name": "default",
            },
            {
                "role": {"name": n["role2"]},
                "object": {"name": "User"},
                "object_name": n["user"],
                "grantor": {"user": {"name": "root"}, "privilege": {"name": "SelectUser"}},
                "db_name": "default",
            },
        ],
        key=json.dumps,
    )
    # what a restore reads back (snapshot_from_rbac_meta), and the backup is still a good physical backup
    snap = snapshot_from_rbac_meta(mbread.read_meta(storage, "phys_rbac").rbac_meta)
    assert {g.key for g in snap.grants if g.role in (n["role"], n["role2"])} == {
        g.key for g in live.grants if g.role in (n["role"], n["role2"])
    }
    assert dict((u.name, u.roles) for u in snap.users)[n["user"]] == (n["role"], n["role2"])
    assert verify_backup(storage, "phys_rbac")["ok"]

    # and restored from it with rbac=True (the users, roles and grants dropped above come back)
    from airflow_milvus_backup.engine.restore import RestoreEngine

    report = RestoreEngine(storage).restore(
        MilvusParams(uri=srv.uri, token=ROOT),
        "phys_rbac",
        rbac=True,
        rbac_passwords={n["user"]: "Restored1!"},
        meta_only=True,
        collection_suffix="_r",
    )
    c = MilvusClient(uri=srv.uri, token=ROOT)
    try:
        assert report["state"] == "success"
        assert {n["role"], n["role2"]} <= set(c.list_roles())
        assert n["user"] in c.list_users()
        assert n["user2"] not in c.list_users()  # no password given: skipped, and said so
        back = capture_rbac(c)
        assert {g.key for g in back.grants if g.role in (n["role"], n["role2"])} == {
            g.key for g in live.grants if g.role in (n["role"], n["role2"])
        }
    finally:
        if c.has_collection(n["coll"] + "_r"):
            c.drop_collection(n["coll"] + "_r")
        _cleanup(c, n)
        c.close()


def test_get_masks_the_password_hashes_milvus_backup_stored(tmp_path: Any) -> None:
    from dataclasses import replace

    from airflow_milvus_backup.engine import BackupEngine, LocalStorage
    from tests.support.mbfixtures import sample_info, write_mb_backup

    storage = LocalStorage(tmp_path / "b", "backup")
    meta = rbac_meta_from_snapshot(
        RbacSnapshot(users=(RbacUser("user_1", ("roleA",), "$2a$10$hash"),), roles=("roleA",))
    )
    write_mb_backup(storage, "mb_rbac", info=replace(sample_info("mb_rbac"), rbac_meta=meta))
    got = BackupEngine(storage).get("mb_rbac")
    assert got["backup_info"]["rbac_meta"]["users"] == [
        {"user": "user_1", "password": "***", "roles": [{"name": "roleA"}]}
    ]
    assert "$2a$10$hash" not in json.dumps(got)
    with storage.open_read(layout.meta_key("mb_rbac", layout.BACKUP_META)) as f:
        assert b"$2a$10$hash" in f.read()  # kept in the bucket, as Milvus Backup wrote it
