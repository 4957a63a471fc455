"""Progress of long work: rows, bytes, throughput and ETA, reported every few seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ProgressCallback = Callable[[dict[str, Any]], None]


def human_bytes(n: float) -> str:
    """Return ``n`` bytes as ``12.3 MB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def human_seconds(s: float | None) -> str:
    """Return seconds as ``1:02:03`` (or ``?`` when unknown)."""
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Progress:
    """Thread-safe counter that logs a progress line at most every ``interval`` seconds.

    :param what: what is being done, e.g. ``"Backup nightly"``.
    :param total_rows: rows expected (0 when unknown).
    :param logger: where progress lines go.
    :param callback: also called with the figures, for callers that show progress elsewhere.
    :param interval: seconds between two progress lines.
    """

    what: str
    total_rows: int = 0
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("airflow_milvus_backup"))
    callback: ProgressCallback | None = None
    interval: float = 5.0
    rows: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rows: int = 0, nbytes: int = 0) -> None:
        """Count work done and report if the interval has passed."""
        with self._lock:
            self.rows += rows
            self.bytes += nbytes
            now = time.monotonic()
            due = now - self._last >= self.interval
            if due:
                self._last = now
        if due:
            self.report()

    def figures(self) -> dict[str, Any]:
        """Return rows, total, bytes, elapsed seconds, rows/s, MB/s and ETA seconds."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.rows / elapsed
        eta = (self.total_rows - self.rows) / rate if rate > 0 and self.total_rows >= self.rows else None
        return {
            "what": self.what,
            "rows": self.rows,
            "total_rows": self.total_rows,
            "bytes": self.bytes,
            "seconds": round(elapsed, 3),
            "rows_per_second": round(rate, 1),
            "mb_per_second": round(self.bytes / elapsed / 1e6, 3),
            "eta_seconds": None if eta is None else round(eta, 1),
        }

    def report(self, final: bool = False) -> None:
        """Log one progress line now."""
        f = self.figures()
        pct = f" ({100.0 * f['rows'] / f['total_rows']:.1f}%)" if f["total_rows"] else ""
        self.logger.info(
            "%s: %s%s rows%s, %s, %s rows/s, %s/s, %s %s",
            self.what,
            f"{f['rows']:,}",
            f"/{f['total_rows']:,}" if f["total_rows"] else "",
            pct,
            human_bytes(f["bytes"]),
            f"{f['rows_per_second']:,.0f}",
            human_bytes(f["bytes"] / max(f["seconds"], 1e-9)),
            "done in" if final else "ETA",
            human_seconds(f["seconds"] if final else f["eta_seconds"]),
        )
        if self.callback:
            self.callback(f)
