"""job times: a collector subjob's own start and end, as its wrapper recorded them

Revision ID: 0011_jobtimes
Revises: 0010_remote
Create Date: 2026-12-04

``job.started_at`` and ``job.finished_at`` (UTC, nullable: jobs recorded before, or a job that
never started, have none). With ``updated_at`` they tell the batch queue's wait from the job's run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_jobtimes"
down_revision: str | None = "0010_remote"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("started_at", "finished_at")


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
