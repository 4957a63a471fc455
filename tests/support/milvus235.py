"""Milvus 2.3.5 for the tests: :class:`Milvus235Server`, a real standalone (PyPI package ``milvus``) on
127.0.0.1 and free ports, whose object storage is an :class:`~tests.support.s3.S3Server`.

The server runs in a process of its own, :mod:`tests.support.milvus235_launcher`. (This module is not
called ``milvus.py``: the launcher runs as a script from this directory, where such a name would hide the
``milvus`` package.)
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support import milvus235_launcher as launcher
from tests.support.lite import milvus_answers
from tests.support.milvus235_launcher import MILVUS235_PORT_KEYS
from tests.support.process import (
    HOST,
    ProcessServer,
    ServerStartError,
    free_port,
    log_tail,
    pdeathsig_supported,
    pid_alive,
    signal_group,
    signal_pid,
    wait_port_closed,
)

if TYPE_CHECKING:
    import subprocess

    from tests.support.s3 import S3Server

log = logging.getLogger(__name__)


# config sections of the roles that have an "ip" (advertised address) setting
MILVUS235_ROLES = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


class Milvus235Server(ProcessServer):
    """A real Milvus 2.3.5 standalone (PyPI ``milvus``) storing its data in ``bucket`` on an S3Server.

    The process tree is ``python milvus235_launcher.py <spec>`` (:mod:`tests.support.milvus235_launcher`,
    leader of its own process group)
    -> ``milvus run standalone`` (same group). The launcher writes ``launcher-ready.json`` with the
    ports really bound, the milvus PID and any start error; the parent reads it and then checks that
    ``MilvusClient(uri).list_collections()`` works.

    Ports: all Milvus ports (proxy, coords, nodes, embedded etcd client *and peer*, metrics/health)
    are picked with :func:`free_port` on the first start and reused on restarts, so ``uri`` normally
    stays the same; if a port cannot be bound again, the launcher picks another and ``uri`` follows.
    The embedded etcd would otherwise always listen on 2379/2380 (the template's etcd_port is not used
    by embedded etcd), so an ``embedEtcd.yaml`` is written and passed via ``ETCD_CONFIG_PATH``.

    Other settings: every role advertises 127.0.0.1 (``<role>.ip``; the gRPC listeners themselves
    still bind all interfaces in 2.3.5); ``AWS_EC2_METADATA_DISABLED=true`` and ``minio.region`` keep
    the AWS C++ SDK inside milvus away from 169.254.169.254; ``common.session.ttl`` = ``session_ttl``
    (10 s instead of 30 s) so that after :meth:`kill` loads/queries stop waiting for the dead node's
    session sooner; ``common.gracefulStopTimeout`` = ``graceful_stop_seconds``.

    Stopping: SIGTERM often makes milvus abort (exit -6) or hang; the launcher SIGKILLs it after
    ``graceful_stop_seconds + 5`` s. :meth:`kill` is an immediate SIGKILL of the whole group (a crash);
    data that was flushed survives both, and a restart keeps the ports (``uri``).

    Logs: ``data_dir/launcher.log`` and ``data_dir/milvus/logs/`` (``milvus-stdout.log`` is overwritten
    on every start; the ``standalone-N.log`` files are kept). Milvus 2.3.5 ignores ``MILVUS_RUN_DIR``:
    it writes ``/run/milvus/standalone.pid`` (shared by all instances, harmless) and
    ``/tmp/milvus/server_id_<pid>`` files.
    """

    name = "milvus-2.3.5"
    version = "2.3.5"
    default_start_timeout = 180.0
    default_stop_timeout = 20.0

    def __init__(
        self,
        data_dir: Path | str,
        s3: S3Server,
        bucket: str = "milvus-data",
        root_path: str = "files",
        extra_config: dict[str, Any] | None = None,
        graceful_stop_seconds: int = 5,
        session_ttl: int = 10,
        token: str = "",
    ) -> None:
        super().__init__(data_dir, port=0)
        self.s3 = s3
        self.bucket = bucket
        self.root_path = root_path
        self.extra_config = dict(extra_config or {})
        self.graceful_stop_seconds = graceful_stop_seconds
        self.session_ttl = session_ttl
        #: ``user:password`` to log in with (authorization on: ``root:Milvus``); used by the readiness check
        self.token = token
        self._ports: dict[str, int] | None = None  # milvus config ports, kept across restarts
        self._webservice_port: int | None = None
        self._etcd_peer_port: int | None = None
        self._milvus_pid: int | None = None
        self._ready_info: dict[str, Any] | None = None

    # -- paths / properties ------------------------------------------------------------------------
    @property
    def milvus_dir(self) -> Path:
        """MilvusServerConfig's data_dir: bin/, configs/, data/, logs/, run/ live here."""
        return self.data_dir / "milvus"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "launcher.log"

    @property
    def ready_file(self) -> Path:
        return self.data_dir / "launcher-ready.json"

    @property
    def spec_file(self) -> Path:
        return self.data_dir / "launcher-spec.json"

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ports(self) -> dict[str, int]:
        """All ports of the running (or last) instance, by milvus config key."""
        ports = dict(self._ports or {})
        if self._webservice_port:
            ports["webservice_port"] = self._webservice_port
        if self._etcd_peer_port:
            ports["etcd_peer_port"] = self._etcd_peer_port
        return ports

    @property
    def milvus_pid(self) -> int | None:
        return self._milvus_pid

    # -- process -----------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "common.storageType": "minio",
            "common.gracefulStopTimeout": self.graceful_stop_seconds,
            # after a crash (kill), load/query wait until the dead node's etcd session expires: 30s by default
            "common.session.ttl": self.session_ttl,
            "minio.address": HOST,
            "minio.port": self.s3.port,
            "minio.accessKeyID": self.s3.access_key,
            "minio.secretAccessKey": self.s3.secret_key,
            "minio.bucketName": self.bucket,
            "minio.rootPath": self.root_path,
            "minio.useSSL": "false",
            "minio.useIAM": "false",
            "minio.region": "us-east-1",
        }
        # components advertise 127.0.0.1 to each other instead of the first non-loopback address
        # (2.3.5 still *listens* on all interfaces; that cannot be configured in this version)
        for role in MILVUS235_ROLES:
            config[f"{role}.ip"] = HOST
        config.update(self.extra_config)
        return config

    def _before_spawn(self) -> None:
        self.s3.ensure_started()
        self.s3.create_bucket(self.bucket)
        if self._ports is None:
            self._ports = {key: free_port() for key in MILVUS235_PORT_KEYS}
            self._webservice_port = free_port()
            self._etcd_peer_port = free_port()
        self._port = self._ports["proxy_port"]
        self.ready_file.unlink(missing_ok=True)
        self._ready_info = None
        self._milvus_pid = None
        spec = {
            "data_dir": str(self.milvus_dir),
            "ports": self._ports,
            "webservice_port": self._webservice_port,
            "etcd_peer_port": self._etcd_peer_port,
            "config": self._config(),
            "ready_file": str(self.ready_file),
            "parent_pid": os.getpid(),
            "grace": self.graceful_stop_seconds + 5,  # milvus often ignores its own timeout
            "start_timeout": self.default_start_timeout,
            "pdeathsig": pdeathsig_supported(),
        }
        self.spec_file.write_text(json.dumps(spec, indent=2))

    def _command(self) -> list[str]:
        return [sys.executable, str(Path(launcher.__file__).resolve()), str(self.spec_file)]

    def _spawn_command(self) -> list[str]:
        # the launcher sets PR_SET_PDEATHSIG itself (spec "pdeathsig") and watches its parent
        return self._command()

    def _env(self) -> dict[str, str]:
        # AWS_EC2_METADATA_DISABLED: the AWS C++ SDK inside milvus otherwise asks the EC2 metadata
        # service (169.254.169.254) for a region when it builds its S3 client.
        return {**os.environ, "PYTHONUNBUFFERED": "1", "AWS_EC2_METADATA_DISABLED": "true"}

    def _is_ready(self) -> bool:
        if self._ready_info is None:
            if not self.ready_file.exists():
                return False
            info = json.loads(self.ready_file.read_text())
            if info.get("error"):
                raise ServerStartError(
                    f"milvus 2.3.5 launcher failed: {info['error']}\n" + self._failure_details()
                )
            self._ready_info = info
            self._milvus_pid = int(info["milvus_pid"])
            self._ports = {key: int(val) for key, val in info["ports"].items()}
            self._webservice_port = int(info["webservice_port"])
            self._etcd_peer_port = int(info["etcd_peer_port"])
            self._port = self._ports["proxy_port"]
        return milvus_answers(self.uri, timeout=5, token=self.token)

    def _failure_details(self) -> str:
        logs = self.milvus_dir / "logs"
        parts = [f"--- {self.log_path} ---\n{log_tail(self.log_path, 20)}"]
        for path in (logs / "milvus-stderr.log", logs / "milvus-stdout.log", logs / "milvus.log"):
            if path.exists():
                parts.append(f"--- {path} ---\n{log_tail(path, 20)}")
        return "\n".join(parts)

    def _after_stop(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        # The launcher stops milvus itself; make sure the milvus binary is gone too.
        pid = self._milvus_pid
        if pid is None:
            return
        deadline = time.monotonic() + max(timeout, 0) + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            log.warning("milvus pid %d still alive after its launcher exited, sending SIGKILL", pid)
            signal_group(proc.pid, signal.SIGKILL)
            signal_pid(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        for port in self.ports.values():
            if not wait_port_closed(port, timeout=5):
                log.warning("milvus port %d still open after stop", port)
