"""Vectors by model and chunk hash.

The schema of the releases before Alembic (their `user_version` 1, or 0 from before versions):
a table that is already there is adopted as it is.
"""

import sqlalchemy as sa
from alembic import op

revision = "embeddings_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("embeddings"):
        return
    op.create_table(
        "embeddings",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("chunk_hash", sa.Text, primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
