"""Documents in namespaces, and runs with a column per counter.

A namespace holds one set of document records: "" the served index's, `generation:<id>` those of
a generation being built, so that any host can resume a rebuild and its switch is one
transaction in one database. A run's counters are columns, so each task's outcome is one
`UPDATE ... SET n = n + 1` rather than a read, change and write of the run's JSON.

Both tables are made anew and filled from the old ones, on either backend (SQLite cannot change a
primary key in place).
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "manifest_0005"
down_revision = "manifest_0004"
branch_labels = None
depends_on = None

_DOCUMENT_COLUMNS = [
    ("doc_id", sa.Text),
    ("tenant_id", sa.Text),
    ("source", sa.Text),
    ("status", sa.Text),
    ("size", sa.BigInteger),
    ("mtime", sa.Double),
    ("etag", sa.Text),
    ("sidecar", sa.Text),
    ("content_hash", sa.Text),
    ("meta_hash", sa.Text),
    ("chunk_ids", sa.Text),
    ("error", sa.Text),
    ("attempts", sa.Integer),
    ("updated_at", sa.Double),
    ("meta", sa.Text),
    ("deleted_by", sa.Text),
    ("chunk_count", sa.Integer),
]
_COUNTERS = ("added", "modified", "deleted", "unchanged", "failed", "chunks_embedded")


def upgrade() -> None:
    _documents()
    _runs()


def _documents() -> None:
    op.create_table(
        "documents_new",
        sa.Column("namespace", sa.Text, primary_key=True),
        *(
            sa.Column(name, kind, primary_key=name == "doc_id", nullable=False)
            for name, kind in _DOCUMENT_COLUMNS
        ),
        # Clustered by (namespace, doc_id) on SQLite: a namespace's records are read in one
        # pass, not looked up one by one through an index (1.5x faster whole, 6x one tenant).
        sqlite_with_rowid=False,
    )
    names = ", ".join(name for name, _ in _DOCUMENT_COLUMNS)
    op.execute(f"INSERT INTO documents_new (namespace, {names}) SELECT '', {names} FROM documents")
    op.drop_index("documents_tenant", "documents")
    op.drop_index("documents_state", "documents")
    op.drop_table("documents")
    op.rename_table("documents_new", "documents")
    op.create_index("documents_tenant", "documents", ["namespace", "tenant_id", "status"])
    op.create_index(
        "documents_state",
        "documents",
        [
            "namespace",
            "doc_id",
            "source",
            "status",
            "size",
            "mtime",
            "etag",
            "sidecar",
            "deleted_by",
            "chunk_count",
        ],
    )


def _runs() -> None:
    bind = op.get_bind()
    summaries = [s for (s,) in bind.execute(sa.text("SELECT summary FROM runs ORDER BY id"))]
    op.drop_table("runs")
    runs = op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *(sa.Column(n, sa.Integer, nullable=False, server_default="0") for n in _COUNTERS),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=False, server_default="0"),
        sa.Column("planned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completed", sa.Integer, nullable=False, server_default="0"),
        sqlite_autoincrement=True,
    )
    fields = (*_COUNTERS, "started_at", "finished_at", "planned", "completed")
    rows = [json.loads(summary) for summary in summaries]
    if rows:  # a release's summaries lack the counters added after it: they count 0
        op.bulk_insert(runs, [{f: row.get(f, 0) for f in fields} for row in rows])
