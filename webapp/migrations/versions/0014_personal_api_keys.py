"""personal API keys: an API key may be bound to a user account; applications are no
longer given an applicant token (older rows keep theirs)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("user_id", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_key_user_id_account_user"),
            "account_user",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_api_key_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("onboarding_application") as batch:
        batch.alter_column(
            "applicant_token_hash", existing_type=sa.LargeBinary(length=32), nullable=True
        )


def downgrade() -> None:
    # Applications made since have no token: give each random bytes, to satisfy the old
    # NOT NULL (no one holds a token that hashes to them).
    bind = op.get_bind()
    table = sa.table(
        "onboarding_application",
        sa.column("id", sa.BigInteger()),
        sa.column("applicant_token_hash", sa.LargeBinary(32)),
    )
    missing = bind.execute(sa.select(table.c.id).where(table.c.applicant_token_hash.is_(None)))
    for (row_id,) in list(missing):
        bind.execute(
            table.update()
            .where(table.c.id == row_id)
            .values(applicant_token_hash=secrets.token_bytes(32))
        )
    with op.batch_alter_table("onboarding_application") as batch:
        batch.alter_column(
            "applicant_token_hash", existing_type=sa.LargeBinary(length=32), nullable=False
        )
    with op.batch_alter_table("api_key") as batch:
        batch.drop_index(op.f("ix_api_key_user_id"))
        batch.drop_constraint(op.f("fk_api_key_user_id_account_user"), type_="foreignkey")
        batch.drop_column("user_id")
