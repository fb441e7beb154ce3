"""Models made locally for tests, from the shipped MiniLM folder: nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.settings import Settings


def cls_pooling_copy(target: Path) -> Path:
    """The shipped all-MiniLM-L6-v2 with CLS pooling instead of mean pooling: the same 384-d
    weights making different vectors, i.e. another embedding space of the same dimension."""
    source = Path(Settings().embedding_model)
    if not (target / "modules.json").exists():
        weights = "model.safetensors"  # linked, not copied: 90 MB per test run otherwise
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(weights))
        (target / weights).symlink_to(source / weights)
        pooling = target / "1_Pooling" / "config.json"
        config = json.loads(pooling.read_text())
        config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
        pooling.write_text(json.dumps(config, indent=2))
    return target
