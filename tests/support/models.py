"""Models made locally for tests, from the shipped MiniLM folder and its tokenizer: nothing is
downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.settings import Settings


def cls_pooling_copy(target: Path) -> Path:
    """The shipped all-MiniLM-L6-v2 with CLS pooling instead of mean pooling: the same 384-d
    weights making different vectors, i.e. another embedding space of the same dimension."""
    source = Path(Settings().models.embedding_model)
    if not (target / "modules.json").exists():
        weights = "model.safetensors"  # linked, not copied: 90 MB per test run otherwise
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(weights))
        (target / weights).symlink_to(source / weights)
        pooling = target / "1_Pooling" / "config.json"
        config = json.loads(pooling.read_text())
        config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
        pooling.write_text(json.dumps(config, indent=2))
    return target


def build_tiny_sentence_model(tokenizer_source: str, folder: Path, seed: int = 0) -> Path:
    """A one-layer, 32-wide BERT bi-encoder (mean pooling, normalised) with random weights.

    It has the shipped MiniLM's tokenizer and module layout, so it exports along the same path,
    in a fraction of a second; `seed` changes its weights (a "new version" of the same folder).
    """
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    base = folder.parent / f"{folder.name}-base"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(base))
    tokenizer.save_pretrained(str(base))
    transformer = models.Transformer(str(base), max_seq_length=64)
    modules = [transformer, models.Pooling(32, "mean"), models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def build_untrained_cross_encoder(base_model: str, folder: Path, seed: int = 0) -> Path:
    """A cross-encoder on a bi-encoder's weights with a seeded, untrained scoring head.

    For tests and benches on machines without a reranker in the model cache: built from the
    shipped MiniLM it has the architecture of the common MiniLM-L6 cross-encoders, so its cost is
    realistic, while its scores carry no relevance, so a test can tell reranking from fusion.
    """
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    CrossEncoder(base_model, num_labels=1, device="cpu").save(str(folder))
    return folder
