"""Leases: small JSON objects that say "this process is working on this", with liveness.

A lease is alive while its process runs: on the same host we ask the OS whether the pid exists (in this very
process: whether a :class:`Lease` still holds it, so a failed backup or restore whose lease could not be
deleted does not block a re-run in the same process); from another host we trust its heartbeat for ``ttl``
seconds. Used for backup locks and running restores.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.clock import now_iso, utcnow
from airflow_milvus_backup.engine.errors import BackupDeletedError

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

log = logging.getLogger(__name__)
DEFAULT_TTL = 120.0

#: Lease ids held by :class:`Lease` objects of this process (written and not released), with a count.
_held: dict[str, int] = {}
_held_lock = threading.Lock()


def pid_alive(pid: int) -> bool:
    """Return whether a process with that pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(body: dict[str, Any], ttl: float = DEFAULT_TTL) -> bool:
    """Return whether the holder of a lease body is still working."""
    if body.get("host") == socket.gethostname() and isinstance(body.get("pid"), int):
        if body["pid"] == os.getpid():
            with _held_lock:
                if not _held.get(str(body.get("id")), 0):
                    return False
        elif not pid_alive(body["pid"]):
            return False
    try:
        beat = datetime.fromisoformat(str(body.get("heartbeat_at")))
    except ValueError:
        return False
    return (utcnow() - beat).total_seconds() < float(body.get("ttl", ttl))


class Lease:
    """A heartbeat-refreshed object at ``key`` in ``storage``.

    :param storage: where the lease lives.
    :param key: its key.
    :param body: extra JSON fields (what is being done).
    :param ttl: seconds after the last heartbeat at which another host may consider it dead.
    """

    def __init__(
        self, storage: Storage, key: str, body: dict[str, Any] | None = None, ttl: float = DEFAULT_TTL
    ) -> None:
        self.storage = storage
        self.key = key
        self.id = uuid.uuid4().hex
        self.ttl = ttl
        self.body: dict[str, Any] = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now_iso(),
            "ttl": ttl,
            **(body or {}),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    def payload(self) -> bytes:
        """Return the lease's JSON with a fresh heartbeat."""
        self.body["heartbeat_at"] = now_iso()
        return json.dumps(self.body, sort_keys=True).encode()

    def write(self, exclusive: bool = False) -> bool:
        """Write (or refresh) the lease; with ``exclusive``, only if the key does not exist."""
        if exclusive:
            stored = self.storage.put_if_absent(self.key, self.payload())
        else:
            self.storage.put_bytes(self.key, self.payload())
            stored = True
        if stored:
            self._hold()
        return stored

    def _hold(self) -> None:
        # Only a lease that names this process, and is not being released, counts as held here.
        if self.body.get("pid") != os.getpid() or self._stop.is_set():
            return
        with _held_lock:
            if not self._held:
                lid = str(self.body.get("id"))
                _held[lid] = _held.get(lid, 0) + 1
                self._held = True

    def _unhold(self) -> None:
        with _held_lock:
            if self._held:
                lid = str(self.body.get("id"))
                _held[lid] = _held.get(lid, 1) - 1
                if _held[lid] <= 0:
                    del _held[lid]
                self._held = False

    def start_heartbeat(self) -> None:
        """Refresh the lease every ``ttl / 4`` seconds in a daemon thread until :meth:`release`."""

        def beat() -> None:
            while not self._stop.wait(self.ttl / 4):
                try:
                    self.write()
                except BackupDeletedError as e:
                    # what the lease stands for is gone: writing again would re-create it
                    log.warning("Stopped refreshing %s: %s", self.key, e)
                    return
                except Exception as e:  # noqa: BLE001 - a missed heartbeat is not fatal
                    log.warning("Could not refresh %s: %s", self.key, e)

        self._thread = threading.Thread(target=beat, name=f"lease-{self.id[:8]}", daemon=True)
        self._thread.start()

    def release(self, delete: bool = True) -> None:
        """Stop the heartbeat and (by default) delete the lease."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._unhold()
        if delete:
            try:
                self.storage.delete([self.key])
            except Exception as e:  # noqa: BLE001
                log.warning("Could not delete %s: %s", self.key, e)


def read_leases(storage: Storage, prefix: str) -> list[dict[str, Any]]:
    """Return the parsed bodies of every lease under ``prefix`` (unreadable ones are skipped)."""
    out = []
    for obj in storage.list(prefix):
        try:
            body = json.loads(storage.get_bytes(obj.key))
        except Exception:  # noqa: BLE001 - a lease being deleted or half-written
            continue
        if isinstance(body, dict):
            body["_key"] = obj.key
            out.append(body)
    return out
