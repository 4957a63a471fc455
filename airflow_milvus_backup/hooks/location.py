"""Where Milvus and the backups are: the location arguments of the hook, operators, sensor and triggers.

They are declared once, here, as the fields of :class:`BackupLocation`. The hook, the operators, the sensor
and the triggers take them as keyword arguments of their own ``__init__`` (Airflow checks ``partial()``,
``expand()`` and ``default_args`` against those signatures): :func:`takes_location` adds the fields to a
signature, and :meth:`BackupLocation.take` takes them out of the ``**kwargs`` the ``__init__`` received.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

#: The ``milvus`` connection read when none is named.
DEFAULT_MILVUS_CONN_ID = "milvus_default"
#: The ``aws`` connection read when none is named.
DEFAULT_AWS_CONN_ID = "aws_default"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class BackupLocation:
    """Where Milvus and the backups are, and how uploads are encrypted.

    Settings come from, in order of precedence: these fields, then ``backup_config`` (a Milvus Backup
    ``backup.yaml``), then the Airflow connections. An empty string means "not set" (``None``), except for
    ``root_path``, where ``""`` is the top of the bucket or directory.

    :param milvus_conn_id: the ``milvus`` connection (not read when ``backup_config`` has a ``milvus``
        section).
    :param aws_conn_id: the ``aws`` connection of the Amazon provider (credentials, ``endpoint_url`` in its
        extra to reach MinIO or any S3-compatible store). Not read when ``backup_config`` carries an access
        key, or with ``local_path``.
    :param bucket_name: the bucket of backups; default: ``backup_config``'s ``minio.backupBucketName``, else
        the AWS connection's ``service_config.s3.bucket_name``.
    :param root_path: the prefix of backups in the bucket, or their folder in ``local_path``; default
        ``backup_config``'s ``minio.backupRootPath``, else ``"backup"``. An empty or ``"/"`` root is refused
        unless ``allow_root_at_top``.
    :param backup_config: path of a Milvus Backup ``backup.yaml`` (Milvus address, port, user, password, TLS;
        bucket, root path and S3 endpoint and keys of backups).
    :param local_path: keep backups in this local (or mounted) directory instead of S3.
    :param region_name: the S3 region, if not the connection's.
    :param sse: server-side encryption of uploads: ``"AES256"`` or ``"aws:kms"``.
    :param sse_kms_key_id: the KMS key id with ``sse="aws:kms"``.
    :param allow_root_at_top: accept an empty ``root_path``: backups at the top of the bucket or directory,
        next to anything else kept there (never touched: see FORMAT.md).
    """

    milvus_conn_id: str | None = DEFAULT_MILVUS_CONN_ID
    aws_conn_id: str | None = DEFAULT_AWS_CONN_ID
    bucket_name: str | None = None
    root_path: str | None = None
    backup_config: str | None = None
    local_path: str | None = None
    region_name: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    allow_root_at_top: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "root_path" and getattr(self, f.name) == "":
                object.__setattr__(self, f.name, None)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Return the field names, in declaration order (the hook's first six are also positional)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Return every field's default."""
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def take(cls, kwargs: dict[str, Any], args: tuple[Any, ...] = ()) -> dict[str, Any]:
        """Remove the location arguments from ``kwargs``; return them, each field present (default if unset).

        The values are returned as given (an operator's may still be templates); build the
        :class:`BackupLocation` once they are final.

        :param kwargs: the keyword arguments an ``__init__`` received; its location arguments are removed.
        :param args: positional values of the first fields (the hook's signature), in declaration order.
        :raises TypeError: more positional values than fields, or a field given twice.
        """
        names = cls.names()
        if len(args) > len(names):
            raise TypeError(f"at most {len(names)} location arguments may be positional, got {len(args)}")
        out = cls.defaults()
        out.update(zip(names, args, strict=False))
        for name in names:
            if name in kwargs:
                if names.index(name) < len(args):
                    raise TypeError(f"got multiple values for argument {name!r}")
                out[name] = kwargs.pop(name)
        return out

    def as_kwargs(self) -> dict[str, Any]:
        """Return the fields as keyword arguments (of the hook; also what a trigger serialises)."""
        return asdict(self)


def takes_location(positional: int = 0) -> Callable[[F], F]:
    """Add :class:`BackupLocation`'s fields to the signature of an ``__init__`` that takes ``**kwargs``.

    Airflow reads an operator's signature to apply ``default_args`` and to check ``partial()`` and
    ``expand()``; ``help()`` and Sphinx read it too. The ``__init__`` takes the arguments out of its
    ``**kwargs`` with :meth:`BackupLocation.take`.

    :param positional: how many of the first fields are also positional (the hook's six); the others are
        keyword-only.
    """

    def decorate(init: F) -> F:
        sig = inspect.signature(init)
        params = list(sig.parameters.values())
        if not params or params[-1].kind is not inspect.Parameter.VAR_KEYWORD:
            raise TypeError(f"{init.__qualname__} must end with **kwargs to take the location arguments")
        own = [p for p in params[:-1] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        first, rest = own[:1], own[1:]  # self, then the function's own parameters
        location = [
            inspect.Parameter(
                f.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD if i < positional else inspect.Parameter.KEYWORD_ONLY,
                default=f.default,
                annotation=f.type,
            )
            for i, f in enumerate(fields(BackupLocation))
        ]
        ordered = [*first, *location[:positional], *rest, *location[positional:], params[-1]]
        ordered.sort(key=lambda p: p.kind)  # keyword-only after positional, **kwargs last (stable sort)
        init.__signature__ = sig.replace(parameters=ordered)  # type: ignore[attr-defined]
        return init

    return decorate
