"""JSON text kept exact: the text Milvus returns is what is backed up, restored and compared.

Python's and orjson's decoders turn every number into an int or a float64, so
``{"big": 123456789012345678901234567890}`` would come back as ``1.2345678901234568e+29`` and ``0.1`` plus
twenty more digits as ``0.1``. Nothing here decodes a number into a float:

* :func:`exact_json_text` returns a JSON cell exactly as Milvus returned it (or, for Milvus Lite's
  unquoted JSON string documents, that string as JSON);
* :func:`exact_loads` / :func:`exact_dumps` parse and write JSON with every number kept as its text (used
  where the dynamic field's object has keys to drop);
* :func:`canonical_json` is the form verification compares: keys sorted, whitespace and escapes removed,
  numbers compared by exact decimal value (``1e2`` equals ``100.0``, ``-0.0`` differs from ``0.0``, and no
  two numbers that differ in any digit are equal).
"""

from __future__ import annotations

import json
from decimal import Context, Decimal, InvalidOperation
from typing import Any

_MAX_DIGITS = 100_000


class ExactNumber(str):
    """A JSON number kept as its text."""

    __slots__ = ()


def _number(text: str) -> ExactNumber:
    return ExactNumber(text)


def is_json(raw: bytes | str) -> bool:
    """Return whether ``raw`` is one JSON document."""
    import orjson

    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # orjson refuses what the standard library takes (NaN, numbers beyond float64)
            exact_loads(raw.decode() if isinstance(raw, bytes) else raw)
        except (ValueError, RecursionError):
            return False
    return True


def exact_json_text(raw: bytes | str) -> str:
    """Return a JSON cell as Milvus returned it, as text; a cell that is not JSON as a JSON string.

    Milvus Lite returns a JSON document that is a string (``"hello"``) without its quotes (``hello``); such
    a cell is the string, and inserting that JSON string gives the same cell back.
    """
    text = raw.decode("utf-8", errors="surrogatepass") if isinstance(raw, bytes) else raw
    if is_json(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def exact_loads(text: str) -> Any:
    """Parse JSON keeping every number as an :class:`ExactNumber` (its text) and the key order."""
    return json.loads(text, parse_float=_number, parse_int=_number, parse_constant=_number)


def exact_dumps(value: Any) -> str:
    """Write JSON compactly; :class:`ExactNumber` values as their text, Python numbers exactly."""
    if isinstance(value, ExactNumber):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{exact_dumps(str(k))}:{exact_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(exact_dumps(v) for v in value) + "]"
    if hasattr(value, "item"):  # numpy scalars
        return exact_dumps(value.item())
    if hasattr(value, "tolist"):  # numpy arrays
        return exact_dumps(value.tolist())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _canonical_number(text: str, as_float: bool = False) -> str:
    if as_float:
        try:
            return f"#{float(text)!r}"
        except (ValueError, OverflowError):
            return f"#{text}"
    try:
        d = Decimal(text)
    except InvalidOperation:
        return f"#{text}"
    if not d.is_finite():
        return f"#{d}"
    return "#" + str(d.normalize(Context(prec=min(_MAX_DIGITS, len(text) + 2))))


def _key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def canonical_json(value: Any, as_float: bool = False) -> str:
    """Return the comparable form of a JSON value (decoded, or parsed by :func:`exact_loads`).

    :param as_float: compare numbers as float64, as pymilvus decodes them (for rows that only come decoded).
    """
    if isinstance(value, ExactNumber):
        return _canonical_number(str(value), as_float)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return _canonical_number(str(value), as_float)
    if isinstance(value, float):
        return _canonical_number(repr(value), as_float)
    if isinstance(value, dict):
        items = sorted(((str(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return "{" + ",".join(f"{_key(k)}:{canonical_json(v, as_float)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v, as_float) for v in value) + "]"
    if hasattr(value, "item"):
        return canonical_json(value.item(), as_float)
    if hasattr(value, "tolist"):
        return canonical_json(value.tolist(), as_float)
    return json.dumps(str(value), ensure_ascii=False)


def canonical_json_text(text: str | bytes, as_float: bool = False) -> str:
    """Return the comparable form of a JSON document given as text (a non-JSON text is that string)."""
    s = text.decode("utf-8", errors="surrogatepass") if isinstance(text, bytes) else text
    try:
        return canonical_json(exact_loads(s), as_float)
    except (ValueError, RecursionError):
        return canonical_json(s, as_float)
