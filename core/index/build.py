"""`python -m core.index.build <shard> <dim> <min_unindexed>`: optimise a shard copy, then exit.

Run by `EdgeIndex.optimize` in a child process, so the engine's GIL-holding HNSW build never
stalls the searches of the process serving the original.
"""

from __future__ import annotations

import sys

import qdrant_edge as qe

from core.index.edge import edge_config


def main(shard: str, dim: str, min_unindexed: str) -> None:
    built = qe.EdgeShard.load(shard, edge_config(int(dim), int(min_unindexed)))
    try:
        built.optimize()
        built.flush()
    finally:
        built.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
