"""A password written inside the Milvus URI never shows: not in logs, manifests, statuses nor error messages.

Real servers: the session Milvus Lite server (it ignores credentials, so any password "works" and the test
can look for every piece of it everywhere) and a local backup directory; the hook test uses Airflow's own
secrets masker.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from airflow_milvus_backup.engine import BackupEngine, LocalStorage, MilvusConnectionError, MilvusParams
from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.restore import RestoreEngine
from airflow_milvus_backup.engine.uri import display_address, split_uri
from tests.support.datagen import create_vector_collection
from tests.support.lite import MilvusLiteServer, open_client
from tests.support.process import free_port

if TYPE_CHECKING:
    from pymilvus import MilvusClient

pytestmark = pytest.mark.timeout(240)

# a password with "@" and ":" in it: pymilvus splits the user information at the last "@"
PIECES = ("Alpha1Secret", "Bravo2Secret", "Charlie3Secret")
PASSWORD = f"{PIECES[0]}@{PIECES[1]}:{PIECES[2]}"
TOKEN = f"{PIECES[0]}@{PIECES[1]}@{PIECES[2]}"


def uri_forms(hostport: str) -> list[str]:
    """Every way of writing the password into a URI."""
    encoded = PASSWORD.replace("@", "%40").replace(":", "%3A")
    return [
        f"http://backup_user:{PASSWORD}@{hostport}",
        f"http://backup_user:{encoded}@{hostport}",
        f"tcp://backup_user:{PASSWORD}@{hostport}",
        f"http://{TOKEN}@{hostport}",  # user information without ":": a token
    ]


def assert_no_piece(where: str, text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for piece in PIECES:
        i = text.find(piece)
        assert i < 0, f"password piece {piece!r} in {where}: ...{text[max(0, i - 120) : i + 40]}"


def make_collection(client: MilvusClient, name: str, rows: int = 200) -> None:
    create_vector_collection(client, name, dim=4)
    rng = np.random.default_rng(3)
    client.insert(name, [{"id": i, "vec": rng.random(4, dtype=np.float32).tolist()} for i in range(rows)])


# ------------------------------------------------------------------------------------------- pure parsing
@pytest.mark.parametrize(
    ("uri", "clean", "user", "password", "token"),
    [
        ("http://u:pa@ss@h:19530", "http://h:19530", "u", "pa@ss", ""),
        ("https://u:p%40s%3As@h/db", "https://h/db", "u", "p@s:s", ""),
        ("tcp://u:a:b:c@h:1", "tcp://h:1", "u", "a:b:c", ""),
        ("grpc://u:p/w@h:1/db", "grpc://h:1/db", "u", "p/w", ""),
        ("http://tok-en@h:1", "http://h:1", "", "", "tok-en"),
        ("u:pw@h:19530", "h:19530", "u", "pw", ""),
        ("http://h:19530", "http://h:19530", "", "", ""),
        ("/data/a@b.db", "/data/a@b.db", "", "", ""),
        ("milvus@2025.db", "milvus@2025.db", "", "", ""),
        ("unix:/run/milvus.sock", "unix:/run/milvus.sock", "", "", ""),
    ],
)
def test_split_uri_takes_out_every_form_of_user_information(
    uri: str, clean: str, user: str, password: str, token: str
) -> None:
    parts = split_uri(uri)
    assert (parts.uri, parts.user, parts.password, parts.token) == (clean, user, password, token)
    assert "@" not in display_address(uri) or uri.endswith(".db")


def test_milvus_params_hold_the_uri_credentials_apart_and_scrub_every_form() -> None:
    for uri in uri_forms("milvus.example:19530"):
        p = MilvusParams(uri=uri)
        assert p.uri == "http://milvus.example:19530" or p.uri == "tcp://milvus.example:19530"
        assert p.address == p.uri
        assert_no_piece("repr", repr(p))
        secret = TOKEN if p.token else PASSWORD
        assert_no_piece("scrubbed text", p.scrub(f"error at {uri}: bad password {secret}"))
        kwargs = p.client_kwargs()
        assert kwargs.get("password") == PASSWORD or kwargs.get("token") == TOKEN
    # explicit credentials win over the URI's, and the URI's are still scrubbed
    p = MilvusParams(uri=f"http://u:{PASSWORD}@h:1", token="explicit-token-123")
    assert p.client_kwargs()["token"] == "explicit-token-123"
    assert "password" not in p.client_kwargs()
    assert_no_piece("scrubbed", p.scrub(PASSWORD))
    # the password of a user:password token is a secret of its own
    assert "tokpw-998877" in MilvusParams(uri="http://h:1", token="u:tokpw-998877").secrets()


# -------------------------------------------------------------------------------------------- real servers
def test_password_in_the_uri_appears_nowhere_in_a_backup_and_restore(
    milvus_lite_server: MilvusLiteServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    client = open_client(milvus_lite_server.uri)
    coll = f"uripw_{uuid.uuid4().hex[:6]}"
    make_collection(client, coll)
    hostport = milvus_lite_server.uri.split("://", 1)[1]
    storage = LocalStorage(tmp_path / "backups")
    errors: list[BaseException] = []
    try:
        for i, uri in enumerate(uri_forms(hostport)):
            params = MilvusParams(uri=uri)
            BackupEngine(storage, progress_interval=0).create(params, f"uri_{i}", [coll])
            report = RestoreEngine(storage, progress_interval=0).restore(
                params, f"uri_{i}", collection_suffix=f"_r{i}"
            )
            assert report["collections"][0]["rows_restored"] == 200
            assert_no_piece("restore report", json.dumps(report, default=str))
            manifest = json.loads(storage.get_bytes(mf.manifest_key(f"uri_{i}")))
            assert manifest["source"]["address"].split("://")[1] == hostport
            # a failing call: Milvus refuses a collection that does not exist, and an address nobody serves
            dead = uri.replace(hostport, f"127.0.0.1:{free_port()}")
            with pytest.raises(MilvusConnectionError) as e:
                BackupEngine(storage).create(MilvusParams(uri=dead, timeout=2), f"never_{i}")
            errors.append(e.value)
        for o in storage.list(""):
            assert_no_piece(o.key, storage.get_bytes(o.key))
        for err in errors:
            assert "127.0.0.1:" in str(err)
            assert_no_piece(type(err).__name__, f"{err!s} {err!r} {err.args}")
        assert caplog.records
        assert_no_piece(
            "log lines", "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        )
        out = capfd.readouterr()
        assert_no_piece("stdout/stderr", out.out + out.err)
    finally:
        for name in client.list_collections():
            if name.startswith(coll):
                client.drop_collection(name)
        client.close()


def test_password_in_a_connection_host_is_masked_by_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook
    from tests.support import airflow_env  # noqa: F401 - sets AIRFLOW_HOME before Airflow is imported

    for i, host in enumerate(
        (f"http://backup_user:{PASSWORD}@milvus.example", f"backup_user:{PASSWORD}@milvus.example")
    ):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_MILVUS_HOSTPW{i}",
            json.dumps({"conn_type": "milvus", "host": host, "port": 19531}),
        )
        hook = MilvusBackupHook(milvus_conn_id=f"milvus_hostpw{i}")
        params = hook.milvus_params
        assert params.uri == "http://milvus.example:19531"
        assert params.user == "backup_user"
        assert params.password == PASSWORD
        masked = str(redact(f"log line with {PASSWORD} in it"))
        assert_no_piece("Airflow's masked log line", masked)
        assert_no_piece("hook.scrub", hook.scrub(f"x {PASSWORD} y"))
