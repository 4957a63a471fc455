"""Which collections of a backup a restore takes, and onto which targets. Pure.

The selection (bare names, ``db.*``, wildcards), the rename rules (an exact rule wins over ``db.*``), the
target database (``target_db_name``, else the connection's database, never implicitly the source's), one
source per target, and the manifest's own names and keys, all checked before anything is touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from airflow_milvus_backup.engine import manifest as mf
from airflow_milvus_backup.engine.errors import CollectionNotFoundError, InvalidArgumentError
from airflow_milvus_backup.engine.names import (
    DEFAULT_DB,
    map_target,
    restore_database,
    select_collections,
    split_qualified,
    validate_milvus_name,
)
from airflow_milvus_backup.engine.restore.context import qualified

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.manifest import CollectionEntry, Manifest
    from airflow_milvus_backup.engine.restore.options import RestoreOptions


class Pair(NamedTuple):
    """A selected collection of the backup and the target it is restored to."""

    meta: CollectionEntry
    db: str
    name: str


def select_targets(
    manifest: Manifest, opts: RestoreOptions, requested: Iterable[str] | None, connection_db: str | None
) -> list[Pair]:
    """Return the collections to restore and their targets, checked: names, renames, one source per target.

    :param manifest: the backup's manifest.
    :param opts: the restore's options (suffix, renames, ``target_db_name``).
    :param requested: the selection (``"c1"``, ``"db1.c1"``, ``"db1.*"``, ``"c*"``); empty: every collection.
    :param connection_db: the database of the target connection (``MilvusParams.db_name``).
    :raises CollectionNotFoundError: a selected or renamed collection that is not in the backup.
    :raises InvalidArgumentError: two sources onto one target; a bad target name; a damaged manifest entry.
    """
    name = manifest.name
    where = f"backup {name!r}"
    by_source = {(c.db_name, c.name): c for c in manifest.collections}
    available: dict[str, list[str]] = {}
    for db, coll in by_source:
        available.setdefault(db, []).append(coll)
    requested = list(requested) if requested else None
    if not requested:
        selection = list(by_source)
    else:
        default_db = DEFAULT_DB if DEFAULT_DB in available or len(available) != 1 else next(iter(available))
        selection = select_collections(requested, available, default_db, where=where)
    renames = opts.collection_renames or {}
    check_rename_sources(renames, available, where)
    target_db = restore_database(opts.target_db_name, connection_db)

    pairs: list[Pair] = []
    seen: dict[tuple[str, str], str] = {}
    for db, coll in selection:
        mf.check_entry_names(name, by_source[(db, coll)])
        tdb, tname = map_target(db, coll, suffix=opts.collection_suffix, renames=renames, target_db=target_db)
        validate_milvus_name(tdb, "database")
        validate_milvus_name(tname, "collection")
        if (tdb, tname) in seen:
            raise InvalidArgumentError(
                f"Collections {seen[(tdb, tname)]} and {qualified(db, coll)} of {where} would both be "
                f"restored to {qualified(tdb, tname)} (a restore goes into the connection's database "
                "unless target_db_name or a rule says otherwise); keep each source database with "
                f'collection_renames={{"{db}.*": "{db}.*"}}, or change collection_renames or '
                "collection_suffix so every target is unique."
            )
        seen[(tdb, tname)] = qualified(db, coll)
        pairs.append(Pair(by_source[(db, coll)], tdb, tname))
    return pairs


def check_rename_sources(renames: Mapping[str, str], available: Mapping[str, list[str]], where: str) -> None:
    """Refuse rename rules whose source database or collection is not in the backup."""
    for src in renames:
        if "." in src:
            db, coll = split_qualified(src, DEFAULT_DB)
            if db not in available:
                raise CollectionNotFoundError(
                    f"collection_renames names database {db!r} ({src!r}), which is not in {where}; "
                    f"databases in it: {sorted(available)}."
                )
            if coll != "*" and coll not in available[db]:
                raise CollectionNotFoundError(
                    f"collection_renames names {src!r}, which is not in {where}; its collections in "
                    f"{db!r}: {sorted(available[db])[:20]}."
                )
        elif not any(src in colls for colls in available.values()):
            raise CollectionNotFoundError(
                f"collection_renames names {src!r}, which is not in {where}; check the name."
            )
