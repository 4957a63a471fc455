"""The objects our sidecar lists for a physical backup: each copied binlog and each meta file (pure).

A binlog's digests are what the copier got without reading the copy back where it could: the S3 server's
``ChecksumSHA256``, or the MD5 its ETag is (checked against the source's); a SHA-256 computed while streaming
or by reading the copy back otherwise; plus the checksum the server reported and the ETag. A meta file's is
the SHA-256 of the bytes written. ``backup_meta.json`` is not listed: it is written after the sidecar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from airflow_milvus_backup.engine.physical import layout
from airflow_milvus_backup.engine.physical.sidecar import SidecarObject, relative_key

if TYPE_CHECKING:
    from airflow_milvus_backup.engine.physical.copier import CopyResult


def checksum_dict(checksum: str | None) -> dict[str, str] | None:
    """Turn the copier's ``"SHA256:<base64>"`` into the sidecar's ``{"sha256": "<base64>"}``."""
    if not checksum or ":" not in checksum:
        return None
    algorithm, value = checksum.split(":", 1)
    return {algorithm.lower(): value}


def sidecar_objects(
    name: str, copies: Iterable[CopyResult], meta_files: Mapping[str, bytes]
) -> tuple[SidecarObject, ...]:
    """Return the sidecar's objects, sorted by key: every copy, then every meta file but ``backup_meta.json``.

    :param name: the backup's folder.
    :param copies: the copier's results (destination keys relative to the storage root).
    :param meta_files: meta file name -> bytes (:func:`.mbwrite.meta_files`).
    """
    out = [
        SidecarObject(
            key=relative_key(name, c.dest_key),
            size=c.size,
            sha256=c.sha256,
            md5=c.md5,
            etag=c.etag or None,
            checksum=checksum_dict(c.checksum),
        )
        for c in copies
    ]
    for meta_name, data in meta_files.items():
        if meta_name == layout.BACKUP_META:
            continue
        key = relative_key(name, layout.meta_key(name, meta_name))
        out.append(SidecarObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
    return tuple(sorted(out, key=lambda o: o.key))
