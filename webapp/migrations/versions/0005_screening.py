"""watch-list screening: lists, entries, names, blocking keys and key counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "watchlist",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=True),
        sa.Column("extract_date", sa.Date(), nullable=False),
        sa.Column("imported_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("names", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchlist")),
        sa.UniqueConstraint("name", name=op.f("uq_watchlist_name")),
    )
    op.create_table(
        "watchlist_entry",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("watchlist_id", _ID, nullable=False),
        sa.Column("entry_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("caption", sa.String(length=500), nullable=False),
        sa.Column("schema", sa.String(length=64), nullable=True),
        sa.Column("countries", sa.String(length=200), nullable=True),
        sa.Column("datasets", sa.String(length=500), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["watchlist_id"],
            ["watchlist.id"],
            name=op.f("fk_watchlist_entry_watchlist_id_watchlist"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchlist_entry")),
        sa.UniqueConstraint(
            "watchlist_id", "entry_id", name=op.f("uq_watchlist_entry_watchlist_id")
        ),
    )
    op.create_table(
        "watchlist_name",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("watchlist_id", _ID, nullable=False),
        sa.Column("entry", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("normalised", sa.String(length=500), nullable=False),
        sa.Column("romanised", sa.String(length=2000), nullable=True),
        sa.Column("stripped", sa.String(length=500), nullable=True),
        sa.Column("steps", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry"], ["watchlist_entry.id"], name=op.f("fk_watchlist_name_entry_watchlist_entry")
        ),
        sa.ForeignKeyConstraint(
            ["watchlist_id"],
            ["watchlist.id"],
            name=op.f("fk_watchlist_name_watchlist_id_watchlist"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchlist_name")),
    )
    op.create_index(op.f("ix_watchlist_name_entry"), "watchlist_name", ["entry"])
    op.create_index(op.f("ix_watchlist_name_watchlist_id"), "watchlist_name", ["watchlist_id"])
    op.create_table(
        "watchlist_key",
        sa.Column("watchlist_id", _ID, nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("name_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["watchlist_id"],
            ["watchlist.id"],
            name=op.f("fk_watchlist_key_watchlist_id_watchlist"),
        ),
        sa.PrimaryKeyConstraint("watchlist_id", "key", "name_id", name=op.f("pk_watchlist_key")),
    )
    op.create_table(
        "watchlist_key_stat",
        sa.Column("watchlist_id", _ID, nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("postings", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["watchlist_id"],
            ["watchlist.id"],
            name=op.f("fk_watchlist_key_stat_watchlist_id_watchlist"),
        ),
        sa.PrimaryKeyConstraint("watchlist_id", "key", name=op.f("pk_watchlist_key_stat")),
    )


def downgrade() -> None:
    op.drop_table("watchlist_key_stat")
    op.drop_table("watchlist_key")
    op.drop_index(op.f("ix_watchlist_name_watchlist_id"), table_name="watchlist_name")
    op.drop_index(op.f("ix_watchlist_name_entry"), table_name="watchlist_name")
    op.drop_table("watchlist_name")
    op.drop_table("watchlist_entry")
    op.drop_table("watchlist")
