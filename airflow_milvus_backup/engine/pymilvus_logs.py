"""pymilvus' log lines in task logs: through the task's logger, at their real level, explained once.

pymilvus logs to stderr through a handler of its own (``propagate=False``); Airflow's task supervisor logs
every stderr line of a task as an ERROR. So a successful backup showed red "failed to get mvccTs ... use
client-side ts" lines (``query_iterator`` on servers without MVCC timestamps: Milvus Lite, 2.3.5), and
pymilvus' "RPC error: [...]" lines for errors it raises to a caller that handles them. Milvus Lite's gRPC
server, embedded in this process, logs "Exception calling application: Method not implemented!" with a
traceback for a call it lacks (pymilvus then carries on).

While a :class:`PymilvusLogRouter` is active, a filter on those loggers hands such records to the router's
logger instead, at the level :func:`route` decides, and the known ones get a plain-words explanation once
per router.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

#: Plain-words explanations, by the key :func:`route` returns; ``%s`` is the Milvus address.
EXPLANATIONS = {
    "no_mvcc": (
        "Milvus at %s has no MVCC timestamps: each page is read as of when it is read "
        "(see FORMAT.md, consistency)"
    ),
}
#: Loggers that emit the lines routed here (children of ``pymilvus`` found at activation are added).
KNOWN_LOGGERS = (
    "pymilvus",
    "pymilvus.client.iterator.query_iterator",
    "pymilvus.client.iterator.search_iterator",
    "pymilvus.decorators",
    "pymilvus.client.grpc_handler",
    "pymilvus.milvus_client.milvus_client",
    "grpc._server",
)


def route(record: logging.LogRecord) -> tuple[int, str | None] | None:
    """Decide how a log record of pymilvus (or of an in-process Milvus Lite server) reaches the task log.

    :param record: the record.
    :returns: ``(level, explanation key or None)``, or ``None`` to leave the record as it is.
    """
    name, msg = record.name, record.getMessage()
    if name == "grpc._server":
        # Milvus Lite's server: a call it lacks; the client gets UNIMPLEMENTED and decides.
        return (logging.INFO, None) if "Method not implemented" in msg else None
    if name != "pymilvus" and not name.startswith("pymilvus."):
        return None
    if "mvccTs" in msg:
        return logging.INFO, "no_mvcc"
    if record.levelno >= logging.ERROR:
        # pymilvus logs each error it raises; the caller handles it or raises its own, clearer error.
        return logging.INFO, None
    return record.levelno, None


class _Filter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        decision = route(record)
        router = _current()
        if decision is None or router is None:
            return True
        router.emit(record, *decision)
        return False


_FILTER = _Filter()
_active_lock = threading.Lock()
_active: list[PymilvusLogRouter] = []
_filtered: list[logging.Logger] = []


def _current() -> PymilvusLogRouter | None:
    with _active_lock:
        return _active[-1] if _active else None


def _install() -> None:
    names = set(KNOWN_LOGGERS)
    names.update(n for n in logging.root.manager.loggerDict if n.startswith("pymilvus."))
    for n in sorted(names):
        logger = logging.getLogger(n)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
            _filtered.append(logger)


def _uninstall() -> None:
    while _filtered:
        _filtered.pop().removeFilter(_FILTER)


class PymilvusLogRouter:
    """While active (``with router:``), send pymilvus' log lines to ``logger`` as :func:`route` decides.

    Re-entrant, and usable from several threads (pages are read in threads): lines go to the router
    entered last. Each explanation is logged once per router, so one router per task.

    :param logger: the task's logger.
    :param address: the Milvus address the explanations name.
    :param scrub: removes secrets from routed messages.
    """

    def __init__(
        self, logger: logging.Logger, address: str, scrub: Callable[[str], str] | None = None
    ) -> None:
        self.logger = logger
        self.address = address
        self.scrub = scrub
        self._explained: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> PymilvusLogRouter:
        with _active_lock:
            _active.append(self)
            if len(_active) == 1:
                _install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _active_lock:
            for i in range(len(_active) - 1, -1, -1):
                if _active[i] is self:
                    del _active[i]
                    break
            if not _active:
                _uninstall()

    def emit(self, record: logging.LogRecord, level: int, key: str | None) -> None:
        """Log ``record`` at ``level`` (and the explanation ``key`` the first time)."""
        first = False
        if key is not None:
            with self._lock:
                first = key not in self._explained
                self._explained.add(key)
        if first:
            self.logger.warning(EXPLANATIONS[key or ""], self.address)
        elif key is not None:
            level = logging.DEBUG  # explained already
        msg = record.getMessage()
        if self.scrub is not None:
            msg = self.scrub(msg)
        self.logger.log(level, "%s: %s", record.name, msg)


# ------------------------------------------------------------------------ client-side session timestamps
class _FallbackWatch(logging.Filter):
    """Note the threads on which ``query_iterator`` fell back to a client-side session timestamp."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.threads: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if "mvccTs" in record.getMessage() and record.thread is not None:
            with self.lock:
                self.threads.add(record.thread)
        return True  # only watched: the line goes on as before


_WATCH = _FallbackWatch()
logging.getLogger("pymilvus.client.iterator.query_iterator").filters.insert(0, _WATCH)


def used_client_side_ts(setup: Callable[[], object]) -> bool:
    """Run ``setup`` (which creates a ``query_iterator``): was its session timestamp the client's clock?

    pymilvus falls back to "now + 1 s" by the client's clock when the server gives no MVCC timestamp
    (Milvus 2.3.5, Milvus Lite). That is no snapshot: Milvus' timestamp oracle may run seconds ahead of the
    wall clock (it reserves a window ahead across restarts), and a read as of the client's clock then misses
    rows written just before the backup.
    """
    me = threading.get_ident()
    with _WATCH.lock:
        _WATCH.threads.discard(me)
    setup()
    with _WATCH.lock:
        fell_back = me in _WATCH.threads
        _WATCH.threads.discard(me)
    return fell_back
