"""Milvus Lite files: which process holds a file's lock, and giving back this process' hold on a file.

Milvus Lite (``MilvusClient("x.db")``) serves the file from a gRPC server embedded in the process, which
takes an exclusive ``flock`` on ``x.db/LOCK`` until it is released: one process at a time. pymilvus keeps
that server running after ``client.close()``, so a long-lived process (Airflow's API server after the
connection's Test button, a triggerer) would keep every other process out of the file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: The lock file Milvus Lite keeps inside its data directory (the ``.db`` path).
LOCK_FILENAME = "LOCK"
PROC_LOCKS = "/proc/locks"
#: The pool the example DAGs put their Milvus tasks in (one slot: one task at a time on a Lite file).
EXAMPLE_POOL = "milvus_lite"

_users_lock = threading.Lock()
_users: dict[str, int] = {}
#: whether the embedded server of a file was started inside the current blocks (so theirs to stop)
_ours: dict[str, bool] = {}


def lock_holders_from_proc_locks(text: str, dev: int, ino: int) -> list[int]:
    """Return the pids holding a ``flock`` on the file ``(dev, ino)``, read from ``/proc/locks`` text.

    A line reads ``1: FLOCK  ADVISORY  WRITE 1717 08:02:98765 0 EOF`` (device numbers in hex); lines with
    ``->`` are processes waiting for a lock, not holding it.

    :param text: the content of ``/proc/locks``.
    :param dev: ``st_dev`` of the lock file.
    :param ino: ``st_ino`` of the lock file.
    """
    pids: list[int] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6 or "->" in parts or parts[1] != "FLOCK":
            continue
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(":")
            same = (int(major, 16), int(minor, 16), int(inode)) == (os.major(dev), os.minor(dev), ino)
        except ValueError:
            continue
        if same and pid not in pids:
            pids.append(pid)
    return pids


def lock_holders(path: str) -> list[int] | None:
    """Return the pids holding the lock of the Lite file ``path`` (empty: free), or ``None`` if unknown.

    Reads ``/proc/locks`` (Linux); elsewhere tries the lock without waiting (a held lock then has no pid).
    """
    lock = os.path.join(os.path.abspath(path), LOCK_FILENAME)
    try:
        st = os.stat(lock)
    except OSError:
        return []  # no lock file: nobody ever opened it
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as f:
            return lock_holders_from_proc_locks(f.read(), st.st_dev, st.st_ino)
    except OSError:
        pass
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return []
    except OSError:
        return [0]  # held, by a process we cannot name
    finally:
        os.close(fd)


def locked_message(what: str, path: str, pids: list[int]) -> str:
    """Return the error message for a Lite file another process holds.

    :param what: what failed, e.g. ``"Connect"``.
    :param path: the Lite file.
    :param pids: the holders' pids (``0`` or none: unknown).
    """
    known = [str(p) for p in pids if p]
    who = f" (pid {', '.join(known)})" if known else ""
    return (
        f"{what}: Milvus Lite file {path} is locked by another process{who}. Run one task at a time on a "
        f"Lite file (the example DAGs put their Milvus tasks in the Airflow pool {EXAMPLE_POOL!r}), or serve "
        "it with `milvus-lite server` and use its URI for shared use."
    )


def held_elsewhere(path: str) -> list[int] | None:
    """Return the pids of other processes holding the Lite file ``path`` (``None``: not held elsewhere)."""
    holders = lock_holders(path)
    if not holders:
        return None
    others = [p for p in holders if p != os.getpid()]
    return others or None


def server_running(path: str) -> bool:
    """Return whether this process serves the Lite file ``path`` already (its embedded server is up)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover - no Milvus Lite installed
        return False
    servers = getattr(server_manager_instance, "_servers", None)
    return isinstance(servers, dict) and os.path.abspath(path) in servers


def release(path: str) -> None:
    """Stop this process' embedded server of the Lite file ``path``, which frees the file's lock."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover
        return
    server_manager_instance.release_server(os.path.abspath(path))


@contextmanager
def released_after(path: str) -> Iterator[None]:
    """Give the Lite file ``path`` back when the block ends, unless this process served it before.

    Blocks of several threads nest: the file is released when the last of them ends.

    :param path: the Lite file.
    """
    key = os.path.abspath(path)
    with _users_lock:
        if not _users.get(key):
            _ours[key] = not server_running(key)
        _users[key] = _users.get(key, 0) + 1
    try:
        yield
    finally:
        with _users_lock:
            _users[key] -= 1
            ours = False
            if not _users[key]:
                del _users[key]
                ours = _ours.pop(key, False)
        if ours:
            release(key)
            log.debug("Released Milvus Lite file %s", key)
