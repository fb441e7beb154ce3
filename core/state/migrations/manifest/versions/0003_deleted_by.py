"""Who deleted a document: the bucket, or an admin through the API (a tombstone)."""

import sqlalchemy as sa
from alembic import op

revision = "manifest_0003"
down_revision = "manifest_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("deleted_by", sa.Text, nullable=False, server_default=""))
    op.execute("UPDATE documents SET deleted_by = 'bucket' WHERE status = 'deleted'")
