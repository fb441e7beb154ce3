"""Documents, runs, pending work and scan facts.

The schema of the releases before schema versions (their `user_version` 0): tables that are
already there are adopted as they are.
"""

import sqlalchemy as sa
from alembic import op

revision = "manifest_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("documents"):
        return
    text, real = sa.Text, sa.Double
    op.create_table(
        "documents",
        sa.Column("doc_id", text, primary_key=True),
        *(sa.Column(name, text) for name in ("tenant_id", "source", "status")),
        sa.Column("size", sa.BigInteger),
        sa.Column("mtime", real),
        *(sa.Column(n, text) for n in ("etag", "sidecar", "content_hash", "meta_hash")),
        sa.Column("chunk_ids", text),
        sa.Column("error", text),
        sa.Column("attempts", sa.Integer),
        sa.Column("updated_at", real),
    )
    op.create_index("documents_tenant", "documents", ["tenant_id", "status"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("summary", text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "pending",
        sa.Column("doc_id", text, primary_key=True),
        sa.Column("tenant_id", text, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("task_id", text, nullable=False),
        sa.Column("since", real, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", text, nullable=False, server_default=""),
    )
    op.create_table(
        "meta",
        sa.Column("key", text, primary_key=True),
        sa.Column("value", text, nullable=False),
    )
