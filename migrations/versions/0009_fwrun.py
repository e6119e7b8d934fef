"""site runner: which program runs a site's attempts (b2cal's runner, or the framework's b2caf-prompt-run)

Revision ID: 0009_fwrun
Revises: 0008_condb
Create Date: 2026-12-02

``site.runner`` is ``b2cal`` (the project's own runner, what every existing site used) or ``framework``
(one ``b2caf-prompt-run`` job per attempt); ``site.runner_args`` holds the framework's setup commands,
backend and heartbeat (``domain/site_runner.py``). Existing sites keep b2cal's runner.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_fwrun"
down_revision: str | None = "0008_condb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site") as batch:
        batch.add_column(sa.Column("runner", sa.String(16), nullable=False, server_default=sa.text("'b2cal'")))
        batch.add_column(sa.Column("runner_args", sa.JSON(), nullable=True))
    op.execute("UPDATE site SET runner_args = '{}'")
    # The model gives the defaults in Python; the server default only filled the existing rows.
    with op.batch_alter_table("site") as batch:
        batch.alter_column("runner", server_default=None, existing_type=sa.String(16), existing_nullable=False)
        batch.alter_column("runner_args", nullable=False, existing_type=sa.JSON())


def downgrade() -> None:
    with op.batch_alter_table("site") as batch:
        batch.drop_column("runner_args")
        batch.drop_column("runner")
