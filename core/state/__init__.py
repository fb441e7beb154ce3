"""The state processes must agree on, in SQLite files in the data dir (the embedded default:
nothing to set up, one host) or in one PostgreSQL database (`RAG_STATE_URL`: any number of hosts,
no shared folder). The same tables in both, through SQLAlchemy Core, each store's schema made and
upgraded by its own Alembic history (`core/state/migrations/<store>/`).
"""
