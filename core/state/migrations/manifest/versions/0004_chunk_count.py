"""Each document's chunk count beside its chunk ids, for scans that read no chunk ids."""

import sqlalchemy as sa
from alembic import op

revision = "manifest_0004"
down_revision = "manifest_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("chunk_count", sa.Integer, nullable=False, server_default="0")
    )
    ids = "chunk_ids" if op.get_bind().dialect.name == "sqlite" else "chunk_ids::json"
    op.execute(f"UPDATE documents SET chunk_count = json_array_length({ids})")
    op.create_index(
        "documents_state",
        "documents",
        [
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
