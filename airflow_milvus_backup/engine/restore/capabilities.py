"""What a target Milvus can do: its version, the field types it holds, whether bulk import can work. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import UnsupportedError
from airflow_milvus_backup.engine.restore.context import qualified

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.restore.options import RestoreOptions
    from airflow_milvus_backup.engine.restore.plan import Target
    from airflow_milvus_backup.engine.storage import Storage

AUTO_ID_PROPERTY = "allow_insert_auto_id"
VECTOR_TYPES = {
    "FLOAT_VECTOR",
    "BINARY_VECTOR",
    "FLOAT16_VECTOR",
    "BFLOAT16_VECTOR",
    "INT8_VECTOR",
    "SPARSE_FLOAT_VECTOR",
}
#: Field types whose Parquet columns (as this package writes them) Milvus' bulk import reads as they are.
BULK_IMPORT_TYPES = {
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FLOAT",
    "DOUBLE",
    "VARCHAR",
    "JSON",
    "ARRAY",
    "FLOAT_VECTOR",
    "BINARY_VECTOR",
}
_LITE_UNSUPPORTED = {"BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR"}
_TYPE_SINCE = {
    "JSON": (2, 2),
    "ARRAY": (2, 3),
    "SPARSE_FLOAT_VECTOR": (2, 4),
    "FLOAT16_VECTOR": (2, 4),
    "BFLOAT16_VECTOR": (2, 4),
    "INT8_VECTOR": (2, 6),
    "GEOMETRY": (2, 6),
    "TIMESTAMPTZ": (2, 6),
}
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ServerInfo:
    """What the target Milvus is and can do, from its version string.

    :param version: as ``get_server_version`` returns it (``v2.3.5-lite``, ``milvus_lite-3.2.2``, ``2.5.4``).
    :param lite: Milvus Lite (embedded or ``milvus-lite server``).
    :param numbers: the Milvus version, ``None`` when unknown (assumed recent).
    """

    version: str
    lite: bool
    numbers: tuple[int, int, int] | None

    @classmethod
    def detect(cls, version: str, lite_uri: bool = False) -> ServerInfo:
        """Return the server's description from its version string."""
        v = str(version or "")
        lite = lite_uri or v.lower().startswith("milvus_lite")
        m = None if lite else _VERSION_RE.search(v)
        nums = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None
        return cls(v, lite, nums)

    @property
    def label(self) -> str:
        """Return ``Milvus Lite milvus_lite-3.2.2`` or ``Milvus v2.3.5``."""
        return f"Milvus Lite {self.version}" if self.lite else f"Milvus {self.version or '(unknown version)'}"

    def at_least(self, major: int, minor: int) -> bool:
        """Return whether the server is Milvus ``major.minor`` or newer (Lite and unknown count as newest)."""
        return self.numbers is None or self.numbers[:2] >= (major, minor)

    @property
    def keeps_auto_id(self) -> bool:
        """Return whether explicit keys can go into an auto_id collection (``allow_insert_auto_id``)."""
        return self.lite or self.at_least(2, 6)

    @property
    def bulk_import(self) -> bool:
        """Return whether the server has bulk import from object storage."""
        return not self.lite and self.at_least(2, 2)

    def field_problem(self, f: dict[str, Any]) -> str | None:
        """Return why this server cannot hold a captured field, or ``None``."""
        t = f["type"]
        if self.lite and t in _LITE_UNSUPPORTED:
            return f"Milvus Lite has no {t} fields"
        since = _TYPE_SINCE.get(t)
        if since and not self.at_least(*since):
            return f"{t} fields need Milvus {since[0]}.{since[1]} or newer"
        if f.get("nullable") and not self.at_least(2, 5):
            return "nullable fields need Milvus 2.5 or newer (older servers silently ignore nullable)"
        if "default_value" in f and not self.at_least(2, 4):
            return "default values need Milvus 2.4 or newer"
        if f.get("is_function_output") and not self.at_least(2, 5):
            return "function output fields (BM25) need Milvus 2.5 or newer"
        return None


def check_fields(meta: dict[str, Any], server: ServerInfo, milvus: MilvusParams) -> None:
    """Refuse a collection whose fields ``server`` cannot hold (the message names the field and the fix)."""
    src = qualified(meta["db_name"], meta["name"])
    for f in meta["fields"]:
        problem = server.field_problem(f)
        if problem:
            raise UnsupportedError(
                f"Field {f['name']!r} ({f['type']}) of {src} cannot be restored to {server.label} at "
                f"{milvus.address}: {problem}. Restore this collection to a Milvus that supports it, or "
                "leave it out of collection_names."
            )
    vectors = [f["name"] for f in meta["fields"] if f["type"] in VECTOR_TYPES]
    if len(vectors) > 1 and not server.at_least(2, 4):
        raise UnsupportedError(
            f"{src} has {len(vectors)} vector fields ({', '.join(vectors)}); {server.label} at "
            f"{milvus.address} allows one per collection (Milvus 2.4+ allows more). Restore it to a "
            "newer Milvus."
        )


def bulk_blockers(
    storage: Storage, targets: list[Target], server: ServerInfo, opts: RestoreOptions
) -> list[str]:
    """Return why bulk import of ``targets`` from ``storage`` into ``server`` cannot work (empty: it can)."""
    from airflow_milvus_backup.engine.storage import S3Storage

    out: list[str] = []
    if server.lite:
        out.append("Milvus Lite has no bulk import")
    elif not server.bulk_import:
        out.append(f"{server.label} has no bulk import")
    if not isinstance(storage, S3Storage):
        out.append(f"the backup is not in S3 ({storage.description})")
    elif not opts.bulk_import_bucket:
        out.append("bulk_import_bucket (the bucket of the target Milvus) is not given")
    elif opts.bulk_import_bucket != storage.bucket:
        out.append(
            f"the backup is in bucket {storage.bucket!r}, the target Milvus reads bucket "
            f"{opts.bulk_import_bucket!r}"
        )
    elif opts.bulk_import_root and not (storage.root + "/").startswith(opts.bulk_import_root + "/"):
        out.append(
            f"the backup's prefix {storage.root!r} is outside bulk_import_root {opts.bulk_import_root!r}"
        )
    for t in targets:
        if not t.keep_keys:
            out.append(f"{t.source} gets new primary keys (bulk import cannot leave out the key column)")
        elif t.meta.get("auto_id") or t.auto_id_property:
            out.append(f"{t.source} has an auto_id primary key (bulk import refuses the key column)")
        for f in t.meta["fields"]:
            if f.get("is_function_output"):
                out.append(f"{t.source} has function output field {f['name']!r}")
            elif f["type"] not in BULK_IMPORT_TYPES:
                out.append(f"{t.source} field {f['name']!r} is {f['type']}")
            elif f.get("nullable"):
                out.append(f"{t.source} field {f['name']!r} is nullable")
    return out
