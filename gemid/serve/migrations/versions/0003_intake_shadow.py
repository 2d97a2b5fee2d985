"""capture statistics and training consent per report; shadow answers

Revision ID: 0003_intake_shadow
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_intake_shadow"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_intake",
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("training_consent", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True)
          for name in ("brightness", "warmth", "tint", "stone_px", "sharpness", "confidence")),
        sa.Column("camera", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], ondelete="CASCADE",
                                name="fk_report_intake_report_id_reports"),
        sa.PrimaryKeyConstraint("report_id", name="pk_report_intake"),
    )
    with op.batch_alter_table("report_intake") as batch:
        batch.create_index("ix_report_intake_created_at", ["created_at"], unique=False)

    op.create_table(
        "shadow_answers",
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bundle", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("served_label", sa.String(100), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], ondelete="CASCADE",
                                name="fk_shadow_answers_report_id_reports"),
        sa.PrimaryKeyConstraint("report_id", name="pk_shadow_answers"),
    )
    with op.batch_alter_table("shadow_answers") as batch:
        batch.create_index("ix_shadow_answers_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("shadow_answers")
    op.drop_table("report_intake")
