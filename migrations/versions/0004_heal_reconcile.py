"""reconciliation: launch generations and relaunch counts per calibration, resumes per attempt, staging due

Revision ID: 0004_heal_reconcile
Revises: 0003_perm_sessions
Create Date: 2026-12-05

``processing_calibration.launch_generation`` is part of the run key of every run the loop requests for
the calibration (Dagster starts a run key once); it goes up whenever the loop launches the step again
because the earlier run never got to work (lost, failed or cancelled before it recorded an attempt,
or died while its attempt ran). ``relaunches`` counts those relaunches of the current submission, and
``attempt.resumes`` the automatic resumes of an attempt, so that a fault that repeats ends in a failed
state a manager sees instead of a loop. ``processing.staging_due`` marks a processing that finished and
whose staging tag the staging sensor has not exported yet (exporting copies files: not in the tick).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_heal_reconcile"
down_revision: str | None = "0003_perm_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "processing_calibration": [
        ("launch_generation", sa.Integer(), "0"),
        ("relaunches", sa.Integer(), "0"),
    ],
    "attempt": [("resumes", sa.Integer(), "0")],
    "processing": [("staging_due", sa.Boolean(), None)],
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, type_, default in columns:
                server_default = sa.false() if default is None else sa.text(default)
                batch.add_column(sa.Column(name, type_, nullable=False, server_default=server_default))
    # The models give the defaults in Python; the server defaults only fill the existing rows.
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, type_, _default in columns:
                batch.alter_column(name, server_default=None, existing_type=type_, existing_nullable=False)


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, _type, _default in reversed(columns):
                batch.drop_column(name)
