"""Bad input, table-driven: every case fails with one error that names the thing and the fix, within a bounded
time, and leaves nothing behind (the whole bucket and every Milvus database are compared before and after).

Real servers: a private rclone S3 server, the session Milvus Lite server, and (for wrong credentials) a
private Milvus 2.3.5 with authorization enabled.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    BackupExistsError,
    BackupNameError,
    BackupNotFoundError,
    CollectionNotFoundError,
    DatabaseNotFoundError,
    FormatVersionError,
    InvalidArgumentError,
    LocalStorage,
    MilvusConnectionError,
    MilvusParams,
    S3Storage,
    SchemaMismatchError,
    StorageAccessError,
    StorageConnectionError,
    StorageNotFoundError,
    TargetExistsError,
    UnsupportedError,
)
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import MilvusAuthenticationError
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import verify_backup
from tests.support.lite import MilvusLiteServer, open_client
from tests.support.milvus235 import Milvus235Server
from tests.support.process import free_port, plain_spawn, silent_listener
from tests.support.s3 import FAST_RCLONE, ROOT, S3Server, boto_client

pytestmark = pytest.mark.timeout(240)

P = f"bi{uuid.uuid4().hex[:6]}_"  # prefix of this module's collections on the shared Milvus Lite server


def quick_client(server: Any, **kw: Any) -> Any:
    return server.client(
        connect_timeout=1, read_timeout=3, retries={"max_attempts": 1, "mode": "standard"}, **kw
    )


def s3_client(endpoint: str, key: str = "k", secret: str = "s") -> Any:
    quick = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1, "mode": "standard"}}
    return boto_client(endpoint, key, secret, **quick)


# ---------------------------------------------------------------------------------------------- environment
@dataclass
class Env:
    s3: S3Server
    bucket: str
    storage: S3Storage
    lite: MilvusLiteServer
    params: MilvusParams
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self) -> MilvusClient:
        return open_client(self.lite.uri)

    @property
    def backups(self) -> BackupEngine:
        return BackupEngine(self.storage)

    @property
    def restores(self) -> RestoreEngine:
        return RestoreEngine(self.storage)

    def restore(
        self, names: Any = None, *, backup: str = "good", params: MilvusParams | None = None, **kw: Any
    ) -> Any:
        return self.restores.restore(params or self.params, backup, names, **kw)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a failed call could have left: every object of the bucket, every Milvus collection and
        its row count, every file under the local test directory."""
        objs = sorted(
            (o["Key"], o["Size"])
            for o in self.s3.client().list_objects_v2(Bucket=self.bucket).get("Contents", [])
        )
        c = self.client()
        try:
            milvus = {}
            for db in sorted(c.list_databases()):
                c.use_database(db)
                milvus[db] = {
                    n: c.get_collection_stats(n)["row_count"]
                    for n in sorted(c.list_collections())
                    if db != "default" or n.startswith(P)
                }
        finally:
            c.close()
        if "auth_milvus" in self.extra:
            c = MilvusClient(self.extra["auth_milvus"].uri, token="root:Milvus")
            try:
                milvus["milvus 2.3.5"] = sorted(c.list_collections())
            finally:
                c.close()
        files = sorted(str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*"))
        return objs, milvus, files


def _collection(client: MilvusClient, name: str, rows: int, dim: int = 8, tag_len: int = 32) -> None:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("tag", DataType.VARCHAR, max_length=tag_len)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=s, index_params=ip)
    if rows:
        rng = np.random.default_rng(rows)
        client.insert(
            name,
            [
                {"id": i, "vec": rng.random(dim, dtype=np.float32).tolist(), "tag": f"t{i}"}
                for i in range(rows)
            ],
        )


def _copy_backup(storage: S3Storage, src: str, dst: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Copy backup ``src`` to ``dst`` with an edited manifest (as another writer would have left it)."""
    for o in storage.list(f"{src}/{mf.DATA}"):
        storage.put_bytes(dst + o.key[len(src) :], storage.get_bytes(o.key))
    m = json.loads(storage.get_bytes(mf.manifest_key(src)))
    m["name"] = dst
    edit(m)
    storage.put_bytes(mf.manifest_key(dst), mf.dumps(m))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, milvus_lite_server: MilvusLiteServer):
    s3 = S3Server(tmp_path_factory.mktemp("bad-input-s3"), extra_args=FAST_RCLONE)
    with plain_spawn():
        s3.start()
    try:
        bucket = s3.create_bucket("bad-input")
        storage = S3Storage(quick_client(s3), bucket, ROOT, retry_seconds=2, retry_attempts=2)
        params = MilvusParams(uri=milvus_lite_server.uri, timeout=10)
        c = open_client(milvus_lite_server.uri)
        _collection(c, f"{P}a", 200)
        _collection(c, f"{P}b", 100)
        _collection(c, f"{P}taken", 10)
        _collection(c, f"{P}narrow", 0, dim=4)  # a different schema (dim 4 instead of 8)
        BackupEngine(storage).create(params, "good", [f"{P}a", f"{P}b"])

        def gpu(m: dict[str, Any]) -> None:  # a GPU Milvus' index (Milvus Lite accepts any index type)
            for coll in m["collections"]:
                for idx in coll["indexes"]:
                    idx.update(
                        index_type="GPU_CAGRA", params={"intermediate_graph_degree": 32, "graph_degree": 16}
                    )

        def newer(m: dict[str, Any]) -> None:
            m["format_version"] = mf.FORMAT_VERSION + 1
            m["new_feature"] = {"chunks": "zstd-dict"}

        _copy_backup(storage, "good", "exotic_index", gpu)
        _copy_backup(storage, "good", "from_the_future", newer)
        tmp = tmp_path_factory.mktemp("bad-input-local")
        yield Env(s3, bucket, storage, milvus_lite_server, params, tmp)
        for n in (f"{P}a", f"{P}b", f"{P}taken", f"{P}narrow"):
            c.drop_collection(n)
        c.close()
    finally:
        s3.stop()


@pytest.fixture(scope="module")
def auth_milvus(tmp_path_factory: pytest.TempPathFactory, env: Env):
    """A Milvus 2.3.5 with authorization enabled (root / Milvus), its data on the private S3 server."""

    class AuthMilvus235(Milvus235Server):
        def _is_ready(self) -> bool:
            try:
                return super()._is_ready()
            except Exception:  # the probe has no credentials: ask again as root
                if self._ready_info is None:
                    raise
                client = MilvusClient(self.uri, token="root:Milvus", timeout=5)
                try:
                    client.list_collections()
                finally:
                    client.close()
                return True

    server = AuthMilvus235(
        tmp_path_factory.mktemp("auth-milvus"),
        env.s3,
        bucket="auth-milvus-data",
        extra_config={"authorization_enabled": True},
    )
    with plain_spawn():
        server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class Case:
    id: str
    call: Callable[[Env], Any]
    exc: type[BaseException]
    says: tuple[str, ...]  # fragments the message must contain: the thing, and the fix
    seconds: float = 20.0  # fails within this time
    marks: tuple[Any, ...] = ()


def _hook_yaml(text: str) -> Callable[[Env], Any]:
    def call(env: Env) -> Any:
        from airflow_milvus_backup.hooks.backup_config import load_backup_config
        from tests.support import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported

        path = env.tmp / "yaml" / "backup.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        try:
            return load_backup_config(path)
        finally:
            path.unlink()
            path.parent.rmdir()

    return call


def _unreachable_milvus(env: Env) -> Any:
    return BackupEngine(env.storage).create(
        MilvusParams(uri=f"http://127.0.0.1:{free_port()}", timeout=3), "x"
    )


def _hung_milvus(env: Env) -> Any:
    with silent_listener() as port:
        return BackupEngine(env.storage).create(MilvusParams(uri=f"http://127.0.0.1:{port}", timeout=3), "x")


def _unreachable_s3(env: Env) -> Any:
    storage = S3Storage(
        s3_client(f"http://127.0.0.1:{free_port()}"), "bucket", ROOT, retry_seconds=3, retry_attempts=3
    )
    return BackupEngine(storage).create(env.params, "x", [f"{P}a"])


def _hung_s3(env: Env) -> Any:
    with silent_listener() as port:
        storage = S3Storage(
            s3_client(f"http://127.0.0.1:{port}"), "bucket", ROOT, retry_seconds=3, retry_attempts=2
        )
        return BackupEngine(storage).create(env.params, "x", [f"{P}a"])


def _wrong_s3_secret(env: Env) -> Any:
    storage = S3Storage(s3_client(env.s3.endpoint_url, env.s3.access_key, "not-the-secret"), env.bucket, ROOT)
    return BackupEngine(storage).create(env.params, "x", [f"{P}a"])


def _missing_bucket(env: Env) -> Any:
    storage = S3Storage(quick_client(env.s3), "no-such-bucket-here", ROOT)
    return BackupEngine(storage).create(env.params, "x", [f"{P}a"])


def _index_2_3_cannot_build(env: Env) -> Any:
    server = env.extra["auth_milvus"]
    return env.restore(
        [f"{P}a"],
        backup="exotic_index",
        params=MilvusParams(uri=server.uri, token="root:Milvus"),
        method="insert",
    )


def _wrong_milvus_password(env: Env) -> Any:
    server = env.extra["auth_milvus"]
    return BackupEngine(env.storage).create(
        MilvusParams(uri=server.uri, user="root", password="not-the-password", timeout=10), "x"
    )


def _wrong_milvus_token(env: Env) -> Any:
    server = env.extra["auth_milvus"]
    return BackupEngine(env.storage).create(MilvusParams(uri=server.uri, token="root:wrong", timeout=10), "x")


BAD_NAME = ("Invalid backup name", "use 1 to 128 ASCII letters, digits or '_'")

CASES = [
    # --- what to back up
    Case(
        "backup: missing collection",
        lambda e: e.backups.create(e.params, "x", [f"{P}nope"]),
        CollectionNotFoundError,
        (f"Collection '{P}nope' does not exist in database 'default'", "check the name"),
    ),
    Case(
        "backup: missing database",
        lambda e: e.backups.create(e.params, "x", ["nodb.c"]),
        DatabaseNotFoundError,
        ("Database 'nodb'", "does not exist", "known databases"),
    ),
    Case(
        "backup: db_name missing",
        lambda e: e.backups.create(e.params, "x", db_name="nodb"),
        DatabaseNotFoundError,
        ("Database 'nodb' does not exist", "known databases"),
    ),
    Case(
        "backup: wildcard matches nothing",
        lambda e: e.backups.create(e.params, "x", [f"{P}zz*"]),
        CollectionNotFoundError,
        ("No collection in database 'default'", f"matches '{P}zz*'"),
    ),
    Case(
        "backup: name exists",
        lambda e: e.backups.create(e.params, "good", [f"{P}a"]),
        BackupExistsError,
        ("Backup 'good' already exists", "choose another name", "overwrite=True"),
    ),
    # --- backup names (every entry point)
    Case(
        "name ../x",
        lambda e: e.backups.create(e.params, "../x", [f"{P}a"]),
        BackupNameError,
        ("'../x'", *BAD_NAME),
    ),
    Case(
        "name a/b",
        lambda e: e.backups.create(e.params, "a/b", [f"{P}a"]),
        BackupNameError,
        ("'a/b'", *BAD_NAME),
    ),
    Case(
        "name empty", lambda e: e.backups.create(e.params, "", [f"{P}a"]), BackupNameError, ("''", *BAD_NAME)
    ),
    Case(
        "name too long", lambda e: e.backups.create(e.params, "n" * 129, [f"{P}a"]), BackupNameError, BAD_NAME
    ),
    Case(
        "name cyrillic look-alike",
        lambda e: e.backups.create(e.params, "b\u0430ckup", [f"{P}a"]),
        BackupNameError,
        ("'b\u0430ckup'", *BAD_NAME),
    ),
    Case(
        "name fullwidth look-alike",
        lambda e: e.backups.create(e.params, "\uff42ackup", [f"{P}a"]),
        BackupNameError,
        BAD_NAME,
    ),
    Case(
        "name with dash (get)",
        lambda e: e.backups.get("nightly-1"),
        BackupNameError,
        ("'nightly-1'", *BAD_NAME),
    ),
    Case("name ../good (delete)", lambda e: e.backups.delete("../good"), BackupNameError, BAD_NAME),
    Case("name good/.. (restore)", lambda e: e.restore(backup="good/.."), BackupNameError, BAD_NAME),
    Case("name %2e%2e (verify)", lambda e: verify_backup(e.storage, "%2e%2e"), BackupNameError, BAD_NAME),
    # --- backups that are not there, or not for us
    Case(
        "missing backup (get)",
        lambda e: e.backups.get("nope"),
        BackupNotFoundError,
        ("Backup 'nope' does not exist", "list the backups"),
    ),
    Case(
        "missing backup (delete)",
        lambda e: e.backups.delete("nope"),
        BackupNotFoundError,
        ("Backup 'nope' does not exist", "nothing to delete"),
    ),
    Case(
        "missing backup (restore)",
        lambda e: e.restore(backup="nope"),
        BackupNotFoundError,
        ("Backup 'nope' does not exist", "list the backups"),
    ),
    Case(
        "newer format version",
        lambda e: e.restore(backup="from_the_future", collection_suffix="_f"),
        FormatVersionError,
        ("'from_the_future'", f"format version {mf.FORMAT_VERSION + 1}", "Upgrade airflow-milvus-backup"),
    ),
    Case(
        "newer format version (verify)",
        lambda e: verify_backup(e.storage, "from_the_future"),
        FormatVersionError,
        ("'from_the_future'", "Upgrade airflow-milvus-backup"),
    ),
    # --- restore options
    Case(
        "suffix with dash",
        lambda e: e.restore(collection_suffix="-copy"),
        InvalidArgumentError,
        ("Invalid collection_suffix '-copy'", "ASCII letters, digits and '_'", "'_recover'"),
    ),
    Case(
        "suffix path",
        lambda e: e.restore(collection_suffix="/../x"),
        InvalidArgumentError,
        ("Invalid collection_suffix '/../x'",),
    ),
    Case(
        "renames collide",
        lambda e: e.restore(collection_renames={f"{P}a": "same", f"{P}b": "same"}),
        InvalidArgumentError,
        ("would both be restored to default.same", "every target is unique"),
    ),
    Case(
        "rename of a collection not in the backup",
        lambda e: e.restore(collection_renames={f"{P}zz": "t"}),
        CollectionNotFoundError,
        (f"collection_renames names '{P}zz'", "not in backup 'good'", "check the name"),
    ),
    Case(
        "rename of a database not in the backup",
        lambda e: e.restore(collection_renames={"db9.*": "db8.*"}),
        CollectionNotFoundError,
        ("collection_renames names database 'db9'", "databases in it: ['default']"),
    ),
    Case(
        "rename onto a path",
        lambda e: e.restore(collection_renames={f"{P}a": "../x"}),
        InvalidArgumentError,
        (
            f"Invalid collection_renames entry '{P}a' -> '../x'",
            "is not 'name', 'db.name' or 'db.*'",
            "ASCII letters, digits and '_'",
        ),
    ),
    Case(
        "rename onto an existing collection",
        lambda e: e.restore([f"{P}a"], collection_renames={f"{P}a": f"{P}taken"}),
        TargetExistsError,
        (f"default.{P}taken already exists", "nothing was changed", "drop_existing=True"),
    ),
    Case(
        "collection not in the backup",
        lambda e: e.restore([f"{P}taken"], collection_suffix="_x"),
        CollectionNotFoundError,
        (f"Collection '{P}taken' does not exist", "of backup 'good'"),
    ),
    Case(
        "skip_create into an incompatible schema",
        lambda e: e.restore([f"{P}a"], collection_renames={f"{P}a": f"{P}narrow"}, skip_create=True),
        SchemaMismatchError,
        ("field 'vec'", f"default.{P}narrow", "dim 4 in the target, 8 in the backup", "drop_existing=True"),
    ),
    Case(
        "skip_create into a missing collection",
        lambda e: e.restore([f"{P}a"], collection_suffix="_none", skip_create=True),
        CollectionNotFoundError,
        (f"default.{P}a_none", "create it, or restore without skip_create"),
    ),
    Case(
        "drop_existing with skip_create",
        lambda e: e.restore(drop_existing=True, skip_create=True),
        InvalidArgumentError,
        ("drop_existing=True and skip_create=True contradict", "Choose one"),
    ),
    Case(
        "meta_only with skip_create",
        lambda e: e.restore(meta_only=True, skip_create=True),
        InvalidArgumentError,
        ("meta_only=True with skip_create=True", "Choose one"),
    ),
    Case(
        "use_auto_index without restore_index",
        lambda e: e.restore(use_auto_index=True, restore_index=False),
        InvalidArgumentError,
        ("use_auto_index=True needs restore_index=True",),
    ),
    Case(
        "unknown method",
        lambda e: e.restore(method="fast"),
        InvalidArgumentError,
        ("Invalid restore method 'fast'", "'insert'"),
    ),
    Case(
        "target database name",
        lambda e: e.restore(target_db_name="bad-db"),
        InvalidArgumentError,
        ("Invalid database name 'bad-db'",),
    ),
    Case(
        "restore_id path",
        lambda e: e.restores.restore(e.params, "good", restore_id="../x"),
        InvalidArgumentError,
        ("Invalid restore_id '../x'", "ASCII letters, digits"),
    ),
    Case(
        "index the target cannot build",
        _index_2_3_cannot_build,
        UnsupportedError,
        ("GPU_CAGRA", "field 'vec'", "Milvus v2.3.5", "auto_index_fallback=True", "use_auto_index=True"),
        marks=(pytest.mark.milvus235,),
    ),
    # --- credentials, endpoints, buckets
    Case(
        "wrong S3 secret",
        _wrong_s3_secret,
        StorageAccessError,
        ("S3 refused access", "Check the AWS connection's access key and secret"),
    ),
    Case(
        "missing bucket",
        _missing_bucket,
        StorageNotFoundError,
        ("Bucket 'no-such-bucket-here' does not exist", "create it or fix bucket_name"),
    ),
    Case(
        "unreachable Milvus",
        _unreachable_milvus,
        MilvusConnectionError,
        ("Milvus at http://127.0.0.1:", "Check that Milvus is running and the address"),
        seconds=8,
    ),
    Case(
        "hung Milvus",
        _hung_milvus,
        MilvusConnectionError,
        ("Milvus at http://127.0.0.1:", "Check that Milvus is running and the address"),
        seconds=8,
    ),
    Case(
        "unreachable S3",
        _unreachable_s3,
        StorageConnectionError,
        ("cannot reach S3", "Check that the endpoint is up and endpoint_url is right"),
        seconds=8,
    ),
    Case(
        "hung S3",
        _hung_s3,
        StorageConnectionError,
        ("cannot reach S3", "Check that the endpoint is up and endpoint_url is right"),
        seconds=12,
    ),
    Case(
        "wrong Milvus password",
        _wrong_milvus_password,
        MilvusAuthenticationError,
        (
            "Milvus at http://127.0.0.1:",
            "refused the credentials",
            "auth check failure",
            "Check the user and password, or the token",
        ),
        marks=(pytest.mark.milvus235,),
    ),
    Case(
        "wrong Milvus token",
        _wrong_milvus_token,
        MilvusAuthenticationError,
        (
            "Milvus at http://127.0.0.1:",
            "refused the credentials",
            "Check the user and password, or the token",
        ),
        marks=(pytest.mark.milvus235,),
    ),
    Case(
        "no Milvus credentials",
        lambda e: BackupEngine(e.storage).create(
            MilvusParams(uri=e.extra["auth_milvus"].uri, timeout=10), "x"
        ),
        MilvusAuthenticationError,
        ("refused the credentials", "missing authorization"),
        marks=(pytest.mark.milvus235,),
    ),
    # --- storage locations
    Case(
        "S3 root_path ..",
        lambda e: S3Storage(quick_client(e.s3), e.bucket, "../other"),
        InvalidArgumentError,
        ("Invalid storage key '../other'", "'..' is not allowed"),
    ),
    Case(
        "local root_path ..",
        lambda e: LocalStorage(e.tmp / "base", "../../etc"),
        InvalidArgumentError,
        ("Invalid storage key '../../etc'",),
    ),
    Case(
        "unknown SSE",
        lambda e: S3Storage(quick_client(e.s3), e.bucket, ROOT, sse="rot13"),
        InvalidArgumentError,
        ("Invalid server-side encryption 'rot13'", "'AES256' or 'aws:kms'"),
    ),
    # --- the hook's backup.yaml
    Case(
        "backup.yaml not YAML",
        _hook_yaml("milvus:\n  address: [unclosed\n"),
        ValueError,
        ("backup.yaml is not valid YAML at line",),
    ),
    Case(
        "backup.yaml port not a number",
        _hook_yaml("milvus:\n  address: localhost\n  port: abc\n"),
        ValueError,
        ("backup.yaml: key 'milvus.port'", "must be an integer from 1 to 65535", "'abc'"),
    ),
    Case(
        "backup.yaml tlsMode out of range",
        _hook_yaml("milvus:\n  address: h\n  tlsMode: 5\n"),
        ValueError,
        ("key 'milvus.tlsMode'", "must be an integer from 0 to 2"),
    ),
    Case(
        "backup.yaml unknown storage",
        _hook_yaml("minio:\n  storageType: azure\n"),
        ValueError,
        ("key 'minio.storageType'", "'azure'", "use an S3-compatible storage"),
    ),
    Case(
        "backup.yaml secret without key id",
        _hook_yaml("minio:\n  address: h\n  accessKeyID: ak\n  secretAccessKey: ''\n"),
        ValueError,
        ("'minio.backupSecretAccessKey'", "set both"),
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_fails_clearly_fast_and_leaves_nothing(
    case: Case, env: Env, request: pytest.FixtureRequest
) -> None:
    if any(m.name == "milvus235" for m in case.marks):
        env.extra["auth_milvus"] = request.getfixturevalue("auth_milvus")
    before = env.snapshot()
    began = time.monotonic()
    with pytest.raises(case.exc) as e:
        case.call(env)
    elapsed = time.monotonic() - began
    msg = str(e.value)
    missing = [s for s in case.says if s not in msg]
    assert not missing, f"{type(e.value).__name__}: {msg!r} lacks {missing}"
    assert elapsed < case.seconds, f"took {elapsed:.1f}s: {msg}"
    after = env.snapshot()
    assert after == before, "the failed call left something behind"


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25
