r"""Build Milvus filter expressions from data (primary keys), escaped as the server's grammar reads them.

Every filter the engine builds from values it read (a page cursor ``pk > last``, ``pk in [...]`` for
verification and for deleting half-inserted rows on resume) is built here, never by formatting a value into a
string elsewhere: pymilvus' own builders (``delete(ids=...)``, ``query_iterator``'s cursor) quote keys
without escaping them, so a key holding a quote, a backslash or a control character fails to parse or, worse,
matches another key.

What the grammars accept, found by experiment (tests/test_filters.py keeps checking it on the real servers):

* **String literals.** Milvus (Go, ``planparserv2``: ANTLR lexer + ``strconv.Unquote``) and Milvus Lite 3
  (its own parser) both read ``"..."`` with ``\\``, ``\"``, ``\n``, ``\r`` and ``\t``, and every other
  character (control characters, NUL, DEL, U+2028, emoji) raw; both refuse a raw line feed or carriage
  return. They differ in the other escapes: Lite knows no ``\uXXXX``, ``\xXX``, octal, ``\v`` or ``\0``
  (``unknown escape sequence``), so JSON's escapes fail there. Only the five common escapes are written.
* **The int64 minimum.** A literal ``-9223372036854775808`` is a unary minus on 9223372036854775808, which
  Milvus 2.3 cannot parse (``strconv.ParseInt``); Lite reads it. For Milvus the key is matched as
  ``pk < -9223372036854775807`` (no smaller int64 exists).
* Strings compare by their UTF-8 bytes, i.e. by code point: Python's ``str`` order.

A field name is checked to be a plain identifier: names come from manifests, which may be hostile, and a
name is pasted into the expression.
"""

from __future__ import annotations

import enum
import re
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import InvalidArgumentError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_RE = re.compile(r'[\\"\n\r\t]')
_OPS = (">", ">=", "<", "<=", "==", "!=")


class Grammar(enum.Enum):
    """The expression grammar of a server (see the module docstring for how they differ)."""

    #: Milvus standalone/cluster (Go ``planparserv2``), and any server not known to be Lite.
    MILVUS = "milvus"
    #: Milvus Lite 3 (``milvus_lite-3.x``): its own parser.
    LITE = "lite"


def grammar_for(server_version: str) -> Grammar:
    """Return the grammar of a server from its ``get_server_version()`` text.

    :param server_version: e.g. ``"milvus_lite-3.2.2"`` or ``"v2.3.5"``. Unknown text gives
        :attr:`Grammar.MILVUS`, whose forms Lite reads too.
    """
    text = server_version.strip().lower()
    if text.startswith("milvus_lite-"):
        major = text[len("milvus_lite-") :].split(".", 1)[0]
        if major.isdigit() and int(major) >= 3:
            return Grammar.LITE
    return Grammar.MILVUS


_GRAMMARS: weakref.WeakKeyDictionary[Any, Grammar] = weakref.WeakKeyDictionary()


def grammar_of(client: MilvusClient) -> Grammar:
    """Return the grammar of the server ``client`` talks to (asked once per client)."""
    try:
        return _GRAMMARS[client]
    except (KeyError, TypeError):
        pass
    from airflow_milvus_backup.engine.client import server_version

    grammar = grammar_for(server_version(client, "the filtered collection's server"))
    try:
        _GRAMMARS[client] = grammar
    except TypeError:  # not weak-referenceable: ask again next time
        pass
    return grammar


def _field(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_RE.match(name):
        raise InvalidArgumentError(
            f"Field name {name!r} cannot be used in a filter: Milvus field names are letters, digits and "
            "underscores, starting with a letter or underscore. Check the manifest's fields."
        )
    return name


def string_literal(value: str) -> str:
    """Quote ``value`` as a string literal every Milvus grammar reads back exactly."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"A VARCHAR key must be a string, got {type(value).__name__} {value!r}.")
    return '"' + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], value) + '"'


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"An INT64 key must be an integer, got {type(value).__name__} {value!r}.")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidArgumentError(f"Key {value} is outside the int64 range.")
    return int(value)


def _is_str(dtype: str) -> bool:
    if dtype == "VARCHAR":
        return True
    if dtype == "INT64":
        return False
    raise InvalidArgumentError(f"Primary keys are INT64 or VARCHAR, not {dtype!r}.")


def pk_in(field: str, dtype: str, values: Iterable[Any], grammar: Grammar) -> str:
    """Return a filter matching exactly the rows whose ``field`` is one of ``values``.

    :param field: the primary key's name.
    :param dtype: its type, ``"INT64"`` or ``"VARCHAR"``.
    :param values: the keys (an empty list matches nothing; repeated keys are listed once).
    :param grammar: the server's (:func:`grammar_of`).
    """
    name = _field(field)
    values = list(dict.fromkeys(values))  # Milvus Lite returns a row once per time its key is listed
    if _is_str(dtype):
        return f"{name} in [{', '.join(string_literal(v) for v in values)}]"
    ints = [_int(v) for v in values]
    if grammar is Grammar.LITE or INT64_MIN not in ints:
        return f"{name} in [{', '.join(str(v) for v in ints)}]"
    rest = [v for v in ints if v != INT64_MIN]
    smallest = f"{name} < {INT64_MIN + 1}"
    if not rest:
        return smallest
    return f"({name} in [{', '.join(str(v) for v in rest)}] or {smallest})"


def pk_compare(field: str, dtype: str, op: str, value: Any, grammar: Grammar) -> str:
    """Return the filter ``field <op> value`` (``op`` one of ``> >= < <= == !=``).

    :param field: the primary key's name.
    :param dtype: its type, ``"INT64"`` or ``"VARCHAR"``.
    :param op: the comparison.
    :param value: the key compared with (strings compare by code point).
    :param grammar: the server's (:func:`grammar_of`).
    """
    name = _field(field)
    if op not in _OPS:
        raise InvalidArgumentError(f"Unknown comparison {op!r}; use one of {', '.join(_OPS)}.")
    if _is_str(dtype):
        return f"{name} {op} {string_literal(value)}"
    v = _int(value)
    if v != INT64_MIN or grammar is Grammar.LITE:
        return f"{name} {op} {v}"
    # no literal for the minimum: say the same thing with the next integer up
    above = INT64_MIN + 1
    return {
        ">": f"{name} >= {above}",
        ">=": f"({name} >= {above} or {name} < {above})",
        "<": f"({name} < {above} and {name} >= {above})",
        "<=": f"{name} < {above}",
        "==": f"{name} < {above}",
        "!=": f"{name} >= {above}",
    }[op]


def pk_range(field: str, dtype: str, low: Any, high: Any, grammar: Grammar) -> str:
    """Return the filter ``low <= field <= high`` (either bound may be None: unbounded)."""
    parts = []
    if low is not None:
        parts.append(pk_compare(field, dtype, ">=", low, grammar))
    if high is not None:
        parts.append(pk_compare(field, dtype, "<=", high, grammar))
    if not parts:
        return ""
    return " and ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]
