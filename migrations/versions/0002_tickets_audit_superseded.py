"""ticket outbox, audit log, and payload.superseded (filled from the revisions already stored)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Data step: a payload stored before this revision is marked superseded when its processing holds a newer
revision of the same payload name, or a payload of the same calibration from a later attempt: the rule
``record_payloads`` applies from now on. No row is deleted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS = {
    f"{dialect}_{key}": value
    for dialect in ("mysql", "mariadb")
    for key, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def _superseded_ids(connection: sa.Connection) -> list[int]:
    payload = sa.table(
        "payload",
        sa.column("id"),
        sa.column("processing_id"),
        sa.column("calibration"),
        sa.column("name"),
        sa.column("revision"),
        sa.column("attempt_id"),
    )
    rows = connection.execute(
        sa.select(
            payload.c.id,
            payload.c.processing_id,
            payload.c.calibration,
            payload.c.name,
            payload.c.revision,
            payload.c.attempt_id,
        )
    ).all()
    newest_revision: dict[tuple[int, str], int] = {}
    newest_attempt: dict[tuple[int, str], int] = {}
    for row in rows:
        key = (row.processing_id, row.name)
        newest_revision[key] = max(newest_revision.get(key, row.revision), row.revision)
        if row.attempt_id is not None:
            cal = (row.processing_id, row.calibration)
            newest_attempt[cal] = max(newest_attempt.get(cal, row.attempt_id), row.attempt_id)
    superseded = []
    for row in rows:
        later_revision = newest_revision[(row.processing_id, row.name)] > row.revision
        latest_attempt = newest_attempt.get((row.processing_id, row.calibration))
        later_attempt = row.attempt_id is not None and latest_attempt is not None and latest_attempt > row.attempt_id
        if later_revision or later_attempt:
            superseded.append(row.id)
    return superseded


def upgrade() -> None:
    op.create_table(
        "ticket_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("ticket_key", sa.String(length=64), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["processing_id"], ["processing.id"], name=op.f("fk_ticket_message_processing_id_processing")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_message")),
        sa.UniqueConstraint("dedup_key", name="uq_ticket_message_dedup_key"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("processing", sa.String(length=64), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("payload") as batch:
        batch.add_column(sa.Column("superseded", sa.Boolean(), nullable=False, server_default=sa.false()))

    if op.get_context().as_sql:
        op.execute("-- data step of 0002 (payload.superseded) needs a live database: run it online")
    else:
        ids = _superseded_ids(op.get_bind())
        payload = sa.table("payload", sa.column("id"), sa.column("superseded", sa.Boolean()))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            op.execute(payload.update().where(payload.c.id.in_(chunk)).values(superseded=True))

    # The models give the default in Python; drop the server default used to fill existing rows.
    with op.batch_alter_table("payload") as batch:
        batch.alter_column("superseded", server_default=None, existing_type=sa.Boolean(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("payload") as batch:
        batch.drop_column("superseded")
    op.drop_table("audit_entry")
    op.drop_table("ticket_message")
