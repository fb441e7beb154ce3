"""Named secrets the platform makes for itself (the report links' signing key)."""

import sqlalchemy as sa
from alembic import op

revision = "secrets_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
