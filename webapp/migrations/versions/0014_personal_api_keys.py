"""personal API keys: an API key may be bound to a user account

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

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


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.drop_index(op.f("ix_api_key_user_id"))
        batch.drop_constraint(op.f("fk_api_key_user_id_account_user"), type_="foreignkey")
        batch.drop_column("user_id")
