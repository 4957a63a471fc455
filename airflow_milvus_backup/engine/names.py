"""Name rules, collection selection with wildcards, and rename maps.

Names are validated here, before anything is written: every S3 key and local path the engine builds is made
only of names that passed these rules ("no crap in, no crap out").
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

from airflow_milvus_backup.engine.errors import BackupNameError, InvalidArgumentError

#: The Milvus Backup name rule, ASCII only (so unicode look-alikes are refused).
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Milvus collection, partition, database and alias names follow the same shape (letters, digits, ``_``).
MILVUS_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
SUFFIX_RE = re.compile(r"^[A-Za-z0-9_]{0,64}$")
DEFAULT_DB = "default"


def validate_backup_name(name: object) -> str:
    """Return ``name`` if it is a valid backup name, else raise :class:`BackupNameError`.

    :param name: the backup name to check.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name) if isinstance(name, str) and len(name) <= 140 else f"{str(name)[:40]!r}..."
        raise BackupNameError(
            f"Invalid backup name {shown}: use 1 to 128 ASCII letters, digits or '_', not starting with a "
            "digit (the Milvus Backup rule, e.g. 'nightly_20260101')."
        )
    return name


def validate_milvus_name(name: object, what: str = "collection") -> str:
    """Return ``name`` if it is a valid Milvus name (collection, partition, database, alias)."""
    if not isinstance(name, str) or not MILVUS_NAME_RE.fullmatch(name):
        raise InvalidArgumentError(
            f"Invalid {what} name {name!r}: Milvus names are ASCII letters, digits and '_', "
            "not starting with a digit."
        )
    return name


def validate_suffix(suffix: object) -> str:
    """Return ``suffix`` if it is a valid ``collection_suffix`` (letters, digits, ``_``; may be empty)."""
    if suffix is None:
        return ""
    if not isinstance(suffix, str) or not SUFFIX_RE.fullmatch(suffix):
        raise InvalidArgumentError(
            f"Invalid collection_suffix {suffix!r}: use only ASCII letters, digits and '_' (e.g. '_recover')."
        )
    return suffix


def sanitize_name(text: str, prefix: str = "backup") -> str:
    """Turn arbitrary text (an Airflow run id) into a valid backup name, deterministically."""
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if not cleaned or not re.match(r"[A-Za-z_]", cleaned[0]):
        cleaned = f"{prefix}_{cleaned}"
    return validate_backup_name(cleaned[:128].rstrip("_") or prefix)


def split_qualified(name: str, default_db: str) -> tuple[str, str]:
    """Split ``"db.collection"`` into ``(db, collection)``; a bare name belongs to ``default_db``."""
    if "." in name:
        db, _, coll = name.partition(".")
        return db, coll
    return default_db, name


def select_collections(
    requested: Iterable[str] | None,
    available: Mapping[str, list[str]],
    default_db: str = DEFAULT_DB,
    *,
    where: str = "Milvus",
) -> list[tuple[str, str]]:
    """Resolve a selection into ``(db, collection)`` pairs, in a stable order.

    :param requested: names like ``"c1"``, ``"db1.c1"``, ``"db1.*"`` or ``"c*"``;
        ``None`` or empty means every
        collection of ``default_db``.
    :param available: collections per database, as they exist.
    :param default_db: the database of bare names.
    :param where: what ``available`` describes, for error messages ("Milvus", "backup 'x'").
    :raises CollectionNotFoundError: a plain name that does not exist; a wildcard that matches nothing.
    """
    from airflow_milvus_backup.engine.errors import CollectionNotFoundError, DatabaseNotFoundError

    if not requested:
        if default_db not in available:
            raise DatabaseNotFoundError(
                f"Database {default_db!r} does not exist in {where}; known databases: {sorted(available)}."
            )
        return [(default_db, c) for c in sorted(available[default_db])]
    chosen: list[tuple[str, str]] = []
    for item in requested:
        if not isinstance(item, str) or not item:
            raise InvalidArgumentError(
                f"Invalid collection selector {item!r}: use 'name', 'db.name' or 'db.*'."
            )
        db, pattern = split_qualified(item, default_db)
        if db not in available:
            raise DatabaseNotFoundError(
                f"Database {db!r} (from {item!r}) does not exist in {where}; known databases: "
                f"{sorted(available)}."
            )
        if any(ch in pattern for ch in "*?["):
            matches = sorted(c for c in available[db] if fnmatch.fnmatchcase(c, pattern))
            if not matches:
                raise CollectionNotFoundError(
                    f"No collection in database {db!r} of {where} matches {item!r}."
                )
        else:
            if pattern not in available[db]:
                raise CollectionNotFoundError(
                    f"Collection {pattern!r} does not exist in database {db!r} of {where}; "
                    f"check the name (existing: {sorted(available[db])[:20]})."
                )
            matches = [pattern]
        for c in matches:
            if (db, c) not in chosen:
                chosen.append((db, c))
    return chosen


def check_not_empty(
    selection: list[tuple[str, str]], default_db: str, where: str, *, allow_empty: bool = False
) -> None:
    """Refuse a backup selection without collections unless ``allow_empty``.

    An empty selection usually means the wrong Milvus, database or Milvus Lite path (Milvus Lite creates an
    empty database at a path that does not exist), not a wish to back up nothing.

    :param selection: the resolved ``(db, collection)`` pairs.
    :param default_db: the database whose collections were asked for.
    :param where: the Milvus, for the message ("Milvus at http://...").
    :param allow_empty: back up nothing on purpose.
    :raises EmptyBackupError: nothing selected and ``allow_empty`` not set.
    """
    from airflow_milvus_backup.engine.errors import EmptyBackupError

    if selection or allow_empty:
        return
    raise EmptyBackupError(
        f"Nothing to back up: database {default_db!r} of {where} has no collections, so the backup would be "
        "empty. Check the Milvus address or Milvus Lite path and the database (db_name, or the connection's "
        "Schema), or name the collections; pass allow_empty=True to back up an empty database on purpose."
    )


def restore_database(target_db_name: str | None, connection_db: str | None) -> str:
    """Return the database a restore writes to: ``target_db_name`` if given, else the connection's database.

    Never the source database implicitly: a connection to ``staging`` restores into ``staging``, whatever
    database the backup came from (an explicit ``db.name`` in a rename rule still wins for its collections).

    :param target_db_name: the restore's ``target_db_name`` option (``None`` or ``""``: not set).
    :param connection_db: the target connection's database (``MilvusParams.db_name``; empty means
        ``default``).
    """
    return target_db_name or connection_db or DEFAULT_DB


def map_target(
    db: str,
    collection: str,
    *,
    suffix: str = "",
    renames: Mapping[str, str] | None = None,
    target_db: str | None = None,
) -> tuple[str, str]:
    """Return the ``(db, collection)`` a backed-up collection is restored to.

    Rename rules, as in Milvus Backup: ``{"c1": "c2"}`` (bare names are in the ``default`` database),
    ``{"db1.c1": "db2.c2"}``, ``{"db1.*": "db2.*"}`` (every collection of db1 into db2). An exact rule wins
    over a wildcard one. Without a rule the suffix is appended; ``target_db`` moves it to another database.
    """
    renames = renames or {}
    for src, dst in renames.items():
        sdb, scoll = split_qualified(src, DEFAULT_DB)
        if sdb == db and scoll == collection:
            return split_qualified(dst, target_db or sdb)
    for src, dst in renames.items():
        sdb, scoll = split_qualified(src, DEFAULT_DB)
        if scoll == "*" and sdb == db:
            ddb, _ = split_qualified(dst, target_db or db)
            return ddb, collection + suffix
    return (target_db or db), collection + suffix


def validate_renames(renames: Mapping[str, str] | None) -> dict[str, str]:
    """Check the shape of a rename map: every side a valid ``name``, ``db.name`` or ``db.*``."""
    if renames is None:
        return {}
    if not isinstance(renames, Mapping):
        raise InvalidArgumentError(
            f"collection_renames must be a mapping of source to target, got {renames!r}."
        )
    for src, dst in renames.items():
        for side in (src, dst):
            if not isinstance(side, str):
                raise InvalidArgumentError(f"Invalid rename {src!r} -> {dst!r}: names must be strings.")
            db, coll = split_qualified(side, DEFAULT_DB)
            try:
                validate_milvus_name(db, "database")
                if coll != "*":
                    validate_milvus_name(coll, "collection")
            except InvalidArgumentError as e:
                # Name the entry: "../x" would otherwise read as an invalid database name ''.
                raise InvalidArgumentError(
                    f"Invalid collection_renames entry {src!r} -> {dst!r}: {side!r} is not 'name', 'db.name' "
                    f"or 'db.*' ({e})"
                ) from None
        if src.endswith(".*") != dst.endswith(".*"):
            raise InvalidArgumentError(f"Invalid rename {src!r} -> {dst!r}: map 'db.*' only onto 'db.*'.")
    return dict(renames)
