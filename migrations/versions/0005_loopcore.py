"""states as enums: the calibration, attempt and sign-off columns accept only the loop's values

Revision ID: 0005_loopcore
Revises: 0004_heal_reconcile
Create Date: 2026-12-02

``processing_calibration.state``, ``attempt.state`` and ``signoff.decision`` stay strings of the same
length (non-native enums: no database enum type to migrate when a state is added) and get a CHECK
constraint naming the values of ``domain/states.py``, so a row with a state the loop does not know
cannot be written by any client. The values are copied here: a released migration never changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_loopcore"
down_revision: str | None = "0004_heal_reconcile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table, column, enum name (the constraint is ck_<table>_<enum name>), length, values
COLUMNS = [
    (
        "processing_calibration",
        "state",
        "calibration_state",
        16,
        (
            "waiting",
            "window_open",
            "submitted",
            "running",
            "failed",
            "finished",
            "signed_off",
            "rejected",
            "excluded",
        ),
    ),
    ("attempt", "state", "attempt_state", 16, ("submitted", "held", "running", "failed", "finished", "cancelled")),
    ("signoff", "decision", "signoff_decision", 8, ("accept", "reject")),
]


def _constraint(table: str, name: str) -> str:
    """The name the models' naming convention gives, marked final (``op.f``) so it is not applied twice."""
    return op.f(f"ck_{table}_{name}")


def upgrade() -> None:
    for table, column, name, _length, values in COLUMNS:
        allowed = ", ".join(f"'{v}'" for v in values)
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(_constraint(table, name), sa.text(f"{column} IN ({allowed})"))


def downgrade() -> None:
    for table, _column, name, _length, _values in reversed(COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_constraint(table, name), type_="check")
