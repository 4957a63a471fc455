"""Apache Airflow provider that backs up Milvus to S3 (or a directory), restores and verifies it.

Airflow layer: :mod:`.hooks.milvus_backup` (connections to engine arguments), :mod:`.operators`,
:mod:`.sensors`, :mod:`.triggers`. The engine (:mod:`.engine`) knows nothing of Airflow.

This module imports nothing from Airflow, so the engine is usable without it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
