"""partners' notices (STIX and CSV imports) and sharing policies

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partner_policy",
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("fields", sa.String(length=200), nullable=False),
        sa.Column("tlp", sa.String(length=16), nullable=False),
        sa.Column("pseudonymise", sa.Boolean(), nullable=False),
        sa.Column("pseudonym_epoch", sa.Integer(), nullable=False),
        sa.Column("require_signature", sa.Boolean(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner", name=op.f("pk_partner_policy")),
    )
    op.create_table(
        "partner_import",
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("notices", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("imported_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner", "sha256", name=op.f("pk_partner_import")),
    )
    op.create_table(
        "partner_flagged_account",
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=False),
        sa.Column("reported_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_partner_flagged_account")),
    )
    op.create_table(
        "compromised_code",
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=False),
        sa.Column("reported_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_compromised_code")),
    )


def downgrade() -> None:
    op.drop_table("compromised_code")
    op.drop_table("partner_flagged_account")
    op.drop_table("partner_import")
    op.drop_table("partner_policy")
