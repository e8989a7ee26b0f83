"""web accounts, second factors, sessions and API keys

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = provenance.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "account_user",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(length=128), nullable=True),
        sa.Column("totp_confirmed_at", _AT(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", _AT(), nullable=True),
        sa.Column("disabled_at", _AT(), nullable=True),
        sa.Column("created_at", _AT(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_user")),
        sa.UniqueConstraint("username", name=op.f("uq_account_user_username")),
    )
    op.create_table(
        "account_recovery_code",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("used_at", _AT(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["account_user.id"],
            name=op.f("fk_account_recovery_code_user_id_account_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_recovery_code")),
    )
    op.create_index(op.f("ix_account_recovery_code_user_id"), "account_recovery_code", ["user_id"])
    op.create_table(
        "account_session",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("created_at", _AT(), nullable=False),
        sa.Column("last_seen_at", _AT(), nullable=False),
        sa.Column("expires_at", _AT(), nullable=False),
        sa.Column("revoked_at", _AT(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["account_user.id"],
            name=op.f("fk_account_session_user_id_account_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_session_token_hash")),
    )
    op.create_index(op.f("ix_account_session_user_id"), "account_session", ["user_id"])
    op.create_table(
        "account_ip_throttle",
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", _AT(), nullable=False),
        sa.Column("locked_until", _AT(), nullable=True),
        sa.PrimaryKeyConstraint("ip", name=op.f("pk_account_ip_throttle")),
    )
    op.create_table(
        "account_event",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", _AT(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["account_user.id"],
            name=op.f("fk_account_event_user_id_account_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_event")),
    )
    op.create_index("ix_account_event_user_id_at", "account_event", ["user_id", "at"])
    op.create_table(
        "api_key",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_at", _AT(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _AT(), nullable=True),
        sa.Column("rotated_at", _AT(), nullable=True),
        sa.Column("revoked_at", _AT(), nullable=True),
        sa.Column("last_used_at", _AT(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_key_key_id")),
    )


def downgrade() -> None:
    op.drop_table("api_key")
    op.drop_index("ix_account_event_user_id_at", table_name="account_event")
    op.drop_table("account_event")
    op.drop_table("account_ip_throttle")
    op.drop_index(op.f("ix_account_session_user_id"), table_name="account_session")
    op.drop_table("account_session")
    op.drop_index(op.f("ix_account_recovery_code_user_id"), table_name="account_recovery_code")
    op.drop_table("account_recovery_code")
    op.drop_table("account_user")
