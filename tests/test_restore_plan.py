"""The restore planner, decision by decision, from plain data: no server, no storage."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import (
    CollectionNotFoundError,
    DatabaseNotFoundError,
    InvalidArgumentError,
    SchemaMismatchError,
    TargetExistsError,
    UnsupportedError,
)
from airflow_milvus_backup.engine.restore.capabilities import ServerInfo, bulk_blockers
from airflow_milvus_backup.engine.restore.options import Method, RestoreOptions
from airflow_milvus_backup.engine.restore.plan import (
    Action,
    Plan,
    Target,
    arguments_of,
    fingerprint_of,
    make_plan,
    plan_from_status,
)
from airflow_milvus_backup.engine.restore.selection import select_targets
from airflow_milvus_backup.engine.restore.snapshot import TargetSnapshot
from airflow_milvus_backup.engine.storage import ImportLocation

LITE = ServerInfo.detect("milvus_lite-3.2.2", True)
OLD = ServerInfo.detect("v2.3.5")
NEW = ServerInfo.detect("2.6.0")
ADDR = "http://milvus:19530"
S3 = "s3://backups/root"
HERE = ImportLocation("backups", "root")


# ----------------------------------------------------------------------------------------- builders
def fld(name: str, type_: str, **flags: Any) -> dict[str, Any]:
    """Return a captured field (``params`` from the keyword arguments that are not flags)."""
    params = {k: flags.pop(k) for k in ("dim", "max_length", "max_capacity") if k in flags}
    return {"name": name, "type": type_, "description": "", "params": params, **flags}


PK = fld("id", "INT64", is_primary=True)
VEC = fld("vec", "FLOAT_VECTOR", dim=4)


def coll(
    name: str,
    db: str = "default",
    *,
    fields: list[dict[str, Any]] | None = None,
    auto_id: bool = False,
    partitions: tuple[str, ...] = ("_default",),
    files: int = 1,
    dynamic: bool = False,
) -> dict[str, Any]:
    """Return a manifest entry of a collection with ``files`` data files per partition."""
    fields = copy.deepcopy(fields if fields is not None else [PK, VEC])
    if auto_id:
        for f in fields:
            if f.get("is_primary"):
                f["auto_id"] = True
    data = [
        {
            "partition": p,
            "rows": 10 * files,
            "files": [
                {"key": mf.data_file_key(db, name, p, i), "rows": 10, "size": 1000, "sha256": "0" * 64}
                for i in range(files)
            ],
        }
        for p in partitions
    ]
    return {
        "name": name,
        "db_name": db,
        "auto_id": auto_id,
        "enable_dynamic_field": dynamic,
        "fields": fields,
        "partitions": list(partitions),
        "row_count": 10 * files * len(partitions),
        "data": data,
    }


def manifest(*collections: dict[str, Any], databases: dict[str, Any] | None = None) -> mf.Manifest:
    """Return a manifest of backup ``b1`` holding ``collections`` (read as a restore reads it)."""
    doc = {
        "format": "airflow-milvus-backup",
        "format_version": 1,
        "name": "b1",
        "id": "id-1",
        "state": "complete",
        "databases": databases or {},
        "collections": list(collections),
    }
    return mf.Manifest.from_json(doc, "b1")


def described(meta: mf.CollectionEntry, **changes: Any) -> dict[str, Any]:
    """Return what ``describe_collection`` says of a collection made from ``meta`` (with ``changes``)."""
    return {
        "collection_name": meta.name,
        "auto_id": meta.auto_id,
        "enable_dynamic_field": meta.enable_dynamic_field,
        "fields": copy.deepcopy(list(meta.fields)),
        **changes,
    }


def plan_of(
    m: mf.Manifest,
    *,
    server: ServerInfo = NEW,
    existing: dict[str, list[str]] | None = None,
    dbs: tuple[str, ...] = ("default",),
    desc: dict[tuple[str, str], dict[str, Any]] | None = None,
    prior: dict[str, Any] | None = None,
    requested: list[str] | None = None,
    location: ImportLocation | None = HERE,
    connection_db: str = "default",
    restore_id: str | None = "r1",
    **options: Any,
) -> Plan:
    """Plan a restore of ``m`` onto a target whose state is given as plain data."""
    opts = RestoreOptions.build(options)
    pairs = select_targets(m, opts, requested, connection_db)
    snapshot = TargetSnapshot(
        databases=frozenset(dbs),
        collections={db: frozenset(names) for db, names in (existing or {}).items()},
        described=desc or {},
        import_location=location,
        storage=S3,
    )
    return make_plan(
        m, opts, server, snapshot, pairs, prior, restore_id, address=ADDR, connection_db=connection_db
    )


def targets(p: Plan) -> dict[str, tuple[str, Action]]:
    """Return source -> (target, action)."""
    return {t.source: (t.target, t.action) for t in p.targets}


def pairs_of(m: mf.Manifest, requested: list[str] | None = None, conn: str = "default", **options: Any):
    opts = RestoreOptions.build(options)
    return [(p.meta.qualified_name, f"{p.db}.{p.name}") for p in select_targets(m, opts, requested, conn)]


def prior_status(*entries: dict[str, Any], state: str = "failed", method: str = "insert") -> dict[str, Any]:
    return {"restore_id": "r0", "state": state, "method": method, "collections": list(entries)}


# ----------------------------------------------------------------------------------------- selection
def test_selection_bare_names_db_star_and_wildcards():
    m = manifest(coll("c1"), coll("c2"), coll("d1"), coll("x", "db1"), coll("y", "db1"))
    assert pairs_of(m) == [
        ("default.c1", "default.c1"),
        ("default.c2", "default.c2"),
        ("default.d1", "default.d1"),
        ("db1.x", "default.x"),
        ("db1.y", "default.y"),
    ]
    assert pairs_of(m, ["c2"]) == [("default.c2", "default.c2")]
    assert pairs_of(m, ["c*"]) == [("default.c1", "default.c1"), ("default.c2", "default.c2")]
    assert pairs_of(m, ["db1.*", "c1"]) == [
        ("db1.x", "default.x"),
        ("db1.y", "default.y"),
        ("default.c1", "default.c1"),
    ]
    # bare names are in the backup's only database when it has no 'default'
    assert pairs_of(manifest(coll("x", "db1")), ["x"]) == [("db1.x", "default.x")]


def test_selection_of_what_is_not_in_the_backup_is_refused():
    m = manifest(coll("c1"), coll("x", "db1"))
    with pytest.raises(
        CollectionNotFoundError,
        match=r"Collection 'nope' does not exist in database 'default' "
        r"of backup 'b1'",
    ):
        pairs_of(m, ["nope"])
    with pytest.raises(
        CollectionNotFoundError, match=r"No collection in database 'db1' of backup 'b1' matches"
    ):
        pairs_of(m, ["db1.z*"])
    with pytest.raises(DatabaseNotFoundError, match=r"Database 'db9' \(from 'db9.c1'\) does not exist"):
        pairs_of(m, ["db9.c1"])


def test_renames_exact_rule_wins_db_rules_and_suffix():
    m = manifest(coll("c1"), coll("c2"), coll("x", "db1"), coll("y", "db1"))
    renames = {"db1.*": "db2.*", "db1.y": "db3.why", "c1": "one"}
    assert pairs_of(m, collection_renames=renames, collection_suffix="_r") == [
        ("default.c1", "default.one"),
        ("default.c2", "default.c2_r"),
        ("db1.x", "db2.x_r"),
        ("db1.y", "db3.why"),
    ]
    # keep each source database with a db rule onto itself
    assert pairs_of(m, ["db1.*"], collection_renames={"db1.*": "db1.*"}) == [
        ("db1.x", "db1.x"),
        ("db1.y", "db1.y"),
    ]


@pytest.mark.parametrize(
    ("renames", "words"),
    [
        ({"nope": "x"}, "collection_renames names 'nope', which is not in backup 'b1'; check the name"),
        (
            {"db9.*": "db2.*"},
            "collection_renames names database 'db9' ('db9.*'), which is not in backup 'b1'",
        ),
        (
            {"db1.zz": "q"},
            "collection_renames names 'db1.zz', which is not in backup 'b1'; its collections in 'db1': ['x']",
        ),
    ],
)
def test_renames_of_unknown_sources_are_refused(renames, words):
    with pytest.raises(CollectionNotFoundError) as e:
        pairs_of(manifest(coll("c1"), coll("x", "db1")), collection_renames=renames)
    assert words in str(e.value)


def test_target_database_is_target_db_name_else_the_connection_never_the_source():
    m = manifest(coll("x", "db1"))
    assert pairs_of(m, conn="staging") == [("db1.x", "staging.x")]
    assert pairs_of(m, conn="staging", target_db_name="other") == [("db1.x", "other.x")]
    assert pairs_of(m, conn="") == [("db1.x", "default.x")]
    # an explicit database in a rule still wins for its collection
    assert pairs_of(m, conn="staging", target_db_name="other", collection_renames={"db1.x": "db5.x"}) == [
        ("db1.x", "db5.x")
    ]


def test_two_sources_onto_one_target_are_refused_with_the_fix():
    m = manifest(coll("c", "db2"), coll("c", "db1"))
    with pytest.raises(InvalidArgumentError) as e:
        pairs_of(m)
    msg = str(e.value)
    assert "Collections db2.c and db1.c of backup 'b1' would both be restored to default.c" in msg
    assert 'collection_renames={"db1.*": "db1.*"}' in msg


def test_a_bad_target_name_is_refused():
    with pytest.raises(InvalidArgumentError, match="collection"):
        pairs_of(manifest(coll("c" * 250)), collection_suffix="_recover")


def _bad_partition(c: dict[str, Any]) -> None:
    c["partitions"] = ["../etc"]


def _bad_key(c: dict[str, Any]) -> None:
    c["data"][0]["files"][0]["key"] = "data/../../etc/passwd"


def _key_outside_data(c: dict[str, Any]) -> None:
    c["data"][0]["files"][0]["key"] = "manifest.json"


def _bad_name(c: dict[str, Any]) -> None:
    c["name"] = "a-b"


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_bad_partition, "partition"),
        (_bad_key, "Invalid storage key 'b1/data/../../etc/passwd'"),
        (_key_outside_data, "Invalid storage key 'manifest.json': data objects are under 'data/'"),
        (_bad_name, "collection"),
    ],
)
def test_damaged_manifest_entries_are_refused(edit, words):
    c = coll("c1")
    edit(c)
    with pytest.raises(InvalidArgumentError) as e:
        pairs_of(manifest(c))
    msg = str(e.value)
    assert words in msg
    assert "It is in the manifest of backup 'b1'" in msg
    assert "damaged or edited by hand; nothing was restored" in msg


# ----------------------------------------------------------------------------------------- actions
def test_a_missing_target_is_created():
    p = plan_of(manifest(coll("c1")))
    assert targets(p) == {"default.c1": ("default.c1", Action.CREATE)}
    assert p.targets[0].action == "create"  # a str Enum: old comparisons keep working
    assert (p.targets[0].keep_keys, p.targets[0].auto_id_property) == (True, False)
    assert p.restore_id == "r1"
    assert p.databases == {}


def test_an_existing_target_is_refused_unless_drop_existing_or_skip_create():
    m = manifest(coll("c1"))
    with pytest.raises(TargetExistsError) as e:
        plan_of(m, existing={"default": ["c1"]})
    assert "Target collection default.c1 already exists in Milvus at http://milvus:19530" in str(e.value)
    assert "drop_existing=True" in str(e.value)
    assert targets(plan_of(m, existing={"default": ["c1"]}, drop_existing=True)) == {
        "default.c1": ("default.c1", Action.REPLACE)
    }
    desc = {("default", "c1"): described(m.collections[0])}
    assert targets(plan_of(m, existing={"default": ["c1"]}, desc=desc, skip_create=True)) == {
        "default.c1": ("default.c1", Action.EXISTING)
    }


def test_skip_create_needs_the_target():
    with pytest.raises(CollectionNotFoundError) as e:
        plan_of(manifest(coll("c1")), skip_create=True)
    assert "skip_create=True needs the target collection default.c1 to exist in Milvus at" in str(e.value)


@pytest.mark.parametrize(
    ("entry", "exists", "action"),
    [
        ({"created": True, "state": "success"}, True, Action.DONE),
        ({"created": True, "state": "pending"}, True, Action.RESUME),
        ({"created": True, "state": "failed"}, True, Action.RESUME),
        ({"created": True, "state": "pending"}, False, Action.CREATE),
        ({"created": True, "state": "success"}, False, Action.CREATE),
    ],
)
def test_a_resumed_restore_goes_on_with_the_targets_it_created(entry, exists, action):
    prior = prior_status({"target": "default.c1", **entry})
    p = plan_of(
        manifest(coll("c1")), existing={"default": ["c1"] if exists else []}, prior=prior, restore_id=None
    )
    assert targets(p) == {"default.c1": ("default.c1", action)}
    assert p.prior is prior
    assert p.finished is None
    assert p.restore_id == "r0"


def test_a_resumed_restore_still_refuses_a_target_it_did_not_create():
    prior = prior_status({"target": "default.c1", "created": False, "state": "pending"})
    with pytest.raises(TargetExistsError):
        plan_of(manifest(coll("c1")), existing={"default": ["c1"]}, prior=prior)


def test_a_prior_success_is_a_finished_plan_without_the_target():
    m = manifest(coll("c1"))
    prior = prior_status({"target": "default.c1", "created": True, "state": "success"}, state="success")
    opts = RestoreOptions.build({})
    pairs = select_targets(m, opts, None, "default")
    p = make_plan(m, opts, LITE, None, pairs, prior, None, address=ADDR, connection_db="default")
    assert p.finished is prior
    assert p.targets == ()
    assert p.method is None
    assert p.restore_id == "r0"
    with pytest.raises(ValueError, match="snapshot"):
        make_plan(m, opts, LITE, None, pairs, None, None, address=ADDR, connection_db="default")


def test_restore_id_given_else_the_prior_else_a_new_one():
    m = manifest(coll("c1"))
    assert plan_of(m, restore_id="mine").restore_id == "mine"
    assert plan_of(m, restore_id="mine", prior=prior_status()).restore_id == "mine"
    new = plan_of(m, restore_id=None).restore_id
    assert new.startswith("r2")
    assert len(new) == len("r20260101T020000_1a2b3c4d")


# ----------------------------------------------------------------------------------------- keys
@pytest.mark.parametrize("server", [LITE, NEW])
def test_auto_id_keys_are_kept_with_the_property_where_the_server_has_it(server):
    t = plan_of(manifest(coll("a", auto_id=True)), server=server).targets[0]
    assert (t.keep_keys, t.auto_id_property) == (True, True)


def test_auto_id_keys_on_235_are_refused_unless_new_keys_are_accepted_or_meta_only():
    m = manifest(coll("a", auto_id=True))
    with pytest.raises(UnsupportedError) as e:
        plan_of(m, server=OLD, method="insert")
    msg = str(e.value)
    assert "default.a has an auto_id primary key 'id'; Milvus v2.3.5 at http://milvus:19530" in msg
    assert "allow_insert_auto_id" in msg
    assert "accept_new_primary_keys=True" in msg
    t = plan_of(m, server=OLD, method="insert", accept_new_primary_keys=True).targets[0]
    assert (t.keep_keys, t.auto_id_property) == (False, False)
    t = plan_of(m, server=OLD, meta_only=True).targets[0]
    assert (t.keep_keys, t.auto_id_property) == (False, False)


def test_skip_create_takes_the_existing_targets_auto_id():
    m = manifest(coll("c1"))
    desc = {("default", "c1"): described(m.collections[0], auto_id=True)}
    t = plan_of(m, server=LITE, existing={"default": ["c1"]}, desc=desc, skip_create=True).targets[0]
    assert (t.action, t.keep_keys, t.auto_id_property) == (Action.EXISTING, True, True)
    with pytest.raises(UnsupportedError, match="auto_id primary key"):
        plan_of(m, server=OLD, existing={"default": ["c1"]}, desc=desc, skip_create=True)


# ----------------------------------------------------------------------------------------- skip_create
def _target_fields(**changes: Any):
    def edit(d: dict[str, Any]) -> None:
        for f in d["fields"]:
            if f["name"] in changes:
                f.update(changes[f["name"]])

    return edit


def _drop_field(name: str):
    def edit(d: dict[str, Any]) -> None:
        d["fields"] = [f for f in d["fields"] if f["name"] != name]

    return edit


def _add_field(f: dict[str, Any]):
    def edit(d: dict[str, Any]) -> None:
        d["fields"].append(f)

    return edit


def _no_dynamic(d: dict[str, Any]) -> None:
    d["enable_dynamic_field"] = False


TEXT = fld("text", "VARCHAR", max_length=64)
TAGS = fld("tags", "ARRAY", element_type="INT64", max_capacity=8)


@pytest.mark.parametrize(
    ("edit", "field", "why"),
    [
        (_drop_field("text"), "text", "the target has no such field"),
        (_target_fields(text={"type": "JSON"}), "text", "type JSON in the target, VARCHAR in the backup"),
        (_target_fields(vec={"params": {"dim": 8}}), "vec", "dim 8 in the target, 4 in the backup"),
        (
            _target_fields(text={"params": {"max_length": 16}}),
            "text",
            "max_length 16 in the target is smaller",
        ),
        (
            _target_fields(tags={"element_type": "VARCHAR"}),
            "tags",
            "array of VARCHAR in the target, of INT64",
        ),
        (
            _target_fields(text={"is_partition_key": True}),
            "text",
            "partition key in one and not in the other",
        ),
        (_add_field(fld("must", "INT32")), "must", "the target requires it and the backup has no values"),
        (_no_dynamic, "$meta", "the backup has a dynamic field and the target does not"),
    ],
)
def test_skip_create_onto_an_incompatible_target_names_the_field(edit, field, why):
    m = manifest(coll("c1", fields=[PK, VEC, TEXT, TAGS], dynamic=True))
    d = described(m.collections[0])
    edit(d)
    with pytest.raises(SchemaMismatchError) as e:
        plan_of(m, existing={"default": ["c1"]}, desc={("default", "c1"): d}, skip_create=True)
    msg = str(e.value)
    assert (
        f"skip_create: field {field!r} of target default.c1 does not match backup collection default.c1"
        in msg
    )
    assert why in msg


def test_skip_create_accepts_an_extra_nullable_field_and_a_larger_max_length():
    m = manifest(coll("c1", fields=[PK, VEC, TEXT]))
    d = described(m.collections[0])
    _add_field(fld("extra", "INT32", nullable=True))(d)
    _target_fields(text={"params": {"max_length": 512}})(d)
    p = plan_of(m, existing={"default": ["c1"]}, desc={("default", "c1"): d}, skip_create=True)
    assert targets(p) == {"default.c1": ("default.c1", Action.EXISTING)}


# ----------------------------------------------------------------------------------------- fields
@pytest.mark.parametrize(
    ("server", "fields", "words"),
    [
        (
            LITE,
            [PK, fld("v16", "FLOAT16_VECTOR", dim=4)],
            "Field 'v16' (FLOAT16_VECTOR) of default.c1 cannot be restored to Milvus Lite milvus_lite-3.2.2 "
            "at http://milvus:19530: Milvus Lite has no FLOAT16_VECTOR",
        ),
        (
            OLD,
            [PK, VEC, fld("n", "INT32", nullable=True)],
            "Field 'n' (INT32) of default.c1 cannot be restored "
            "to Milvus v2.3.5 at http://milvus:19530: nullable fields need Milvus 2.5 or newer",
        ),
        (
            OLD,
            [PK, VEC, fld("v2", "FLOAT_VECTOR", dim=4)],
            "default.c1 has 2 vector fields (vec, v2); Milvus "
            "v2.3.5 at http://milvus:19530 allows one per collection",
        ),
    ],
)
def test_fields_the_server_cannot_hold_are_refused(server, fields, words):
    m = manifest(coll("c1", fields=fields))
    with pytest.raises(UnsupportedError) as e:
        plan_of(m, server=server, method="insert")
    assert words in str(e.value)
    # a recent Milvus holds them all
    assert targets(plan_of(m, server=NEW, method="insert")) == {"default.c1": ("default.c1", Action.CREATE)}


# ----------------------------------------------------------------------------------------- method
def test_method_asked_for_insert():
    p = plan_of(manifest(coll("c1")), method="insert", bulk_import_bucket="backups")
    assert (p.method, p.method_reason) == (Method.INSERT, "asked for")
    assert p.method == "insert"


def test_bulk_import_asked_for_with_blockers_is_refused_listing_them():
    with pytest.raises(UnsupportedError) as e:
        plan_of(manifest(coll("c1")), server=LITE, location=None, method="bulk_import")
    msg = str(e.value)
    assert msg.startswith(
        "method='bulk_import' cannot work here: Milvus Lite has no bulk import; the backup is "
        "not in S3 (s3://backups/root)"
    )
    assert msg.endswith("Use method='insert' or 'auto'.")
    p = plan_of(manifest(coll("c1")), method="bulk_import", bulk_import_bucket="backups")
    assert (p.method, p.method_reason) == (Method.BULK_IMPORT, "asked for")


def test_auto_is_bulk_import_only_when_nothing_blocks_it():
    m = manifest(coll("c1"))
    p = plan_of(m, bulk_import_bucket="backups")
    assert (p.method, p.method_reason) == (Method.BULK_IMPORT, "the target Milvus reads the backup's bucket")
    p = plan_of(m, server=OLD, bulk_import_bucket="other")
    assert p.method == Method.INSERT
    assert p.method_reason == (
        "bulk import cannot work: the backup is in bucket 'backups', the target Milvus reads bucket 'other'"
    )
    p = plan_of(
        manifest(coll("c1", fields=[PK, VEC, fld("n", "INT32", nullable=True)])), bulk_import_bucket="backups"
    )
    assert p.method_reason == "bulk import cannot work: default.c1 field 'n' is nullable"


def test_meta_only_goes_by_insert_and_a_resume_keeps_its_method():
    m = manifest(coll("c1"))
    p = plan_of(m, meta_only=True, bulk_import_bucket="backups")
    assert (p.method, p.method_reason) == (Method.INSERT, "meta_only: no data")
    p = plan_of(m, prior=prior_status(method="bulk_import"), server=LITE)
    assert (p.method, p.method_reason) == (Method.BULK_IMPORT, "resumed with the method it started with")
    p = plan_of(m, prior=prior_status(method="insert"), bulk_import_bucket="backups")
    assert p.method == Method.INSERT


def _blockers(
    targets_: list[Target], location: ImportLocation | None = HERE, server: ServerInfo = NEW, **options: Any
) -> list[str]:
    return bulk_blockers(location, S3, targets_, server, RestoreOptions.build(options))


def _target(meta: dict[str, Any], keep_keys: bool = True, auto_id_property: bool = False) -> Target:
    entry = manifest(meta).collections[0]
    return Target(entry, "default", entry.name, Action.CREATE, keep_keys, auto_id_property)


def test_bulk_blockers_of_the_location_and_the_collections():
    plain = _target(coll("p"))
    assert _blockers([plain], bulk_import_bucket="backups") == []
    assert _blockers([plain], bulk_import_bucket="backups", bulk_import_root="root") == []
    assert _blockers([plain], ImportLocation("backups", ""), bulk_import_bucket="backups") == []
    assert _blockers([plain]) == ["bulk_import_bucket (the bucket of the target Milvus) is not given"]
    assert _blockers([plain], bulk_import_bucket="backups", bulk_import_root="/milvus/") == [
        "the backup's prefix 'root' is outside bulk_import_root 'milvus'"
    ]
    assert _blockers([plain], None, ServerInfo.detect("v2.1.0"), bulk_import_bucket="x") == [
        "Milvus v2.1.0 has no bulk import",
        "the backup is not in S3 (s3://backups/root)",
    ]
    odd = coll(
        "o", fields=[PK, fld("v", "FLOAT16_VECTOR", dim=4), fld("s", "VARCHAR", is_function_output=True)]
    )
    assert _blockers(
        [_target(odd), _target(coll("a", auto_id=True), auto_id_property=True), _target(coll("k"), False)],
        bulk_import_bucket="backups",
    ) == [
        "default.o field 'v' is FLOAT16_VECTOR",
        "default.o has function output field 's'",
        "default.a has an auto_id primary key (bulk import refuses the key column)",
        "default.k gets new primary keys (bulk import cannot leave out the key column)",
    ]


# ----------------------------------------------------------------------------------------- databases
def test_new_target_databases_are_created_with_the_sources_properties():
    m = manifest(
        coll("x", "db1"),
        coll("c1"),
        databases={
            "db1": {"name": "db1", "id": 7, "created_timestamp": 1, "database.replica.number": 1},
            "default": {"name": "default"},
        },
    )
    p = plan_of(m, collection_renames={"db1.*": "db2.*"}, dbs=("default",))
    assert targets(p) == {"db1.x": ("db2.x", Action.CREATE), "default.c1": ("default.c1", Action.CREATE)}
    assert p.databases == {"db2": {"database.replica.number": "1"}}
    assert plan_of(m, collection_renames={"db1.*": "db2.*"}, dbs=("default", "db2")).databases == {}
    # a target database made of a plain source database takes nothing it cannot
    assert plan_of(manifest(coll("c1")), target_db_name="fresh").databases == {"fresh": {}}


# ----------------------------------------------------------------------------------------- arguments
def test_the_fingerprint_covers_the_arguments_and_is_stable():
    m = manifest(coll("c1"))
    opts = RestoreOptions.build({})
    pairs = select_targets(m, opts, None, "default")
    args = arguments_of(m, pairs, opts, ADDR, "default")
    assert args == {
        "backup_name": "b1",
        "backup_id": "id-1",
        "target": {"address": ADDR, "db_name": "default"},
        "collections": [["default.c1", "default.c1"]],
        "options": {
            "collection_suffix": "",
            "collection_renames": None,
            "target_db_name": None,
            "drop_existing": False,
            "skip_create": False,
            "meta_only": False,
            "restore_index": True,
            "use_auto_index": False,
            "auto_index_fallback": False,
            "restore_aliases": True,
            "restore_load_state": True,
            "method": "auto",
            "accept_new_primary_keys": False,
            "bulk_import_bucket": None,
            "bulk_import_root": None,
        },
    }
    assert arguments_of(m, pairs, opts, ADDR, "")["target"]["db_name"] == "default"
    # the value a status written by this release records (a later release must compute the same)
    assert fingerprint_of(args) == "a71ff95ec52601b5ab2c78b27705d70e"
    p = plan_of(m)
    assert (p.fingerprint, p.arguments) == (fingerprint_of(args), args)
    assert plan_of(m, collection_suffix="_r").fingerprint != p.fingerprint


def test_plan_and_targets_are_frozen_and_the_status_json_is_unchanged():
    p = plan_of(manifest(coll("c1")), bulk_import_bucket="backups")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.method = Method.INSERT  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.targets[0].action = Action.DONE  # type: ignore[misc]
    t = p.targets[0]
    assert (
        json.dumps({"action": t.action, "method": p.method})
        == '{"action": "create", "method": "bulk_import"}'
    )
    assert f"{t.action} {p.method}" == "create bulk_import"
    assert f"{t.action}" == "create"


def test_a_submitted_restore_is_planned_again_from_its_status():
    m = manifest(coll("c1"), coll("a", auto_id=True))
    body = {
        "backup_name": "b1",
        "restore_id": "r7",
        "method": "bulk_import",
        "method_reason": "asked for",
        "fingerprint": "f" * 32,
        "arguments": {"options": {"method": "bulk_import", "bulk_import_bucket": "backups"}},
        "collections": [
            {
                "source": "default.c1",
                "target": "default.c1_r",
                "action": "replace",
                "keys": "kept",
                "temp_properties": [],
            },
            {
                "source": "default.a",
                "target": "other.a",
                "action": "resume",
                "keys": "kept",
                "temp_properties": ["allow_insert_auto_id"],
            },
        ],
    }
    p = plan_from_status(body, m, NEW)
    assert (p.restore_id, p.method, p.opts.bulk_import_bucket) == ("r7", Method.BULK_IMPORT, "backups")
    assert [(t.source, t.target, t.action, t.keep_keys, t.auto_id_property) for t in p.targets] == [
        ("default.c1", "default.c1_r", Action.REPLACE, True, False),
        ("default.a", "other.a", Action.RESUME, True, True),
    ]


def test_the_setup_undo_log_owns_what_it_created_or_resumes_and_lists_what_it_cannot_undo():
    from airflow_milvus_backup.engine.restore.setup import UndoLog

    made, other = _target(coll("made")), _target(coll("other"))
    resumed = dataclasses.replace(_target(coll("resumed")), action=Action.RESUME)
    undo = UndoLog()
    undo.created(made)
    undo.created_database("db2")
    undo.cannot_undo("existing collection default.other dropped")
    assert (undo.owns(made), undo.owns(resumed), undo.owns(other)) == (True, True, False)
    assert (undo.collections, undo.databases) == ([made], ["db2"])
    assert undo.irreversible == ["existing collection default.other dropped"]
    assert UndoLog(collections=[other]).collections == [other]
