"""Real servers for the test suite, each on 127.0.0.1 and a free port.

* :class:`S3Server` - ``rclone serve s3`` over a local directory (one sub-directory per bucket).
* :class:`MotoS3Server` - ``moto_server`` (in-memory S3, lost on restart).
* :class:`MilvusLiteServer` - ``milvus-lite server`` (gRPC Milvus Lite over a data directory).
* :class:`Milvus235Server` - a real Milvus 2.3.5 standalone (PyPI package ``milvus``) whose object
  storage is an :class:`S3Server`.

Every server runs in its own process group (``start_new_session``) and is stopped with SIGTERM, then
SIGKILL, by its own PID / process group. An ``atexit`` hook stops whatever is still running, and the
children get ``PR_SET_PDEATHSIG`` so they do not outlive a test process that is killed outright.

This module has no pytest dependency. Run as a script it is the Milvus 2.3.5 launcher (see
:func:`_milvus235_launcher_main`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from pymilvus import MilvusClient

log = logging.getLogger(__name__)

_S = TypeVar("_S", bound="_ProcessServer")

HOST = "127.0.0.1"
BIN_DIR = Path(sys.executable).parent

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and was not handed out before by this process."""
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def port_is_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(port: int, timeout: float = 10.0) -> bool:
    """Wait until nothing listens on 127.0.0.1:port; True if it closed in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_is_open(port, timeout=0.2):
            return True
        time.sleep(0.1)
    return False


def find_executable(name: str) -> str:
    """Find a console script next to sys.executable (the venv's bin dir), else on PATH."""
    candidate = BIN_DIR / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} is neither in {BIN_DIR} nor on PATH")
    return found


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


_PR_SET_PDEATHSIG = 1

# Runs as `python -c _PDEATHSIG_SHIM PARENT_PID CMD...`: asks for SIGTERM when the parent dies, then execs
# CMD (PDEATHSIG survives execve). Doing this in a shim instead of a preexec_fn keeps subprocess on its
# vfork/posix_spawn path: with a preexec_fn Python really fork()s, and once gRPC (pymilvus) runs in the
# test process its fork handlers make some of those children abort before they exec.
_PDEATHSIG_SHIM = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('parent already gone')\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def _pdeathsig_supported() -> bool:
    """PR_SET_PDEATHSIG fires when the *thread* that spawned the child dies: main thread only."""
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def _with_pdeathsig(cmd: list[str]) -> list[str]:
    """Wrap cmd so the child gets SIGTERM if this process dies without stopping it."""
    if not _pdeathsig_supported():
        return cmd
    return [sys.executable, "-c", _PDEATHSIG_SHIM, str(os.getpid()), *cmd]


def _set_own_pdeathsig(parent_pid: int) -> None:
    """In a child: get SIGTERM when the parent dies (exit at once if it already has)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        sys.exit("parent already gone")


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Deprecated, always None: no preexec_fn is used (see _PDEATHSIG_SHIM); kept for callers patching it."""
    return None


def _stop_process_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the child's process group, wait up to timeout, then SIGKILL it; always reaps the child."""
    if proc.poll() is None:
        if timeout > 0:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not exit %.1fs after SIGTERM, sending SIGKILL", proc.pid, timeout)
                _signal_group(proc.pid, signal.SIGKILL)
        else:
            _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        log.error("pid %d survived SIGKILL", proc.pid)


class ServerStartError(RuntimeError):
    """A server failed to start (as opposed to: is not ready yet)."""


# registry of started servers, for the atexit safety net
_running: dict[int, _ProcessServer] = {}
_running_lock = threading.Lock()


def _register(server: _ProcessServer) -> None:
    with _running_lock:
        _running[id(server)] = server


def _unregister(server: _ProcessServer) -> None:
    with _running_lock:
        _running.pop(id(server), None)


def stop_all(timeout: float = 5.0) -> None:
    """Stop every server this process started and that is still running."""
    with _running_lock:
        servers = list(_running.values())
    for server in servers:
        try:
            server.stop(timeout=timeout)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            log.exception("failed to stop %r", server)


atexit.register(stop_all)


# --------------------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------------------


class _ProcessServer:
    """A server process on 127.0.0.1:port, in its own process group, logging to a file in data_dir."""

    name = "server"
    default_start_timeout = 60.0
    default_stop_timeout = 10.0

    def __init__(self, data_dir: Path | str, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None
        self.start_seconds: float | None = None  # how long the last start() took

    # -- to override -------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _spawn_command(self) -> list[str]:
        """The command actually spawned: _command() behind the PDEATHSIG shim."""
        return _with_pdeathsig(self._command())

    def _env(self) -> dict[str, str] | None:
        return None

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _before_spawn(self) -> None:
        """Hook run right before the process is spawned."""

    def _failure_details(self) -> str:
        return f"--- {self.log_path} ---\n{log_tail(self.log_path)}"

    # -- public ------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self: _S, timeout: float | None = None) -> _S:
        """Start the server (no-op if running) and wait until it serves requests."""
        if self.running:
            return self
        if self._proc is not None:  # died on its own: reap and clean up first
            self.stop()
        began = time.monotonic()
        self._before_spawn()
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_fh.write(f"\n===== {time.strftime('%H:%M:%S')} starting {self._command()}\n".encode())
        self._log_fh.flush()
        self._proc = subprocess.Popen(
            self._spawn_command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.data_dir,
            start_new_session=True,  # own process group; no preexec_fn (see _PDEATHSIG_SHIM)
        )
        _register(self)
        log.info("%s: started pid %d on port %d", self.name, self._proc.pid, self._port)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop(timeout=2)
            raise
        self.start_seconds = time.monotonic() - began
        log.info("%s: ready on port %d after %.1fs", self.name, self._port, self.start_seconds)
        return self

    def ensure_started(self: _S) -> _S:
        """Start the server if it is not running (e.g. a test stopped it and failed before restarting)."""
        return self.start() if not self.running else self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll until the server answers; raise with the log tail if it dies or times out."""
        timeout = self.default_start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise ServerStartError(f"{self.name} is not started")
            if proc.poll() is not None:
                raise ServerStartError(
                    f"{self.name} (pid {proc.pid}) exited with code {proc.returncode} before it was ready\n"
                    + self._failure_details()
                )
            try:
                if self._is_ready():
                    return
            except ServerStartError:
                raise
            except Exception as exc:  # noqa: BLE001 - not ready yet
                log.debug("%s not ready yet: %s", self.name, exc)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} (pid {proc.pid}) not ready on port {self._port} after {timeout:.0f}s\n"
                    + self._failure_details()
                )
            time.sleep(0.1)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server: SIGTERM its process group, SIGKILL after timeout. Idempotent."""
        timeout = self.default_stop_timeout if timeout is None else timeout
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                _stop_process_group(proc, timeout)
                self._after_stop(proc, timeout)
                log.info("%s: pid %d stopped (code %s)", self.name, proc.pid, proc.returncode)
        finally:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None
            _unregister(self)
        if proc is not None and not wait_port_closed(self._port, timeout=10):
            log.warning("%s: port %d still open after stop", self.name, self._port)

    def _after_stop(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Hook run after the main process was reaped."""

    def kill(self) -> None:
        """SIGKILL the server right away (a crash, for fault tests)."""
        self.stop(timeout=0)

    def restart(self: _S, timeout: float | None = None) -> _S:
        """Stop and start again on the same port, keeping the data directory."""
        self.stop()
        return self.start(timeout)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} port={self._port} {state} data_dir={self.data_dir}>"


# --------------------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------------------


class _S3Mixin:
    """boto3 helpers shared by the S3 servers."""

    access_key: str
    secret_key: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (us-east-1, path-style addressing, few retries)."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "signature_version": "s3v4",
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        settings.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(**settings),
        )

    def _probe_client(self) -> Any:
        return self.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})

    def _create_bucket_via_api(self, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise


class S3Server(_S3Mixin, _ProcessServer):
    """``rclone serve s3`` over data_dir: every top-level directory is a bucket.

    Known rclone limits: UploadPartCopy is broken (plain CopyObject works); If-None-Match is not honoured.
    The log goes to ``data_dir/.rclone.log`` (a top-level file, which rclone does not list as a bucket).

    rclone keeps a directory cache (``--dir-cache-time``, default 5m): files created or changed straight
    on disk behind its back may not show up until then - change objects through the S3 API (or restart
    the server). Do not pass ``--dir-cache-time 0s``: rclone 1.75 then spawns a storm of cache-cleanup
    timers and deadlocks under concurrent PutObject (seen with Milvus 2.3.5 flushing to it).
    """

    name = "rclone-s3"
    default_start_timeout = 30.0

    def __init__(
        self,
        data_dir: Path | str,
        access_key: str = "testaccesskey123",
        secret_key: str = "testsecretkey456",
        port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        super().__init__(data_dir, port)
        self.access_key = access_key
        self.secret_key = secret_key
        self.extra_args = list(extra_args or [])

    @property
    def log_path(self) -> Path:
        return self.data_dir / ".rclone.log"

    def _command(self) -> list[str]:
        return [
            find_executable("rclone"),
            "serve",
            "s3",
            str(self.data_dir),
            "--addr",
            f"{HOST}:{self.port}",
            "--auth-key",
            f"{self.access_key},{self.secret_key}",
            "--config",
            "/dev/null",
            "-v",
            *self.extra_args,
        ]

    def _is_ready(self) -> bool:
        if not port_is_open(self.port):
            return False
        self._probe_client().list_buckets()
        return True

    def bucket_path(self, name: str) -> Path:
        """The directory on disk that holds bucket ``name``."""
        return self.data_dir / name

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent): via the API when running, else as a directory."""
        if self.running:
            self._create_bucket_via_api(name)
        else:
            self.bucket_path(name).mkdir(parents=True, exist_ok=True)
        return name


class MotoS3Server(_S3Mixin, _ProcessServer):
    """``moto_server``: an in-memory S3 (everything is lost when it stops). Any keys are accepted."""

    name = "moto-s3"
    default_start_timeout = 60.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        access_key: str = "testing",
        secret_key: str = "testing",
        port: int | None = None,
    ) -> None:
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="moto-server-")
        super().__init__(data_dir, port)
        self.access_key = access_key
        self.secret_key = secret_key

    def _command(self) -> list[str]:
        return [find_executable("moto_server"), "-H", HOST, "-p", str(self.port)]

    def _is_ready(self) -> bool:
        if not port_is_open(self.port):
            return False
        self._probe_client().list_buckets()
        return True

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent)."""
        self._create_bucket_via_api(name)
        return name

    def reset(self) -> None:
        """Drop all moto state (buckets and objects)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


# --------------------------------------------------------------------------------------------------
# Milvus
# --------------------------------------------------------------------------------------------------


def milvus_answers(uri: str, timeout: float = 5.0) -> bool:
    """True if a pymilvus MilvusClient at uri can list collections."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=timeout)
    try:
        client.list_collections(timeout=timeout)
    finally:
        client.close()
    return True


def open_client(uri: str, **kwargs: Any) -> MilvusClient:
    """Open a ``MilvusClient`` as the engine does (``engine.client.connect``): a channel of its own, and
    connecting again when the server answers with GOAWAY ("too many pings" on a shared idle connection).

    :param kwargs: other :class:`MilvusParams` fields (``token``, ``timeout``, ...).
    """
    from airflow_milvus_backup.engine.client import MilvusParams, connect

    return connect(MilvusParams(uri=uri, **kwargs))


class MilvusLiteServer(_ProcessServer):
    """``milvus-lite server``: Milvus Lite over gRPC; data in ``data_dir/data``.

    It ignores SIGINT, so it is stopped with SIGTERM (then SIGKILL).
    """

    name = "milvus-lite"
    default_start_timeout = 60.0

    def __init__(self, data_dir: Path | str, port: int | None = None, max_workers: int = 10) -> None:
        super().__init__(data_dir, port)
        self.max_workers = max_workers

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _command(self) -> list[str]:
        return [
            find_executable("milvus-lite"),
            "server",
            "--data-dir",
            str(self.db_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--max-workers",
            str(self.max_workers),
        ]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def _is_ready(self) -> bool:
        return port_is_open(self.port) and milvus_answers(self.uri, timeout=3)


# Every "*_port" key of the milvus 2.3.5 config template (milvus/data/config.yaml.template).
MILVUS235_PORT_KEYS = (
    "etcd_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)

# config sections of the roles that have an "ip" (advertised address) setting
MILVUS235_ROLES = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


class Milvus235Server(_ProcessServer):
    """A real Milvus 2.3.5 standalone (PyPI ``milvus``) storing its data in ``bucket`` on an S3Server.

    The process tree is ``python servers.py <spec>`` (the launcher, leader of its own process group)
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
    ) -> None:
        super().__init__(data_dir, port=0)
        self.s3 = s3
        self.bucket = bucket
        self.root_path = root_path
        self.extra_config = dict(extra_config or {})
        self.graceful_stop_seconds = graceful_stop_seconds
        self.session_ttl = session_ttl
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
            "pdeathsig": _pdeathsig_supported(),
        }
        self.spec_file.write_text(json.dumps(spec, indent=2))

    def _command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--milvus235-launcher", str(self.spec_file)]

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
        return milvus_answers(self.uri, timeout=5)

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
            _signal_group(proc.pid, signal.SIGKILL)
            _signal_pid(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        for port in self.ports.values():
            if not wait_port_closed(port, timeout=5):
                log.warning("milvus port %d still open after stop", port)


# --------------------------------------------------------------------------------------------------
# Milvus 2.3.5 launcher (runs in its own process, as `python servers.py --milvus235-launcher SPEC`)
# --------------------------------------------------------------------------------------------------


class _LauncherStop(Exception):
    """Raised by the launcher's SIGTERM handler."""


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError:
            return False
    return True


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _milvus235_launcher_main(spec_path: str) -> int:
    """Start Milvus 2.3.5 via milvus.MilvusServer, report its ports, stop it on SIGTERM / parent death."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher %(levelname)s %(message)s")
    spec = json.loads(Path(spec_path).read_text())
    ready_file = Path(spec["ready_file"])
    parent_pid = int(spec["parent_pid"])
    if spec.get("pdeathsig"):
        _set_own_pdeathsig(parent_pid)

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _LauncherStop

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)

    from milvus import MilvusServer, MilvusServerConfig

    class ReusableConfig(MilvusServerConfig):
        # like the original, but with SO_REUSEADDR so a port in TIME_WAIT (restart) can be bound again
        def try_bind_port(self, port: int) -> socket.socket | None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((HOST, port))
                sock.listen()
                return sock
            except OSError:
                sock.close()
                return None

    server: Any = None
    try:
        ports = {key: int(val) for key, val in (spec.get("ports") or {}).items()}
        for key, port in list(ports.items()):
            if not _can_bind(port):
                log.warning("port %d for %s is taken, letting milvus pick another", port, key)
                del ports[key]
        data_dir = Path(spec["data_dir"])
        config = ReusableConfig(data_dir=str(data_dir), **ports)
        server = MilvusServer(config, wait_for_started=False)
        for key, value in spec["config"].items():
            server.config.set(key, value)
        server.webservice_port = int(spec["webservice_port"])

        # embedded etcd: own client + peer ports instead of the fixed 2379/2380
        config.resolve()
        etcd_port = int(config.get("etcd_port"))
        peer_port = int(spec["etcd_peer_port"])
        if not _can_bind(peer_port):
            with socket.socket() as sock:
                sock.bind((HOST, 0))
                peer_port = int(sock.getsockname()[1])
        etcd_yaml = data_dir / "configs" / "embedEtcd.yaml"
        etcd_yaml.write_text(
            "name: milvus-test\n"
            f"listen-client-urls: http://{HOST}:{etcd_port}\n"
            f"advertise-client-urls: http://{HOST}:{etcd_port}\n"
            f"listen-peer-urls: http://{HOST}:{peer_port}\n"
            f"initial-advertise-peer-urls: http://{HOST}:{peer_port}\n"
            f"initial-cluster: milvus-test=http://{HOST}:{peer_port}\n"
        )
        os.environ["ETCD_CONFIG_PATH"] = str(etcd_yaml)
        # resolve() is called again by start(); keep the ports it resolved first
        for key in MILVUS235_PORT_KEYS:
            config.configs[key] = config.get(key)

        server.start()
        milvus_pid = server.server_proc.pid
        log.info("milvus pid %d, proxy port %d, waiting for /healthz", milvus_pid, server.listen_port)
        health = f"http://{HOST}:{server.webservice_port}/healthz"
        deadline = time.monotonic() + float(spec.get("start_timeout", 180))
        while True:
            if server.server_proc.poll() is not None:
                raise RuntimeError(f"milvus exited with code {server.server_proc.returncode} during start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"milvus /healthz not OK after {spec.get('start_timeout')}s")
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    if b"OK" in resp.read():
                        break
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        info = {
            "milvus_pid": milvus_pid,
            "launcher_pid": os.getpid(),
            "port": server.listen_port,
            "webservice_port": server.webservice_port,
            "etcd_peer_port": peer_port,
            "ports": {key: int(config.get(key)) for key in MILVUS235_PORT_KEYS},
        }
        _write_json_atomic(ready_file, info)
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        while server.server_proc.poll() is None:
            if os.getppid() != parent_pid:
                log.warning("parent %d is gone, stopping milvus", parent_pid)
                break
            time.sleep(0.5)
        else:
            log.error("milvus exited on its own with code %s", server.server_proc.returncode)
        return 0
    except _LauncherStop:
        log.info("SIGTERM: stopping milvus")
        return 0
    except BaseException as exc:
        log.exception("milvus 2.3.5 launcher failed")
        with contextlib.suppress(OSError):
            _write_json_atomic(ready_file, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None and server.server_proc is not None:
            proc = server.server_proc
            began = time.monotonic()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=float(spec.get("grace", 10)))
                except subprocess.TimeoutExpired:
                    log.warning("milvus did not stop in time, SIGKILL")
                    proc.kill()
                    proc.wait(timeout=30)
            log.info("milvus exited with code %s (%.1fs)", proc.returncode, time.monotonic() - began)
            server.server_proc = None
            for fh in server.proc_fds.values():
                fh.close()
            server.proc_fds.clear()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--milvus235-launcher":
        sys.exit(_milvus235_launcher_main(sys.argv[2]))
    sys.exit(f"usage: {sys.argv[0]} --milvus235-launcher SPEC.json")
