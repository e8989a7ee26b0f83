"""card codes: products, batches, codes, custody events, stolen payments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("face_value", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("serial_charset", sa.String(length=8), nullable=False),
        sa.Column("serial_min", sa.Integer(), nullable=False),
        sa.Column("serial_max", sa.Integer(), nullable=False),
        sa.Column("pin_charset", sa.String(length=8), nullable=False),
        sa.Column("pin_min", sa.Integer(), nullable=False),
        sa.Column("pin_max", sa.Integer(), nullable=False),
        sa.Column("registered_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["issuer"], ["party.id"], name=op.f("fk_product_issuer_party")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
    )
    op.create_index(op.f("ix_product_issuer"), "product", ["issuer"])
    op.create_table(
        "code_batch",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("root", sa.LargeBinary(length=32), nullable=True),
        sa.Column("face_value", sa.String(length=24), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("expires_at", provenance.db.UTCDateTime(), nullable=True),
        sa.Column("origin", sa.String(length=24), nullable=True),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("issue_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product"], ["product.id"], name=op.f("fk_code_batch_product_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_batch")),
    )
    op.create_index(op.f("ix_code_batch_product"), "code_batch", ["product"])
    op.create_table(
        "code",
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("serial_fp", sa.LargeBinary(length=32), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=False),
        sa.Column("batch", sa.String(length=100), nullable=True),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("origin", sa.String(length=24), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("tainted", sa.Boolean(), nullable=False),
        sa.Column("issued_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("sale_instrument", sa.String(length=32), nullable=True),
        sa.Column("sale_payment_ref", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_code")),
    )
    op.create_index(op.f("ix_code_batch"), "code", ["batch"])
    op.create_index(op.f("ix_code_sale_instrument"), "code", ["sale_instrument"])
    op.create_index(op.f("ix_code_sale_payment_ref"), "code", ["sale_payment_ref"])
    op.create_index(op.f("ix_code_serial_fp"), "code", ["serial_fp"])
    op.create_table(
        "code_event",
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "seq", name=op.f("pk_code_event")),
    )
    op.create_table(
        "stolen_payment",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.Column("reported_at", provenance.db.UTCDateTime(), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=False),
        sa.Column("reported_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "pseudonym", name=op.f("pk_stolen_payment")),
    )


def downgrade() -> None:
    op.drop_table("stolen_payment")
    op.drop_table("code_event")
    for index in (
        "ix_code_serial_fp",
        "ix_code_sale_payment_ref",
        "ix_code_sale_instrument",
        "ix_code_batch",
    ):
        op.drop_index(op.f(index), table_name="code")
    op.drop_table("code")
    op.drop_index(op.f("ix_code_batch_product"), table_name="code_batch")
    op.drop_table("code_batch")
    op.drop_index(op.f("ix_product_issuer"), table_name="product")
    op.drop_table("product")
