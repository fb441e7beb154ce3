"""Document-level metadata, stored once per document."""

import sqlalchemy as sa
from alembic import op

revision = "manifest_0002"
down_revision = "manifest_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("meta", sa.Text, nullable=False, server_default="{}"))
