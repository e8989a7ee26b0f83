"""The identity of one cardtrace installation.

The origin string names the log in every signed checkpoint, so it is fixed when the
store is initialised and never changes afterwards.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.db import Base
from provenance.errors import ConfigError

# C2SP tlog-checkpoint: the origin SHOULD be a schema-less URL of the log. It is also the
# signed-note key name, which may not contain spaces or "+" (C2SP signed-note).
_ORIGIN_RE = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,255}")


class InstanceInfo(Base):
    """One row: who this installation is."""

    __tablename__ = "instance_info"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36), unique=True)
    origin: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


@dataclass(frozen=True, slots=True)
class InstanceIdentity:
    instance_id: str
    origin: str
    created_at: datetime


def validate_origin(origin: str) -> str:
    """Return ``origin`` if it can stand as a checkpoint origin line.

    Raises:
        ConfigError: it is empty, too long, or has spaces or non-ASCII characters.
    """
    if not _ORIGIN_RE.fullmatch(origin):
        raise ConfigError(
            "CARDTRACE_LOG_ORIGIN must be 1-255 printable ASCII characters without spaces or '+', "
            f"such as 'cardtrace.example.com/log'; got {origin!r}"
        )
    return origin


def get_identity(session: Session) -> InstanceIdentity | None:
    """Return the installation's identity, or ``None`` before ``init``."""
    row = session.scalars(select(InstanceInfo).where(InstanceInfo.id == 1)).one_or_none()
    if row is None:
        return None
    return InstanceIdentity(row.instance_id, row.origin, row.created_at)


def ensure_identity(session: Session, origin: str, now: datetime) -> tuple[InstanceIdentity, bool]:
    """Create the installation's identity once.

    Returns:
        The identity and whether it was created by this call.

    Raises:
        ConfigError: the store already belongs to a log with another origin.
    """
    existing = get_identity(session)
    if existing is not None:
        if existing.origin != origin:
            raise ConfigError(
                f"CARDTRACE_LOG_ORIGIN is {origin!r} but this store was initialised as "
                f"{existing.origin!r}; a log's origin cannot change"
            )
        return existing, False
    row = InstanceInfo(
        id=1, instance_id=str(uuid.uuid4()), origin=validate_origin(origin), created_at=now
    )
    session.add(row)
    session.flush()
    return InstanceIdentity(row.instance_id, row.origin, row.created_at), True
