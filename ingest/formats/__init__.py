"""The document formats: one module per family of formats in this folder, each listing its
`Format`s in `FORMATS`. Adding a format is adding a module here; nothing else names it.

A folder `ingest/formats/` under any other entry of the Python path (PYTHONPATH) is read as
well, so a deployment adds formats of its own without changing this package. The folders are
read on first use, not at import, and no parser library is imported until a document of its
format is parsed.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from functools import cache
from pathlib import PurePosixPath

from ingest.formats.base import Format


@cache
def registry() -> dict[str, Format]:
    """Every format by suffix (lower case, with its dot), from the modules of the folders."""
    found: dict[str, Format] = {}
    __path__.extend(_other_folders())  # type: ignore[name-defined]
    for module in pkgutil.iter_modules(__path__):  # type: ignore[name-defined]
        formats = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FORMATS", [])
        for fmt in formats:
            for suffix in fmt.suffixes:
                if suffix in found:
                    raise ValueError(f"{suffix} is claimed by {found[suffix].name} and {fmt.name}")
                found[suffix] = fmt
    return found


def _other_folders() -> list[str]:
    """`ingest/formats/` folders of the Python path's entries that this package is not in."""
    known = {os.path.realpath(p) for p in __path__}  # type: ignore[name-defined]
    found = []
    for entry in sys.path:
        folder = os.path.join(entry or os.curdir, "ingest", "formats")
        if os.path.isdir(folder) and os.path.realpath(folder) not in known:
            known.add(os.path.realpath(folder))
            found.append(folder)
    return found


def format_of(key: str) -> Format | None:
    """The format of an object, by its key's suffix (case-insensitive); None if unsupported."""
    return registry().get(PurePosixPath(key).suffix.lower())


def format_version(key: str) -> int:
    """The version of the parser that reads this object's format; 0 when none does."""
    fmt = format_of(key)
    return fmt.version if fmt is not None else 0
