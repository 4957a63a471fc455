"""The Milvus 2.3.5 launcher: a script of its own, run by :class:`tests.support.milvus235.Milvus235Server` as
``python tests/support/milvus235_launcher.py SPEC.json`` (or ``python -m tests.support.milvus235_launcher
SPEC.json`` from the repository root).

It starts Milvus 2.3.5 with ``milvus.MilvusServer`` on the ports and settings of the spec, writes the
ports really bound (or the start error) to the spec's ``ready_file``, and stops Milvus on SIGTERM or when
its parent dies. It imports nothing from the test suite (it runs as a path, outside the package), only the
standard library and ``milvus``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Where every Milvus port listens (the same as :data:`tests.support.process.HOST`).
HOST = "127.0.0.1"

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

_PR_SET_PDEATHSIG = 1


def _set_own_pdeathsig(parent_pid: int) -> None:
    """In a child: get SIGTERM when the parent dies (exit at once if it already has)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        sys.exit("parent already gone")


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


def main(spec_path: str) -> int:
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
    if len(sys.argv) == 2:
        sys.exit(main(sys.argv[1]))
    sys.exit(f"usage: {sys.argv[0]} SPEC.json")
