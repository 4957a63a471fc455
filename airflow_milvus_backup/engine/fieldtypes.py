"""The one table of Milvus field types: what each is, how this package stores it, who can hold it.

Every other module asks this table (or a set derived from it) instead of keeping its own list of type names:
:mod:`~.arrow` for the Arrow type of a column, :mod:`~.integrity` for the values a vector row holds,
:mod:`~.verify` for the vectors it searches with, a restore for what a server or its bulk import takes.

=====================  ======  =======  ====================  =====  =====  ===========
Milvus ``DataType``    vector  sparse   Arrow column          since  Lite   bulk import
=====================  ======  =======  ====================  =====  =====  ===========
BOOL, INT8..INT64                       bool, int8..int64            yes    yes
FLOAT, DOUBLE                           float32, float64             yes    yes
VARCHAR (STRING)                        string                       yes    yes (VARCHAR)
JSON                                    string (the text)     2.2    yes    yes
ARRAY                                   list<element type>    2.3    yes    yes
GEOMETRY, TIMESTAMPTZ                   string                2.6    yes    no
FLOAT_VECTOR           dense            list<float32>                yes    yes
BINARY_VECTOR          dense            list<uint8>                  no     yes
FLOAT16/BFLOAT16_VEC.  dense            list<uint8>           2.4    no     no
INT8_VECTOR            dense            list<int8>            2.6    no     no
SPARSE_FLOAT_VECTOR    sparse           map<uint32, float32>  2.4    yes    no
=====================  ======  =======  ====================  =====  =====  ===========

"Lite" is what Milvus Lite refuses to create as far as this package checks; "bulk import" is whether Milvus'
bulk import reads the Parquet column as this package writes it (a float16 column here is bytes, which bulk
import does not take).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldType:
    """One Milvus field type as this package handles it.

    :param name: the Milvus ``DataType`` name, as a captured field's ``type`` holds it.
    :param arrow: the pyarrow factory of the column's values (``"int8"``, ``"string"``; for a dense vector
        the type of one element of its list; ``None`` where the column type is built otherwise: ARRAY takes
        its element type's, a sparse vector is ``map<uint32, float32>``).
    :param vector: ``"dense"`` or ``"sparse"`` for a vector type, ``None`` otherwise.
    :param per_dim: a dense vector's list elements per row as ``(numerator, denominator)`` of its ``dim``.
    :param since: the first Milvus ``(major, minor)`` that has the type (``None``: every supported one).
    :param lite: whether Milvus Lite holds it.
    :param bulk_import: whether Milvus' bulk import reads its column as this package writes it.
    """

    name: str
    arrow: str | None
    vector: str | None = None
    per_dim: tuple[int, int] | None = None
    since: tuple[int, int] | None = None
    lite: bool = True
    bulk_import: bool = False

    @property
    def is_vector(self) -> bool:
        """Return whether this is a vector type (dense or sparse)."""
        return self.vector is not None

    def width(self, dim: int) -> int | None:
        """Return the list elements per row of a dense vector of ``dim`` (``None``: not a dense vector)."""
        if self.per_dim is None:
            return None
        num, den = self.per_dim
        return dim * num // den


#: Every Milvus field type this package backs up, by ``DataType`` name.
FIELD_TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("BOOL", "bool_", bulk_import=True),
        FieldType("INT8", "int8", bulk_import=True),
        FieldType("INT16", "int16", bulk_import=True),
        FieldType("INT32", "int32", bulk_import=True),
        FieldType("INT64", "int64", bulk_import=True),
        FieldType("FLOAT", "float32", bulk_import=True),
        FieldType("DOUBLE", "float64", bulk_import=True),
        FieldType("VARCHAR", "string", bulk_import=True),
        FieldType("STRING", "string"),
        FieldType("JSON", "string", since=(2, 2), bulk_import=True),
        FieldType("ARRAY", None, since=(2, 3), bulk_import=True),
        FieldType("GEOMETRY", "string", since=(2, 6)),
        FieldType("TIMESTAMPTZ", "string", since=(2, 6)),
        FieldType("FLOAT_VECTOR", "float32", vector="dense", per_dim=(1, 1), bulk_import=True),
        FieldType("BINARY_VECTOR", "uint8", vector="dense", per_dim=(1, 8), lite=False, bulk_import=True),
        FieldType("FLOAT16_VECTOR", "uint8", vector="dense", per_dim=(2, 1), since=(2, 4), lite=False),
        FieldType("BFLOAT16_VECTOR", "uint8", vector="dense", per_dim=(2, 1), since=(2, 4), lite=False),
        FieldType("INT8_VECTOR", "int8", vector="dense", per_dim=(1, 1), since=(2, 6), lite=False),
        FieldType("SPARSE_FLOAT_VECTOR", None, vector="sparse", since=(2, 4)),
    )
}

#: Every vector type, dense and sparse.
VECTOR_TYPES = frozenset(n for n, t in FIELD_TYPES.items() if t.is_vector)
#: Vector types with a ``dim``, stored as a list of ``dim``-derived length per row.
DENSE_VECTOR_TYPES = frozenset(n for n, t in FIELD_TYPES.items() if t.vector == "dense")
#: Dense vectors whose values are stored as their bytes (``list<uint8>``): binary, float16, bfloat16.
BYTE_VECTOR_TYPES = frozenset(n for n in DENSE_VECTOR_TYPES if FIELD_TYPES[n].arrow == "uint8")
#: Types whose column is one Arrow value per row, by the pyarrow factory of that value.
SCALAR_ARROW = {n: t.arrow for n, t in FIELD_TYPES.items() if not t.is_vector and t.arrow is not None}
#: Types whose Parquet columns (as this package writes them) Milvus' bulk import reads as they are.
BULK_IMPORT_TYPES = frozenset(n for n, t in FIELD_TYPES.items() if t.bulk_import)
#: Types Milvus Lite does not hold.
LITE_UNSUPPORTED = frozenset(n for n, t in FIELD_TYPES.items() if not t.lite)
#: The first Milvus ``(major, minor)`` of each type that is not in every supported server.
TYPE_SINCE = {n: t.since for n, t in FIELD_TYPES.items() if t.since is not None}


def is_vector(type_name: str) -> bool:
    """Return whether a captured field's ``type`` is a vector type (dense or sparse)."""
    return type_name in VECTOR_TYPES


def vector_width(field: dict[str, Any]) -> int | None:
    """Return the list elements per row of a dense vector field's column (``None``: not a dense vector).

    :param field: a captured field (``type`` and ``params.dim``).
    """
    t = FIELD_TYPES.get(field["type"])
    if t is None or t.per_dim is None:
        return None
    try:
        dim = int((field.get("params") or {})["dim"])
    except (KeyError, TypeError, ValueError):
        return None
    return t.width(dim)
