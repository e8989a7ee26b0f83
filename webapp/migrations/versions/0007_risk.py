"""real-time risk: sale state, taints, IP-to-region ranges, rule versions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SALE_INDEXES = ("buyer", "instrument", "device", "ip", "merchant")


def upgrade() -> None:
    op.create_table(
        "risk_sale",
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.Column("buyer", sa.String(length=32), nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=True),
        sa.Column("device", sa.String(length=32), nullable=True),
        sa.Column("ip", sa.String(length=32), nullable=True),
        sa.Column("amount_units", sa.BigInteger(), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=True),
        sa.Column("recorded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_risk_sale")),
    )
    for column in _SALE_INDEXES:
        op.create_index(f"ix_risk_sale_{column}_at", "risk_sale", [column, "at"])
    op.create_table(
        "risk_taint",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("kind", "pseudonym", name=op.f("pk_risk_taint")),
    )
    op.create_table(
        "risk_ip_range",
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("network", name=op.f("pk_risk_ip_range")),
    )
    op.create_table(
        "risk_rule_version",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("en", sa.String(length=300), nullable=False),
        sa.Column("zh", sa.String(length=300), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("proposed_seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", provenance.db.UTCDateTime(), nullable=True),
        sa.Column("approved_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("rule", "version", name=op.f("pk_risk_rule_version")),
    )
    op.create_index(op.f("ix_risk_rule_version_status"), "risk_rule_version", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_risk_rule_version_status"), table_name="risk_rule_version")
    op.drop_table("risk_rule_version")
    op.drop_table("risk_ip_range")
    op.drop_table("risk_taint")
    for column in reversed(_SALE_INDEXES):
        op.drop_index(f"ix_risk_sale_{column}_at", table_name="risk_sale")
    op.drop_table("risk_sale")
