"""ledger: entries, Merkle nodes, head, checkpoints, parties and keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_entry",
        sa.Column("seq", BIGID, autoincrement=False, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("time", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("statement_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entry")),
        sa.UniqueConstraint("statement_hash", name=op.f("uq_ledger_entry_statement_hash")),
    )
    op.create_index(op.f("ix_ledger_entry_actor"), "ledger_entry", ["actor"])
    op.create_index(op.f("ix_ledger_entry_type"), "ledger_entry", ["type"])
    op.create_table(
        "merkle_node",
        sa.Column("id", BIGID, autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merkle_node")),
    )
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_leaf", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last_key_seq", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_head")),
    )
    # The empty log: size 0, the genesis "previous leaf" of zeros, no key-management entry
    # yet (-1), an empty right edge (begin 0, end 0, no hashes; see CompactRange.to_bytes).
    op.bulk_insert(
        head,
        [{"id": 1, "size": 0, "last_leaf": bytes(32), "last_key_seq": -1, "frontier": bytes(16)}],
    )
    op.create_table(
        "checkpoint",
        sa.Column("size", BIGID, autoincrement=False, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("issued_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("size", "key_id", name=op.f("pk_checkpoint")),
    )
    op.create_index(op.f("ix_checkpoint_issued_at"), "checkpoint", ["issued_at"])
    op.create_table(
        "party",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("registered_seq", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_party")),
    )
    op.create_table(
        "party_key",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("party_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("not_before", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("not_after", provenance.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", provenance.db.UTCDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(length=500), nullable=True),
        sa.Column("added_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["party.id"], name=op.f("fk_party_key_party_id_party")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_party_key")),
        sa.UniqueConstraint("public_key", name=op.f("uq_party_key_public_key")),
    )
    op.create_index(op.f("ix_party_key_party_id"), "party_key", ["party_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_party_key_party_id"), table_name="party_key")
    op.drop_table("party_key")
    op.drop_table("party")
    op.drop_index(op.f("ix_checkpoint_issued_at"), table_name="checkpoint")
    op.drop_table("checkpoint")
    op.drop_table("ledger_head")
    op.drop_table("merkle_node")
    op.drop_index(op.f("ix_ledger_entry_type"), table_name="ledger_entry")
    op.drop_index(op.f("ix_ledger_entry_actor"), table_name="ledger_entry")
    op.drop_table("ledger_entry")
