"""Read and write a Milvus' RBAC through the public API (:func:`capture_rbac`, :func:`restore_rbac`).

Milvus Backup reads RBAC with one ``BackupRBAC`` call and writes it with ``RestoreRBAC`` (Milvus 2.4.10+);
Milvus 2.3.5 has neither, so this reads it with ``list_users`` / ``describe_user`` / ``list_roles`` /
``describe_role`` (once per database: a grant is listed under its own database, a ``*`` one under every
database) and writes it with ``create_role`` / ``create_user`` / ``grant_role`` / ``grant_privilege``. What is
created and what is left is decided by :func:`~.rbac.plan_restore`; the policy is in :mod:`~.rbac`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_milvus_backup.engine.client import auth_failure
from airflow_milvus_backup.engine.errors import MilvusAuthenticationError, UnsupportedError
from airflow_milvus_backup.engine.failures import causes, grpc_status_name
from airflow_milvus_backup.engine.rbac import (
    Grant,
    PrivilegeGroup,
    RbacPlan,
    RbacSnapshot,
    RbacUser,
    check_passwords,
    merge_grants,
    plan_restore,
)

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.client import MilvusParams

log = logging.getLogger("airflow_milvus_backup.engine.rbac")

LITE_FIX = (
    "Milvus Lite has no users, roles or grants (no RBAC). Use rbac=True with a Milvus server whose "
    "authorization is on (common.security.authorizationEnabled: true), or pass rbac=False."
)


class RbacUnsupportedError(UnsupportedError):
    """``rbac=True`` against a server without RBAC (Milvus Lite)."""

    retryable = False


def refuse_lite(is_lite: bool, address: str, what: str) -> None:
    """Raise :class:`RbacUnsupportedError` when the server is Milvus Lite (before anything is written).

    :param is_lite: whether the server is Milvus Lite (the URI is a file, or its version says so).
    :param address: the server's address, for the message.
    :param what: ``"Backup 'b'"`` / ``"Restore of backup 'b'"``.
    """
    if is_lite:
        raise RbacUnsupportedError(
            f"{what} with rbac=True: the target at {address} is Milvus Lite. {LITE_FIX}"
        )


def guarded(what: str, address: str) -> _Guard:
    """Return a context manager turning a refused or unimplemented RBAC call into one clear error.

    :param what: ``"Backup 'b'"`` / ``"Restore of backup 'b'"``.
    :param address: the server's address.
    """
    return _Guard(what, address)


class _Guard:
    def __init__(self, what: str, address: str) -> None:
        self.what, self.address = what, address

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        if any(grpc_status_name(c) == "UNIMPLEMENTED" for c in causes(exc)):
            raise RbacUnsupportedError(
                f"{self.what} with rbac=True: Milvus at {self.address} has no RBAC calls ({exc}). {LITE_FIX}"
            ) from exc
        reason = auth_failure(exc)
        if reason:
            raise MilvusAuthenticationError(
                f"{self.what} with rbac=True: Milvus at {self.address} refused to let this user read or "
                f"manage users, roles and grants ({reason}). Connect as root or as a user with the admin "
                "role."
            ) from exc


def capture_rbac(
    client: MilvusClient, databases: list[str] | None = None, *, server_version: str | None = None
) -> RbacSnapshot:
    """Return the server's users (with their roles), roles, grants and privilege groups.

    Needs a user allowed to read them (``root``, or a user with the ``admin`` role). Grants of databases
    that no longer exist are not listed by Milvus, so they are not captured.

    :param client: a client of the server.
    :param databases: the databases whose grants to read (default: every database of the server).
    :param server_version: the server's version text, if known (privilege groups are read from 2.5 on).
    """
    if databases is None:
        databases = _databases(client)
    if server_version is None:
        server_version = str(client.get_server_version())
    users = tuple(
        RbacUser(name, tuple(sorted(client.describe_user(name).get("roles") or ())))
        for name in sorted(client.list_users())
    )
    roles = tuple(sorted(client.list_roles()))
    grants = merge_grants(_grants(client, r, db) for r in roles for db in databases)
    groups = _groups(client) if has_groups(server_version) else ()
    snapshot = RbacSnapshot(users, roles, grants, groups)
    log.info("RBAC captured: %s", snapshot.counts())
    return snapshot


def restore_rbac(
    client: MilvusClient,
    snapshot: RbacSnapshot,
    passwords: Mapping[str, str] | None = None,
    *,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Create the snapshot's missing roles, users (those with a password), role bindings and grants.

    Never drops, revokes or changes what exists (:func:`~.rbac.plan_restore`); running it again changes
    nothing. Users without a password are skipped and named in the log and the report (passwords cannot
    be read back from Milvus). Passwords are never logged nor returned.

    :param client: a client of the target, logged in as a user allowed to manage RBAC.
    :param snapshot: what to restore.
    :param passwords: passwords of the users to create, by name.
    :return: the report: ``created`` (roles, users, bindings, grants, privilege_groups, as lists),
        ``existing`` (counts), ``skipped_users`` (name -> why).
    """
    out = logger or log
    passwords = check_passwords(passwords)
    unknown = sorted(set(passwords) - {u.name for u in snapshot.users})
    if unknown:
        out.warning("rbac_passwords names users the backup does not hold: %s (ignored)", unknown)
    dbs = sorted({g.db_name for g in snapshot.grants if g.db_name and g.db_name != "*"} | {"default"})
    current = capture_current(client, snapshot, dbs)
    plan = plan_restore(snapshot, current, passwords)
    apply_plan(client, plan, passwords)
    for user, why in plan.skipped_users.items():
        level = logging.INFO if user == "root" else logging.WARNING
        out.log(level, "RBAC: user %s %s", user, why)
    report = {
        "created": {
            "roles": plan.create_roles,
            "users": plan.create_users,
            "bindings": [list(b) for b in plan.bind],
            "grants": [g.describe() for g in plan.grant],
            "privilege_groups": [p.name for p in plan.create_groups],
        },
        "existing": plan.existing,
        "skipped_users": plan.skipped_users,
    }
    out.info(
        "RBAC restored: created %d role(s), %d user(s), %d role binding(s), %d grant(s); %d already there; "
        "%d user(s) skipped",
        len(plan.create_roles),
        len(plan.create_users),
        len(plan.bind),
        len(plan.grant),
        sum(plan.existing.values()),
        len([u for u in plan.skipped_users if u != "root"]),
    )
    return report


def capture_current(client: MilvusClient, snapshot: RbacSnapshot, databases: list[str]) -> RbacSnapshot:
    """Return the target's RBAC as far as restoring ``snapshot`` needs it.

    All users (with their roles) and roles; the grants of the snapshot's roles in ``databases``.
    """
    users = tuple(
        RbacUser(name, tuple(client.describe_user(name).get("roles") or ())) for name in client.list_users()
    )
    roles = tuple(client.list_roles())
    wanted = {g.role for g in snapshot.grants} & set(roles)
    grants = merge_grants(_grants(client, r, db) for r in sorted(wanted) for db in databases)
    groups = _groups(client) if snapshot.privilege_groups else ()
    return RbacSnapshot(users, roles, grants, groups)


def apply_plan(client: MilvusClient, plan: RbacPlan, passwords: Mapping[str, str]) -> None:
    """Make the plan's changes in order: roles, users, bindings, privilege groups, grants."""
    for role in plan.create_roles:
        client.create_role(role)
    for user in plan.create_users:
        client.create_user(user, passwords[user])
    for user, role in plan.bind:
        client.grant_role(user, role)
    if plan.create_groups:
        _create_groups(client, plan.create_groups)
    for g in plan.grant:
        client.grant_privilege(g.role, g.object_type, g.privilege, g.object_name, db_name=g.db_name)


def has_groups(server_version: str) -> bool:
    """Return whether a server of this version has privilege groups (Milvus 2.5+; unknown counts as new)."""
    from airflow_milvus_backup.engine.restore.capabilities import ServerInfo

    return ServerInfo.detect(server_version).at_least(2, 5)


def _databases(client: MilvusClient) -> list[str]:
    try:
        return sorted(client.list_databases())
    except Exception:  # noqa: BLE001 - a server without databases
        return ["default"]


def _grants(client: MilvusClient, role: str, db: str) -> list[Grant]:
    privileges = client.describe_role(role, db_name=db).get("privileges") or []
    return [
        Grant(
            role=str(p.get("role_name") or role),
            object_type=str(p.get("object_type", "")),
            object_name=str(p.get("object_name", "")),
            privilege=str(p.get("privilege", "")),
            db_name=str(p.get("db_name") or db),
            grantor=str(p.get("grantor_name", "")),
        )
        for p in privileges
    ]


def _groups(client: MilvusClient) -> tuple[PrivilegeGroup, ...]:
    """Return the custom privilege groups (Milvus 2.5+); none where the server has no such call."""
    try:
        groups = client.list_privilege_groups()
    except Exception:  # noqa: BLE001 - Milvus before 2.5 has no privilege groups
        return ()
    out = []
    for g in groups or []:
        name = g.get("privilege_group") if isinstance(g, dict) else getattr(g, "group_name", "")
        privs = g.get("privileges", ()) if isinstance(g, dict) else getattr(g, "privileges", ())
        out.append(PrivilegeGroup(str(name), tuple(str(getattr(p, "name", p)) for p in privs)))
    return tuple(sorted(out, key=lambda p: p.name))


def _create_groups(client: MilvusClient, groups: list[PrivilegeGroup]) -> None:
    try:
        for p in groups:
            client.create_privilege_group(p.name)
            if p.privileges:
                client.add_privileges_to_group(p.name, list(p.privileges))
    except Exception as e:
        raise UnsupportedError(
            f"The backup holds privilege groups ({[p.name for p in groups]}) and the target could not create "
            f"them ({e}); privilege groups need Milvus 2.5 or newer. Restore into such a server, or create "
            "them first."
        ) from e


def capture_for_backup(
    client: MilvusClient, milvus: MilvusParams, backup: str, version: str
) -> dict[str, Any]:
    """Return the manifest's ``rbac`` object for a backup with ``rbac=True`` (before anything is written).

    :raises RbacUnsupportedError: Milvus Lite, or a server without RBAC calls.
    :raises MilvusAuthenticationError: the user may not read users, roles and grants.
    """
    from airflow_milvus_backup.engine.restore.capabilities import ServerInfo

    what = f"Backup {backup!r}"
    refuse_lite(milvus.is_lite or ServerInfo.detect(version).lite, milvus.address, what)
    with guarded(what, milvus.address):
        return capture_rbac(client, server_version=version).to_manifest()


def rbac_counts(doc: dict[str, Any]) -> dict[str, int]:
    """Return the counts of a manifest's ``rbac`` object (users, roles, grants, privilege groups)."""
    return {k: len(doc.get(k) or ()) for k in ("users", "roles", "grants", "privilege_groups")}
