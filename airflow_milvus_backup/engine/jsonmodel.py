"""Typed JSON documents: frozen dataclasses checked against a spec of their keys, unknown keys kept.

A document that outlives a process (the manifest) is read by checking it whole against a spec (:func:`check`:
each wrong value named by its path in the document, such as ``collections[0].data[0].files[0].size``), then
building the dataclasses (:meth:`JsonModel.build`) without checking again. Keys a newer writer of the same
major version added are kept in ``extra`` and written back; optional keys the document did not have are
remembered in ``absent`` and not written back, so reading and writing a document never changes a byte of it.

A spec is a type (``str``, ``int``, ``bool``, ``dict``, ``list``), ``[spec]`` (a list of them),
``{key: spec}`` (an object), a :class:`JsonModel` subclass (an object of its ``SPEC``), :class:`Maybe` (may be
missing or ``null``) or :data:`ANY`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from airflow_milvus_backup.engine.errors import ManifestError

_M = TypeVar("_M", bound="JsonModel")


class Maybe:
    """A key that may be missing or ``null``; when present, of ``spec``."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


#: Any JSON value.
ANY = object()
_NAMES = {str: "a string", int: "a whole number", bool: "true or false", dict: "an object", list: "a list"}


def show(value: Any) -> str:
    """Return a JSON value for a message, cut to 60 characters."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else f"{text[:57]}..."


def malformed(what: str, where: str, kind: str, value: Any) -> ManifestError:
    """Return the error of a value of the wrong type.

    :param what: the document, e.g. ``"Manifest 'b/meta/backup_meta.json' of backup 'b'"``.
    :param where: the value's path in it.
    :param kind: what it must be (``"a whole number"``).
    :param value: what it is.
    """
    return ManifestError(
        f"{what} is malformed: {where} must be {kind}, not {show(value)}. "
        "The backup cannot be trusted: restore another one."
    )


def too_deep(doc: Any, max_depth: int) -> bool:
    """Return whether ``doc`` nests lists and objects deeper than ``max_depth`` (iteratively)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def check(value: Any, spec: Any, where: str, what: str) -> None:
    """Check ``value`` against ``spec``; raise :class:`ManifestError` naming the first wrong value's path.

    Objects may hold more keys than the spec names (a newer writer of the same major version adds fields).
    Bound the depth with :func:`too_deep` before calling this.

    :param value: the JSON value.
    :param spec: its spec (see the module's docstring).
    :param where: its path in the document (``""`` for the document itself).
    :param what: the document, for the message.
    """
    if isinstance(spec, Maybe):
        if value is not None:
            check(value, spec.spec, where, what)
        return
    if spec is ANY:
        return
    if isinstance(spec, type) and issubclass(spec, JsonModel):
        spec = spec.SPEC
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise malformed(what, where or "the manifest", "an object", value)
        for k, sub in spec.items():
            path = f"{where}.{k}" if where else k
            if k not in value:
                if isinstance(sub, Maybe):
                    continue
                raise ManifestError(
                    f"{what} is malformed: {path} is missing. The backup cannot be trusted: restore another "
                    "one."
                )
            check(value[k], sub, path, what)
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise malformed(what, where, "a list", value)
        for i, item in enumerate(value):
            check(item, spec[0], f"{where}[{i}]", what)
        return
    if not isinstance(value, spec) or (spec is int and isinstance(value, bool)):
        raise malformed(what, where, _NAMES.get(spec, spec.__name__), value)


def _value_in(value: Any, spec: Any) -> Any:
    """Return the model's form of a checked JSON value: models for objects of a model, tuples for lists."""
    if isinstance(spec, Maybe):
        spec = spec.spec
    if value is None:
        return None
    if isinstance(spec, type) and issubclass(spec, JsonModel):
        return spec.build(value)
    if isinstance(spec, list):
        return tuple(_value_in(v, spec[0]) for v in value)
    return value


def _value_out(value: Any) -> Any:
    if isinstance(value, JsonModel):
        return value.to_json()
    if isinstance(value, (tuple, list)):
        return [_value_out(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class JsonModel:
    """A JSON object as a dataclass: its keys are the fields that ``SPEC`` names, with their specs.

    :param extra: keys this release does not know (a newer writer of the same major version added them):
        kept, and written back unchanged.
    :param absent: optional keys the document did not have: not written back while still ``None``.
    """

    SPEC: ClassVar[dict[str, Any]] = {}
    extra: Mapping[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()

    @classmethod
    def build(cls: type[_M], doc: Mapping[str, Any]) -> _M:
        """Return the object of a JSON object already checked against ``SPEC`` (:func:`check`)."""
        known = cls.SPEC
        values = {k: _value_in(doc[k], spec) for k, spec in known.items() if k in doc}
        extra = {k: v for k, v in doc.items() if k not in known}
        return cls(**values, extra=extra, absent=frozenset(k for k in known if k not in doc))

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object, keys sorted as in the file (nested plain dicts are shared, not copied)."""
        out = dict(self.extra)
        for k in self.SPEC:
            value = getattr(self, k)
            if value is None and k in self.absent:
                continue
            out[k] = _value_out(value)
        return {k: out[k] for k in sorted(out)}


def value_of(doc: JsonModel | Mapping[str, Any], key: str) -> Any:
    """Return ``key`` of a model, or of a plain JSON object (``None`` when it lacks the key).

    For the checks that take a manifest's entries typed (a restore, ``verify_backup``) and as plain data (what
    :func:`~.schema.capture_collection` returns before the manifest exists, and unit tests' dicts).
    """
    return getattr(doc, key) if isinstance(doc, JsonModel) else doc.get(key)
