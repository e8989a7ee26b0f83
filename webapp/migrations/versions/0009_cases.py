"""cases: investigators' cases, their members, notes and attachments

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = provenance.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "case_file",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("opened_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_file")),
    )
    op.create_index(op.f("ix_case_file_status"), "case_file", ["status"])
    op.create_index(op.f("ix_case_file_assignee"), "case_file", ["assignee"])
    op.create_table(
        "case_member",
        sa.Column("case_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("added_seq", sa.BigInteger(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "kind", "value", name=op.f("pk_case_member")),
    )
    op.create_index(op.f("ix_case_member_value"), "case_member", ["value"])
    op.create_table(
        "case_event",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_case_event")),
    )
    op.create_index(op.f("ix_case_event_case_id"), "case_event", ["case_id"])
    op.create_table(
        "case_attachment",
        sa.Column("case_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "sha256", name=op.f("pk_case_attachment")),
    )
    op.create_table(
        "case_text",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=4000), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_case_text")),
    )
    op.create_index(op.f("ix_case_text_case_id"), "case_text", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_case_text_case_id"), table_name="case_text")
    op.drop_table("case_text")
    op.drop_table("case_attachment")
    op.drop_index(op.f("ix_case_event_case_id"), table_name="case_event")
    op.drop_table("case_event")
    op.drop_index(op.f("ix_case_member_value"), table_name="case_member")
    op.drop_table("case_member")
    op.drop_index(op.f("ix_case_file_assignee"), table_name="case_file")
    op.drop_index(op.f("ix_case_file_status"), table_name="case_file")
    op.drop_table("case_file")
