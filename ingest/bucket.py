"""Where documents come from: a local folder now, any S3-compatible bucket through boto3.

A bucket lists objects with cheap stat data (size, mtime, etag) so a scan can skip unchanged
documents without reading them, and reads one object's bytes on demand.
"""

from __future__ import annotations

import hashlib
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SIDECAR_SUFFIX = ".meta.json"


class UnsafeKeyError(ValueError):
    """A key that could reach outside the bucket (absolute, `..`, NUL, backslash tricks)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float
    etag: str = ""

    @property
    def signature(self) -> str:
        return f"{self.size}:{self.mtime}:{self.etag}"


def check_key(key: str) -> str:
    """Reject keys that are not plain relative paths; returns the key unchanged."""
    parts = PurePosixPath(key).parts
    if (
        not key
        or "\x00" in key
        or "\\" in key
        or key.startswith("/")
        or any(p in ("..", ".") for p in parts)
    ):
        raise UnsafeKeyError(f"unsafe object key {key!r}")
    return key


def is_sidecar(key: str) -> bool:
    return key.endswith(SIDECAR_SUFFIX)


def sidecar_for(key: str) -> str:
    return key + SIDECAR_SUFFIX


class Bucket(ABC):
    """A flat namespace of keys with stat data; `uri` names an object for users."""

    @abstractmethod
    def list(self) -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The entry `list()` would give for `key` now, or None when it is not listed."""

    @abstractmethod
    def read(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes; raise ObjectTooLargeError past `max_bytes` without reading it all."""

    @abstractmethod
    def uri(self, key: str) -> str: ...


class ObjectTooLargeError(ValueError):
    pass


class LocalBucket(Bucket):
    """A folder; keys are POSIX paths relative to it. Symlinks are not followed out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"bucket folder {root} does not exist")

    def list(self) -> Iterator[ObjectInfo]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath, name)
                entry = _entry(path.relative_to(self.root).as_posix(), path.lstat())
                if entry is not None:
                    yield entry

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            check_key(key)
        except UnsafeKeyError:
            return None
        if any(part.startswith(".") for part in key.split("/")):
            return None
        try:
            st = (self.root / key).lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _entry(key, st)

    def read(self, key: str, max_bytes: int) -> bytes:
        path = self._path(key)
        size = path.stat().st_size
        if size > max_bytes:
            raise ObjectTooLargeError(f"{size} bytes is over the {max_bytes}-byte limit")
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ObjectTooLargeError(f"over the {max_bytes}-byte limit")
        return data

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise UnsafeKeyError(f"object key {key!r} resolves outside the bucket")
        return path


def _entry(key: str, st: os.stat_result) -> ObjectInfo | None:
    """Regular files only: symlinks and special files are never read as documents."""
    if not stat.S_ISREG(st.st_mode):
        return None
    return ObjectInfo(key=key, size=st.st_size, mtime=st.st_mtime_ns / 1e9)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
