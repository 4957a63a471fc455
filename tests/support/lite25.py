"""Milvus 2.5's core for the tests: the C++ ``milvus-lite==2.5.1`` serving gRPC on 127.0.0.1.

It has the same import name (``milvus_lite``) as the pure-Python Milvus Lite 3.x in ``.venv``, so it lives
in a second virtualenv, ``.venv-milvus25`` (built by ``scripts/_venv_milvus25.sh``, which
``scripts/test.sh`` sources). The server runs as ``.venv-milvus25/bin/python -c _SERVE DB ADDRESS``: that
calls ``milvus_lite.server.Server(db, address)``'s ``init()`` and ``start()`` and waits for the ``milvus``
binary it spawned (same process group, so SIGTERM / SIGKILL of the group stops both).

What it lacks (probed, see the README's support matrix): ``GetVersion`` and the partition, alias, database
and AlterCollection RPCs (UNIMPLEMENTED), nullable fields, INT8 vectors, functions in its describe, and any
filter on a partition-key collection ("Invalid expr").
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.lite import milvus_answers
from tests.support.process import HOST, ProcessServer, port_is_open

REPO = Path(__file__).resolve().parent.parent.parent
VENV25 = REPO / ".venv-milvus25"

# Runs in .venv-milvus25's python: start the server, then live as long as its milvus binary does.
_SERVE = (
    "import signal, sys\n"
    "from milvus_lite.server import Server\n"
    "server = Server(sys.argv[1], sys.argv[2])\n"
    "if not server.init() or not server.start():\n"
    "    sys.exit('milvus-lite 2.5 did not start')\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "try:\n"
    "    sys.exit(server._p.wait())\n"
    "finally:\n"
    "    server.stop()\n"
)


def lite25_python() -> Path:
    """Return the python of ``.venv-milvus25`` (raise with the fix when it is missing)."""
    python = VENV25 / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(
            f"{python} does not exist: run `bash -c 'source scripts/_venv_milvus25.sh'` (test.sh does)"
        )
    return python


class Lite25Server(ProcessServer):
    """``milvus-lite 2.5.1`` (Milvus 2.5 segcore, knowhere) on 127.0.0.1, data in ``data_dir/milvus.db``."""

    name = "milvus-lite-2.5"
    version = "2.5.1"
    default_start_timeout = 60.0

    @property
    def db_file(self) -> Path:
        return self.data_dir / "milvus.db"

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _command(self) -> list[str]:
        return [str(lite25_python()), "-c", _SERVE, str(self.db_file), f"{HOST}:{self.port}"]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def _is_ready(self) -> bool:
        return port_is_open(self.port) and milvus_answers(self.uri, timeout=3)
