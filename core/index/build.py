"""`python -m core.index.build <shard> <dim> <min_unindexed> [<search threads> <indexing threads>]`:
optimise a shard copy, then exit (without thread counts, with the engine's own).

Run by `EdgeIndex.optimize` in a child process, so the engine's GIL-holding HNSW build never
stalls the searches of the process serving the original.
"""

from __future__ import annotations

import sys

import qdrant_edge as qe

from core.index.edge import EngineThreads, edge_config


def main(shard: str, dim: str, min_unindexed: str, *threads: str) -> None:
    bounded = EngineThreads(*map(int, threads)) if threads else None
    built = qe.EdgeShard.load(shard, edge_config(int(dim), int(min_unindexed), bounded))
    try:
        built.optimize()
        built.flush()
    finally:
        built.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
