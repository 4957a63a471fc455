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
from airflow_milvus_backup.engine.names import DEFAULT_DB
from airflow_milvus_backup.engine.server_api import (
    ALIASES,
    DATABASES,
    PARTITIONS,
    PROPERTIES,
    UNREPORTED_VERSION,
    lacking_message,
)

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry
    from airflow_milvus_backup.engine.restore.options import RestoreOptions
    from airflow_milvus_backup.engine.restore.plan import Target
    from airflow_milvus_backup.engine.storage import ImportLocation

AUTO_ID_PROPERTY = "allow_insert_auto_id"
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def version_numbers(version: str) -> tuple[tuple[int, int, int], bool]:
    """Return a Milvus server's version numbers and whether they are assumed (not reported, not readable).

    A server that does not answer GetVersion (``""``: Milvus Lite 2.5.x served over gRPC) or answers
    something without a version number is taken for :data:`~.server_api.UNREPORTED_VERSION` (2.5.0), not
    for the newest Milvus: features of later releases (2.6's explicit keys in an auto_id collection) are
    not assumed, and a restore that needs them says so instead of failing on the server.

    :param version: what ``get_server_version`` returned (not a Milvus Lite 3 version).
    """
    m = _VERSION_RE.search(version)
    if m is None:
        return UNREPORTED_VERSION, True
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)), False


@dataclass(frozen=True)
class ServerInfo:
    """What the target Milvus is and can do, from its version string and the APIs it lacks.

    :param version: as ``get_server_version`` returns it (``v2.3.5-lite``, ``milvus_lite-3.2.2``, ``2.5.4``);
        ``""`` when the server does not answer GetVersion.
    :param lite: Milvus Lite (embedded or ``milvus-lite server``).
    :param numbers: the Milvus version, ``None`` for Milvus Lite (which counts as newest); a version not
        reported or not readable is :data:`~.server_api.UNREPORTED_VERSION` (``assumed`` says so).
    :param assumed: ``numbers`` is assumed, not reported.
    :param lacks: the optional APIs the server was found to lack (:mod:`~.server_api`'s names).
    """

    version: str
    lite: bool
    numbers: tuple[int, int, int] | None
    assumed: bool = False
    lacks: frozenset[str] = frozenset()

    @classmethod
    def detect(cls, version: str, lite_uri: bool = False, lacks: Iterable[str] = ()) -> ServerInfo:
        """Return the server's description from its version string (see :func:`version_numbers`)."""
        v = str(version or "")
        lite = lite_uri or v.lower().startswith("milvus_lite")
        nums, assumed = (None, False) if lite else version_numbers(v)
        return cls(v, lite, nums, assumed, frozenset(lacks))

    @property
    def label(self) -> str:
        """Return the server's name for messages: ``Milvus v2.3.5``, ``Milvus (version not reported...)``."""
        if self.lite:
            return f"Milvus Lite {self.version}"
        if self.assumed:
            what = f"version {self.version!r} not readable" if self.version else "version not reported"
            return f"Milvus ({what}, assumed {'.'.join(map(str, UNREPORTED_VERSION))})"
        return f"Milvus {self.version}"

    def at_least(self, major: int, minor: int) -> bool:
        """Return whether the server is Milvus ``major.minor`` or newer (Milvus Lite counts as newest)."""
        return self.numbers is None or self.numbers[:2] >= (major, minor)

    def has(self, api: str) -> bool:
        """Return whether the server has an optional API (``server_api.PARTITIONS``...), as far as known."""
        return api not in self.lacks

    @property
    def keeps_auto_id(self) -> bool:
        """Return whether explicit keys can go into an auto_id collection (``allow_insert_auto_id``)."""
        return self.lite or (self.at_least(2, 6) and self.has(PROPERTIES))

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


def apis_needed(metas: Iterable[tuple[CollectionEntry, str]], opts: RestoreOptions) -> frozenset[str]:
    """Return the optional APIs a restore of ``metas`` (each with its target database) would use.

    :param metas: each selected collection's manifest entry and its target database.
    :param opts: the restore's options (``restore_aliases``).
    """
    out: set[str] = set()
    for meta, tdb in metas:
        if tdb != DEFAULT_DB:
            out.add(DATABASES)
        if extra_partitions(meta):
            out.add(PARTITIONS)
        if meta.properties:
            out.add(PROPERTIES)
        if meta.aliases and opts.restore_aliases:
            out.add(ALIASES)
    return frozenset(out)


def extra_partitions(meta: CollectionEntry) -> list[str]:
    """Return the partitions a restore creates by name (none for a partition-key collection)."""
    if any(f.get("is_partition_key") for f in meta.fields):
        return []
    return [p for p in meta.partitions or () if p != "_default"]


def check_apis(meta: CollectionEntry, tdb: str, server: ServerInfo, address: str) -> None:
    """Refuse a collection whose restore needs an API ``server`` lacks (the message names it and the fix).

    Aliases are not refused: a server without them gets none, with a warning (:mod:`~.finish`).

    :param meta: the collection's manifest entry.
    :param tdb: its target database.
    :param server: the target Milvus (its ``lacks``, from :func:`~.server_api.lacking`).
    :param address: the target Milvus' address, for the message.
    """
    src = meta.qualified_name
    other = "Restore it to a Milvus server (2.x standalone or cluster) that has it, or leave it out of "
    if tdb != DEFAULT_DB and not server.has(DATABASES):
        raise UnsupportedError(
            lacking_message(
                DATABASES,
                server.label,
                address,
                f"{src} would be restored into database {tdb!r}",
                "Restore into the default database (target_db_name='default') or to a Milvus with databases.",
            )
        )
    parts = extra_partitions(meta)
    if parts and not server.has(PARTITIONS):
        raise UnsupportedError(
            lacking_message(
                PARTITIONS,
                server.label,
                address,
                f"{src} has partitions {', '.join(parts)} besides _default",
                other + "collection_names.",
            )
        )
    if meta.properties and not server.has(PROPERTIES):
        raise UnsupportedError(
            lacking_message(
                PROPERTIES,
                server.label,
                address,
                f"{src} has collection properties {sorted(meta.properties)} (it would lose them)",
                other + "collection_names.",
            )
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
