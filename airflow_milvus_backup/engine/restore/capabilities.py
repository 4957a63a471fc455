"""What a target Milvus can do: its version, the field types it holds, whether bulk import can work. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.errors import UnsupportedError
from airflow_milvus_backup.engine.fieldtypes import (
    BULK_IMPORT_TYPES,
    LITE_UNSUPPORTED,
    TYPE_SINCE,
    VECTOR_TYPES,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry
    from airflow_milvus_backup.engine.restore.options import RestoreOptions
    from airflow_milvus_backup.engine.restore.plan import Target
    from airflow_milvus_backup.engine.storage import ImportLocation

AUTO_ID_PROPERTY = "allow_insert_auto_id"
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
        if self.lite and t in LITE_UNSUPPORTED:
            return f"Milvus Lite has no {t} fields"
        since = TYPE_SINCE.get(t)
        if since and not self.at_least(*since):
            return f"{t} fields need Milvus {since[0]}.{since[1]} or newer"
        if f.get("nullable") and not self.at_least(2, 5):
            return "nullable fields need Milvus 2.5 or newer (older servers silently ignore nullable)"
        if "default_value" in f and not self.at_least(2, 4):
            return "default values need Milvus 2.4 or newer"
        if f.get("is_function_output") and not self.at_least(2, 5):
            return "function output fields (BM25) need Milvus 2.5 or newer"
        return None


def check_fields(meta: CollectionEntry, server: ServerInfo, address: str) -> None:
    """Refuse a collection whose fields ``server`` cannot hold (the message names the field and the fix).

    :param meta: the collection's manifest entry.
    :param server: the target Milvus.
    :param address: the target Milvus' address, for the message.
    """
    src = meta.qualified_name
    for f in meta.fields:
        problem = server.field_problem(f)
        if problem:
            raise UnsupportedError(
                f"Field {f['name']!r} ({f['type']}) of {src} cannot be restored to {server.label} at "
                f"{address}: {problem}. Restore this collection to a Milvus that supports it, or "
                "leave it out of collection_names."
            )
    vectors = [f["name"] for f in meta.fields if f["type"] in VECTOR_TYPES]
    if len(vectors) > 1 and not server.at_least(2, 4):
        raise UnsupportedError(
            f"{src} has {len(vectors)} vector fields ({', '.join(vectors)}); {server.label} at "
            f"{address} allows one per collection (Milvus 2.4+ allows more). Restore it to a "
            "newer Milvus."
        )


def bulk_blockers(
    location: ImportLocation | None,
    where: str,
    targets: Iterable[Target],
    server: ServerInfo,
    opts: RestoreOptions,
) -> list[str]:
    """Return why bulk import of ``targets`` into ``server`` cannot work (empty: it can).

    :param location: where Milvus could import the backup from, as its storage reports it (``None``: nowhere).
    :param where: the storage's description, for the reasons.
    :param targets: the planned targets (their keys kept or not, their fields).
    :param server: the target Milvus.
    :param opts: the restore's options (``bulk_import_bucket``, ``bulk_import_root``).
    """
    out: list[str] = []
    if server.lite:
        out.append("Milvus Lite has no bulk import")
    elif not server.bulk_import:
        out.append(f"{server.label} has no bulk import")
    if location is None:
        out.append(f"the backup is not in S3 ({where})")
    elif not opts.bulk_import_bucket:
        out.append("bulk_import_bucket (the bucket of the target Milvus) is not given")
    elif opts.bulk_import_bucket != location.bucket:
        out.append(
            f"the backup is in bucket {location.bucket!r}, the target Milvus reads bucket "
            f"{opts.bulk_import_bucket!r}"
        )
    elif not location.within(opts.bulk_import_root):
        out.append(
            f"the backup's prefix {location.prefix!r} is outside bulk_import_root {opts.bulk_import_root!r}"
        )
    for t in targets:
        if not t.keep_keys:
            out.append(f"{t.source} gets new primary keys (bulk import cannot leave out the key column)")
        elif t.meta.auto_id or t.auto_id_property:
            out.append(f"{t.source} has an auto_id primary key (bulk import refuses the key column)")
        for f in t.meta.fields:
            if f.get("is_function_output"):
                out.append(f"{t.source} has function output field {f['name']!r}")
            elif f["type"] not in BULK_IMPORT_TYPES:
                out.append(f"{t.source} field {f['name']!r} is {f['type']}")
            elif f.get("nullable"):
                out.append(f"{t.source} field {f['name']!r} is nullable")
    return out
