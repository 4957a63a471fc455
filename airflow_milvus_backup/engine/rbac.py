"""RBAC in a backup: users, their roles, roles and grants (what ``rbac=True`` captures and restores).

This module is the model and the decisions, no server: :class:`RbacSnapshot` (and its :class:`RbacUser`,
:class:`Grant`, :class:`PrivilegeGroup`), its two JSON shapes (our manifest's ``rbac`` key:
:meth:`RbacSnapshot.to_manifest` / :meth:`RbacSnapshot.from_manifest`; Milvus Backup's ``rbac_meta``:
:meth:`RbacSnapshot.to_go_json` / :meth:`RbacSnapshot.from_go_json`) and :func:`plan_restore`, which decides
what a restore creates and what it leaves. Reading and writing Milvus is :mod:`~.rbac_server`'s.

The policy (README, "RBAC"):

* nothing that exists on the target is dropped, revoked or changed: existing roles and grants are kept
  as they are, an existing user keeps its password, and gets only the backed-up roles it lacks;
* the built-in ``root`` user and ``admin`` / ``public`` roles are never created (they always exist);
  grants added to ``public`` are restored;
* passwords cannot be read back from Milvus: a missing user is created only with a password given for it
  (``passwords``); the others are skipped and named in the report and the log, with the fix;
* a grant is the same grant whoever granted it: ``(role, object type, object name, privilege, db)``.
  Re-running a restore therefore changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_milvus_backup.engine.errors import InvalidArgumentError, ManifestError

#: Built-in users and roles: present on every Milvus with authorization, never created by a restore.
BUILTIN_USERS = frozenset({"root"})
BUILTIN_ROLES = frozenset({"admin", "public"})
#: Object types of grants in Milvus 2.3 to 2.5.
OBJECT_TYPES = ("Global", "Collection", "User")


@dataclass(frozen=True, order=True)
class Grant:
    """One privilege of a role on an object.

    :param role: the role.
    :param object_type: ``Global``, ``Collection`` or ``User``.
    :param object_name: a collection or user name, or ``*``.
    :param privilege: ``Search``, ``CreateCollection``, ``SelectUser``... (or a privilege group's name).
    :param db_name: the database (``default``; ``*`` for every database).
    :param grantor: who granted it (kept for the record; the restoring user grants it again).
    """

    role: str
    object_type: str
    object_name: str
    privilege: str
    db_name: str = "default"
    grantor: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Return what makes two grants the same (the grantor does not)."""
        return (self.role, self.object_type, self.object_name, self.privilege, db_key(self.db_name))

    def describe(self) -> str:
        """Return ``roleA: Search on Collection coll_x in default`` (for logs and reports)."""
        return f"{self.role}: {self.privilege} on {self.object_type} {self.object_name} in {self.db_name}"


@dataclass(frozen=True)
class RbacUser:
    """A user and the roles it has.

    :param password_hash: only in a snapshot read from Milvus Backup's JSON (its ``BackupRBAC`` call returns
        the stored hash on Milvus 2.4.10+): written back to that JSON, never to our manifest, never logged,
        not usable through the public API (a restore here never sets it).
    """

    name: str
    roles: tuple[str, ...] = ()
    password_hash: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class PrivilegeGroup:
    """A named set of privileges (Milvus 2.5+; Milvus 2.3.5 has none)."""

    name: str
    privileges: tuple[str, ...] = ()


@dataclass(frozen=True)
class RbacSnapshot:
    """The RBAC of one Milvus: users (with roles), roles, grants and privilege groups."""

    users: tuple[RbacUser, ...] = ()
    roles: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()
    privilege_groups: tuple[PrivilegeGroup, ...] = ()

    def counts(self) -> dict[str, int]:
        """Return the number of users, roles, grants and privilege groups."""
        return {
            "users": len(self.users),
            "roles": len(self.roles),
            "grants": len(self.grants),
            "privilege_groups": len(self.privilege_groups),
        }

    # ------------------------------------------------------------------------- our manifest's "rbac" key
    def to_manifest(self) -> dict[str, Any]:
        """Return the manifest's ``rbac`` object (FORMAT.md, "RBAC"); never a password or hash."""
        doc: dict[str, Any] = {
            "users": [{"name": u.name, "roles": list(u.roles)} for u in self.users],
            "roles": list(self.roles),
            "grants": [
                {
                    "role": g.role,
                    "object_type": g.object_type,
                    "object_name": g.object_name,
                    "privilege": g.privilege,
                    "db_name": g.db_name,
                    "grantor": g.grantor,
                }
                for g in self.grants
            ],
        }
        if self.privilege_groups:
            doc["privilege_groups"] = [
                {"name": p.name, "privileges": list(p.privileges)} for p in self.privilege_groups
            ]
        return doc

    @classmethod
    def from_manifest(cls, doc: Any, where: str = "the manifest's rbac") -> RbacSnapshot:
        """Return the snapshot of a manifest's ``rbac`` object.

        :raises ManifestError: it is not of the shape :meth:`to_manifest` writes (naming the wrong value).
        """
        obj = _obj(doc, where)
        users = tuple(
            RbacUser(_str(u, "name", f"{where}.users[{i}]"), _strs(u, "roles", f"{where}.users[{i}]"))
            for i, u in enumerate(_objs(obj, "users", where))
        )
        roles = _strs(obj, "roles", where)
        grants = []
        for i, g in enumerate(_objs(obj, "grants", where)):
            at = f"{where}.grants[{i}]"
            grants.append(
                Grant(
                    role=_str(g, "role", at),
                    object_type=_str(g, "object_type", at),
                    object_name=_str(g, "object_name", at),
                    privilege=_str(g, "privilege", at),
                    db_name=_str(g, "db_name", at),
                    grantor=_str(g, "grantor", at, required=False),
                )
            )
        groups = tuple(
            PrivilegeGroup(
                _str(p, "name", f"{where}.privilege_groups[{i}]"),
                _strs(p, "privileges", f"{where}.privilege_groups[{i}]"),
            )
            for i, p in enumerate(_objs(obj, "privilege_groups", where, required=False))
        )
        return cls(users, roles, tuple(grants), groups)

    # ------------------------------------------------------------------------- Milvus Backup's rbac_meta
    def to_go_json(self) -> dict[str, Any]:
        """Return Milvus Backup's ``rbac_meta`` (backup.proto ``RBACMeta``) as Go's ``encoding/json`` has it.

        Keys in the struct's field order, ``omitempty`` applied (empty strings and lists left out; nested
        messages are pointers, so an entity with an empty name is ``{}``). The byte encoding (Go's escaping
        of ``<``, ``>``, ``&``) is the physical format writer's.
        """
        out: dict[str, Any] = {}
        users = [
            _omit({"user": u.name, "password": u.password_hash, "roles": [_named(r) for r in u.roles]})
            for u in self.users
        ]
        grants = [
            _omit(
                {
                    "role": _named(g.role),
                    "object": _named(g.object_type),
                    "object_name": g.object_name,
                    "grantor": {"user": _named(g.grantor), "privilege": _named(g.privilege)},
                    "db_name": g.db_name,
                }
            )
            for g in self.grants
        ]
        groups = [
            _omit({"group_name": p.name, "privileges": [_named(n) for n in p.privileges]})
            for p in self.privilege_groups
        ]
        for key, value in (
            ("users", users),
            ("roles", [_named(r) for r in self.roles]),
            ("grants", grants),
            ("privilege_groups", groups),
        ):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_go_json(cls, doc: Any, where: str = "rbac_meta") -> RbacSnapshot:
        """Return the snapshot of Milvus Backup's ``rbac_meta`` (missing keys are Go's zero values).

        :raises ManifestError: a value of the wrong type (naming it).
        """
        obj = _obj(doc, where)
        users = []
        for i, u in enumerate(_objs(obj, "users", where, required=False)):
            at = f"{where}.users[{i}]"
            roles = tuple(_name(r, f"{at}.roles[{j}]") for j, r in enumerate(_objs(u, "roles", at, False)))
            users.append(
                RbacUser(_str(u, "user", at, required=False), roles, _str(u, "password", at, required=False))
            )
        roles = tuple(
            _name(r, f"{where}.roles[{i}]") for i, r in enumerate(_objs(obj, "roles", where, False))
        )
        grants = []
        for i, g in enumerate(_objs(obj, "grants", where, required=False)):
            at = f"{where}.grants[{i}]"
            grantor = _obj(g.get("grantor") or {}, f"{at}.grantor")
            grants.append(
                Grant(
                    role=_name(g.get("role"), f"{at}.role"),
                    object_type=_name(g.get("object"), f"{at}.object"),
                    object_name=_str(g, "object_name", at, required=False),
                    privilege=_name(grantor.get("privilege"), f"{at}.grantor.privilege"),
                    db_name=_str(g, "db_name", at, required=False),
                    grantor=_name(grantor.get("user"), f"{at}.grantor.user"),
                )
            )
        groups = []
        for i, p in enumerate(_objs(obj, "privilege_groups", where, required=False)):
            at = f"{where}.privilege_groups[{i}]"
            privs = tuple(
                _name(n, f"{at}.privileges[{j}]") for j, n in enumerate(_objs(p, "privileges", at, False))
            )
            groups.append(PrivilegeGroup(_str(p, "group_name", at, required=False), privs))
        return cls(tuple(users), roles, tuple(grants), tuple(groups))


def db_key(db_name: str) -> str:
    """Return a grant's database as Milvus stores it: an empty one is ``default``."""
    return db_name or "default"


# ----------------------------------------------------------------------------------------------- decisions
@dataclass
class RbacPlan:
    """What a restore of a snapshot does on one target (:func:`plan_restore`), and what it leaves.

    :param create_roles: roles to create.
    :param create_users: users to create (each gets the password given for it).
    :param bind: ``(user, role)`` bindings to add (for created and existing users).
    :param create_groups: privilege groups to create.
    :param grant: grants to make.
    :param existing: counts of what was there already (users, roles, bindings, grants, privilege groups).
    :param skipped_users: users not created, with why (no password given, built-in).
    """

    create_roles: list[str] = field(default_factory=list)
    create_users: list[str] = field(default_factory=list)
    bind: list[tuple[str, str]] = field(default_factory=list)
    create_groups: list[PrivilegeGroup] = field(default_factory=list)
    grant: list[Grant] = field(default_factory=list)
    existing: dict[str, int] = field(default_factory=dict)
    skipped_users: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        """Return how many things the plan creates or grants (0: the target already matches)."""
        lists: tuple[list[Any], ...] = (
            self.create_roles,
            self.create_users,
            self.bind,
            self.create_groups,
            self.grant,
        )
        return sum(len(x) for x in lists)


NO_PASSWORD = (
    "not created: Milvus cannot give a user's password back, and none was given for it; pass "
    "rbac_passwords={user: password} (from a secret), or create the user yourself and restore again "
    "(its roles are then added)"
)


def plan_restore(
    snapshot: RbacSnapshot,
    current: RbacSnapshot,
    passwords: Mapping[str, str] | None = None,
) -> RbacPlan:
    """Decide what restoring ``snapshot`` onto a target whose RBAC is ``current`` does (a pure function).

    :param snapshot: what the backup holds.
    :param current: what the target has (its users with their roles, roles, grants, privilege groups).
    :param passwords: passwords of users to create, by user name.
    """
    passwords = dict(passwords or {})
    plan = RbacPlan()
    have_roles = set(current.roles) | BUILTIN_ROLES
    users_now = {u.name: set(u.roles) for u in current.users}
    wanted_roles = list(dict.fromkeys([*snapshot.roles, *(r for u in snapshot.users for r in u.roles)]))
    plan.create_roles = [r for r in wanted_roles if r not in have_roles]
    plan.existing["roles"] = sum(1 for r in wanted_roles if r in have_roles)
    plan.existing["users"] = plan.existing["bindings"] = 0
    for u in snapshot.users:
        if u.name in BUILTIN_USERS:
            plan.skipped_users[u.name] = "built-in user: never created or changed"
            continue
        if u.name in users_now:
            plan.existing["users"] += 1
            has = users_now[u.name]
        elif passwords.get(u.name):
            plan.create_users.append(u.name)
            has = set()
        else:
            plan.skipped_users[u.name] = NO_PASSWORD
            continue
        for r in dict.fromkeys(u.roles):
            if r in has:
                plan.existing["bindings"] += 1
            else:
                plan.bind.append((u.name, r))
    have_groups = {p.name for p in current.privilege_groups}
    plan.create_groups = [p for p in snapshot.privilege_groups if p.name not in have_groups]
    plan.existing["privilege_groups"] = len(snapshot.privilege_groups) - len(plan.create_groups)
    have_grants = {g.key for g in current.grants}
    seen: set[tuple[str, ...]] = set()
    for g in snapshot.grants:
        if g.key in seen:
            continue
        seen.add(g.key)
        if g.key not in have_grants:
            plan.grant.append(g)
    plan.existing["grants"] = len(seen) - len(plan.grant)
    return plan


def check_passwords(passwords: Any) -> dict[str, str]:
    """Return ``passwords`` as a dict of non-empty strings by user name, or raise.

    The message names the user, never the password.
    """
    if passwords in (None, {}):
        return {}
    if not isinstance(passwords, Mapping):
        raise InvalidArgumentError(
            f"rbac_passwords must be a mapping of user name to password, not a {type(passwords).__name__}."
        )
    for user, pw in passwords.items():
        if not isinstance(user, str) or not user:
            raise InvalidArgumentError(f"rbac_passwords: user names must be non-empty strings, not {user!r}.")
        if not isinstance(pw, str) or not pw:
            raise InvalidArgumentError(
                f"rbac_passwords: the password of user {user!r} must be a non-empty string."
            )
    return dict(passwords)


def merge_grants(lists: Iterable[Iterable[Grant]]) -> tuple[Grant, ...]:
    """Return the grants of several listings once each, sorted.

    A grant whose database is ``*`` is listed for every database.
    """
    out: dict[tuple[str, ...], Grant] = {}
    for grants in lists:
        for g in grants:
            out.setdefault(g.key, g)
    return tuple(sorted(out.values()))


# ----------------------------------------------------------------------------------------------- JSON helpers
def _named(name: str) -> dict[str, str]:
    return {"name": name} if name else {}


def _omit(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", [], None)}


def _bad(where: str, kind: str, value: Any) -> ManifestError:
    shown = repr(value)[:60]
    return ManifestError(f"RBAC in a backup is malformed: {where} must be {kind}, not {shown}.")


def _obj(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _bad(where, "an object", doc)
    return doc


def _objs(doc: dict[str, Any], key: str, where: str, required: bool = True) -> list[dict[str, Any]]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _bad(f"{where}.{key}", "a list", value)
    return [_obj(v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]


def _str(doc: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{where}.{key}", "a string", value)
    return value


def _strs(doc: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where}.{key}", "a list of strings", value)
    return tuple(value)


def _name(doc: Any, where: str) -> str:
    if doc is None:
        return ""
    return _str(_obj(doc, where), "name", where, required=False)
