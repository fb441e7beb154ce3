"""The settings' sections keep every variable of the flat settings they replaced: each is set on
its own and must land in its section's field, parsed; and the flat names still build and copy
settings through the same map."""

from __future__ import annotations

import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal

import pytest
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

from core.settings import FLAT_NAMES, SECTIONS, SERVER_ONLY, Settings, variable_of

# Every variable the platform read before its settings had sections, written out so that a
# rename shows here: users' environments and deployment files name them.
PINNED = [
    "RAG_DATA_DIR",
    "RAG_BUCKET_URL",
    "RAG_S3_ENDPOINT_URL",
    "RAG_S3_REGION",
    "RAG_AWS_ACCESS_KEY_ID",
    "RAG_AWS_SECRET_ACCESS_KEY",
    "RAG_INDEX_MODE",
    "RAG_QDRANT_URL",
    "RAG_QDRANT_PATH",
    "RAG_QDRANT_API_KEY",
    "RAG_COLLECTION",
    "RAG_QDRANT_SHARD_NUMBER",
    "RAG_QDRANT_REPLICATION_FACTOR",
    "RAG_QDRANT_WRITE_CONSISTENCY_FACTOR",
    "RAG_INDEX_OPTIMIZE_MIN_UNINDEXED",
    "RAG_INDEX_OPTIMIZE_INTERVAL_SECONDS",
    "RAG_ENGINE_SEARCH_THREADS",
    "RAG_ENGINE_INDEXING_THREADS",
    "RAG_REDIS_URL",
    "RAG_EMBEDDING_MODEL",
    "RAG_EMBEDDING_BATCH_SIZE",
    "RAG_QUERY_PREFIX",
    "RAG_RERANKER_MODEL",
    "RAG_INFERENCE_BACKEND",
    "RAG_INFERENCE_THREADS",
    "RAG_INFERENCE_QUANTIZE",
    "RAG_ONNX_EXPORT_DIR",
    "RAG_COHERE_API_KEY",
    "RAG_CHUNK_SIZE",
    "RAG_CHUNK_OVERLAP",
    "RAG_RRF_K",
    "RAG_CANDIDATES_PER_LEG",
    "RAG_BM25_K1",
    "RAG_BM25_B",
    "RAG_BM25_LOWERCASE",
    "RAG_BM25_STEMMER",
    "RAG_BM25_STOPWORDS",
    "RAG_BM25_ASCII_FOLDING",
    "RAG_MAX_FILE_BYTES",
    "RAG_PARSE_PROCESSES",
    "RAG_PARSE_TIMEOUT_SECONDS",
    "RAG_PARSE_MAX_EXPANDED_BYTES",
    "RAG_PARSE_MEMORY_MB",
    "RAG_PARSE_NICENESS",
    "RAG_MAX_SIDECAR_BYTES",
    "RAG_META_FILTER_VALUE_CHARS",
    "RAG_MAX_CHUNK_META_BYTES",
    "RAG_DEFAULT_TENANT",
    "RAG_INGEST_BATCH_DOCS",
    "RAG_SCAN_HOLD_DELETES_SHARE",
    "RAG_SCAN_HOLD_DELETES_MIN",
    "RAG_SCAN_INTERVAL_SECONDS",
    "RAG_WATCH_BUCKET",
    "RAG_SQS_QUEUE_URL",
    "RAG_CELERY_SCAN_QUEUE",
    "RAG_CELERY_DOCUMENTS_QUEUE",
    "RAG_WORKER_CONCURRENCY",
    "RAG_WORKER_BATCH_DOCS",
    "RAG_DOCUMENT_LOCK_TTL_SECONDS",
    "RAG_REQUEUE_AFTER_SECONDS",
    "RAG_MAX_ATTEMPTS",
    "RAG_RETRY_BACKOFF_SECONDS",
    "RAG_RETRY_BACKOFF_MAX_SECONDS",
    "RAG_BROKER_VISIBILITY_TIMEOUT_SECONDS",
    "RAG_ADMIN_API_KEY",
    "RAG_API_HOST",
    "RAG_API_PORT",
    "RAG_API_THREADS",
    "RAG_API_MAX_INFLIGHT",
    "RAG_API_MAX_INFLIGHT_PER_TENANT",
    "RAG_API_BODY_TIMEOUT_SECONDS",
    "RAG_API_RETRY_AFTER_SECONDS",
    "RAG_API_DELETE_LOCK_WAIT_SECONDS",
    "RAG_AUDIT_LOG",
    "RAG_AUDIT_LOG_QUERIES",
    "RAG_AUDIT_REFUSALS_PER_CLIENT_PER_MINUTE",
    "RAG_MAX_QUERY_CHARS",
    "RAG_SEARCH_TOP_K",
    "RAG_ANSWER_TOP_K",
    "RAG_MAX_TOP_K",
    "RAG_MAX_ANSWER_TOP_K",
    "RAG_MAX_FILTERS",
    "RAG_MAX_FILTER_VALUES",
    "RAG_MAX_BODY_BYTES",
    "RAG_RERANK_TOP_N",
    "RAG_MAX_RERANK_TOP_N",
    "RAG_RERANK_BATCH_SIZE",
    "RAG_RERANK_MAX_TOKENS",
    "RAG_COHERE_BASE_URL",
    "RAG_COHERE_RERANK_MODEL",
    "RAG_COHERE_TIMEOUT_SECONDS",
    "RAG_COHERE_MAX_RETRIES",
    "RAG_LLM_BASE_URL",
    "RAG_LLM_MODEL",
    "RAG_LLM_API_KEY",
    "RAG_LLM_TIMEOUT_S",
    "RAG_LLM_MAX_TOKENS",
    "RAG_LLM_MAX_REPLY_BYTES",
    "RAG_GRAPH_ENABLED",
    "RAG_GRAPH_EXTRACTOR",
    "RAG_GRAPH_LLM_BASE_URL",
    "RAG_GRAPH_LLM_MODEL",
    "RAG_GRAPH_LLM_API_KEY",
    "RAG_GRAPH_STORE",
    "RAG_GRAPH_REDIS_URL",
    "RAG_GRAPH_MAX_HOPS",
    "RAG_GRAPH_MAX_CHUNKS",
    "RAG_GRAPH_IN_HYBRID",
    "RAG_EVAL_REPORTS_DIR",
    "RAG_EVAL_REGRESSION_THRESHOLD",
    "RAG_EVAL_DATASET",
    "RAG_EVAL_GOLDEN",
    "RAG_EVAL_SPLIT",
    "RAG_EVAL_NIGHTLY_HOUR",
    "RAG_EVAL_NIGHTLY_MINUTE",
    "RAG_EVAL_SAMPLE",
    "RAG_EVAL_RAGAS_SAMPLE",
    "RAG_EVAL_CONTEXT_K",
    "RAG_EVAL_TENANT",
    "RAG_EVAL_DATA_DIR",
    "RAG_EVAL_JUDGE_MODEL",
    "RAG_EVAL_JUDGE_BASE_URL",
    "RAG_EVAL_JUDGE_API_KEY",
    "RAG_EVAL_EMBEDDING_MODEL",
    "RAG_EVAL_CONCURRENCY",
    "RAG_EVAL_TIMEOUT_S",
    "RAG_EVAL_LINK_SECRET",
    "RAG_EVAL_LINK_TTL_SECONDS",
]
ROOT = ("data_dir", "redis_url", "default_tenant")


def test_every_old_variable_is_still_read() -> None:
    assert len(PINNED) == 128
    flat = {f"RAG_{name.upper()}" for name in [*FLAT_NAMES, *ROOT]}
    assert set(PINNED) <= flat
    assert set(ROOT) <= set(Settings.model_fields)


def _other_value(info: FieldInfo) -> tuple[str, Any]:
    """A value for the field unlike its default and within its bounds, its first example if it
    gives one: (as the environment writes it, as the field holds it)."""
    if info.examples:
        return str(info.examples[0]), info.examples[0]
    kind = info.annotation
    args = [a for a in typing.get_args(kind) if a is not NoneType]
    if isinstance(kind, UnionType) or typing.get_origin(kind) is typing.Union:
        kind = args[0]
    low = next((getattr(m, a) for m in info.metadata for a in ("ge", "gt") if hasattr(m, a)), 0)
    if typing.get_origin(kind) is Literal:
        choice = next(c for c in typing.get_args(kind) if c != info.default)
        return str(choice), choice
    if kind is bool:
        return str(not info.default).lower(), not info.default
    if kind is int:
        high = next((m.le for m in info.metadata if hasattr(m, "le")), 10**6)
        value = low + 1 if info.default != low + 1 else low + 2
        return str(min(value, high)), min(value, high)
    if kind is float:
        value = float(low) + 0.25
        return str(value), value
    if kind is Path:
        return "/srv/rag-elsewhere", Path("/srv/rag-elsewhere")
    if kind is SecretStr:
        return "a-secret", "a-secret"
    assert kind is str, (info, kind)
    return "some-other-value", "some-other-value"


@pytest.mark.parametrize("flat", sorted(FLAT_NAMES))
def test_a_variable_lands_in_its_section(flat: str, monkeypatch: pytest.MonkeyPatch) -> None:
    section, name = FLAT_NAMES[flat]
    info = SECTIONS[section].model_fields[name]
    written, held = _other_value(info)
    assert held != info.default  # else the default alone would pass
    if section == "index" and name in SERVER_ONLY:
        monkeypatch.setenv("RAG_INDEX_MODE", "server")  # refused with the embedded engine
    monkeypatch.setenv(f"RAG_{flat.upper()}", written)
    value = getattr(getattr(Settings(), section), name)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    assert value == held


def test_a_section_reads_its_own_prefix_and_the_flat_names_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAG_GRAPH_MAX_HOPS", "1")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "9")
    settings = Settings(chunk_size=48, graph={"in_hybrid": True})
    assert (settings.ingest.chunk_size, settings.ingest.chunk_overlap) == (48, 9)
    assert (settings.graph.max_hops, settings.graph.in_hybrid) == (1, True)


def test_a_copy_is_validated_like_the_original(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, chunk_size=48, chunk_overlap=8)
    copy = settings.updated(chunk_overlap=4, retrieval={"rrf_k": 10})
    assert (copy.ingest.chunk_size, copy.ingest.chunk_overlap, copy.retrieval.rrf_k) == (48, 4, 10)
    assert copy.data_dir == tmp_path and settings.ingest.chunk_overlap != 4
    with pytest.raises(ValidationError, match="parse_processes"):
        settings.updated(parse_processes=0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RAG_API_PORT", "eighty"), ("RAG_CHUNK_SIZE", "big"), ("RAG_INDEX_MODE", "cloud")],
)
def test_an_invalid_variable_is_named_as_the_user_wrote_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert variable_of(raised.value.title, raised.value.errors()[0]["loc"]) == variable
    monkeypatch.delenv(variable)
    with pytest.raises(ValidationError) as raised:  # a keyword names the same variable
        Settings(**{variable.removeprefix("RAG_").lower(): value})
    assert variable_of(raised.value.title, raised.value.errors()[0]["loc"]) == variable


@pytest.mark.parametrize(("size", "overlap"), [(40, 64), (64, 64), (None, -1)])
def test_an_overlap_as_large_as_a_chunk_is_refused_at_start_up(
    size: int | None, overlap: int
) -> None:
    """Found by the multi-host test: RAG_CHUNK_SIZE=40 beside the default overlap of 64 was
    taken, and every worker task then failed in the chunker."""
    with pytest.raises(ValidationError, match="RAG_CHUNK_OVERLAP"):
        Settings(chunk_size=size, chunk_overlap=overlap)
    assert Settings(chunk_size=65, chunk_overlap=64).ingest.chunk_size == 65
