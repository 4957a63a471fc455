"""Milvus Backup's RBAC structs (``backup.proto`` ``RBACMeta``): users, roles, grants, privilege groups.

Part of :mod:`.mbmodel` (import them from there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_milvus_backup.engine.physical.gojson import STR, F, GoStruct, ListOf


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
