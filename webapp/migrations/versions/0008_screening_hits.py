"""screening hits on onboarding applications, and officers' decisions on them

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = provenance.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "onboarding_screening_hit",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("application_id", BIGID, nullable=False),
        sa.Column("party_kind", sa.String(length=16), nullable=False),
        sa.Column("party_roles", sa.String(length=64), nullable=False),
        sa.Column("party_name", sa.String(length=200), nullable=False),
        sa.Column("watchlist", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("extract_date", sa.Date(), nullable=False),
        sa.Column("entry_id", sa.String(length=200), nullable=False),
        sa.Column("entry_kind", sa.String(length=16), nullable=False),
        sa.Column("caption", sa.String(length=500), nullable=False),
        sa.Column("matched_name", sa.String(length=500), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("normalisations", sa.JSON(), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("first_run", sa.Integer(), nullable=False),
        sa.Column("last_run", sa.Integer(), nullable=False),
        sa.Column("found_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["onboarding_application.id"],
            name=op.f("fk_onboarding_screening_hit_application_id_onboarding_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_screening_hit")),
        sa.UniqueConstraint(
            "application_id",
            "party_kind",
            "party_name",
            "watchlist",
            "entry_id",
            name=op.f("uq_onboarding_screening_hit_application_id"),
        ),
    )
    op.create_index(
        op.f("ix_onboarding_screening_hit_application_id"),
        "onboarding_screening_hit",
        ["application_id"],
    )
    op.create_table(
        "onboarding_hit_decision",
        sa.Column("hit_id", BIGID, autoincrement=False, nullable=False),
        sa.Column("application_id", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["hit_id"],
            ["onboarding_screening_hit.id"],
            name=op.f("fk_onboarding_hit_decision_hit_id_onboarding_screening_hit"),
        ),
        sa.PrimaryKeyConstraint("hit_id", name=op.f("pk_onboarding_hit_decision")),
    )
    op.create_index(
        op.f("ix_onboarding_hit_decision_application_id"),
        "onboarding_hit_decision",
        ["application_id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_onboarding_hit_decision_application_id"), table_name="onboarding_hit_decision"
    )
    op.drop_table("onboarding_hit_decision")
    op.drop_index(
        op.f("ix_onboarding_screening_hit_application_id"), table_name="onboarding_screening_hit"
    )
    op.drop_table("onboarding_screening_hit")
