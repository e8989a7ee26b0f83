"""``cardtrace init``: create the store, migrate it, and generate the platform's secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from provenance.instance import InstanceIdentity, ensure_identity
from webapp.config import Settings, ensure_secrets
from webapp.database import make_engine, upgrade


@dataclass(frozen=True, slots=True)
class InitReport:
    instance_path: str
    secrets_created: list[str]
    schema_before: str | None
    schema_after: str | None
    identity: InstanceIdentity
    identity_created: bool

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
        with Session(engine) as session, session.begin():
            identity, identity_created = ensure_identity(
                session, settings.log_origin, datetime.now(UTC)
            )
    finally:
        engine.dispose()
    return InitReport(
        instance_path=str(settings.instance_path),
        secrets_created=created,
        schema_before=before,
        schema_after=after,
        identity=identity,
        identity_created=identity_created,
    )
