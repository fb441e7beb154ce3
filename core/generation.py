"""Index generations: a record of how an index's points were made, and which one is served.

A generation's fingerprint is everything that decides what a point holds: the embedding model (its
name and a digest of its weights), the vector dimension, the query prefix, the chunker (size,
overlap, algorithm version), the parser version, the BM25 tokenizer and the model's weight
quantization (int8 vectors drift from the float model's, mean cosine 0.94). Settings that only
change how points are searched (RRF k, candidates, reranking) are not in it, nor is the inference
backend: ONNX and torch vectors agree to cosine 0.99999. When the configured
fingerprint differs from the served generation's, the index must be rebuilt (`ingest.reindex`).

In the embedded mode each generation is a shard folder with its record beside it
(`<shard>.generation.json`); `serving.json` in the data dir names the folder being served. A data
dir from before generations serves `data_dir/shard`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SERVING_FILE = "serving.json"
# Main-manifest meta keys, so status reads them without opening the index.
GENERATION_META = "generation"  # the served generation's fingerprint record
REBUILD_META = "rebuild"  # a rebuild's progress (`ingest.reindex.RebuildProgress`)
VECTOR_INDEX_META = "vector_index"  # points and indexed vectors, when the index was last built
GENERATIONS_DIR = "generations"


@dataclass(frozen=True)
class Fingerprint:
    embedding_model: str
    weights_digest: str  # "" when the model's files could not be found locally
    dim: int
    query_prefix: str
    chunk_size: int  # effective: the model's window when not configured
    chunk_overlap: int
    chunker_version: int
    parser_version: int
    bm25_lowercase: bool
    bm25_ascii_folding: bool
    bm25_stemmer: str | None
    bm25_stopwords: str | None
    # Fields added after generations were first stamped come last, with a default that means what
    # an older record meant; they leave the id out at that default (`_ADDED_LATER`).
    embedding_quantize: str | None = None  # "int8" when the served weights were quantized

    @property
    def id(self) -> str:
        """A short, stable digest of every field: equal ids mean interchangeable points.

        A field added later is left out at its default, so a generation stamped before it keeps
        its id and is not rebuilt for a field that changes nothing about its points.
        """
        fields = asdict(self)
        for name, default in _ADDED_LATER.items():
            if fields[name] == default:
                del fields[name]
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Fingerprint:
        return cls(**{k: v for k, v in record.items() if k != "id"})

    def differences(self, other: Fingerprint) -> list[str]:
        """Names of the fields that differ, for log lines and status."""
        mine, theirs = asdict(self), asdict(other)
        return [k for k in mine if mine[k] != theirs[k]]


_ADDED_LATER: dict[str, Any] = {"embedding_quantize": None}


# --------------------------------------------------------------------------- the embedded store


def record_path(shard: Path) -> Path:
    return shard.parent / f"{shard.name}.generation.json"


def read_record(shard: Path) -> dict[str, Any] | None:
    try:
        return json.loads(record_path(shard).read_text())
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own per writer: two threads stamping one record at once (a scan
    # and the rebuild task) must not move each other's file away. mkstemp makes it 0600.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_record(shard: Path, record: dict[str, Any]) -> None:
    _write_atomically(record_path(shard), record)


def served_shard(data_dir: Path, legacy: Path) -> Path:
    """The shard folder being served: the one `serving.json` names, else the legacy one."""
    try:
        name = json.loads((data_dir / SERVING_FILE).read_text())["shard"]
    except FileNotFoundError:
        return legacy
    return data_dir / name


def serve(data_dir: Path, shard: Path) -> None:
    """Switch: one atomic rename, so a crash leaves either generation served, never neither."""
    _write_atomically(data_dir / SERVING_FILE, {"shard": str(shard.relative_to(data_dir))})


def generation_shard(data_dir: Path, fingerprint_id: str) -> Path:
    return data_dir / GENERATIONS_DIR / fingerprint_id / "shard"
