"""``cardtrace init``: create the store, migrate it, and generate the platform's secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from provenance.db import write_transaction
from provenance.instance import InstanceIdentity, ensure_identity
from provenance.ledger import Ledger, PlatformSigner
from webapp.catalog import build_catalog
from webapp.config import Settings, ensure_secrets, load_secrets
from webapp.database import make_engine, upgrade


@dataclass(frozen=True, slots=True)
class InitReport:
    instance_path: str
    secrets_created: list[str]
    schema_before: str | None
    schema_after: str | None
    identity: InstanceIdentity
    identity_created: bool
    ledger_size: int
    genesis_written: bool

    @property
    def changed(self) -> bool:
        return bool(
            self.secrets_created or self.schema_before != self.schema_after or self.identity_created
        )


def initialise(settings: Settings) -> InitReport:
    """Bring the installation to a usable state; safe to run again.

    Raises:
        ConfigError: a setting points at something unusable (message names it).
    """
    settings.instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = ensure_secrets(settings)
    engine = make_engine(settings.database_url)
    try:
        before, after = upgrade(engine)
        secrets = load_secrets(settings)
        ledger = Ledger(
            build_catalog(), PlatformSigner(secrets.log_signing_key, origin=settings.log_origin)
        )
        with Session(engine) as session, write_transaction(session):
            now = datetime.now(UTC)
            identity, identity_created = ensure_identity(session, settings.log_origin, now)
            genesis_written = ledger.ensure_genesis(session, name=settings.log_origin, now=now)
            if genesis_written:
                ledger.issue_checkpoint(session, now=now)
            ledger_size = ledger.tree_head(session).size
        ledger.close()
    finally:
        engine.dispose()
    return InitReport(
        instance_path=str(settings.instance_path),
        secrets_created=created,
        schema_before=before,
        schema_after=after,
        identity=identity,
        identity_created=identity_created,
        ledger_size=ledger_size,
        genesis_written=genesis_written,
    )
