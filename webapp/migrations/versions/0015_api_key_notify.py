"""API keys: on PostgreSQL, a change to a key's standing is announced (NOTIFY
cardtrace_api_key, the key id as payload), so that processes keeping keys drop it

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every column a key check reads, but last_used_at (bookkeeping, written once a minute).
_WATCHED = "key_id, secret_hash, party, scopes, rate_per_minute, expires_at, revoked_at, user_id"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION cardtrace_api_key_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cardtrace_api_key', OLD.key_id);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER api_key_changed
        AFTER UPDATE OF {_WATCHED} OR DELETE ON api_key
        FOR EACH ROW EXECUTE FUNCTION cardtrace_api_key_changed()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS api_key_changed ON api_key")
    op.execute("DROP FUNCTION IF EXISTS cardtrace_api_key_changed()")
