"""The ``milvus-backup://`` Asset scheme: the backups in a bucket's folder, updated by each backup.

Declared under ``asset-uris`` in :mod:`airflow_milvus_backup.get_provider_info`, so Airflow checks every
``milvus-backup://`` URI with :func:`sanitize_uri`. This module imports nothing from Airflow at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

ASSET_SCHEME = "milvus-backup"


def backup_asset(bucket_name: str, root_path: str = "backup", *, name: str | None = None) -> Asset:
    """Return the Asset that stands for the backups in ``s3://<bucket>/<root_path>``.

    Put it in a backup task's ``outlets`` and in another DAG's ``schedule`` to run that DAG after each backup.

    :param bucket_name: the bucket of backups (a literal: Assets are known when the DAG is parsed).
    :param root_path: the prefix of backups.
    :param name: the Asset's name; default its URI.
    """
    from airflow.sdk import Asset

    uri = (
        f"{ASSET_SCHEME}://{bucket_name}/{root_path.strip('/')}"
        if root_path
        else f"{ASSET_SCHEME}://{bucket_name}"
    )
    return Asset(uri=uri, name=name or uri)


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``milvus-backup://`` Asset URI (Airflow's ``asset-uris`` handler): it names a bucket.

    :param uri: the URI, split and already normalised by Airflow (scheme lower case, no trailing slash).
    :raises ValueError: no bucket, e.g. ``milvus-backup:///backup``.
    """
    if not uri.netloc:
        raise ValueError(
            f"A {ASSET_SCHEME}:// Asset URI must name the bucket of backups: "
            f"{ASSET_SCHEME}://<bucket>/<root_path>, as backup_asset(bucket, root_path) returns."
        )
    return uri


def backups_from_asset_events(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """Return the backups named by a run's triggering Asset events, oldest event first.

    ``triggering_asset_events`` is the run's context entry: a mapping of Asset to its events, each with an
    ``extra`` (a dict) and a ``timestamp``; the backup operator puts ``backup_name`` and ``backup_id`` (and
    ``collections``, ``storage``, ``rows``, ``bytes``) in it. Events without a ``backup_name`` are skipped.

    :param triggering_asset_events: the mapping (``None`` or empty on a manual run).
    :returns: one dict per event: the event's extra plus ``asset`` (the Asset's URI) and ``timestamp``.
    """
    found: list[dict[str, Any]] = []
    for asset, events in dict(triggering_asset_events or {}).items():
        for event in events or []:
            extra = getattr(event, "extra", None) or {}
            if not isinstance(extra, dict) or not extra.get("backup_name"):
                continue
            found.append(
                {
                    **extra,
                    "asset": str(getattr(asset, "uri", asset)),
                    "timestamp": getattr(event, "timestamp", None),
                }
            )
    found.sort(key=lambda b: str(b["timestamp"] or ""))
    return found
