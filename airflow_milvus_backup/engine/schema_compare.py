"""One comparison of a backed-up collection's schema with a collection in Milvus, under two policies.

:func:`schema_differences` pairs the fields of a captured collection (a manifest entry) with those of a
target (``describe_collection`` as pymilvus returns it, or already captured) and lists every difference,
each naming the field and why. What counts as a difference is the policy's:

* :attr:`SchemaPolicy.TAKES_ROWS`: can the existing target take the backup's rows (``skip_create``)? The same
  type, element type, ``dim``, primary key and partition key; a ``max_length``/``max_capacity`` not smaller;
  nullable where the backup is; no target field the rows have no values for; a dynamic field if the backup
  has one. A function output of the backup is regenerated, so only its kind is compared.
* :attr:`SchemaPolicy.SAME`: is the target the backed-up collection (``verify_restore``)? Every type, flag,
  param and default equal, no field more or less, the same dynamic field, modulo what servers do not report
  back (Milvus Lite: an array element's ``max_length``).

The comparison is pure; :func:`require_takes_rows` turns the first difference into the error a restore
raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.arrow import META_FIELD
from airflow_milvus_backup.engine.errors import SchemaMismatchError
from airflow_milvus_backup.engine.jsonmodel import value_of
from airflow_milvus_backup.engine.schema import capture_field

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry

#: Field params a server may not report back (Milvus Lite: array element max_length); ignored when missing.
_UNREPORTED_PARAMS = {"max_length"}
_SAME_FLAGS = ("is_primary", "auto_id", "is_partition_key", "nullable", "is_function_output")


class SchemaPolicy(Enum):
    """What a schema comparison asks."""

    #: Can the existing target take the backup's rows (``skip_create``)?
    TAKES_ROWS = "takes_rows"
    #: Is the target the backed-up collection (``verify_restore``)?
    SAME = "same"


@dataclass(frozen=True)
class Difference:
    """One difference between a backed-up schema and a target's.

    :param field: the field's name (:data:`~.arrow.META_FIELD`, ``$meta``, for the dynamic field).
    :param why: what differs, e.g. ``"type INT32 in the target, INT64 in the backup"``.
    :param text: the whole sentence, as :func:`~.verify.verify_restore` reports it.
    """

    field: str
    why: str
    text: str


def _diff(field: str, why: str, text: str | None = None) -> Difference:
    return Difference(field, why, text if text is not None else f"field {field!r}: {why}")


def _captured(fields: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: capture_field(f) for f in fields}


def schema_differences(
    backup: CollectionEntry | Mapping[str, Any], target: dict[str, Any], policy: SchemaPolicy
) -> list[Difference]:
    """Return every difference between a backed-up collection and a target, in the backup's field order.

    :param backup: a collection entry of the manifest (``fields``, ``enable_dynamic_field``), or its dict.
    :param target: the target's ``describe_collection`` (``fields``, ``enable_dynamic_field``).
    :param policy: what counts as a difference.
    """
    have = _captured(target["fields"])
    fields = value_of(backup, "fields")
    names = {f["name"] for f in fields}
    check = _takes_rows if policy is SchemaPolicy.TAKES_ROWS else _same
    out: list[Difference] = []
    for f in fields:
        out += check(f, have.get(f["name"]))
    for name, t in have.items():
        if name in names:
            continue
        if policy is SchemaPolicy.SAME:
            out.append(_diff(name, "is not in the backup", f"field {name!r} is not in the backup"))
        elif not (t.get("nullable") or "default_value" in t or t.get("is_function_output")):
            out.append(_diff(name, "the target requires it and the backup has no values for it"))
    dynamic = value_of(backup, "enable_dynamic_field")
    ours, theirs = bool(dynamic), bool(target.get("enable_dynamic_field"))
    if policy is SchemaPolicy.SAME and ours != theirs:
        why = f"dynamic field {theirs} instead of {dynamic}"
        out.append(_diff(META_FIELD, why, why))
    elif policy is SchemaPolicy.TAKES_ROWS and ours and not theirs:
        out.append(_diff(META_FIELD, "the backup has a dynamic field and the target does not"))
    return out


def _takes_rows(f: dict[str, Any], t: dict[str, Any] | None) -> list[Difference]:
    """Return why a target field ``t`` (``None``: absent) cannot take the values of backed-up field ``f``."""
    name = f["name"]
    if f.get("is_function_output"):
        if t is not None and not t.get("is_function_output"):
            return [_diff(name, "it is a function output in the backup but a plain field in the target")]
        return []
    if t is None:
        return [_diff(name, "the target has no such field")]
    whys = []
    if t["type"] != f["type"]:
        whys.append(f"type {t['type']} in the target, {f['type']} in the backup")
    if f.get("element_type") and t.get("element_type") != f.get("element_type"):
        whys.append(f"array of {t.get('element_type')} in the target, of {f['element_type']} in the backup")
    fp, tp = f.get("params") or {}, t.get("params") or {}
    if "dim" in fp and str(tp.get("dim")) != str(fp["dim"]):
        whys.append(f"dim {tp.get('dim')} in the target, {fp['dim']} in the backup")
    for p in ("max_length", "max_capacity"):
        if p in fp and p in tp and int(tp[p]) < int(fp[p]):
            whys.append(f"{p} {tp[p]} in the target is smaller than {fp[p]} in the backup")
    if bool(f.get("is_primary")) != bool(t.get("is_primary")):
        whys.append("primary key in one and not in the other")
    if f.get("nullable") and not t.get("nullable"):
        whys.append("nullable in the backup but not in the target")
    if bool(f.get("is_partition_key")) != bool(t.get("is_partition_key")):
        whys.append("partition key in one and not in the other")
    return [_diff(name, why) for why in whys]


def _same(f: dict[str, Any], t: dict[str, Any] | None) -> list[Difference]:
    """Return how a target field ``t`` (``None``: absent) differs from backed-up field ``f``."""
    name = f["name"]
    if t is None:
        return [_diff(name, "is missing", f"field {name!r} is missing")]
    out = []
    for k in ("type", "element_type"):
        if f.get(k) != t.get(k):
            out.append(_diff(name, f"{k} {t.get(k)} instead of {f.get(k)}"))
    for flag in _SAME_FLAGS:
        if bool(f.get(flag)) != bool(t.get(flag)):
            out.append(_diff(name, f"{flag} {bool(t.get(flag))} instead of {bool(f.get(flag))}"))
    tp = t.get("params") or {}
    for p, v in (f.get("params") or {}).items():
        if p in _UNREPORTED_PARAMS and p not in tp:
            continue
        if str(tp.get(p)) != str(v):
            out.append(_diff(name, f"{p} {tp.get(p)!r} instead of {v!r}"))
    if f.get("default_value") != t.get("default_value"):
        out.append(_diff(name, f"default {t.get('default_value')!r} instead of {f.get('default_value')!r}"))
    return out


def require_takes_rows(
    backup: CollectionEntry | Mapping[str, Any], target: dict[str, Any], target_name: str
) -> None:
    """Refuse a ``skip_create`` restore into a target that cannot take the backup's rows.

    :param backup: a collection entry of the manifest (or its dict).
    :param target: the existing target's ``describe_collection``.
    :param target_name: the target, ``db.name``, for the message.
    :raises SchemaMismatchError: naming the first field the target cannot take and why.
    """
    diffs = schema_differences(backup, target, SchemaPolicy.TAKES_ROWS)
    if diffs:
        d = diffs[0]
        source = f"{value_of(backup, 'db_name')}.{value_of(backup, 'name')}"
        raise SchemaMismatchError(
            f"skip_create: field {d.field!r} of target {target_name} does not match backup collection "
            f"{source}: {d.why}. Restore into a new collection (collection_suffix) or pass "
            "drop_existing=True instead."
        )
