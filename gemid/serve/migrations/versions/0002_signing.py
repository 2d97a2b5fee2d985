"""signed reports: public signing keys, the verification code of each report, photos in the database

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Existing reports get a fresh random verification code each (their printed QR codes named /r/{id}, which
still works for signed-in users); their revisions stay unsigned and readable.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_signing_keys"),
    )
    op.create_table(
        "photos",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("ext", sa.String(8), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_photos"),
    )
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("verify_code", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_reports_verify_code", ["verify_code"])
    conn = op.get_bind()
    reports = sa.table("reports", sa.column("id", sa.String), sa.column("verify_code", sa.String))
    ids = conn.execute(sa.select(reports.c.id).where(reports.c.verify_code.is_(None))).scalars().all()
    for rid in ids:
        conn.execute(reports.update().where(reports.c.id == rid).values(verify_code=secrets.token_urlsafe(16)))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint("uq_reports_verify_code", type_="unique")
        batch.drop_column("verify_code")
    op.drop_table("photos")
    op.drop_table("signing_keys")
