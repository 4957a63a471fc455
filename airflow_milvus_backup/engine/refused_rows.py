"""What to tell a user when Milvus refuses rows of a backup: which field, which value, what to do.

Milvus' refusals rarely name the field (``the value is NaN``); the restore then looks at the batch itself for
the column that does not fit the backup's schema.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def describe_field(field: dict[str, Any]) -> str:
    """Return a field's type as a user reads it: ``VARCHAR(max_length=64)``, ``FLOAT_VECTOR(dim=8)``."""
    params = field.get("params") or {}
    shown = [f"{p}={params[p]}" for p in ("dim", "max_length", "max_capacity") if p in params]
    kind = str(field.get("type", "?"))
    if field.get("element_type"):
        kind = f"{kind} of {field['element_type']}"
    if field.get("nullable"):
        shown.append("nullable")
    return f"{kind}({', '.join(shown)})" if shown else kind


def named_field(reason: str, fields: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the field of ``fields`` that a refusal message names (the longest name that appears)."""
    best: dict[str, Any] | None = None
    for f in fields:
        name = str(f.get("name", ""))
        if not name:
            continue
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", reason):
            if best is None or len(name) > len(str(best["name"])):
                best = f
    return best


def misfit_field(table: pa.Table, fields: list[dict[str, Any]], dynamic: bool) -> dict[str, Any] | None:
    """Return the first field whose column in ``table`` does not fit it (type, string length), or ``None``.

    For refusals that name no field (Milvus 2.3: "the length (30) of 0th string exceeds max length (8)").
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_milvus_backup.engine.arrow import arrow_schema

    expected = arrow_schema(fields, dynamic)
    by_name = {f["name"]: f for f in fields}
    for name in table.column_names:
        f = by_name.get(name)
        if f is None or name not in expected.names:
            continue
        column = table.column(name)
        if column.type != expected.field(name).type:
            return f
        limit = (f.get("params") or {}).get("max_length")
        if limit is not None and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            longest = pc.max(pc.utf8_length(column)).as_py()
            if longest is not None and longest > int(limit):
                return f
        if f.get("type") == "FLOAT_VECTOR" and _has_nan_or_infinity(column):
            return f  # Milvus refuses NaN and infinity in float vectors, naming no field
    return None


def _has_nan_or_infinity(column: pa.ChunkedArray) -> bool:
    """Return whether a column of floats, or of lists of floats, holds a NaN or an infinity."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.concat_arrays([c.flatten() if hasattr(c, "flatten") else c for c in column.chunks])
    if not pa.types.is_floating(values.type) or len(values) == 0:
        return False
    return bool(pc.any(pc.invert(pc.is_finite(values))).as_py())


def rejected_rows_message(
    *,
    address: str,
    key: str,
    target: str,
    reason: str,
    fields: list[dict[str, Any]],
    suspect: dict[str, Any] | None = None,
) -> str:
    """Return the message of rows Milvus refused: the data file, the field and what it expects.

    :param address: the Milvus address (no credentials).
    :param key: the data file of the backup.
    :param target: the qualified target collection.
    :param reason: Milvus' (or pymilvus') reason, scrubbed of secrets.
    :param fields: the fields of the backup's collection.
    :param suspect: the field the data shows does not fit, where the reason names none.
    """
    f = named_field(reason, fields) or suspect
    which = "a row" if f is None else f"field {f['name']!r} (the backup's schema says {describe_field(f)})"
    return (
        f"Milvus at {address} refused rows of data file {key!r} for {target}: {which}: {reason}. "
        "Nothing else of this file was inserted, and retrying cannot help: the data does not fit the target. "
        "Check the backup (verify_backup) and the target's schema, then run the restore again with the same "
        "arguments to resume it."
    )
