"""The RBAC step of a restore (``rbac=True``): checked before anything is written, applied first in setup.

As Milvus Backup does, users, roles and grants are restored before the databases and collections (a grant
may name a collection that does not exist yet; Milvus accepts it). What is created and what is left is
:func:`~airflow_milvus_backup.engine.rbac.plan_restore`'s; the report goes into the restore's status under
``rbac`` (names only, never a password).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.errors import InvalidArgumentError
from airflow_milvus_backup.engine.rbac import RbacSnapshot
from airflow_milvus_backup.engine.rbac_server import guarded, refuse_lite, restore_rbac

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.restore.context import Context
    from airflow_milvus_backup.engine.restore.plan import Plan
    from airflow_milvus_backup.engine.restore.status import Status


def snapshot_of(plan: Plan) -> RbacSnapshot | None:
    """Return the backup's RBAC when the restore asks for it, checked; ``None`` without ``rbac=True``.

    :raises RbacUnsupportedError: the target is Milvus Lite.
    :raises InvalidArgumentError: the backup holds no RBAC (made without ``rbac=True``).
    :raises ManifestError: its ``rbac`` object is malformed.
    """
    if not plan.opts.rbac:
        return None
    what = f"Restore of backup {plan.backup!r}"
    refuse_lite(plan.server.lite, str(plan.arguments.get("target", {}).get("address", "")), what)
    doc = plan.manifest.rbac
    if doc is None:
        raise InvalidArgumentError(
            f"{what} with rbac=True: the backup holds no users, roles or grants (it was made without "
            "rbac=True). Restore it with rbac=False, or restore a backup made with rbac=True."
        )
    return RbacSnapshot.from_manifest(doc, f"the rbac of backup {plan.backup!r}")


def apply(ctx: Context, client: MilvusClient, milvus: MilvusParams, plan: Plan, status: Status) -> None:
    """Restore the backup's RBAC onto the target (idempotent) and record the report in the status."""
    snapshot = snapshot_of(plan)
    if snapshot is None:
        return
    with guarded(f"Restore of backup {plan.backup!r}", milvus.address):
        report = restore_rbac(client, snapshot, plan.opts.rbac_passwords, logger=ctx.log)
    status.rbac_restored(report)
