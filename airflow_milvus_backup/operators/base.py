"""What the operators and the sensor share: where Milvus and the backups are; parsing rendered arguments."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_milvus_backup.engine import arguments
from airflow_milvus_backup.exceptions import MilvusBackupInvalidArgument, engine_errors_as_airflow
from airflow_milvus_backup.hooks.backup_config import parse_bool
from airflow_milvus_backup.hooks.location import BackupLocation, takes_location
from airflow_milvus_backup.hooks.milvus_backup import MilvusBackupHook

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

#: Templated fields of every operator and sensor here: each location argument (connection ids included).
LOCATION_TEMPLATE_FIELDS: tuple[str, ...] = BackupLocation.names()


class MilvusBackupHookMixin:
    """The location arguments of an operator or sensor, and the hook built from them once they are rendered.

    The ``__init__`` of a class using it is decorated with :func:`takes_location`, takes the arguments out of
    its ``**kwargs`` with :meth:`BackupLocation.take` and, after ``super().__init__``, keeps each as an
    attribute of the same name (:meth:`_set_location`), templated like the others.
    """

    template_fields: Sequence[str]
    parallelism: Any = 2
    progress_interval: Any = 5.0

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render the templated fields as Airflow does, then keep a number that is not finite as its text.

        Airflow sends the rendered fields as JSON, which has no ``inf`` or ``nan``: such a value would fail
        the task before ``execute()`` checks it (and Airflow would retry). As text (``"inf"``), ``execute()``
        refuses it with the argument's own message, and the task fails without retries.
        """
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        for name in self.template_fields:
            value = getattr(self, name, None)
            if isinstance(value, float) and not math.isfinite(value):
                setattr(self, name, str(value))

    def _set_location(self, location_args: dict[str, Any]) -> None:
        """Keep each location argument (maybe still a template) as an attribute of the same name."""
        for name, value in location_args.items():
            setattr(self, name, value)

    @cached_property
    def backup_location(self) -> BackupLocation:
        """The rendered location arguments, checked (first used in ``execute``, after rendering)."""
        values = {name: getattr(self, name) for name in BackupLocation.names()}
        if values["root_path"] == "None":  # a template that rendered None
            values["root_path"] = None
        values["allow_root_at_top"] = as_bool(values["allow_root_at_top"], "allow_root_at_top")
        return BackupLocation(**values)

    @cached_property
    def hook(self) -> MilvusBackupHook:
        """The hook (a cached property, so tests can swap it)."""
        return MilvusBackupHook(
            **self.backup_location.as_kwargs(),
            parallelism=as_count(self.parallelism, "parallelism", maximum=1024),
            progress_interval=as_seconds(
                self.progress_interval, "progress_interval", maximum=arguments.MAX_DURATION.total_seconds()
            ),
            logger=self.log,  # type: ignore[attr-defined]
        )


class MilvusBackupBaseOperator(MilvusBackupHookMixin, BaseOperator):
    """Base of the operators: holds the location arguments and builds :class:`MilvusBackupHook`.

    Takes every location argument of :class:`~airflow_milvus_backup.hooks.location.BackupLocation`
    (``milvus_conn_id``, ``aws_conn_id``, ``bucket_name``, ``root_path``, ``backup_config``, ``local_path``,
    ``region_name``, ``sse``, ``sse_kms_key_id``, ``allow_root_at_top``; all templated), and:

    :param parallelism: partitions or collections processed at the same time (templated).
    :param progress_interval: seconds between progress lines in the task log (templated).
    """

    template_fields: Sequence[str] = (*LOCATION_TEMPLATE_FIELDS, "parallelism", "progress_interval")
    ui_color = "#00a1ea"
    ui_fgcolor = "#ffffff"

    @takes_location()
    def __init__(self, *, parallelism: int = 2, progress_interval: float = 5.0, **kwargs: Any) -> None:
        location_args = BackupLocation.take(kwargs)
        super().__init__(**kwargs)
        self._set_location(location_args)
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
