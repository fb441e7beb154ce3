"""Each tenant's evaluation runs with their reports, its accepted baselines, and the scored items
a run interrupted before its report resumes from.

Reports are text (JSON as `json.dumps` writes it, NaN included, and the HTML page), not a JSON
column: the page is served as it was rendered and the report read back exactly as written.
"""

import sqlalchemy as sa
from alembic import op

revision = "evaluations_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("report", sa.Text),
        sa.Column("page", sa.Text),
    )
    op.create_table(
        "eval_baselines",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("accepted_at", sa.Double, nullable=False),
    )
    op.create_table(
        "eval_items",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("result", sa.Text, nullable=False),
    )
