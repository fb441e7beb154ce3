"""The ONNX Runtime backend computes what torch computes, and survives a bad cached export.

The shipped MiniLM and a cross-encoder built from it are checked against their torch reference;
the export cache's failure cases use a one-layer model built locally, which exports in a second.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.embedding import Embedder
from core.model_digest import model_digest
from core.onnx_models import InferenceOptions, ensure_export
from core.settings import Settings
from retrieval.rerank import CrossEncoderReranker
from tests.support.models import build_tiny_sentence_model, build_untrained_cross_encoder

SCIFACT = Path("/work/shared/data/scifact/corpus.jsonl")
QUERIES = ["what lowers the risk of heart disease?", "Vitamin D deficiency and bone density"]


def _scifact_chunks(embedder: Embedder, count: int) -> list[str]:
    """Real chunks: SciFact abstracts cut to the model's window as ingestion cuts them."""
    from ingest.chunking import Chunker

    chunker = Chunker(embedder.tokenizer.backend_tokenizer, embedder.max_tokens, 64)
    chunks: list[str] = []
    with SCIFACT.open() as f:
        for line in f:
            doc = json.loads(line)
            chunks += [c.text for c in chunker.split(f"{doc['title']}\n\n{doc['text']}")]
            if len(chunks) >= count:
                return chunks[:count]
    return chunks


@pytest.fixture(scope="module")
def torch_embedder(embedder: Embedder) -> Embedder:
    return Embedder(embedder.model_name, 16)


def test_onnx_vectors_equal_torch_on_real_chunks(
    embedder: Embedder, torch_embedder: Embedder
) -> None:
    assert embedder.backend == "onnx", embedder.fallback_reason
    assert (embedder.dim, embedder.max_tokens) == (torch_embedder.dim, torch_embedder.max_tokens)
    chunks = _scifact_chunks(embedder, 48)
    onnx, reference = embedder.embed_documents(chunks), torch_embedder.embed_documents(chunks)
    assert float((onnx * reference).sum(axis=1).min()) >= 0.9999
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    for query in QUERIES:
        cosine = float(embedder.embed_query(query) @ torch_embedder.embed_query(query))
        assert cosine >= 0.9999


def test_the_shipped_model_runs_on_fused_attention(embedder: Embedder) -> None:
    """The export is rewritten with ONNX Runtime's Attention kernel, one per MiniLM-L6 layer."""
    export_dir = InferenceOptions.from_settings(Settings()).export_dir
    fused = ensure_export("embedder", embedder.model_name, export_dir).meta["fused"]
    assert fused.get("Attention") == 6, fused
    assert fused.get("SkipLayerNormalization") == 12, fused


def test_onnx_rerank_scores_match_torch(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> None:
    folder = build_untrained_cross_encoder(embedder.model_name, tmp_path_factory.mktemp("ce"))
    inference = InferenceOptions.from_settings(Settings())
    onnx = CrossEncoderReranker(str(folder), 8, inference=inference)
    reference = CrossEncoderReranker(str(folder), 8)
    assert onnx.backend == "onnx", onnx.fallback_reason
    # Its attention is fused as the embedder's is.
    fused = ensure_export("cross-encoder", str(folder), inference.export_dir).meta["fused"]
    assert fused.get("Attention") == 6, fused
    chunks = _scifact_chunks(embedder, 20)
    for query in QUERIES:
        assert onnx.score(query, chunks) == pytest.approx(reference.score(query, chunks), abs=1e-4)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sentence_model(
        Settings().models.embedding_model, tmp_path_factory.mktemp("tiny") / "model"
    )


def _options(export_dir: Path) -> InferenceOptions:
    return InferenceOptions("onnx", 2, None, export_dir)


TEXTS = ["Red foxes hunt small rodents at dawn.", "Arctic foxes turn white in winter. " * 20]


def _assert_matches_torch(model: Path, export_dir: Path) -> Embedder:
    onnx = Embedder(str(model), 4, inference=_options(export_dir))
    assert onnx.backend == "onnx", onnx.fallback_reason
    reference = Embedder(str(model), 4).embed_documents(TEXTS)
    assert float((onnx.embed_documents(TEXTS) * reference).sum(axis=1).min()) >= 0.9999
    return onnx


@pytest.mark.parametrize("damage", ["truncated graph", "garbage graph", "no meta"])
def test_a_corrupt_export_is_exported_again(
    tiny_model: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    export = ensure_export("embedder", str(tiny_model), tmp_path)
    if damage == "truncated graph":
        data = export.graph.read_bytes()
        export.graph.write_bytes(data[: len(data) // 2])
    elif damage == "garbage graph":
        # Bytes that match the recorded digest but that ONNX Runtime cannot load.
        export.graph.write_bytes(b"not an onnx graph")
        meta = json.loads((export.graph.parent / "meta.json").read_text())
        meta["graph_sha256"] = __import__("hashlib").sha256(b"not an onnx graph").hexdigest()
        (export.graph.parent / "meta.json").write_text(json.dumps(meta))
    else:
        (export.graph.parent / "meta.json").unlink()
    with caplog.at_level(logging.WARNING, logger="core.onnx_models"):
        _assert_matches_torch(tiny_model, tmp_path)
    assert any("again" in r.message for r in caplog.records)
    assert ensure_export("embedder", str(tiny_model), tmp_path).graph == export.graph


def test_a_stale_export_is_replaced_when_the_weights_change(
    tiny_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    old = ensure_export("embedder", str(model), tmp_path / "exports")
    changed = build_tiny_sentence_model(Settings().models.embedding_model, tmp_path / "new", seed=1)
    shutil.copy(changed / "model.safetensors", model / "model.safetensors")

    _assert_matches_torch(model, tmp_path / "exports")  # the new weights, not the old graph
    new = ensure_export("embedder", str(model), tmp_path / "exports")
    assert new.graph != old.graph
    assert not old.graph.parent.exists()  # the stale export is gone
    assert [p.name for p in (tmp_path / "exports").glob("embedder-*")] == [new.graph.parent.name]


def test_a_model_that_cannot_be_exported_runs_on_torch(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The exporter's failure is simulated (any model that torch runs, MiniLM included, exports):
    the embedder must still work, on torch, and say why."""
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::frobnicate' is not supported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with caplog.at_level(logging.WARNING, logger="core.embedding"):
        embedder = Embedder(str(tiny_model), 4, inference=_options(tmp_path))
    assert embedder.backend == "torch"
    assert "aten::frobnicate" in embedder.fallback_reason
    assert any("runs on torch" in r.message and "frobnicate" in r.message for r in caplog.records)
    reference = Embedder(str(tiny_model), 4).embed_documents(TEXTS)
    assert np.allclose(embedder.embed_documents(TEXTS), reference, atol=1e-6)


def test_a_model_that_is_not_there_is_an_error_on_either_backend(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Embedder(str(tmp_path / "missing"), 4, inference=_options(tmp_path))


def test_int8_vectors_are_cached_apart_from_float_ones(tiny_model: Path, tmp_path: Path) -> None:
    int8 = Embedder(str(tiny_model), 4, inference=InferenceOptions("onnx", 2, "int8", tmp_path))
    assert int8.backend == "onnx", int8.fallback_reason
    float_key = Embedder(str(tiny_model), 4).vectors_key
    assert float_key == f"{tiny_model}@{model_digest(str(tiny_model))}"
    assert int8.vectors_key == f"{float_key}#int8"
    graph = ensure_export("embedder", str(tiny_model), tmp_path, "int8").graph
    assert graph != ensure_export("embedder", str(tiny_model), tmp_path).graph
    # Two deployments on one machine, one with int8, share the cache without undoing each other.
    assert graph.exists()
    vectors = int8.embed_documents(TEXTS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_rag_models_export_exports_ahead_of_time(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from core.settings import get_settings

    monkeypatch.setenv("RAG_EMBEDDING_MODEL", str(tiny_model))
    monkeypatch.setenv("RAG_RERANKER_MODEL", "example-org/no-such-reranker")
    monkeypatch.setenv("RAG_ONNX_EXPORT_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["models", "export"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "no-such-reranker" in result.output and "not exported" in result.output
    exported = ensure_export("embedder", str(tiny_model), tmp_path)
    assert exported.graph.exists() and str(exported.graph.parent.name) in result.output.replace(
        "\n", ""
    )
