"""The data dir holds every tenant's text, vectors, keys and audit trail: only its owner reads it.

`secure_data_dir` runs once when a process opens its runtime: it creates the dir 0700 (and
tightens an existing one), takes group and other permissions off what is already inside, and sets
the process's umask to 077, so files that libraries create later (the engine's segments, the
shard lock, SQLite's WAL and SHM, beat's schedule) are private too, whatever umask the process
was started with.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

_PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) 0700; tighten it when it exists more open."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path)


def private_file(path: Path) -> None:
    """Create `path` empty 0600 if it does not exist; tighten it when it does.

    The file at `path` is never opened here: closing any descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included, so a connection of another thread to a
    database at `path` would go on writing unlocked beside other processes (a malformed file).
    A new file is made under a temporary name and linked into place, unless one got there first.
    """
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
        os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another thread or process made it first: theirs stays
            pass
        finally:
            os.unlink(tmp)
    _tighten(path)


def secure_data_dir(path: Path) -> None:
    os.umask(_PRIVATE_UMASK)
    private_dir(path)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            _tighten(Path(dirpath, name))


def _tighten(path: Path) -> None:
    """Drop group and other permissions; symlinks are left alone (chmod would follow them)."""
    st = path.lstat()
    if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & _PRIVATE_UMASK:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~_PRIVATE_UMASK)
