"""conditions database upload: a processing's staging global tag and each payload IoV sent to it

Revision ID: 0008_condb
Revises: 0007_rucio
Create Date: 2026-12-02

``condb_tag``: one row per processing whose signed-off payloads go to the conditions database (its
tag's name and id there, whether an upload is due, the outcome of the last one, the backoff while the
server is unreachable, the problems the checks found in the uploaded tag). ``condb_upload``: one row
per payload IoV, written before each request so an upload cut half-way resumes without sending
anything twice (the server's payload and payload-IoV ids once known).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_condb"
down_revision: str | None = "0007_rucio"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "condb_tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("condb_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["processing_id"], ["processing.id"], name=op.f("fk_condb_tag_processing_id_processing")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_condb_tag")),
        sa.UniqueConstraint("processing_id", name="uq_condb_tag_processing_id"),
    )
    op.create_table(
        "condb_upload",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=32), nullable=False),
        sa.Column("exp_low", sa.Integer(), nullable=False),
        sa.Column("run_low", sa.Integer(), nullable=False),
        sa.Column("exp_high", sa.Integer(), nullable=False),
        sa.Column("run_high", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("payload_id", sa.Integer(), nullable=True),
        sa.Column("condb_revision", sa.Integer(), nullable=True),
        sa.Column("iov_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tag_id"], ["condb_tag.id"], name=op.f("fk_condb_upload_tag_id_condb_tag")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_condb_upload")),
        sa.UniqueConstraint(
            "tag_id", "name", "checksum", "exp_low", "run_low", "exp_high", "run_high", name="uq_condb_upload_iov"
        ),
    )


def downgrade() -> None:
    op.drop_table("condb_upload")
    op.drop_table("condb_tag")
