"""RBAC (``rbac=True``): users, roles and grants backed up and restored, as Milvus Backup's --rbac does.

The decisions and JSON shapes are tested without a server; the round trip runs on a real Milvus 2.3.5 with
authorization on (``milvus235_auth``), as Milvus Backup's example/prepare_rbac.py and verify_rbac.py do it:
prepare, back up to S3, drop, restore, verify; then restore again (idempotent) and check Milvus Lite refuses.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from pymilvus import MilvusClient

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusParams, S3Storage
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import (
    InvalidArgumentError,
    ManifestError,
    MilvusAuthenticationError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.rbac import (
    NO_PASSWORD,
    Grant,
    PrivilegeGroup,
    RbacSnapshot,
    RbacUser,
    plan_restore,
)
from airflow_milvus_backup.engine.rbac_server import capture_rbac, restore_rbac
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.restore.options import RestoreOptions

ROOT = "root:Milvus"

SNAP = RbacSnapshot(
    users=(RbacUser("root"), RbacUser("user_1", ("roleA", "roleB")), RbacUser("user_2", ("roleB",))),
    roles=("admin", "public", "roleA", "roleB"),
    grants=(
        Grant("roleA", "User", "user_1", "SelectUser", "default", "root"),
        Grant("roleA", "Collection", "c1", "Search", "default", "root"),
        Grant("roleB", "Collection", "*", "Query", "db2", "root"),
        Grant("public", "Global", "*", "DescribeCollection", "*", "root"),
    ),
)


# ------------------------------------------------------------------------------------ decisions (no server)
def test_plan_on_a_fresh_target_creates_what_is_missing_and_skips_users_without_a_password():
    fresh = RbacSnapshot(
        users=(RbacUser("root"),),
        roles=("admin", "public"),
        grants=(Grant("public", "Global", "*", "DescribeCollection", "*", "root"),),
    )
    plan = plan_restore(SNAP, fresh, {"user_1": "pw"})
    assert plan.create_roles == ["roleA", "roleB"]  # admin/public are built in
    assert plan.create_users == ["user_1"]
    assert plan.bind == [("user_1", "roleA"), ("user_1", "roleB")]
    assert [g.describe() for g in plan.grant] == [
        "roleA: SelectUser on User user_1 in default",
        "roleA: Search on Collection c1 in default",
        "roleB: Query on Collection * in db2",
    ]
    assert plan.skipped_users == {"root": "built-in user: never created or changed", "user_2": NO_PASSWORD}
    assert plan.existing == {"roles": 2, "users": 0, "bindings": 0, "privilege_groups": 0, "grants": 1}
    assert "rbac_passwords" in NO_PASSWORD


def test_plan_never_changes_what_exists_and_a_rerun_plans_nothing():
    # user_1 exists with roleA only: it keeps its password (is not created) and gains roleB only
    current = RbacSnapshot(
        users=(RbacUser("root"), RbacUser("user_1", ("roleA", "other"))),
        roles=("admin", "public", "roleA", "other"),
        grants=(Grant("roleA", "User", "user_1", "SelectUser", "", "someone_else"),),  # "" is default
    )
    plan = plan_restore(SNAP, current, {"user_1": "ignored", "user_2": "pw2"})
    assert plan.create_users == ["user_2"]
    assert plan.create_roles == ["roleB"]
    assert plan.bind == [("user_1", "roleB"), ("user_2", "roleB")]
    assert Grant("roleA", "User", "user_1", "SelectUser") not in plan.grant  # another grantor: same grant
    assert len(plan.grant) == 3
    # everything restored: nothing left to do
    done = RbacSnapshot(
        users=(RbacUser("root"), RbacUser("user_1", ("roleA", "roleB")), RbacUser("user_2", ("roleB",))),
        roles=SNAP.roles,
        grants=SNAP.grants,
    )
    again = plan_restore(SNAP, done, {"user_1": "x", "user_2": "y"})
    assert again.changes == 0
    assert again.existing["grants"] == 4
    assert again.existing["bindings"] == 3


def test_manifest_shape_round_trips_and_never_holds_a_password():
    snap = RbacSnapshot(
        users=(RbacUser("u", ("r",), password_hash="secret-hash"),),
        roles=("r",),
        grants=(Grant("r", "Global", "*", "CreateCollection", "default", "root"),),
        privilege_groups=(PrivilegeGroup("g", ("Query", "Search")),),
    )
    doc = snap.to_manifest()
    assert "secret-hash" not in json.dumps(doc)
    assert "secret-hash" not in repr(snap)
    assert doc["users"] == [{"name": "u", "roles": ["r"]}]
    assert doc["privilege_groups"] == [{"name": "g", "privileges": ["Query", "Search"]}]
    assert RbacSnapshot.from_manifest(doc) == snap
    assert "privilege_groups" not in SNAP.to_manifest()  # only when there are some
    bad = SNAP.to_manifest()
    bad["grants"][1]["privilege"] = 7
    with pytest.raises(ManifestError, match=r"grants\[1\]\.privilege must be a string"):
        RbacSnapshot.from_manifest(bad)


def test_milvus_backup_rbac_meta_json_is_goes_encoding_json_of_rbacmeta():
    snap = RbacSnapshot(
        users=(RbacUser("user_1", ("roleA",), password_hash="HASH"), RbacUser("user_2")),
        roles=("roleA",),
        grants=(Grant("roleA", "User", "user_1", "SelectUser", "", "root"),),
        privilege_groups=(PrivilegeGroup("g", ("Query",)),),
    )
    doc = snap.to_go_json()
    # field names from backup.proto (json tags of backup.pb.go), omitempty, struct field order
    assert json.dumps(doc) == json.dumps(
        {
            "users": [
                {"user": "user_1", "password": "HASH", "roles": [{"name": "roleA"}]},
                {"user": "user_2"},
            ],
            "roles": [{"name": "roleA"}],
            "grants": [
                {
                    "role": {"name": "roleA"},
                    "object": {"name": "User"},
                    "object_name": "user_1",
                    "grantor": {"user": {"name": "root"}, "privilege": {"name": "SelectUser"}},
                }
            ],
            "privilege_groups": [{"group_name": "g", "privileges": [{"name": "Query"}]}],
        }
    )
    back = RbacSnapshot.from_go_json(doc)
    assert back == snap
    assert back.users[0].password_hash == "HASH"
    assert RbacSnapshot().to_go_json() == {}
    assert RbacSnapshot.from_go_json({}) == RbacSnapshot()
    # a grant whose pointers are empty still reads (Go's zero values)
    odd = RbacSnapshot.from_go_json({"grants": [{"role": {}, "grantor": {}}]})
    assert odd.grants == (Grant("", "", "", "", "", ""),)
    with pytest.raises(ManifestError, match=r"rbac_meta\.users\[0\]\.user must be a string"):
        RbacSnapshot.from_go_json({"users": [{"user": 3}]})


def test_manifest_rbac_key_is_optional_and_older_manifests_are_unchanged():
    base = {
        "format": mf.FORMAT_NAME,
        "format_version": mf.FORMAT_VERSION,
        "name": "b",
        "id": "i",
        "state": "complete",
        "collections": [],
    }
    old = mf.Manifest.from_json(json.loads(json.dumps(base)), "b")
    assert old.rbac is None
    assert "rbac" not in old.to_json()
    assert old.dumps() == mf.dumps(base)
    built = mf.Manifest(name="b", id="i", collections=())
    assert "rbac" not in built.to_json()
    with_rbac = mf.Manifest.from_json({**base, "rbac": SNAP.to_manifest()}, "b")
    assert RbacSnapshot.from_manifest(with_rbac.rbac) == SNAP
    assert with_rbac.to_json()["rbac"] == SNAP.to_manifest()
    with pytest.raises(ManifestError, match="rbac must be an object"):
        mf.Manifest.from_json({**base, "rbac": []}, "b")


def test_restore_options_keep_passwords_out_of_repr_and_fingerprint():
    opts = RestoreOptions.build({"rbac": True, "rbac_passwords": {"user_1": "s3cr3t!"}})
    assert "s3cr3t!" not in repr(opts)
    fp = opts.fingerprint_fields()
    assert fp["rbac"] is True
    assert fp["rbac_passwords"] == ["user_1"]
    assert "s3cr3t!" not in json.dumps(fp)
    with pytest.raises(InvalidArgumentError, match="pass rbac=True"):
        RestoreOptions.build({"rbac_passwords": {"u": "p"}})
    with pytest.raises(InvalidArgumentError, match="password of user 'u' must be a non-empty string"):
        RestoreOptions.build({"rbac": True, "rbac_passwords": {"u": ""}})
    with pytest.raises(InvalidArgumentError, match="mapping of user name to password"):
        RestoreOptions.build({"rbac": True, "rbac_passwords": ["u"]})
    assert "rbac" not in RestoreOptions().fingerprint_fields()  # unchanged fingerprints without it


# ------------------------------------------------------------------------------------ Milvus Lite refuses
def test_rbac_on_milvus_lite_is_refused_before_anything_is_written(lite_uri, tmp_path):
    client = MilvusClient(lite_uri)
    client.create_collection("c1", dimension=4)
    client.insert("c1", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4]}])
    client.close()
    storage = LocalStorage(tmp_path / "backups", "backup")
    params = MilvusParams(uri=lite_uri)
    with pytest.raises(UnsupportedError, match=r"Milvus Lite\. .*authorizationEnabled.*rbac=False"):
        BackupEngine(storage).create(params, "with_rbac", rbac=True)
    assert list(storage.list("")) == []
    BackupEngine(storage).create(params, "plain")
    before = sorted(o.key for o in storage.list(""))
    with pytest.raises(UnsupportedError, match="Milvus Lite"):
        RestoreEngine(storage).restore(params, "plain", rbac=True, collection_suffix="_r")
    assert sorted(o.key for o in storage.list("")) == before  # no restore status written


# ------------------------------------------------------------------------------------ Milvus 2.3.5, auth on
def _prepare(c: MilvusClient) -> None:
    """As Milvus Backup's example/prepare_rbac.py, plus a second user, role and database."""
    c.create_user(user_name="user_1", password="P@ssw0rd")
    c.update_password(user_name="user_1", old_password="P@ssw0rd", new_password="P@ssw0rd123")
    c.create_user(user_name="user_2", password="Another1!")
    c.create_role(role_name="roleA")
    c.create_role(role_name="roleB")
    c.grant_privilege(role_name="roleA", object_type="User", object_name="user_1", privilege="SelectUser")
    c.grant_privilege(role_name="roleA", object_type="Collection", object_name="c1", privilege="Search")
    c.grant_privilege(role_name="roleA", object_type="Global", object_name="*", privilege="CreateCollection")
    if "db2" not in c.list_databases():
        c.create_database("db2")
    c.grant_privilege("roleB", "Collection", "Query", "*", db_name="db2")
    c.grant_role("user_1", "roleA")
    c.grant_role("user_1", "roleB")
    c.grant_role("user_2", "roleB")
    c.create_collection("c1", dimension=4)
    c.insert("c1", [{"id": i, "vector": [0.1 * i, 0.2, 0.3, 0.4]} for i in range(10)])


def _drop_all(c: MilvusClient) -> None:
    for user in ("user_1", "user_2"):
        if user in c.list_users():
            c.drop_user(user)
    for role in ("roleA", "roleB"):
        if role not in c.list_roles():
            continue
        for db in ("default", "db2"):
            for p in c.describe_role(role, db_name=db)["privileges"]:
                c.revoke_privilege(role, p["object_type"], p["privilege"], p["object_name"], db_name=db)
        c.drop_role(role)
    if c.has_collection("c1"):
        c.drop_collection("c1")


def _logs_in(uri: str, token: str) -> bool:
    try:
        MilvusClient(uri=uri, token=token).list_collections()
    except Exception:  # noqa: BLE001 - a refused login
        return False
    return True


def _verify(c: MilvusClient, expected: RbacSnapshot) -> None:
    """As Milvus Backup's example/verify_rbac.py, and the grants equal."""
    assert {"roleA", "roleB"} <= set(c.list_roles())
    assert "user_1" in c.list_users()
    assert set(c.describe_user("user_1")["roles"]) == {"roleA", "roleB"}
    got = capture_rbac(c)
    assert {g.key for g in got.grants} == {g.key for g in expected.grants}


@pytest.mark.milvus235
def test_rbac_round_trip_on_milvus_235_with_authorization(milvus235_auth, caplog):
    srv = milvus235_auth
    c = MilvusClient(uri=srv.uri, token=ROOT)
    _drop_all(c)
    _prepare(c)
    before = capture_rbac(c)
    assert {u.name for u in before.users} == {"root", "user_1", "user_2"}
    bucket = srv.s3.create_bucket(f"rbac-{uuid.uuid4().hex[:8]}")
    storage = S3Storage(srv.s3.client(), bucket, "backups")
    params = MilvusParams(uri=srv.uri, token=ROOT)

    summary = BackupEngine(storage).create(params, "with_rbac", ["c1"], rbac=True)
    assert summary["rbac"] == {"users": 3, "roles": 4, "grants": len(before.grants), "privilege_groups": 0}
    manifest = BackupEngine(storage).get("with_rbac")
    assert RbacSnapshot.from_manifest(manifest["rbac"]) == before
    assert "P@ssw0rd" not in json.dumps(manifest)

    _drop_all(c)
    assert "roleA" not in c.list_roles()
    caplog.set_level(logging.INFO)
    restores = RestoreEngine(storage)
    report = restores.restore(params, "with_rbac", rbac=True, rbac_passwords={"user_1": "Restored1!"})
    assert report["state"] == "success"
    rb = report["rbac"]
    assert rb["created"]["roles"] == ["roleA", "roleB"]
    assert rb["created"]["users"] == ["user_1"]
    assert rb["skipped_users"]["user_2"] == NO_PASSWORD
    assert "Restored1!" not in json.dumps(report)
    assert "Restored1!" not in caplog.text
    assert "user user_2 not created" in caplog.text
    _verify(c, before)
    assert "user_2" not in c.list_users()
    assert _logs_in(srv.uri, "user_1:Restored1!")  # the password given at restore
    assert not _logs_in(srv.uri, "user_1:P@ssw0rd123")  # Milvus never gave the old one back
    assert c.query("c1", filter="", output_fields=["count(*)"])[0]["count(*)"] == 10

    # again, straight: nothing changes
    again = restore_rbac(c, RbacSnapshot.from_manifest(manifest["rbac"]), {"user_1": "Other1!"})
    assert not any(again["created"].values())
    assert _logs_in(srv.uri, "user_1:Restored1!")  # an existing user keeps its password

    # again through the engine, now with user_2's password: only user_2 (and its role) is added
    report2 = restores.restore(
        params,
        "with_rbac",
        rbac=True,
        drop_existing=True,
        rbac_passwords={"user_1": "Other1!", "user_2": "Second2!"},
    )
    assert report2["rbac"]["created"]["users"] == ["user_2"]
    assert report2["rbac"]["created"]["bindings"] == [["user_2", "roleB"]]
    assert report2["rbac"]["created"]["grants"] == []
    assert report2["rbac"]["created"]["roles"] == []
    assert _logs_in(srv.uri, "user_2:Second2!")
    _verify(c, before)

    # a backup made without rbac=True cannot be restored with it (before anything is written)
    BackupEngine(storage).create(params, "no_rbac", ["c1"])
    with pytest.raises(InvalidArgumentError, match="made without rbac=True"):
        restores.restore(params, "no_rbac", rbac=True, collection_suffix="_x")
    assert not c.has_collection("c1_x")
    _drop_all(c)
    c.close()


@pytest.mark.milvus235
def test_rbac_backup_by_a_user_without_admin_is_refused_clearly(milvus235_auth, tmp_path):
    srv = milvus235_auth
    c = MilvusClient(uri=srv.uri, token=ROOT)
    if "plain_user" not in c.list_users():
        c.create_user("plain_user", "Plain123!")
    if not c.has_collection("c2"):
        c.create_collection("c2", dimension=4)
    c.close()
    storage = LocalStorage(tmp_path / "b", "backup")
    params = MilvusParams(uri=srv.uri, token="plain_user:Plain123!")
    with pytest.raises(
        MilvusAuthenticationError, match=r"refused .* users, roles and grants .* admin role"
    ) as e:
        BackupEngine(storage).create(params, "x", ["c2"], rbac=True)
    assert "Plain123!" not in str(e.value)
    assert list(storage.list("")) == []


def test_restore_operator_reads_passwords_from_a_connection_never_a_templated_field():
    from airflow.sdk import Connection

    from airflow_milvus_backup.exceptions import MilvusBackupInvalidArgument
    from airflow_milvus_backup.hooks.connection import rbac_passwords_from_connection
    from airflow_milvus_backup.operators.restore import MilvusRestoreOperator

    assert "rbac" in MilvusRestoreOperator.template_fields
    assert "rbac_passwords" not in MilvusRestoreOperator.template_fields
    conn = Connection(conn_id="pw", conn_type="generic", extra=json.dumps({"passwords": {"user_1": "pw1"}}))
    assert rbac_passwords_from_connection(conn) == {"user_1": "pw1"}
    bad = Connection(conn_id="pw", conn_type="generic", extra=json.dumps({"passwords": {"user_1": ""}}))
    with pytest.raises(MilvusBackupInvalidArgument, match=r"Connection 'pw' \(rbac_passwords_conn_id\)"):
        rbac_passwords_from_connection(bad)
