"""audit_seals: the signing key's signature over the audit chain's head

Revision ID: 0006_audit_seals
Revises: 0005
Create Date: 2026-12-07

A hash chain alone shows an entry edited in place, but whoever can write the table can recompute every hash
after the one they changed. Each append now also stores a seal, the service's Ed25519 signature over the
chain's new head (gemid.serve.audit), which only the holder of the signing key can make. The entries already
stored are covered by the first seal the service writes when it starts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_audit_seals"
down_revision = "0005"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column("seq", SEQ, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_seals"),
    )


def downgrade() -> None:
    op.drop_table("audit_seals")
