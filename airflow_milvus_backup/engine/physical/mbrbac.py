"""Milvus Backup's RBAC structs (``backup.proto`` ``RBACMeta``): users, roles, grants, privilege groups.

The structs are part of :mod:`.mbmodel` (import them from there). :func:`rbac_meta_from_snapshot` and
:func:`snapshot_from_rbac_meta` convert between them and this package's :class:`~..rbac.RbacSnapshot`
(what ``rbac=True`` captures and restores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_milvus_backup.engine.physical.gojson import STR, F, GoStruct, ListOf
from airflow_milvus_backup.engine.rbac import (
    BUILTIN_ROLES,
    BUILTIN_USERS,
    Grant,
    PrivilegeGroup,
    RbacSnapshot,
    RbacUser,
)


def _tuple() -> Any:
    return field(default_factory=tuple)


@dataclass(frozen=True, kw_only=True)
class _Named(GoStruct):
    name: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (F("name", "name", STR),)


@dataclass(frozen=True, kw_only=True)
class RoleEntity(_Named):
    """``RoleEntity``."""


@dataclass(frozen=True, kw_only=True)
class UserEntity(_Named):
    """``UserEntity``."""


@dataclass(frozen=True, kw_only=True)
class ObjectEntity(_Named):
    """``ObjectEntity`` (``Collection``, ``Global``, ``User`` ...)."""


@dataclass(frozen=True, kw_only=True)
class PrivilegeEntity(_Named):
    """``PrivilegeEntity``."""


@dataclass(frozen=True, kw_only=True)
class GrantorEntity(GoStruct):
    """``GrantorEntity``: who granted which privilege."""

    user: UserEntity | None = None
    privilege: PrivilegeEntity | None = None
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("user", "user", UserEntity),
        F("privilege", "privilege", PrivilegeEntity),
    )


@dataclass(frozen=True, kw_only=True)
class GrantEntity(GoStruct):
    """``GrantEntity``: one grant of a role on an object."""

    role: RoleEntity | None = None
    object: ObjectEntity | None = None
    object_name: str = ""
    grantor: GrantorEntity | None = None
    db_name: str = ""
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("role", "role", RoleEntity),
        F("object", "object", ObjectEntity),
        F("object_name", "object_name", STR),
        F("grantor", "grantor", GrantorEntity),
        F("db_name", "db_name", STR),
    )


@dataclass(frozen=True, kw_only=True)
class PrivilegeGroupInfo(GoStruct):
    """``PrivilegeGroupInfo``."""

    group_name: str = ""
    privileges: tuple[PrivilegeEntity, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("group_name", "group_name", STR),
        F("privileges", "privileges", ListOf(PrivilegeEntity)),
    )


@dataclass(frozen=True, kw_only=True)
class UserInfo(GoStruct):
    """``UserInfo``: a user, its (encrypted, as Milvus stores it) password and roles."""

    user: str = ""
    password: str = ""
    roles: tuple[RoleEntity, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("user", "user", STR),
        F("password", "password", STR),
        F("roles", "roles", ListOf(RoleEntity)),
    )


@dataclass(frozen=True, kw_only=True)
class RBACMeta(GoStruct):
    """``RBACMeta``: users, roles, grants and privilege groups."""

    users: tuple[UserInfo, ...] = _tuple()
    roles: tuple[RoleEntity, ...] = _tuple()
    grants: tuple[GrantEntity, ...] = _tuple()
    privilege_groups: tuple[PrivilegeGroupInfo, ...] = _tuple()
    GO_FIELDS: ClassVar[tuple[F, ...]] = (
        F("users", "users", ListOf(UserInfo)),
        F("roles", "roles", ListOf(RoleEntity)),
        F("grants", "grants", ListOf(GrantEntity)),
        F("privilege_groups", "privilege_groups", ListOf(PrivilegeGroupInfo)),
    )


# ------------------------------------------------------------------------- our RbacSnapshot <-> RBACMeta
def rbac_meta_from_snapshot(snapshot: RbacSnapshot, *, builtins: bool = False) -> RBACMeta:
    """Return Milvus Backup's ``RBACMeta`` of a snapshot (what a physical backup's ``rbac_meta`` holds).

    As Milvus' ``BackupRBAC`` (which Milvus Backup stores as it is) leaves them out, the built-in user
    ``root``, the built-in roles ``admin`` and ``public`` and the grants of those roles are left out unless
    ``builtins``. A user's roles are kept as they are. A password hash is written only when the snapshot has
    one (read from a Milvus Backup backup); the public API never gives one.

    :param snapshot: users, roles, grants and privilege groups (:func:`~..rbac_server.capture_rbac`).
    :param builtins: keep the built-in user and roles and the grants of the built-in roles.
    """
    users = [u for u in snapshot.users if builtins or u.name not in BUILTIN_USERS]
    roles = [r for r in snapshot.roles if builtins or r not in BUILTIN_ROLES]
    kept = set(roles)
    grants = [g for g in snapshot.grants if builtins or g.role in kept]
    return RBACMeta(
        users=tuple(
            UserInfo(user=u.name, password=u.password_hash, roles=tuple(RoleEntity(name=r) for r in u.roles))
            for u in users
        ),
        roles=tuple(RoleEntity(name=r) for r in roles),
        grants=tuple(
            GrantEntity(
                role=RoleEntity(name=g.role),
                object=ObjectEntity(name=g.object_type),
                object_name=g.object_name,
                grantor=GrantorEntity(
                    user=UserEntity(name=g.grantor), privilege=PrivilegeEntity(name=g.privilege)
                ),
                db_name=g.db_name,
            )
            for g in grants
        ),
        privilege_groups=tuple(
            PrivilegeGroupInfo(
                group_name=p.name, privileges=tuple(PrivilegeEntity(name=n) for n in p.privileges)
            )
            for p in snapshot.privilege_groups
        ),
    )


def snapshot_from_rbac_meta(meta: RBACMeta | None) -> RbacSnapshot:
    """Return the :class:`~..rbac.RbacSnapshot` of a backup's ``rbac_meta`` (``None``: an empty one).

    What a restore with ``rbac=True`` of a physical or Milvus Backup backup restores
    (:func:`~..rbac_server.restore_rbac`). Go's nil pointers read as empty names; a user's password hash is
    kept on :attr:`~..rbac.RbacUser.password_hash` (never used by a restore of this package).
    """
    if meta is None:
        return RbacSnapshot()

    def name(entity: _Named | None) -> str:
        return entity.name if entity is not None else ""

    grants = []
    for g in meta.grants:
        grantor = g.grantor or GrantorEntity()
        grants.append(
            Grant(
                role=name(g.role),
                object_type=name(g.object),
                object_name=g.object_name,
                privilege=name(grantor.privilege),
                db_name=g.db_name,
                grantor=name(grantor.user),
            )
        )
    return RbacSnapshot(
        users=tuple(RbacUser(u.user, tuple(r.name for r in u.roles), u.password) for u in meta.users),
        roles=tuple(r.name for r in meta.roles),
        grants=tuple(grants),
        privilege_groups=tuple(
            PrivilegeGroup(p.group_name, tuple(n.name for n in p.privileges)) for p in meta.privilege_groups
        ),
    )


def rbac_counts_of(meta: RBACMeta) -> dict[str, int]:
    """Return the number of users, roles, grants and privilege groups an ``RBACMeta`` holds."""
    return {
        "users": len(meta.users),
        "roles": len(meta.roles),
        "grants": len(meta.grants),
        "privilege_groups": len(meta.privilege_groups),
    }
