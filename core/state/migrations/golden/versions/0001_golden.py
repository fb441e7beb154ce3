"""Golden items per tenant.

The schema of the releases before Alembic (their `user_version` 1, or 0 from before versions):
a table that is already there is adopted as it is.
"""

import sqlalchemy as sa
from alembic import op

revision = "golden_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("golden"):
        return
    op.create_table(
        "golden",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("review", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
