"""Which mode a backup runs in: ``logical``, ``physical``, or ``auto`` (physical where Milvus' bucket reads).

:func:`choose_mode` decides (pure); :func:`resolve_mode` checks Milvus' bucket, decides and logs why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.errors import InvalidArgumentError, StorageError, UnsupportedError

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.client import MilvusParams
    from airflow_milvus_backup.engine.physical.milvus_storage import StorageCheck
    from airflow_milvus_backup.engine.storage_s3 import S3Storage


def resolve_mode(
    mode: str, milvus: MilvusParams, milvus_storage: S3Storage | None, logger: logging.Logger
) -> str:
    """Return the mode a backup runs in (:func:`choose_mode`, Milvus' bucket checked here); log why."""
    from airflow_milvus_backup.engine.physical.milvus_storage import check_milvus_storage

    check = None
    if mode in ("physical", "auto") and milvus_storage is not None and not milvus.is_lite:
        check = check_milvus_storage(milvus_storage)
    chosen, why = choose_mode(mode, address=milvus.address, is_lite=milvus.is_lite, check=check)
    logger.info("Backup mode %s%s: %s", chosen, " (auto)" if mode == "auto" else "", why)
    return chosen


MODES = ("logical", "physical", "auto")
_SETTING = (
    "name Milvus' bucket in the Milvus connection's extra (milvus_bucket, milvus_root_path, "
    "milvus_storage_conn_id) or in backup.yaml's minio section"
)


def choose_mode(mode: str, *, address: str, is_lite: bool, check: StorageCheck | None) -> tuple[str, str]:
    """Return ``("logical" | "physical", why)`` for the ``mode`` asked for (pure).

    :param mode: ``"logical"``, ``"physical"`` or ``"auto"`` (physical when Milvus' bucket is readable).
    :param address: Milvus' address, for messages.
    :param is_lite: whether Milvus is Milvus Lite (no binlogs in object storage).
    :param check: :func:`.milvus_storage.check_milvus_storage`'s answer, ``None`` when no bucket is set.
    :raises InvalidArgumentError: an unknown mode, or ``physical`` without Milvus' bucket.
    :raises UnsupportedError: ``physical`` on Milvus Lite.
    :raises StorageError: ``physical`` and Milvus' bucket cannot be read.
    """
    if mode not in MODES:
        raise InvalidArgumentError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}.")
    if mode == "logical":
        return "logical", "mode='logical' was asked for"
    if is_lite:
        if mode == "auto":
            return "logical", f"{address} is Milvus Lite, which keeps no binlogs in object storage"
        raise UnsupportedError(
            f"A physical backup needs a Milvus that keeps its segments in object storage; {address} is "
            "Milvus Lite (a local file). Use mode='logical' (or mode='auto', which picks it)."
        )
    if check is None:
        if mode == "auto":
            return "logical", f"Milvus' own bucket is not configured ({_SETTING} for physical backups)"
        raise InvalidArgumentError(f"A physical backup copies Milvus' own binlogs: {_SETTING}.")
    if not check.ok:
        if mode == "auto":
            return "logical", f"Milvus' own bucket cannot be read: {check.reason}"
        raise StorageError(
            f"A physical backup cannot read Milvus' own bucket: {check.reason}. Check the bucket, root path, "
            "endpoint and credentials of Milvus' storage (milvus_bucket / milvus_storage_conn_id, or "
            "backup.yaml's minio section), or use mode='logical'."
        )
    return "physical", check.reason
