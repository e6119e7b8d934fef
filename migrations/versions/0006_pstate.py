"""processing states as an enum: ``processing.state`` accepts only the loop's values

Revision ID: 0006_pstate
Revises: 0005_loopcore
Create Date: 2026-12-02

Like 0005 for calibrations and attempts: the column stays a string of the same length (a non-native
enum) and gets a CHECK constraint naming the values of ``domain/states.ProcessingState``. The values
are copied here: a released migration never changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_pstate"
down_revision: str | None = "0005_loopcore"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE, COLUMN, NAME = "processing", "state", "processing_state"
VALUES = ("open", "finished", "cancelled")


def upgrade() -> None:
    allowed = ", ".join(f"'{v}'" for v in VALUES)
    with op.batch_alter_table(TABLE) as batch:
        batch.create_check_constraint(op.f(f"ck_{TABLE}_{NAME}"), sa.text(f"{COLUMN} IN ({allowed})"))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(f"ck_{TABLE}_{NAME}"), type_="check")
