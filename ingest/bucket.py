"""Where documents come from: a local folder now, any S3-compatible bucket through boto3.

A bucket lists objects with cheap stat data (size, mtime, etag) so a scan can skip unchanged
documents without reading them, and reads one object's bytes on demand. An object the bucket can
list but must never read as a document (a hard link, a name that is not UTF-8) is listed with a
`problem`, which the syncer turns into a quarantine with that reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SIDECAR_SUFFIX = ".meta.json"
# A listing entry whose key ends with "/" is a folder the bucket could not list (its documents are
# neither synced nor deleted until it can); `problem` starts with this.
UNREADABLE_FOLDER = "unreadable folder"


class UnsafeKeyError(ValueError):
    """A key that could reach outside the bucket (absolute, `..`, NUL, backslash tricks)."""


class BucketUnavailableError(RuntimeError):
    """The bucket itself cannot be listed or read (a missing root, a failing S3 listing).

    Never an empty bucket: a scan that meets it deletes nothing, and a task retries later.
    """


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float
    etag: str = ""
    problem: str = ""  # why the object is refused without being read; "" for a document

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
    """A folder; keys are POSIX paths relative to it. Symlinks are not followed out of it.

    A key is the file's path as UTF-8; a name that is not valid UTF-8 gets the key of its bytes
    with each undecodable byte written `\\xNN` (a key no valid name can have, since a backslash
    makes a key unsafe) and is listed with that problem. A hard link could be a link to any file
    the server can read, so a file with more than one link is listed with that problem too, and
    `read` re-checks the open file itself.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"bucket folder {root} does not exist")
        self._name_max = os.pathconf(self.root, "PC_NAME_MAX")

    def list(self) -> Iterator[ObjectInfo]:
        """Every file, and for each folder it cannot read an `UNREADABLE_FOLDER` entry (so what
        was under it is not mistaken for deleted); an unreadable root raises instead."""
        self._check_root()
        unreadable: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unreadable.append):
            while unreadable:
                yield self._unreadable(unreadable.pop())
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath, name)
                try:
                    st = path.lstat()
                except FileNotFoundError:  # gone since the directory was read
                    continue
                entry = self._entry(path.relative_to(self.root).as_posix(), st)
                if entry is not None:
                    yield entry
        while unreadable:
            yield self._unreadable(unreadable.pop())

    def _unreadable(self, exc: OSError) -> ObjectInfo:
        folder = Path(exc.filename or self.root).resolve()
        if folder == self.root:
            raise BucketUnavailableError(f"cannot list the bucket folder: {exc}") from exc
        key = key_of_name(folder.relative_to(self.root).as_posix()) + "/"
        return ObjectInfo(key, size=-1, mtime=0.0, problem=f"{UNREADABLE_FOLDER}: {exc.strerror}")

    def stat(self, key: str) -> ObjectInfo | None:
        self._check_root()
        name = _name_of_key(key)
        if name is None:
            return None
        try:
            st = (self.root / name).lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # e.g. the sidecar of a 250-byte name
                return None
            raise
        return self._entry(name, st)

    def read(self, key: str, max_bytes: int) -> bytes:
        path = self._path(key)
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if (problem := _link_problem(st)) is not None:
                raise UnsafeKeyError(problem)
            if st.st_size > max_bytes:
                raise ObjectTooLargeError(f"{st.st_size} bytes is over the {max_bytes}-byte limit")
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ObjectTooLargeError(f"over the {max_bytes}-byte limit")
        return data

    def uri(self, key: str) -> str:
        """The key itself: a document is named relative to the bucket, not by a server path."""
        return check_key(key)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise BucketUnavailableError(f"bucket folder {self.root} does not exist")

    def _path(self, key: str) -> Path:
        self._check_root()
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise UnsafeKeyError(f"object key {key!r} resolves outside the bucket")
        return path

    def _entry(self, name: str, st: os.stat_result) -> ObjectInfo | None:
        """The listing entry of the file at relative path `name`, as the OS decodes it.

        Regular files only: symlinks and special files are never read as documents.
        """
        if not stat.S_ISREG(st.st_mode):
            return None
        key = key_of_name(name)
        name_bytes = len(os.fsencode(name.rsplit("/", 1)[-1]))
        problem = _link_problem(st) or ""
        if key != name:
            problem = "the file name is not valid UTF-8; rename it to index it"
        elif name_bytes + len(SIDECAR_SUFFIX) > self._name_max:
            problem = (
                f"the file name is {name_bytes} bytes, so its sidecar's name would pass the "
                f"file system's {self._name_max}-byte limit; shorten it to index it"
            )
        elif not problem:
            try:
                check_key(key)
            except UnsafeKeyError as exc:
                problem = str(exc)
        return ObjectInfo(key=key, size=st.st_size, mtime=st.st_mtime_ns / 1e9, problem=problem)


def _link_problem(st: os.stat_result) -> str | None:
    if st.st_nlink > 1:
        return (
            f"refused: a hard link ({st.st_nlink} links to one file), which may be a file from "
            "outside the bucket; copy the file into the bucket instead"
        )
    return None


_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def key_of_name(name: str) -> str:
    """The key of a relative path as the OS decodes it (undecodable bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _name_of_key(key: str) -> str | None:
    """The relative path a key names, or None when no listed file could have that key."""
    name = key_of_name(key)
    if "\\" in name:
        escaped = os.fsdecode(_ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), name.encode()))
        if escaped != name and key_of_name(escaped) == name:
            name = escaped
    parts = name.split("/")
    if not name or "\x00" in name or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
