"""remote sites: a site may run its scheduler commands on a submit host over SSH

Revision ID: 0010_remote
Revises: 0009_fwrun
Create Date: 2026-12-02

``site.submit_host`` (``user@host:port``, empty: this machine), ``ssh_key`` (a private key file;
empty: the ssh-agent's keys), ``known_hosts`` (the file the host key is checked against),
``remote_root`` (the site's directory on the submit host, where jobs and their inputs are copied)
and ``remote_python`` (the interpreter jobs run there).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_remote"
down_revision: str | None = "0009_fwrun"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [
    ("submit_host", 300),
    ("ssh_key", 1024),
    ("known_hosts", 1024),
    ("remote_root", 1024),
    ("remote_python", 1024),
]


def upgrade() -> None:
    with op.batch_alter_table("site") as batch:
        for name, length in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("site") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
