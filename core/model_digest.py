"""A model's identity as the digest of what is in its folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def weights_digest(folder: Path) -> str:
    """SHA-256 over every file of a model folder (relative path and bytes), in path order.

    The weights, the configuration and the tokenizer all change what a model computes, so all of
    them are hashed; a README is not.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if path.name.lower().startswith("readme") or "/." in f"/{relative}":
            continue
        digest.update(relative.encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
