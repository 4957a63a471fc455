"""A directory as backup storage: atomic per object (a temporary file renamed), no link followed out."""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from airflow_milvus_backup.engine.errors import (
    InvalidArgumentError,
    StorageAccessError,
    StorageError,
    StorageNotFoundError,
)
from airflow_milvus_backup.engine.storage_base import CHUNK, ObjectInfo, Storage, validate_key, validate_root

log = logging.getLogger("airflow_milvus_backup.engine.storage")


class LocalStorage(Storage):
    """A directory on a local or mounted file system; backups live in its folder ``root_path``.

    Symbolic links are never followed out of the root: every path is resolved and a read, write, listing
    or delete whose real path leaves the root is refused (:class:`StorageError` naming the link); listings do
    not descend into linked folders; a delete removes a link itself at most, never what it points to.

    :param path: the directory.
    :param root_path: the folder of backups inside it (default ``"backup"``).
    :param allow_root_at_top: accept an empty ``root_path``: backups directly in ``path``.
    """

    def __init__(
        self, path: str | os.PathLike[str], root_path: str = "backup", *, allow_root_at_top: bool = False
    ) -> None:
        self.base = Path(path).resolve()
        self.root = validate_root(root_path, allow_root_at_top=allow_root_at_top, where=str(self.base))
        self.dir = self.base / self.root if self.root else self.base
        self.description = str(self.dir)

    def _real_root(self) -> Path:
        return Path(os.path.realpath(self.dir))

    def _inside(self, p: Path) -> bool:
        real, root = Path(os.path.realpath(p)), self._real_root()
        return real == root or root in real.parents

    def _refuse_link(self, key: str, verb: str, p: Path) -> StorageError:
        """Return the error naming the first symbolic link on the way from the root to ``p``."""
        link = p
        cur = self.dir
        for part in p.relative_to(self.dir).parts:
            cur = cur / part
            if cur.is_symlink() and not self._inside(cur):
                link = cur
                break
        rel = link.relative_to(self.dir).as_posix()
        return StorageError(
            f"Refusing to {verb} {key!r} in {self.description}: {rel!r} is a symbolic link to "
            f"{os.path.realpath(link)}, outside the backup root. Remove the link, or move the files into "
            f"{self.description}."
        )

    def _path(self, key: str, verb: str = "read", *, the_link_itself: bool = False) -> Path:
        """Return the path of ``key``, refusing any whose real path leaves the root.

        :param the_link_itself: the final component may be a link (it is acted on, never followed: a
            delete), so only its folder must be inside the root.
        """
        p = self.dir / validate_key(key)
        if self.dir not in p.parents:
            raise InvalidArgumentError(f"Storage key {key!r} escapes {self.dir}.")
        check = p.parent if the_link_itself else p
        if not self._inside(check):
            raise self._refuse_link(key, verb, check)
        return p

    def _write_path(self, key: str) -> Path:
        """Return the path to write ``key`` at, its folders created without following a link."""
        p = self._path(key, "write")
        cur = self.dir
        cur.mkdir(parents=True, exist_ok=True)
        for part in p.relative_to(self.dir).parts[:-1]:
            cur = cur / part
            if cur.is_symlink():  # inside the root (checked above): not created, only passed through
                continue
            cur.mkdir(exist_ok=True)
        if not self._inside(p):  # a link appeared while the folders were made
            raise self._refuse_link(key, "write", p)
        return p

    def _tmp(self, p: Path) -> Path:
        return p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:12]}")

    def put_bytes(self, key: str, data: bytes) -> None:  # noqa: D102
        p = self._write_path(key)
        tmp = self._tmp(p)
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)

    def put_file(self, key: str, path: Path) -> None:  # noqa: D102
        p = self._write_path(key)
        tmp = self._tmp(p)
        with open(path, "rb") as src, open(tmp, "xb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        os.replace(tmp, p)

    def put_if_absent(self, key: str, data: bytes) -> bool:  # noqa: D102
        p = self._write_path(key)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def _open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise StorageNotFoundError(f"Object {key!r} does not exist in {self.description}.") from None

    def get_bytes(self, key: str) -> bytes:  # noqa: D102
        with self._open(key) as fh:
            return fh.read()

    def open_read(self, key: str) -> IO[bytes]:  # noqa: D102
        return self._open(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:  # noqa: D102
        with self._open(key) as fh:
            fh.seek(start)
            return fh.read(length)

    def download(self, key: str, path: Path) -> None:  # noqa: D102
        with self._open(key) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:  # noqa: D102
        if not self.dir.is_dir():
            return
        start = self.dir
        if prefix:
            folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
            if folder:
                validate_key(folder)
                start = self.dir / folder
        parts = start.relative_to(self.dir).parts
        if any(self.dir.joinpath(*parts[: i + 1]).is_symlink() for i in range(len(parts))):
            return  # a linked folder is never descended into
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):  # does not follow links below ``start``
            kept = []
            for d in sorted(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    log.warning("Not listing %s: a symbolic link to a folder", os.path.join(dirpath, d))
                else:
                    kept.append(d)
            dirnames[:] = kept
            for fn in sorted(filenames):
                if fn.startswith(".") and ".tmp-" in fn:
                    continue
                full = Path(dirpath) / fn
                key = full.relative_to(self.dir).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    validate_key(key)
                    # A file link is listed under its own key, so deleting the backup removes it (never what
                    # it points to) and reading it is refused naming it; a dangling one with its own size.
                    st = full.stat() if full.exists() else full.lstat()
                except (InvalidArgumentError, OSError):
                    continue  # a name no backup writes, or gone since
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:  # noqa: D102
        p = prefix.strip("/")
        d = self.dir / validate_key(p) if p else self.dir
        if not d.is_dir() or d.is_symlink() or not self._inside(d):
            return []
        return sorted(
            c.name for c in d.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith(".")
        )

    def delete(self, keys: builtins.list[str]) -> None:  # noqa: D102
        paths = [self._path(key, "delete", the_link_itself=True) for key in keys]
        parents: set[Path] = set()
        for p in paths:
            if p.is_dir() and not p.is_symlink():
                continue  # a key names an object, never a folder
            p.unlink(missing_ok=True)  # a link itself goes, never what it points to
            parents.add(p.parent)
        for parent in sorted(parents, key=lambda x: len(x.parts), reverse=True):
            while parent != self.dir and self.dir in parent.parents and not parent.is_symlink():
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def exists(self, key: str) -> bool:  # noqa: D102
        return self._path(key).is_file()

    def check(self) -> None:  # noqa: D102
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageAccessError(f"Cannot use backup directory {self.dir}: {e}. Check the path.") from e
