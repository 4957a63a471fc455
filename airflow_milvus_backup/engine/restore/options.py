"""The options of a restore: declared here and nowhere else, with the restore id rules."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from airflow_milvus_backup.engine.clock import utcnow
from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.names import validate_milvus_name, validate_renames, validate_suffix
from airflow_milvus_backup.engine.rbac import check_passwords


class StrValue(str, Enum):
    """An Enum of strings whose members compare equal to, print as and are written to JSON as their values.

    As ``enum.StrEnum`` (Python 3.11+) does: a state read back from a status file (a plain ``str``) equals
    its member, and messages and logs show ``create``, not ``Action.CREATE``.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Method(StrValue):
    """How the rows go into Milvus."""

    INSERT = "insert"
    BULK_IMPORT = "bulk_import"
    #: a physical backup's binlogs imported with ``backup=true`` (the method of every physical restore)
    BINLOG_IMPORT = "binlog_import"


#: Methods that import (Milvus jobs to poll) rather than insert.
IMPORT_METHODS = (Method.BULK_IMPORT, Method.BINLOG_IMPORT)
#: The values of the ``method`` option: a :class:`Method`, or ``"auto"`` (bulk import when it can work; a
#: physical backup is always restored by binlog import).
METHODS = ("auto", *(m.value for m in Method))
RESTORE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The options whose values make up a restore's fingerprint (with ``collections`` and the target). Never
#: remove a name; an option added later is in the fingerprint only when it is not at its default.
FINGERPRINT_FIELDS = (
    "collection_suffix",
    "collection_renames",
    "target_db_name",
    "drop_existing",
    "skip_create",
    "meta_only",
    "restore_index",
    "use_auto_index",
    "auto_index_fallback",
    "restore_aliases",
    "restore_load_state",
    "method",
    "accept_new_primary_keys",
    "bulk_import_bucket",
    "bulk_import_root",
)


def new_restore_id() -> str:
    """Return a new, time-ordered restore id such as ``r20260101T020000_1a2b3c4d``."""
    return f"r{utcnow().strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"


def check_restore_id(restore_id: object) -> str:
    """Return ``restore_id`` if it is 1 to 64 ASCII letters, digits, ``_`` or ``-``; else raise."""
    if not isinstance(restore_id, str) or not RESTORE_ID_RE.fullmatch(restore_id):
        raise InvalidArgumentError(
            f"Invalid restore_id {restore_id!r}: use 1 to 64 ASCII letters, digits, '_' or '-'."
        )
    return restore_id


@dataclass
class RestoreOptions:
    """The options of one restore, as :meth:`RestoreEngine.restore` and ``submit`` take them.

    :param collection_suffix: appended to every target name (``hello_milvus`` + ``_recover``); also to
        aliases.
    :param collection_renames: ``{"c1": "c2", "db1.c1": "db2.c2", "db1.*": "db2.*"}``; an exact rule wins.
    :param target_db_name: restore into this database (created, if missing, with the source's properties);
        default: the database of the connection (``MilvusParams.db_name``), never implicitly the source
        database. A rename rule with an explicit database (``{"db1.c1": "db2.c2"}``) wins for its collections.
    :param drop_existing: drop an existing target and create it again.
    :param skip_create: insert the rows into existing targets whose schema is compatible (checked field by
        field).
    :param meta_only: recreate schema, partitions, indexes, aliases and load state, without rows.
    :param restore_index: create the backed-up indexes (same names and params); ``False`` creates none.
    :param use_auto_index: build AUTOINDEX with the original metric on vector fields instead.
    :param auto_index_fallback: build AUTOINDEX where the target cannot build the backed-up index.
    :param restore_aliases: create the aliases (``alias + collection_suffix``); taken ones are reported.
    :param restore_load_state: load the collections that were loaded, release the others.
    :param method: ``"insert"``, ``"bulk_import"`` or ``"auto"`` (bulk import when it can work); a physical
        backup is restored by ``"binlog_import"`` (``"auto"`` picks it; nothing else restores one).
    :param accept_new_primary_keys: let Milvus generate new keys for auto_id collections where it cannot keep
        the backed-up ones.
    :param bulk_import_bucket: the bucket the target Milvus stores its data in (bulk import needs the backup
        to be in that bucket).
    :param bulk_import_root: the prefix Milvus resolves import paths against (default: the bucket's root, as
        Milvus 2.3 to 2.5 do).
    :param rbac: also restore the backup's users, roles and grants (:mod:`~airflow_milvus_backup.engine.rbac`:
        nothing that exists is dropped or changed; the backup must have been made with ``rbac=True``).
    :param rbac_passwords: passwords of the users to create, by name (Milvus cannot give passwords back; a
        missing user without one is skipped and named in the report). Never logged nor stored: the restore's
        status records only the user names.
    """

    collection_suffix: str = ""
    collection_renames: dict[str, str] | None = None
    target_db_name: str | None = None
    drop_existing: bool = False
    skip_create: bool = False
    meta_only: bool = False
    restore_index: bool = True
    use_auto_index: bool = False
    auto_index_fallback: bool = False
    restore_aliases: bool = True
    restore_load_state: bool = True
    method: str = "auto"
    accept_new_primary_keys: bool = False
    bulk_import_bucket: str | None = None
    bulk_import_root: str | None = None
    rbac: bool = False
    rbac_passwords: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    def flags(cls) -> list[str]:
        """Return the names of the options that are True or False."""
        return [f.name for f in fields(cls) if f.type in ("bool", bool)]

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> RestoreOptions:
        """Return options from keyword arguments; an unknown name is an :class:`InvalidArgumentError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidArgumentError(
                f"Unknown restore option(s) {unknown}; known options: {sorted(known)}."
            )
        opts = cls(**{k: v for k, v in options.items() if k in known})
        opts.validate()
        return opts

    def validate(self) -> None:
        """Check the options and their combinations; normalise suffix and renames."""
        self.collection_suffix = validate_suffix(self.collection_suffix)
        self.collection_renames = validate_renames(self.collection_renames) or None
        if self.target_db_name in ("", None):
            self.target_db_name = None
        else:
            validate_milvus_name(self.target_db_name, "database")
        for flag in self.flags():
            if not isinstance(getattr(self, flag), bool):
                raise InvalidArgumentError(
                    f"Restore option {flag} must be True or False, got {getattr(self, flag)!r}."
                )
        if self.method not in METHODS:
            raise InvalidArgumentError(f"Invalid restore method {self.method!r}: use one of {list(METHODS)}.")
        if self.drop_existing and self.skip_create:
            raise InvalidArgumentError(
                "drop_existing=True and skip_create=True contradict each other: drop_existing replaces the "
                "target collections, skip_create loads the rows into them as they are. Choose one."
            )
        if self.meta_only and self.skip_create:
            raise InvalidArgumentError(
                "meta_only=True with skip_create=True would do nothing: meta_only recreates the collections "
                "without rows, skip_create only loads rows into existing ones. Choose one."
            )
        if self.use_auto_index and not self.restore_index:
            raise InvalidArgumentError(
                "use_auto_index=True needs restore_index=True (it builds AUTOINDEX instead of the backed-up "
                "indexes; restore_index=False builds none)."
            )
        if self.bulk_import_root:
            self.bulk_import_root = self.bulk_import_root.strip("/")
        self.rbac_passwords = check_passwords(self.rbac_passwords) or None
        if self.rbac_passwords and not self.rbac:
            raise InvalidArgumentError("rbac_passwords is for rbac=True: pass rbac=True to restore users.")

    def fingerprint_fields(self) -> dict[str, Any]:
        """Return the options a resume must match: :data:`FINGERPRINT_FIELDS`, plus later ones not at default.

        The set is explicit so that an option added in a later release (with a default that does what this
        release did) leaves the fingerprint of an unchanged restore as it was: it still resumes.
        """
        out = {name: getattr(self, name) for name in FINGERPRINT_FIELDS}
        for f in fields(self):
            if f.name not in out and getattr(self, f.name) != f.default:
                out[f.name] = getattr(self, f.name)
        if "rbac_passwords" in out:  # a secret: only whose passwords were given counts
            out["rbac_passwords"] = sorted(out["rbac_passwords"])
        return out
