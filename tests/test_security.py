"""Secrets never leak; hostile names never escape the root; TLS and SSE settings reach the wire.

Real servers: a private rclone S3 server with its own secret key, the session Milvus Lite server (it
ignores credentials, so any password "works" and the tests can look for it everywhere), and a TLS
terminator in front of Milvus Lite for the TLS checks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient

from airflow_milvus_backup.engine import (
    BackupEngine,
    InvalidArgumentError,
    LocalStorage,
    MilvusBackupError,
    MilvusConnectionError,
    MilvusParams,
    S3Storage,
    StorageAccessError,
)
from airflow_milvus_backup.engine import lease as leases
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.client import connect
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.verify import verify_backup, verify_restore
from tests.support.datagen import create_vector_collection
from tests.support.lite import MilvusLiteServer, open_client
from tests.support.process import free_port, plain_spawn
from tests.support.s3 import FAST_RCLONE, ROOT, S3Server, boto_client

pytestmark = pytest.mark.timeout(240)

MILVUS_PASSWORD = "Mv-Secr3t-pw-71c9e0aa42"
MILVUS_TOKEN = "mvtok-secret-5d2b8e7f-c041"
S3_SECRET = "s3-secret-key-9f8e7d6c5b4a"
SESSION_TOKEN = "FwoGZXIvYXdzsessiontoken-0a1b2c3d4e5f"
SECRETS = (MILVUS_PASSWORD, MILVUS_TOKEN, S3_SECRET, SESSION_TOKEN)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    server = S3Server(tmp_path_factory.mktemp("security-s3"), secret_key=S3_SECRET, extra_args=FAST_RCLONE)
    with plain_spawn():
        server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_client(server: S3Server, *, secret: str = S3_SECRET, token: str | None = None, **config: Any) -> Any:
    return boto_client(
        server.endpoint_url,
        server.access_key,
        secret,
        session_token=token,
        connect_timeout=1,
        read_timeout=5,
        retries={"max_attempts": 1, "mode": "standard"},
        **config,
    )


def new_bucket(server: S3Server) -> str:
    return server.create_bucket(f"sec-{uuid.uuid4().hex[:10]}")


def make_collection(client: MilvusClient, name: str, rows: int = 300) -> None:
    create_vector_collection(client, name, dim=8, dynamic=True)
    rng = np.random.default_rng(1)
    client.insert(
        name,
        [{"id": i, "vec": rng.random(8, dtype=np.float32).tolist(), "note": f"n{i}"} for i in range(rows)],
    )


def assert_no_secret(where: str, text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for s in SECRETS:
        i = text.find(s)
        assert i < 0, f"secret {s[:5]}... in {where}: ...{text[max(0, i - 200) : i + 40]}"


# -------------------------------------------------------------------------------------------------- secrets
def test_no_secret_in_logs_exceptions_manifests_status_or_results(
    s3: S3Server,
    milvus_lite_server: MilvusLiteServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A whole backup / verify / restore / delete cycle and its failures, with every secret set."""
    caplog.set_level(logging.INFO)
    for name in ("airflow_milvus_backup", "pymilvus"):
        caplog.set_level(logging.DEBUG, logger=name)
    client = open_client(milvus_lite_server.uri)
    coll = f"secret_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll)
    bucket = new_bucket(s3)
    storage = S3Storage(s3_client(s3, token=SESSION_TOKEN), bucket, ROOT)
    with_password = MilvusParams(uri=milvus_lite_server.uri, user="backup_user", password=MILVUS_PASSWORD)
    with_token = MilvusParams(uri=milvus_lite_server.uri, token=MILVUS_TOKEN)
    assert MILVUS_PASSWORD not in repr(with_password)
    assert MILVUS_TOKEN not in repr(with_token)

    results: list[Any] = []
    engine = BackupEngine(storage, progress_interval=0)
    results.append(engine.create(with_password, "secret_a", [coll]))
    results.append(engine.create(with_token, "secret_b", [coll]))
    results += [engine.list(), engine.latest(), engine.get("secret_a"), verify_backup(storage, "secret_a")]
    report = RestoreEngine(storage, progress_interval=0).restore(
        with_token, "secret_a", collection_suffix="_r"
    )
    results += [
        report,
        verify_restore(with_password, storage, "secret_a", report, sample_searches=2),
        RestoreEngine(storage).list_restores("secret_a"),
        engine.delete("secret_b"),
    ]

    # failures: unreachable Milvus with credentials in every form, wrong S3 secret, session token refused
    errors: list[BaseException] = []
    dead = f"127.0.0.1:{free_port()}"
    for params in (
        MilvusParams(uri=f"http://{dead}", user="u", password=MILVUS_PASSWORD, timeout=2),
        MilvusParams(uri=f"http://{dead}", token=MILVUS_TOKEN, timeout=2),
        MilvusParams(uri=f"http://u:{MILVUS_PASSWORD}@{dead}", timeout=2),
    ):
        with pytest.raises(MilvusConnectionError) as e:
            engine.create(params, "never")
        errors.append(e.value)
        assert dead in str(e.value)
    with pytest.raises(StorageAccessError) as e:
        BackupEngine(S3Storage(s3_client(s3, secret="wrong-" + S3_SECRET), bucket, ROOT)).list()
    errors.append(e.value)

    for err in errors:
        assert_no_secret(f"{type(err).__name__}", f"{err!s} {err!r} {err.args}")
        chained = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
        if chained is not None:
            assert_no_secret("chained exception", f"{chained!s} {chained!r}")
    assert_no_secret("results (XCom)", json.dumps(results, default=str))
    for o in storage.list(""):
        assert_no_secret(o.key, storage.get_bytes(o.key))
    m = json.loads(storage.get_bytes(mf.manifest_key("secret_a")))
    assert m["source"]["address"] == milvus_lite_server.uri
    out = capfd.readouterr()
    assert_no_secret("stdout/stderr", out.out + out.err)
    assert caplog.records
    assert_no_secret(
        "log lines", "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    )
    client.drop_collection(coll)
    client.drop_collection(f"{coll}_r")
    client.close()


def test_operator_xcom_and_task_log_hold_no_secret(
    s3: S3Server,
    milvus_lite_server: MilvusLiteServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow_milvus_backup.operators import MilvusBackupOperator, MilvusRestoreOperator
    from tests.support import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported

    caplog.set_level(logging.DEBUG, logger="airflow_milvus_backup")
    client = open_client(milvus_lite_server.uri)
    coll = f"xcom_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=100)
    bucket = new_bucket(s3)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_SEC",
        json.dumps(
            {
                "conn_type": "milvus",
                "host": milvus_lite_server.uri,
                "login": "backup_user",
                "password": MILVUS_PASSWORD,
                "extra": {"token": MILVUS_TOKEN, "timeout": 10},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_SEC",
        json.dumps(
            {
                "conn_type": "aws",
                "login": s3.access_key,
                "password": S3_SECRET,
                "extra": {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"},
            }
        ),
    )
    common = {"milvus_conn_id": "milvus_sec", "aws_conn_id": "aws_sec", "bucket_name": bucket}
    backup = MilvusBackupOperator(
        task_id="b", backup_name="xcom_check", collection_names=[coll], verify=True, **common
    )
    restore = MilvusRestoreOperator(task_id="r", backup_name="xcom_check", collection_suffix="_r", **common)
    xcoms = [backup.execute(context={}), restore.execute(context={})]  # type: ignore[arg-type]
    assert xcoms[0]["backup_name"] == "xcom_check"
    assert_no_secret("XCom", json.dumps(xcoms, default=str))
    out = capfd.readouterr()
    assert_no_secret("task output", out.out + out.err)
    assert_no_secret("task log", "\n".join(r.getMessage() for r in caplog.records))
    client.drop_collection(coll)
    client.drop_collection(f"{coll}_r")
    client.close()


# -------------------------------------------------------------------------------------------- hostile names
HOSTILE = [
    "../x",
    "..",
    ".",
    "a/b",
    "/etc",
    "x/../../y",
    "..\\x",
    "a\x00b",
    "%2e%2e",
    "b\u0430d",
    "",
    " ",
    "~root",
    "$HOME",
    "n" * 300,
]


def _valid_key(key: str) -> bool:
    """Whether ``key`` is a legitimate storage key inside the root (such as ``a/b``): the seam takes it."""
    import re

    return bool(key) and all(
        seg not in ("", ".", "..") and re.fullmatch(r"[A-Za-z0-9_=.\-]{1,255}", seg) for seg in key.split("/")
    )


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory: pytest.TempPathFactory, milvus_lite_server: MilvusLiteServer, s3: S3Server):
    client = open_client(milvus_lite_server.uri)
    coll = f"hostile_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=50)
    base = tmp_path_factory.mktemp("hostile")
    local = LocalStorage(base / "store", ROOT)
    bucket = new_bucket(s3)
    remote = S3Storage(s3_client(s3), bucket, ROOT, retry_seconds=2, retry_attempts=2)
    params = MilvusParams(uri=milvus_lite_server.uri)
    for storage in (local, remote):
        BackupEngine(storage).create(params, "good", [coll])
    (base / "outside.txt").write_text("must never be read or removed")
    yield {
        "base": base,
        "local": local,
        "remote": remote,
        "params": params,
        "coll": coll,
        "s3": s3,
        "bucket": bucket,
    }
    client.drop_collection(coll)
    client.close()


def _entry_points(storage: Any, params: MilvusParams, coll: str, bad: str) -> dict[str, Any]:
    """Every public call that takes a name, with ``bad`` in the name's place."""
    backups, restores = BackupEngine(storage), RestoreEngine(storage)
    names = {
        "create": lambda: backups.create(params, bad, [coll]),
        "create overwrite": lambda: backups.create(params, bad, [coll], overwrite=True),
        "get": lambda: backups.get(bad),
        "delete": lambda: backups.delete(bad),
        "delete force": lambda: backups.delete(bad, force=True),
        "verify_backup": lambda: verify_backup(storage, bad),
        "restore": lambda: restores.restore(params, bad, collection_suffix="_h"),
        "submit": lambda: restores.submit(params, bad, collection_suffix="_h"),
        "restore_id": lambda: restores.restore(params, "good", collection_suffix="_h", restore_id=bad),
        "poll backup": lambda: restores.poll(params, bad, "r1"),
        "poll restore_id": lambda: restores.poll(params, "good", bad),
        "status": lambda: restores.status("good", bad),
        "cancel": lambda: restores.cancel(params, "good", bad),
        "list_restores": lambda: restores.list_restores(bad),
        "suffix": lambda: restores.restore(params, "good", collection_suffix=bad or "/"),
        "rename target": lambda: restores.restore(params, "good", collection_renames={coll: bad or "/"}),
        "target_db_name": lambda: restores.restore(params, "good", target_db_name=bad or "/"),
    }
    if _valid_key(bad):
        return names
    return {
        **names,
        "put_bytes": lambda: storage.put_bytes(bad, b"x"),
        "put_bytes under a backup": lambda: storage.put_bytes(f"good/{bad}", b"x"),
        "put_if_absent": lambda: storage.put_if_absent(f"good/meta/{bad}", b"x"),
        "get_bytes": lambda: storage.get_bytes(f"good/{bad}/x"),
        "download": lambda: storage.download(f"{bad}/outside.txt", Path(os.devnull)),
        "delete key": lambda: storage.delete([bad]),
        "exists": lambda: storage.exists(f"{bad}/good"),
        "sha256": lambda: storage.sha256(bad),
    }


@pytest.mark.parametrize("bad", HOSTILE, ids=[repr(h)[:24] for h in HOSTILE])
def test_hostile_names_are_refused_at_every_entry_point_and_nothing_escapes_the_root(
    bad: str, hostile_env: dict[str, Any]
) -> None:
    base: Path = hostile_env["base"]

    def s3_keys() -> list[str]:
        listing = hostile_env["s3"].client().list_objects_v2(Bucket=hostile_env["bucket"])
        return sorted(o["Key"] for o in listing.get("Contents", []))

    before = (_tree(base), s3_keys())
    wrong = []
    for kind in ("local", "remote"):
        storage = hostile_env[kind]
        for what, call in _entry_points(storage, hostile_env["params"], hostile_env["coll"], bad).items():
            try:
                call()
                wrong.append(f"{kind} {what}: accepted")
            except InvalidArgumentError as e:
                if "Invalid" not in str(e):
                    wrong.append(f"{kind} {what}: {e}")
            except Exception as e:  # noqa: BLE001 - listed below
                wrong.append(f"{kind} {what}: {type(e).__name__}: {e}")
    assert not wrong, "\n".join(wrong)
    assert (_tree(base), s3_keys()) == before
    assert (base / "outside.txt").read_text() == "must never be read or removed"
    store = (base / "store").resolve()
    for root in (bad, f"{bad}/x", f"x/{bad}"):
        if not root.strip("/"):  # backups at the top of the directory or bucket: only when asked for
            with pytest.raises(InvalidArgumentError, match="allow_root_at_top=True"):
                LocalStorage(base / "store", root)
            with pytest.raises(InvalidArgumentError, match="allow_root_at_top=True"):
                S3Storage(s3_client(hostile_env["s3"]), hostile_env["bucket"], root)
            continue
        if _valid_key(root.strip("/")):
            # a legitimate prefix ("a/b", "/etc" is "etc" below the base): it stays inside
            local = LocalStorage(base / "store", root)
            assert local.dir.resolve().is_relative_to(store), local.dir
            remote = S3Storage(s3_client(hostile_env["s3"]), hostile_env["bucket"], root)
            assert ".." not in remote.description.split("/")
            continue
        with pytest.raises(InvalidArgumentError):
            LocalStorage(base / "store", root)
        with pytest.raises(InvalidArgumentError):
            S3Storage(s3_client(hostile_env["s3"]), hostile_env["bucket"], root)


def test_a_hostile_manifest_cannot_make_verify_or_restore_read_or_write_outside(
    hostile_env: dict[str, Any],
) -> None:
    """A backup copied in from elsewhere whose manifest names keys and collections with '..' in them."""
    base: Path = hostile_env["base"]
    storage: LocalStorage = hostile_env["local"]
    m = json.loads(storage.get_bytes(mf.manifest_key("good")))
    m["name"] = "evil"
    m["collections"][0]["data"][0]["files"][0]["key"] = "data/../../../outside.txt"
    storage.put_bytes(mf.manifest_key("evil"), mf.dumps(m))
    m2 = json.loads(json.dumps(m))
    m2["name"] = "evil2"
    m2["collections"][0]["name"] = "../../x"
    storage.put_bytes(mf.manifest_key("evil2"), mf.dumps(m2))
    before = _tree(base)
    with pytest.raises(MilvusBackupError, match=r"outside\.txt"):
        verify_backup(storage, "evil")
    with pytest.raises(MilvusBackupError, match=r"outside\.txt"):
        RestoreEngine(storage).restore(hostile_env["params"], "evil", collection_suffix="_evil")
    with pytest.raises(InvalidArgumentError, match="Invalid collection name"):
        RestoreEngine(storage).restore(hostile_env["params"], "evil2", collection_suffix="_evil")
    leftovers = sorted(set(_tree(base)) - set(before))
    assert all("/evil/restores/" in p or p.endswith("/evil/restores") for p in leftovers), leftovers
    assert (base / "outside.txt").read_text() == "must never be read or removed"
    client = MilvusClient(hostile_env["params"].uri)
    created = [c for c in client.list_collections() if c.endswith("_evil")]
    for c in created:
        client.drop_collection(c)
    client.close()
    if created:
        pytest.xfail(
            "restore.py checks the manifest's keys only when it downloads each file, after it created the "
            f"target collection ({created}); see the report"
        )


# ------------------------------------------------------------------------------------------------------ TLS
@pytest.fixture(scope="module")
def tls_milvus(tmp_path_factory: pytest.TempPathFactory, milvus_lite_server: MilvusLiteServer):
    """A TLS terminator (certificate for ``milvus.test``, HTTP/2) in front of the Milvus Lite server."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "server.pem", d / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=milvus.test",
            "-addext",
            "subjectAltName=DNS:milvus.test",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(32)
    port = listener.getsockname()[1]
    stop = threading.Event()
    handshakes: list[str] = []

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def serve_one(conn: socket.socket) -> None:
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            handshakes.append(f"refused: {e}")
            conn.close()
            return
        handshakes.append("ok")
        upstream = socket.create_connection(("127.0.0.1", milvus_lite_server.port))
        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield {
        "uri": f"https://127.0.0.1:{port}",
        "cert": str(cert),
        "handshakes": handshakes,
        "plain_uri": milvus_lite_server.uri,
    }
    stop.set()
    listener.close()


def test_tls_settings_reach_the_milvus_client(
    tls_milvus: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import Connection

    from airflow_milvus_backup.hooks.backup_config import load_backup_config
    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook, milvus_params_from_connection
    from tests.support import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported

    uri, cert = tls_milvus["uri"], tls_milvus["cert"]
    tls = MilvusParams(uri=uri, secure=True, server_pem_path=cert, server_name="milvus.test", timeout=5)
    kw = tls.client_kwargs()
    assert kw["secure"] is True
    assert kw["server_name"] == "milvus.test"
    assert kw["server_pem_path"] == cert == kw["ca_pem_path"]
    mutual = MilvusParams(
        uri=uri, secure=True, server_pem_path=cert, client_pem_path="/c.pem", client_key_path="/c.key"
    ).client_kwargs()
    assert mutual["client_pem_path"] == "/c.pem"
    assert mutual["client_key_path"] == "/c.key"

    # the engine's client speaks TLS, checks the certificate against the CA given, and the name given
    c = connect(tls)
    assert isinstance(c.list_collections(), list)
    c.close()
    assert "ok" in tls_milvus["handshakes"]
    began = time.monotonic()
    with pytest.raises(MilvusConnectionError, match=f"Milvus at {uri}"):
        connect(MilvusParams(uri=uri, secure=True, server_name="milvus.test", timeout=3))  # CA not trusted
    with pytest.raises(MilvusConnectionError, match=f"Milvus at {uri}"):
        connect(MilvusParams(uri=uri, secure=True, server_pem_path=cert, server_name="other.test", timeout=3))
    # no downgrade: a plaintext channel that another client of this process opened to the same address is not
    # reused for a client that asks for TLS (pymilvus 3 shares channels by address and token)
    plain_port = int(tls_milvus["plain_uri"].rsplit(":", 1)[1])
    plain = MilvusClient(tls_milvus["plain_uri"])
    plain.list_collections()
    with pytest.raises(MilvusConnectionError):
        connect(MilvusParams(uri=f"https://127.0.0.1:{plain_port}", secure=True, timeout=3))
    plain.close()
    assert time.monotonic() - began < 20

    # ... from an Airflow connection, through the hook
    conn_extra = {"secure": True, "server_pem_path": cert, "server_name": "milvus.test", "timeout": 5}
    conn = Connection(conn_id="milvus_tls", conn_type="milvus", host=uri, extra=json.dumps(conn_extra))
    params = milvus_params_from_connection(conn)
    assert params.client_kwargs()["secure"] is True
    assert params.client_kwargs()["server_pem_path"] == cert
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_TLS", conn.as_json())
    hook = MilvusBackupHook(milvus_conn_id="milvus_tls", aws_conn_id=None, local_path=str(tmp_path))
    assert hook.test_connection()[0] is True
    # ... and from a Milvus Backup backup.yaml (tlsMode 1)
    yaml = tmp_path / "backup.yaml"
    host, port = uri.split("://")[1].split(":")
    yaml.write_text(
        f"milvus:\n  address: {host}\n  port: {port}\n  tlsMode: 1\n  caCertPath: {cert}\n"
        "  serverName: milvus.test\n"
    )
    cfg_params = load_backup_config(yaml).milvus
    assert cfg_params is not None
    assert cfg_params.secure is True
    c = connect(cfg_params)
    c.close()


# ------------------------------------------------------------------------------------------------------ SSE
def test_sse_settings_reach_every_upload(s3: S3Server, milvus_lite_server: MilvusLiteServer) -> None:
    client = open_client(milvus_lite_server.uri)
    coll = f"sse_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll, rows=600)
    bucket = new_bucket(s3)
    boto = s3_client(s3)
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("PutObject", "CreateMultipartUpload", "CopyObject"):
            calls.append((model.name, dict(params)))

    boto.meta.events.register("provide-client-params.s3.*", record)
    storage = S3Storage(boto, bucket, ROOT, sse="AES256")
    params = MilvusParams(uri=milvus_lite_server.uri)
    BackupEngine(storage, batch_bytes=1, file_bytes=1).create(params, "encrypted", [coll])
    RestoreEngine(storage).restore(params, "encrypted", collection_suffix="_sse")

    kinds = {k for k, _ in calls}
    keys = [p["Key"] for _, p in calls]
    assert any("/meta/locks/" in k for k in keys)
    assert any("/restores/" in k for k in keys)
    assert any(k.endswith(mf.MANIFEST) for k in keys)
    assert sum("/data/" in k for k in keys) >= 3
    missing = [(k, p["Key"]) for k, p in calls if p.get("ServerSideEncryption") != "AES256"]
    assert not missing, missing
    assert kinds <= {"PutObject", "CreateMultipartUpload"}
    # and what the server stored says so, for every object left
    objs = list(storage.list(""))
    assert len(objs) >= 5
    for o in objs:
        assert storage.head(o.key)["ServerSideEncryption"] == "AES256", o.key
    # SSE-KMS arguments go on every upload the same way
    kms = S3Storage(boto, bucket, ROOT, sse="aws:kms", sse_kms_key_id="arn:aws:kms:us-east-1:1:key/k-1")
    assert kms.extra_args() == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:us-east-1:1:key/k-1",
    }
    assert leases is not None
    client.drop_collection(coll)
    client.drop_collection(f"{coll}_sse")
    client.close()
