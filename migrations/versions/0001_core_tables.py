"""core tables: sites, processings, runs, the file catalog, calibrations, attempts, jobs, sign-offs, payloads

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# MariaDB/MySQL: 4-byte UTF-8 and binary collation, so file paths and names compare case-sensitively.
TABLE_OPTIONS = {
    f"{dialect}_{key}": value
    for dialect in ("mysql", "mariadb")
    for key, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("backend_args", sa.JSON(), nullable=False),
        sa.Column("storage_root", sa.String(length=1024), nullable=False),
        sa.Column("path_prefix", sa.String(length=256), nullable=False),
        sa.Column("signoff_policy", sa.String(length=16), nullable=False),
        sa.Column("hold_until_deadline", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("name", name=op.f("uq_site_name")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exp", sa.Integer(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("run_type", sa.String(length=16), nullable=False),
        sa.Column("magnet", sa.String(length=8), nullable=False),
        sa.Column("beam_energy", sa.String(length=16), nullable=False),
        sa.Column("data_quality", sa.String(length=32), nullable=False),
        sa.Column("duration_minutes", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run")),
        sa.UniqueConstraint("exp", "run", name="uq_run_exp_run"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "processing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("exp_low", sa.Integer(), nullable=False),
        sa.Column("run_low", sa.Integer(), nullable=False),
        sa.Column("exp_high", sa.Integer(), nullable=False),
        sa.Column("run_high", sa.Integer(), nullable=False),
        sa.Column("global_tags", sa.JSON(), nullable=False),
        sa.Column("window_hours", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_processing_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processing")),
        sa.UniqueConstraint("name", name=op.f("uq_processing_name")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "catalog_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("data_tag", sa.String(length=64), nullable=False),
        sa.Column("data_format", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=768), nullable=False),
        sa.Column("n_events", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=True),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["processing_id"], ["processing.id"], name=op.f("fk_catalog_file_processing_id_processing")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_catalog_file_run_id_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_file")),
        sa.UniqueConstraint("path", name=op.f("uq_catalog_file_path")),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_catalog_file_tag_run", "catalog_file", ["data_tag", "run_id"], unique=False)
    op.create_table(
        "replica",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["catalog_file.id"], name=op.f("fk_replica_file_id_catalog_file")),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_replica_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replica")),
        sa.UniqueConstraint("file_id", "site_id", name="uq_replica_file_site"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "processing_calibration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expert_username", sa.String(length=64), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("window_opened_at", sa.DateTime(), nullable=True),
        sa.Column("deadline", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["processing_id"], ["processing.id"], name=op.f("fk_processing_calibration_processing_id_processing")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processing_calibration")),
        sa.UniqueConstraint("processing_id", "calibration", name="uq_processing_calibration"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("expert_config", sa.JSON(), nullable=False),
        sa.Column("job_config", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("workdir", sa.String(length=1024), nullable=False),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["processing_id"], ["processing.id"], name=op.f("fk_attempt_processing_id_processing")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt")),
        sa.UniqueConstraint("processing_id", "calibration", "number", name="uq_attempt_number"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("backend_job_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("workdir", sa.String(length=1024), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempt.id"], name=op.f("fk_job_attempt_id_attempt")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "signoff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempt.id"], name=op.f("fk_signoff_attempt_id_attempt")),
        sa.ForeignKeyConstraint(["processing_id"], ["processing.id"], name=op.f("fk_signoff_processing_id_processing")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signoff")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "payload",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processing_id", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.String(length=64), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=32), nullable=False),
        sa.Column("exp_low", sa.Integer(), nullable=False),
        sa.Column("run_low", sa.Integer(), nullable=False),
        sa.Column("exp_high", sa.Integer(), nullable=False),
        sa.Column("run_high", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempt.id"], name=op.f("fk_payload_attempt_id_attempt")),
        sa.ForeignKeyConstraint(["processing_id"], ["processing.id"], name=op.f("fk_payload_processing_id_processing")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payload")),
        sa.UniqueConstraint("processing_id", "name", "revision", name="uq_payload_revision"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_payload_processing_calibration", "payload", ["processing_id", "calibration"], unique=False)


def downgrade() -> None:
    op.drop_table("payload")
    op.drop_table("signoff")
    op.drop_table("job")
    op.drop_table("attempt")
    op.drop_table("processing_calibration")
    op.drop_table("replica")
    op.drop_table("catalog_file")
    op.drop_table("processing")
    op.drop_table("run")
    op.drop_table("site")
