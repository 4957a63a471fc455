"""Processes for the test servers: free ports, process groups, PR_SET_PDEATHSIG, the base server class.

Every server runs in its own process group (``start_new_session``) and is stopped with SIGTERM, then
SIGKILL, by its own PID / process group. An ``atexit`` hook stops whatever is still running, and the
children get ``PR_SET_PDEATHSIG`` so they do not outlive a test process that is killed outright.

The servers themselves are in :mod:`tests.support.s3`, :mod:`tests.support.lite` and
:mod:`tests.support.milvus235`. This module has no pytest dependency.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

log = logging.getLogger(__name__)

_S = TypeVar("_S", bound="ProcessServer")

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


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


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


def pdeathsig_supported() -> bool:
    """PR_SET_PDEATHSIG fires when the *thread* that spawned the child dies: main thread only."""
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def _with_pdeathsig(cmd: list[str]) -> list[str]:
    """Wrap cmd so the child gets SIGTERM if this process dies without stopping it."""
    if not pdeathsig_supported():
        return cmd
    return [sys.executable, "-c", _PDEATHSIG_SHIM, str(os.getpid()), *cmd]


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Deprecated, always None: no preexec_fn is used (see _PDEATHSIG_SHIM); kept for :func:`plain_spawn`."""
    return None


@contextlib.contextmanager
def plain_spawn() -> Iterator[None]:
    """Start servers without a ``preexec_fn`` (PR_SET_PDEATHSIG) for the duration of the block.

    A ``preexec_fn`` makes Python fork instead of vfork; once gRPC (pymilvus) runs in this process, about one
    such child in eight aborts (SIGABRT in gRPC's fork handler) before it execs. Tests that start and
    restart servers after pymilvus is in use spawn them plainly; ``stop()`` and the atexit hook still stop
    them. (Servers are now spawned behind :data:`_PDEATHSIG_SHIM`, with no ``preexec_fn`` at all, so this
    only keeps :func:`_pdeathsig_preexec` out of the way for the tests that ask for it.)
    """
    global _pdeathsig_preexec
    original = _pdeathsig_preexec
    _pdeathsig_preexec = lambda: None  # noqa: E731
    try:
        yield
    finally:
        _pdeathsig_preexec = original


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """Yield the port of a server that accepts TCP connections and never answers (a hung server)."""
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _stop_process_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the child's process group, wait up to timeout, then SIGKILL it; always reaps the child."""
    if proc.poll() is None:
        if timeout > 0:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not exit %.1fs after SIGTERM, sending SIGKILL", proc.pid, timeout)
                signal_group(proc.pid, signal.SIGKILL)
        else:
            signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        log.error("pid %d survived SIGKILL", proc.pid)


class ServerStartError(RuntimeError):
    """A server failed to start (as opposed to: is not ready yet)."""


# registry of started servers, for the atexit safety net
_running: dict[int, ProcessServer] = {}
_running_lock = threading.Lock()


def _register(server: ProcessServer) -> None:
    with _running_lock:
        _running[id(server)] = server


def _unregister(server: ProcessServer) -> None:
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


class ProcessServer:
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
