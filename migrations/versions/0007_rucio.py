"""catalog files from a data source (Rucio): DID, adler32 and a flag; the source's cursor and health

Revision ID: 0007_rucio
Revises: 0006_pstate
Create Date: 2026-12-02

``catalog_file`` gets ``did`` (``scope:name``), ``checksum`` (adler32, as Rucio reports it) and
``flag``/``flag_detail``/``flagged_at``: a file the source no longer has at the site (``missing``) or
whose checksum changed (``checksum_changed``) is kept for the record but no job reads it.
``catalog_source`` holds, per site and source, the incremental cursor (``updated_after``), the time of
the last full scan, and the failures in a row with the backoff's next try, for ``b2cal status``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_rucio"
down_revision: str | None = "0006_pstate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_file") as batch:
        batch.add_column(sa.Column("did", sa.String(512), nullable=True))
        batch.add_column(sa.Column("checksum", sa.String(16), nullable=True))
        batch.add_column(sa.Column("flag", sa.String(16), nullable=True))
        batch.add_column(sa.Column("flag_detail", sa.String(512), nullable=False, server_default=""))
        batch.add_column(sa.Column("flagged_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_catalog_file_did", ["did"])
        batch.create_index("ix_catalog_file_flag", ["flag"])  # b2cal status asks for the flagged files
    op.create_table(
        "catalog_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("site.id", name="fk_catalog_source_site_id_site"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("updated_after", sa.DateTime(), nullable=True),
        sa.Column("last_full_scan_at", sa.DateTime(), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(512), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_source"),
        sa.UniqueConstraint("site_id", "kind", name="uq_catalog_source_site_kind"),
    )


def downgrade() -> None:
    op.drop_table("catalog_source")
    with op.batch_alter_table("catalog_file") as batch:
        batch.drop_index("ix_catalog_file_flag")
        batch.drop_index("ix_catalog_file_did")
        for column in ("flagged_at", "flag_detail", "flag", "checksum", "did"):
            batch.drop_column(column)
