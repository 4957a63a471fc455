"""The arguments every operator of this provider shares: where Milvus and the backups are."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_milvus_backup.engine import arguments
from airflow_milvus_backup.exceptions import MilvusBackupInvalidArgument, engine_errors_as_airflow
from airflow_milvus_backup.hooks.backup_config import parse_bool
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

#: Templated fields of every operator here: each connection id and each location.
HOOK_TEMPLATE_FIELDS: tuple[str, ...] = (
    "milvus_conn_id",
    "aws_conn_id",
    "bucket_name",
    "root_path",
    "backup_config",
    "local_path",
)


class MilvusBackupHookMixin:
    """The hook of an operator or sensor, built from its connection and location arguments.

    Operators and sensors still declare those arguments in their own ``__init__`` (Airflow checks
    ``partial()`` calls against the signatures); this mixin is the one place that turns them into a hook and
    into the keyword arguments a trigger serialises.
    """

    milvus_conn_id: str | None
    aws_conn_id: str | None
    bucket_name: str | None
    root_path: str | None
    backup_config: str | None
    local_path: str | None
    region_name: str | None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    parallelism: int = 2
    progress_interval: float = 5.0
    allow_root_at_top: bool = False

    def hook_kwargs(self) -> dict[str, Any]:
        """Return the hook's location settings (also what triggers serialise)."""
        return {
            "milvus_conn_id": self.milvus_conn_id or None,
            "aws_conn_id": self.aws_conn_id or None,
            "bucket_name": self.bucket_name or None,
            "root_path": self.root_path if self.root_path not in (None, "None") else None,
            "backup_config": self.backup_config or None,
            "local_path": self.local_path or None,
            "region_name": self.region_name or None,
            "allow_root_at_top": bool(self.allow_root_at_top),
        }

    @cached_property
    def hook(self) -> MilvusBackupHook:
        """The hook (a cached property, so tests can swap it)."""
        return MilvusBackupHook(
            **self.hook_kwargs(),
            sse=self.sse,
            sse_kms_key_id=self.sse_kms_key_id,
            parallelism=self.parallelism,
            progress_interval=self.progress_interval,
            logger=self.log,  # type: ignore[attr-defined]
        )


class MilvusBackupBaseOperator(MilvusBackupHookMixin, BaseOperator):
    """Base of the operators: holds the hook settings and builds :class:`MilvusBackupHook`.

    :param milvus_conn_id: the ``milvus`` connection (templated).
    :param aws_conn_id: the ``aws`` connection of the backup bucket; an ``endpoint_url`` in its extra reaches
        MinIO or any S3-compatible store (templated).
    :param bucket_name: the bucket of backups (templated).
    :param root_path: the prefix of backups in the bucket (templated; default ``"backup"``, or
        ``backup_config``'s ``minio.backupRootPath``).
    :param backup_config: path of a Milvus Backup ``backup.yaml`` whose Milvus and storage settings are used
        (templated).
    :param local_path: keep backups in this directory instead of S3 (templated).
    :param region_name: the S3 region, if not the connection's.
    :param sse: server-side encryption of uploads, ``"AES256"`` or ``"aws:kms"``.
    :param sse_kms_key_id: the KMS key with ``sse="aws:kms"``.
    :param parallelism: partitions or collections processed at the same time.
    :param progress_interval: seconds between progress lines in the task log.
    :param allow_root_at_top: accept an empty ``root_path`` (backups at the top of the bucket or directory,
        next to anything else kept there, which is never touched); refused otherwise.
    """

    template_fields: Sequence[str] = HOOK_TEMPLATE_FIELDS
    ui_color = "#00a1ea"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        milvus_conn_id: str | None = MilvusBackupHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        bucket_name: str | None = None,
        root_path: str | None = None,
        backup_config: str | None = None,
        local_path: str | None = None,
        region_name: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        parallelism: int = 2,
        progress_interval: float = 5.0,
        allow_root_at_top: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.allow_root_at_top = allow_root_at_top
        self.milvus_conn_id = milvus_conn_id
        self.aws_conn_id = aws_conn_id
        self.bucket_name = bucket_name
        self.root_path = root_path
        self.backup_config = backup_config
        self.local_path = local_path
        self.region_name = region_name
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.parallelism = parallelism
        self.progress_interval = progress_interval


def as_count(value: Any, name: str, *, minimum: int = 1, maximum: int = arguments.MAX_COUNT) -> int:
    """Return a templated whole-number argument, refusing fractions, infinities and out-of-range values."""
    with engine_errors_as_airflow():
        return arguments.count(value, name, minimum=minimum, maximum=maximum)


def as_seconds(value: Any, name: str, *, minimum: float = 0.0, maximum: float = 86_400.0) -> float:
    """Return a templated number of seconds, refusing infinities, NaN and out-of-range values."""
    with engine_errors_as_airflow():
        return arguments.seconds(value, name, minimum=minimum, maximum=maximum)


def as_duration(value: Any, name: str) -> timedelta | None:
    """Return a templated duration (a timedelta or seconds; empty is ``None``), at most 100 years."""
    with engine_errors_as_airflow():
        return arguments.duration(value, name)


def as_bool(value: Any, name: str) -> bool:
    """Return a templated boolean argument as a bool ("true"/"false" strings accepted)."""
    if isinstance(value, str) and value.strip().lower() in ("", "none"):  # a template that rendered nothing
        return False
    try:
        return bool(parse_bool(value))
    except ValueError:
        raise MilvusBackupInvalidArgument(f"{name} must be true or false, got {value!r}.") from None


def as_name_list(value: Any, name: str) -> list[str] | None:
    """Return a templated list of names (a list, a JSON list, or comma-separated); empty is ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text in ("None", "[]"):
            return None
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                try:
                    import ast

                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    raise MilvusBackupInvalidArgument(
                        f"{name} must be a list of names, got {text!r}."
                    ) from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
        raise MilvusBackupInvalidArgument(f"{name} must be a list of names, got {value!r}.")
    names = [v.strip() for v in value if v.strip()]
    return names or None


def as_mapping(value: Any, name: str) -> dict[str, str] | None:
    """Return a templated mapping (a dict or a JSON object); empty is ``None``."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise MilvusBackupInvalidArgument(
                f'{name} must be a mapping such as {{"c1": "c1_copy"}}, got {value!r}.'
            ) from None
    if not isinstance(value, dict):
        raise MilvusBackupInvalidArgument(f"{name} must be a mapping, got {value!r}.")
    return {str(k): str(v) for k, v in value.items()}
