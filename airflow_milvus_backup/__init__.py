"""Apache Airflow provider that backs up Milvus to S3 (or a directory), restores and verifies it.

Airflow layer: :mod:`.hooks.milvus_backup` (connections to engine arguments), :mod:`.operators`,
:mod:`.sensors`, :mod:`.triggers`. The engine (:mod:`.engine`) knows nothing of Airflow.

This module imports nothing from Airflow, so the engine is usable without it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: The distribution this package is installed as (``pyproject.toml``'s project name).
DISTRIBUTION = "airflow-milvus-backup"


def _installed_version() -> str:
    """Return the installed distribution's version; ``0+unknown`` when run from a tree never installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


#: The version, read once from the installed distribution's metadata (never written out by hand).
__version__ = _installed_version()

__all__ = ["DISTRIBUTION", "__version__"]
