"""Every store of the state database: its Alembic history (core/state/migrations/<name>/) and,
on the embedded default, its SQLite file in the data dir. Adding a store is adding a line here
and its migrations folder; `rag state` reads this list."""

from __future__ import annotations

from core.state.database import StoreSchema

KEYS = StoreSchema("keys", "api_keys.sqlite")
EMBEDDINGS = StoreSchema("embeddings", "embeddings.sqlite")
GOLDEN = StoreSchema("golden", "golden.sqlite")
SECRETS = StoreSchema("secrets", "secrets.sqlite")
MANIFEST = StoreSchema("manifest", "manifest.sqlite")
EVALUATIONS = StoreSchema("evaluations", "evaluations.sqlite")
STORES = (MANIFEST, KEYS, EMBEDDINGS, GOLDEN, SECRETS, EVALUATIONS)
