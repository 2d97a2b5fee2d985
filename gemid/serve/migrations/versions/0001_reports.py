"""reports and their revisions

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.String(500), nullable=True),
        sa.Column("file", sa.String(255), nullable=True),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_ext", sa.String(8), nullable=False),
        sa.Column("latest_revision", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("top1_label", sa.String(100), nullable=False),
        sa.Column("top1_probability", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )
    with op.batch_alter_table("reports") as batch:
        for column in ("created_at", "reference", "image_sha256", "decision", "top1_label"):
            batch.create_index(f"ix_reports_{column}", [column], unique=False)

    op.create_table(
        "report_revisions",
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("top1_label", sa.String(100), nullable=False),
        sa.Column("top1_probability", sa.Float(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], ondelete="CASCADE",
                                name="fk_report_revisions_report_id_reports"),
        sa.PrimaryKeyConstraint("report_id", "revision", name="pk_report_revisions"),
    )


def downgrade() -> None:
    op.drop_table("report_revisions")
    op.drop_table("reports")
