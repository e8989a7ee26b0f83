"""ledger analysis: alerts, alert notes, incremental analysis state

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = provenance.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "analysis_alert",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("typology", sa.String(length=32), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", UTC(), nullable=False),
        sa.Column("last_seen_at", UTC(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("opened_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_analysis_alert_key")),
    )
    op.create_index(op.f("ix_analysis_alert_status"), "analysis_alert", ["status"])
    op.create_index(op.f("ix_analysis_alert_subject"), "analysis_alert", ["subject"])
    op.create_index(op.f("ix_analysis_alert_typology"), "analysis_alert", ["typology"])
    op.create_table(
        "analysis_alert_note",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("alert_id", BIGID, nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["analysis_alert.id"],
            name=op.f("fk_analysis_alert_note_alert_id_analysis_alert"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_alert_note")),
    )
    op.create_index(op.f("ix_analysis_alert_note_alert_id"), "analysis_alert_note", ["alert_id"])
    op.create_table(
        "analysis_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analysis_state")),
    )


def downgrade() -> None:
    op.drop_table("analysis_state")
    op.drop_index(op.f("ix_analysis_alert_note_alert_id"), table_name="analysis_alert_note")
    op.drop_table("analysis_alert_note")
    for index in (
        "ix_analysis_alert_typology",
        "ix_analysis_alert_subject",
        "ix_analysis_alert_status",
    ):
        op.drop_index(op.f(index), table_name="analysis_alert")
    op.drop_table("analysis_alert")
