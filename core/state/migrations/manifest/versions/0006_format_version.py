"""The version of its format's parser that read each document, so that a parser's change parses
that format's documents again, and only theirs.

Records written before it were read by every format's first version.
"""

import sqlalchemy as sa
from alembic import op

revision = "manifest_0006"
down_revision = "manifest_0005"
branch_labels = None
depends_on = None

_STATE = ["namespace", "doc_id", "source", "status", "size", "mtime", "etag", "sidecar"]


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("format_version", sa.Integer, nullable=False, server_default="1")
    )
    op.drop_index("documents_state", "documents")
    op.create_index(
        "documents_state",
        "documents",
        [*_STATE, "deleted_by", "chunk_count", "format_version"],
    )
