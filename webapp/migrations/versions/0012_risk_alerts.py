"""real-time risk: shadow rules that fired, recorded (never enforced)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "risk_shadow_hit",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_shadow_hit")),
    )
    op.create_index(
        op.f("ix_risk_shadow_hit_rule_at"), "risk_shadow_hit", ["rule", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_risk_shadow_hit_rule_at"), table_name="risk_shadow_hit")
    op.drop_table("risk_shadow_hit")
