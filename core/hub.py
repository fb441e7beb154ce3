"""Models load from local folders or the local hub cache only: nothing is fetched at run time."""

from __future__ import annotations

import os


def local_models_only() -> None:
    """Called by whatever is about to load a model, before its library is imported (the hub
    library reads HF_HUB_OFFLINE when imported), never at import: a variable the caller set
    stays as it is. The tokenizers' own thread pool is turned off as well, since the platform
    runs tokenizers from threads and parser processes of its own."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
