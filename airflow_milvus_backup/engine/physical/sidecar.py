"""Our sidecar in a physical backup: ``<name>/meta/airflow_milvus_backup.json``.

A physical backup made by this package is a Milvus Backup backup (its meta files, its binlog layout) plus
this one file, which Milvus Backup never reads (it reads its meta files by name). It says who wrote the
backup and holds, for every object written before it (binlogs and the meta files but ``backup_meta.json``),
its key relative to the backup's folder, its size, its ETag and at least one digest of its bytes where one
was had: ``sha256`` (computed by us, or the server's ``ChecksumSHA256``), ``md5`` (a server-side copy's
plain-MD5 ETag equal to its source's, or computed while streaming), and ``checksum``, what the S3 server
reported (``{"sha256": "<base64>"}``). :func:`expected_digest` says which one a verifier checks.
It is written just before ``backup_meta.json``. Its presence is what makes a backup of Milvus Backup's
format ``"physical"`` (ours) rather than ``"milvus-backup"``.

UTF-8 JSON, keys sorted, at most :data:`MAX_SIDECAR_BYTES`::

    {"format": "airflow-milvus-backup-physical", "format_version": 1, "name", "id",
     "producer": {"package", "version"}, "created_at", "finished_at", "milvus_version",
     "objects": [{"key": "binlogs/insert_log/...", "size": 123, "sha256": "<hex>", "md5": "<hex>",
                  "etag": "...", "checksum": {"sha256": "<base64>"}}]}

Unknown keys (a newer writer of the same major version) are kept and written back.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_milvus_backup.engine.errors import (
    FormatVersionError,
    ManifestError,
    StorageNotFoundError,
    UnreadableManifestError,
)
from airflow_milvus_backup.engine.jsonmodel import JsonModel, Maybe, check, too_deep
from airflow_milvus_backup.engine.physical import layout

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.storage import Storage

SIDECAR_FORMAT = "airflow-milvus-backup-physical"
SIDECAR_VERSION = 1
MAX_SIDECAR_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SidecarObject(JsonModel):
    """One object of the backup: key relative to the backup's folder, size, and its digest(s).

    :param sha256: hex SHA-256 of its bytes, if known.
    :param etag: the ETag the storage reported after the copy (informative: multipart ETags are no digest).
    :param checksum: the S3 checksum the server reported (``{"sha256": "<base64>"}`` ...), if any.
    :param md5: hex MD5 of its bytes, if known (a copy's ETag checked against its source's; older sidecars
        have ``sha256`` only, and are read as they are).
    """

    key: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    checksum: dict[str, Any] | None = None
    md5: str | None = None
    SPEC: ClassVar[dict[str, Any]] = {
        "key": str,
        "size": int,
        "sha256": Maybe(str),
        "etag": Maybe(str),
        "checksum": Maybe(dict),
        "md5": Maybe(str),
    }

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object, without the optional keys that are ``None``."""
        return {k: v for k, v in super().to_json().items() if v is not None or k in ("key", "size")}


@dataclass(frozen=True, kw_only=True)
class Sidecar(JsonModel):
    """The sidecar of a physical backup of ours (module docstring)."""

    format: str = SIDECAR_FORMAT
    format_version: int = SIDECAR_VERSION
    name: str
    id: str
    producer: dict[str, Any] | None = None
    created_at: str | None = None
    finished_at: str | None = None
    milvus_version: str | None = None
    objects: tuple[SidecarObject, ...] = ()
    SPEC: ClassVar[dict[str, Any]] = {
        "format": str,
        "format_version": int,
        "name": str,
        "id": str,
        "producer": Maybe(dict),
        "created_at": Maybe(str),
        "finished_at": Maybe(str),
        "milvus_version": Maybe(str),
        "objects": [SidecarObject],
    }

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object, without the optional keys that are ``None``."""
        return {k: v for k, v in super().to_json().items() if v is not None}

    def to_bytes(self) -> bytes:
        """Return the bytes stored (keys sorted, UTF-8)."""
        return json.dumps(self.to_json(), sort_keys=True, indent=1, ensure_ascii=False).encode()

    def by_key(self) -> dict[str, SidecarObject]:
        """Return the objects by key (relative to the backup's folder)."""
        return {o.key: o for o in self.objects}

    @classmethod
    def parse(cls, raw: bytes, name: str) -> Sidecar:
        """Parse and check a sidecar's bytes.

        :raises UnreadableManifestError: not JSON, too big or too deep, not an object.
        :raises FormatVersionError: a newer major version.
        :raises ManifestError: not our sidecar, or a value of the wrong type (its path named).
        """
        key = layout.sidecar_key(name)
        what = f"Sidecar {key!r} of backup {name!r}"
        if len(raw) > MAX_SIDECAR_BYTES:
            raise UnreadableManifestError(f"{what} is bigger than {MAX_SIDECAR_BYTES >> 20} MiB; not read.")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise UnreadableManifestError(f"{what} is not valid JSON ({e}): truncated or corrupt.") from None
        if too_deep(doc, 16) or not isinstance(doc, dict):
            raise UnreadableManifestError(f"{what} is not a JSON object of the sidecar's shape.")
        if doc.get("format") != SIDECAR_FORMAT:
            raise ManifestError(
                f"{what} is not a sidecar of airflow-milvus-backup (format {doc.get('format')!r})."
            )
        version = doc.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SIDECAR_VERSION:
            raise FormatVersionError(
                f"{what} has format version {version}; this package reads up to {SIDECAR_VERSION}. "
                "Upgrade airflow-milvus-backup to read it."
            )
        check(doc, cls, "", what)
        return cls.build(doc)


def expected_digest(obj: SidecarObject) -> tuple[str, str] | None:
    """Return the digest a verifier checks for ``obj``: ``(algorithm, hex)``, the strongest recorded.

    ``sha256`` first, then the server's whole-object ``checksum["sha256"]`` (base64; a composite ``-N`` one
    is no digest of the bytes), then ``md5``; ``None`` when none is recorded (then only the size is checked).
    Algorithms are :mod:`hashlib`'s names.
    """
    if obj.sha256:
        return "sha256", obj.sha256.lower()
    server = (obj.checksum or {}).get("sha256")
    if isinstance(server, str):
        hexed = _b64_hex(server)
        if hexed is not None and len(hexed) == 64:
            return "sha256", hexed
    if obj.md5:
        return "md5", obj.md5.lower()
    return None


def _b64_hex(value: str) -> str | None:
    if "-" in value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return None


def relative_key(name: str, key: str) -> str:
    """Return ``key`` (relative to the storage root, ``<name>/...``) relative to the backup's folder."""
    prefix = f"{name}/"
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} is not inside backup {name!r}")
    return key[len(prefix) :]


def write_sidecar(storage: Storage, sidecar: Sidecar) -> str:
    """Store the sidecar of backup ``sidecar.name``; return its key."""
    key = layout.sidecar_key(sidecar.name)
    storage.put_bytes(key, sidecar.to_bytes())
    return key


def read_sidecar(storage: Storage, name: str) -> Sidecar | None:
    """Return backup ``name``'s sidecar, or ``None`` when it has none (a backup Milvus Backup wrote).

    :raises ManifestError: it exists but is not a valid sidecar (see :meth:`Sidecar.parse`).
    """
    try:
        with storage.open_read(layout.sidecar_key(name)) as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except StorageNotFoundError:
        return None
    return Sidecar.parse(raw, name)
