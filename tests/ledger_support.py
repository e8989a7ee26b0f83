"""Shared test material for the ledger: a catalog with a plain test entry, fixed keys."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field
from sqlalchemy.orm import Session

from provenance.catalog import Body, EntryCatalog, EntryType
from provenance.core import core_catalog
from provenance.entries import (
    SignedStatement,
    Statement,
    key_id_for,
    raw_public_key,
    sign_statement,
)
from provenance.ledger import Ledger, PlatformSigner
from provenance.parties import key_body
from tests.keys import LOG_SIGNING_SEED

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
PLATFORM_KEY = Ed25519PrivateKey.from_private_bytes(LOG_SIGNING_SEED)


class NoteBody(Body):
    text: str = Field(max_length=200)
    n: int = 0


def test_catalog() -> EntryCatalog:
    return core_catalog().merge(EntryCatalog.of([EntryType("test.note", NoteBody)]))


def party_key(name: str, generation: int = 0) -> Ed25519PrivateKey:
    """A fixed key per test party (seeded from its name)."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"{name}/{generation}".encode()).digest()
    )


def make_ledger(**kwargs: Any) -> Ledger:
    return Ledger(test_catalog(), PlatformSigner(PLATFORM_KEY), **kwargs)


def register_party(
    session: Session, ledger: Ledger, party: str, kind: str = "issuer", *, now: datetime = NOW
) -> Ed25519PrivateKey:
    key = party_key(party)
    body = {
        "party": party,
        "kind": kind,
        "name": f"{party} Ltd",
        "keys": [key_body(raw_public_key(key), now - timedelta(days=1))],
    }
    ledger.append_as_platform(session, [ledger.statement("party.register", body, now=now)], now=now)
    return key


def signed_by(
    key: Ed25519PrivateKey,
    actor: str,
    type: str = "test.note",
    body: dict[str, Any] | None = None,
    *,
    time: datetime = NOW,
    on_behalf: bool = False,
) -> SignedStatement:
    statement = Statement(
        type=type,
        time=time,
        actor=actor,
        key=key_id_for(raw_public_key(key)),
        on_behalf=on_behalf,
        body=body if body is not None else {"text": "hello"},
    )
    return sign_statement(statement, key)


test_catalog.__test__ = False  # type: ignore[attr-defined]
