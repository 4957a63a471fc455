"""Argument checks run before any work: counts, seconds, durations and directories, one clear message each.

Templated operator arguments arrive as strings ("7", "86400"), so numeric strings are accepted; what is not
a whole number where one is needed (``2.7``), not finite (``inf``, ``nan``), negative or absurdly large is
refused with :class:`~airflow_milvus_backup.engine.errors.InvalidArgumentError` naming the argument, instead
of being rounded, overflowing later, or failing after a target was created.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

from airflow_milvus_backup.engine.errors import InvalidArgumentError

#: the longest duration accepted (retention ages, grace periods): longer means "forever", say so with None
MAX_DURATION = timedelta(days=36_500)
#: the largest count accepted where none is given (parallelism, batch rows, attempts...)
MAX_COUNT = 1_000_000_000


def _number(value: Any, name: str, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}.")
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) else value
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise InvalidArgumentError(f"{name} must be {what}, got {value!r}.") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r} (not a finite number).")
    return number


def count(value: Any, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """Return ``value`` as a whole number between ``minimum`` and ``maximum``.

    :param value: an int, or a string or float holding a whole number (``"7"``, ``7.0``).
    :param name: the argument's name, for the message.
    :param minimum: the smallest value allowed.
    :param maximum: the largest value allowed.
    """
    what = f"a whole number from {minimum} to {maximum:,}"
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        x = _number(value, name, what)
        if x != math.floor(x):
            raise InvalidArgumentError(f"{name} must be a whole number, got {value!r}; it is not rounded.")
        n = int(x)
    if not minimum <= n <= maximum:
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}.")
    return n


def seconds(
    value: Any, name: str, *, minimum: float = 0.0, maximum: float = MAX_DURATION.total_seconds()
) -> float:
    """Return ``value`` as a finite number of seconds between ``minimum`` and ``maximum``.

    :param value: a number, a numeric string or a :class:`~datetime.timedelta`.
    :param name: the argument's name, for the message.
    :param minimum: the smallest value allowed.
    :param maximum: the largest value allowed.
    """
    what = f"a number of seconds from {minimum:g} to {maximum:g}"
    x = value.total_seconds() if isinstance(value, timedelta) else _number(value, name, what)
    if not minimum <= x <= maximum:
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}.")
    return float(x)


def duration(value: Any, name: str, *, maximum: timedelta = MAX_DURATION) -> timedelta | None:
    """Return ``value`` as a :class:`~datetime.timedelta` (``None`` or ``""`` stay ``None``).

    :param value: a timedelta, or a number of seconds (also as a string).
    :param name: the argument's name, for the message.
    :param maximum: the longest duration allowed.
    """
    if value is None or value == "":
        return None
    what = f"a timedelta or a number of seconds, from 0 to {maximum.days:,} days"
    x = value.total_seconds() if isinstance(value, timedelta) else _number(value, name, what)
    if x < 0:
        raise InvalidArgumentError(f"{name} must not be negative, got {value!r}.")
    if x > maximum.total_seconds():
        raise InvalidArgumentError(
            f"{name} must be {what}, got {value!r}; leave it unset (None) for no limit."
        )
    return value if isinstance(value, timedelta) else timedelta(seconds=x)


def directory(path: Any, name: str) -> str | None:
    """Return ``path`` if it is an existing directory this process can write (``None`` stays ``None``).

    :param path: a directory, or ``None`` / ``""`` for the system's temporary directory.
    :param name: the argument's name, for the message.
    """
    if path is None or path == "":
        return None
    p = os.fspath(path)
    if not os.path.isdir(p):
        raise InvalidArgumentError(
            f"{name} {p!r} is not an existing directory: create it, or leave {name} unset for the system's "
            "temporary directory."
        )
    if not os.access(p, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"{name} {p!r} is not writable by this process: fix its permissions.")
    return p
