r"""Go ``encoding/json`` for protobuf-generated structs, as Milvus Backup writes and reads its meta files.

Milvus Backup marshals its ``backuppb`` structs with Go's ``encoding/json`` (not ``protojson``), so its files
follow Go's rules, which this module reproduces exactly:

* keys are the structs' ``json`` tags (snake_case from the proto field names, with exceptions such as
  ``fieldID`` and ``autoID``), in the order the fields are declared, never sorted; maps' keys are sorted;
* a field tagged ``omitempty`` is left out when it holds its zero value (``""``, ``0``, ``false``, an empty
  list or map, a nil pointer); a few fields of Milvus Backup are not ``omitempty`` and are always written
  (``size``, ``log_size``, ``has_index``, ``state_code``); a non-nil pointer to an empty struct is ``{}``;
* enums and 64-bit integers are JSON numbers; ``[]byte`` is base64;
* compact output; strings escaped as Go escapes them: ``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``,
  ``\\r``, ``\\t``,
  other control characters as ``\\u00XX``, and ``<``, ``>``, ``&``, U+2028, U+2029 as ``\\u003c`` ... (HTML
  safe), every other character as UTF-8.

Reading follows ``json.Unmarshal``: keys match exactly, else case-insensitively; unknown keys are ignored
by Go (kept here in ``go_extra`` and written back after the known ones); ``null`` is the zero value; a value
of the wrong JSON type is an error (here :class:`~..errors.ManifestError`, naming the file and the path).

A :class:`GoStruct` read from JSON remembers which keys it had (``go_present``), so writing it again gives the
same bytes whichever version of Milvus Backup wrote it (older versions tagged some fields differently); a
:class:`GoStruct` built in Python writes as the current version of Milvus Backup would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from airflow_milvus_backup.engine.errors import ManifestError

_S = TypeVar("_S", bound="GoStruct")

#: Field kinds (besides a :class:`GoStruct` subclass and :class:`ListOf`).
STR, INT, BOOL, BYTES, MAP_STR, RAW = "str", "int", "bool", "bytes", "map[str]str", "raw"

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_string(s: str) -> str:
    """Return ``s`` as a JSON string literal, escaped as Go's ``encoding/json`` escapes it."""
    out = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_dumps(value: Any) -> str:
    """Return a JSON value (dicts, lists, strings, ints, bools, ``None``, :class:`GoStruct`) as Go writes it.

    Dict keys are written sorted (Go sorts map keys); a :class:`GoStruct` writes its fields in order.
    """
    if isinstance(value, GoStruct):
        return value.to_go_json()
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, (bytes, bytearray)):
        return go_string(base64.b64encode(bytes(value)).decode())
    if isinstance(value, Mapping):
        items = sorted(value.items())
        return "{" + ",".join(f"{go_string(str(k))}:{go_dumps(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as Go JSON")


@dataclass(frozen=True)
class ListOf:
    """A repeated field (Go slice) of ``kind``."""

    kind: Any


@dataclass(frozen=True)
class F:
    """One field of a Go struct.

    :param attr: the Python attribute.
    :param key: the ``json`` tag's name.
    :param kind: :data:`STR`, :data:`INT` (also enums), :data:`BOOL`, :data:`BYTES`, :data:`MAP_STR`,
        :data:`RAW` (any JSON, kept as parsed), a :class:`GoStruct` subclass (a pointer) or :class:`ListOf`.
    :param omitempty: the tag has ``omitempty``.
    :param legacy: the field exists only in older versions of Milvus Backup: ``None`` means "not in the
        struct" (never written); any other value is written by the ``omitempty`` rule.
    """

    attr: str
    key: str
    kind: Any
    omitempty: bool = True
    legacy: bool = False


def is_zero(value: Any) -> bool:
    """Return whether ``value`` is Go's zero value for ``omitempty`` (a struct pointer: only when nil)."""
    if value is None or value is False:
        return True
    if isinstance(value, GoStruct):
        return False
    if isinstance(value, (str, bytes, tuple, list, Mapping)):
        return len(value) == 0
    if isinstance(value, int):
        return value == 0
    return False


class GoJsonError(ManifestError):
    """A Milvus Backup meta file holds a value Go's ``json.Unmarshal`` would refuse."""


def _type_error(where: str, want: str, value: Any) -> GoJsonError:
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return GoJsonError(f"{where or 'the document'} must be {want}, not {shown}")


def _decode(value: Any, kind: Any, where: str) -> Any:
    """Return the Python form of a parsed JSON value of field ``kind`` (``null`` is the zero value)."""
    if kind == RAW:
        return value
    if isinstance(kind, ListOf):
        if value is None:
            return ()
        if not isinstance(value, list):
            raise _type_error(where, "a list", value)
        return tuple(_decode(v, kind.kind, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(kind, type) and issubclass(kind, GoStruct):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _type_error(where, "an object", value)
        return kind._from_doc(value, where)
    if value is None:
        return {STR: "", INT: 0, BOOL: False, BYTES: b"", MAP_STR: {}}[kind]
    if kind == STR:
        if not isinstance(value, str):
            raise _type_error(where, "a string", value)
        return value
    if kind == INT:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(where, "a whole number", value)
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise _type_error(where, "true or false", value)
        return value
    if kind == BYTES:
        if not isinstance(value, str):
            raise _type_error(where, "a base64 string", value)
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as e:
            raise _type_error(where, "a base64 string", value) from e
    if kind == MAP_STR:
        if not isinstance(value, dict):
            raise _type_error(where, "an object of strings", value)
        for k, v in value.items():
            if not isinstance(v, str):
                raise _type_error(f"{where}.{k}", "a string", v)
        return dict(value)
    raise TypeError(f"unknown field kind {kind!r}")


def _encode(value: Any, kind: Any) -> str:
    if kind == BYTES:
        return go_string(base64.b64encode(value).decode())
    return go_dumps(value)


@dataclass(frozen=True, kw_only=True)
class GoStruct:
    """A protobuf-generated Go struct as Milvus Backup (un)marshals it with ``encoding/json``.

    Subclasses list their fields in ``GO_FIELDS``, in the Go struct's order.

    :param go_present: the keys the document it was read from had (``None``: built here, written as the
        current version of Milvus Backup writes it).
    :param go_extra: keys this release does not know (a newer Milvus Backup wrote them): kept and written
        back after the known ones, in their order.
    """

    GO_FIELDS: ClassVar[tuple[F, ...]] = ()
    go_present: frozenset[str] | None = field(default=None, compare=False, repr=False)
    go_extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_go_json(cls: type[_S], data: bytes | str | Mapping[str, Any], what: str = "") -> _S:
        """Read the struct as Go's ``json.Unmarshal`` would (any version of Milvus Backup's meta).

        :param data: the JSON text, or the already parsed object.
        :param what: the file, for messages (e.g. ``"'b/meta/backup_meta.json'"``).
        :raises GoJsonError: not JSON, not an object, or a value of the wrong type (path named).
        """
        doc: Any = data
        if isinstance(data, (bytes, str)):
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError) as e:
                raise GoJsonError(f"{what or 'The document'} is not valid JSON: {e}") from e
        if not isinstance(doc, dict):
            raise GoJsonError(f"{what or 'The document'} is not a JSON object")
        try:
            return cls._from_doc(doc, "")
        except GoJsonError as e:
            if what:
                raise GoJsonError(f"{what} is malformed: {e}") from e
            raise

    @classmethod
    def _from_doc(cls: type[_S], doc: Mapping[str, Any], where: str) -> _S:
        by_key = {f.key: f for f in cls.GO_FIELDS}
        folded = {f.key.lower(): f for f in cls.GO_FIELDS}
        values: dict[str, Any] = {}
        present: set[str] = set()
        extra: dict[str, Any] = {}
        for k, v in doc.items():
            f = by_key.get(k) or folded.get(k.lower())
            if f is None:
                extra[k] = v
                continue
            path = f"{where}.{k}" if where else k
            values[f.attr] = _decode(v, f.kind, path)
            present.add(f.key)
        return cls(**values, go_present=frozenset(present), go_extra=extra)

    def go_items(self) -> list[tuple[str, str]]:
        """Return the ``(key, encoded value)`` pairs Go would write for this struct, in order."""
        out = []
        for f in self.GO_FIELDS:
            value = getattr(self, f.attr)
            if f.legacy and value is None:
                continue
            if is_zero(value):
                if self.go_present is not None:
                    if f.key not in self.go_present:
                        continue
                elif f.omitempty:
                    continue
            out.append((f.key, "null" if value is None else _encode(value, f.kind)))
        out.extend((k, go_dumps(v)) for k, v in self.go_extra.items())
        return out

    def to_go_json(self) -> str:
        """Return the struct as Go's ``json.Marshal`` writes it (compact, fields in order)."""
        return "{" + ",".join(f"{go_string(k)}:{v}" for k, v in self.go_items()) + "}"

    def to_go_bytes(self) -> bytes:
        """Return :meth:`to_go_json` as UTF-8 bytes (what Milvus Backup stores)."""
        return self.to_go_json().encode()

    def fresh(self: _S) -> _S:
        """Return a copy that writes as the current version of Milvus Backup (forgets ``go_present``)."""
        import dataclasses

        return dataclasses.replace(self, go_present=None)
