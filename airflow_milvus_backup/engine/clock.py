"""The engine's clock: the current time in UTC, the one place it is read."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def now_iso() -> str:
    """Return the current time in UTC as ISO 8601 (``2026-01-01T02:00:00.123456+00:00``)."""
    return utcnow().isoformat()
