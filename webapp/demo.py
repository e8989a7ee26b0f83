"""The demo: what cardtrace does, end to end, on the embedded default."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from provenance.bundle import export_bundle, verify_bundle
from provenance.db import write_transaction
from provenance.entries import (
    SignedStatement,
    Statement,
    format_time,
    key_id_for,
    raw_public_key,
    sign_statement,
)
from provenance.instance import get_identity
from provenance.ledger import Ledger
from provenance.parties import Party, key_body
from webapp.health import health_report
from webapp.runtime import current_runtime, db_session

# The demo's supply chain: who takes part, and in which role.
CAST: tuple[tuple[str, str, str], ...] = (
    ("tencent-cards", "issuer", "Tencent Game Card Issuing"),
    ("netease-points", "issuer", "NetEase Points Issuing"),
    ("china-mobile-topup", "issuer", "China Mobile Top-up Cards"),
    ("hua-distribution", "distributor", "Huaxia Card Distribution Co."),
    ("east-wholesale", "distributor", "East Coast Card Wholesale"),
    ("shop-longmen", "merchant", "Longmen Game Shop"),
    ("shop-xinyue", "merchant", "Xinyue Top-up Store"),
    ("shop-fastcard", "merchant", "FastCard Online"),
    ("antifraud-alliance", "partner", "Payment Anti-Fraud Alliance"),
)


def _party_key(directory: Path, party: str, generation: int = 0) -> Ed25519PrivateKey:
    """Each demo party's signing key, kept (owner-only) beside the platform's keys."""
    path = directory / f"{party}.{generation}.pem"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key
    key = Ed25519PrivateKey.generate()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return key


def _register_cast(ledger: Ledger, key_dir: Path, say: Callable[[str], None]) -> None:
    session = db_session()
    now = datetime.now(UTC)
    missing = [c for c in CAST if session.get(Party, c[0]) is None]
    if not missing:
        say(f"  parties: {len(CAST)} already registered")
        return
    statements = []
    for party, kind, name in missing:
        key = _party_key(key_dir, party)
        body = {
            "party": party,
            "kind": kind,
            "name": name,
            "keys": [key_body(raw_public_key(key), now - timedelta(seconds=1))],
        }
        statements.append(ledger.statement("party.register", body, now=now))
    with write_transaction(session):
        ledger.append_as_platform(session, statements, now=now)
    say(f"  parties: registered {len(missing)} (issuers, distributors, merchants, a partner)")

    # An issuer rotates its key: it adds a new one, signed with the old, then revokes the old.
    issuer = "tencent-cards"
    old, new = _party_key(key_dir, issuer), _party_key(key_dir, issuer, 1)
    now = datetime.now(UTC)

    def signed(key: Ed25519PrivateKey, type: str, body: dict[str, Any]) -> SignedStatement:
        statement = Statement(type, now, issuer, key_id_for(raw_public_key(key)), False, body)
        return sign_statement(statement, key)

    add = {"party": issuer, "key": key_body(raw_public_key(new), now - timedelta(seconds=1))}
    revoke = {
        "party": issuer,
        "key_id": key_id_for(raw_public_key(old)),
        "revoked_at": format_time(now),
        "reason": "scheduled rotation",
    }
    with write_transaction(session):
        ledger.append(
            session,
            [signed(old, "key.add", add), signed(new, "key.revoke", revoke)],
            now=now,
        )
    say(f"  keys: {issuer} rotated its signing key (old key revoked, on the ledger)")


def run_demo(app: Flask, say: Callable[[str], None]) -> None:
    with app.app_context():
        runtime = current_runtime()
        report = health_report()
        say(f"cardtrace demo on {runtime.settings.database_url_display()}")
        for name, check in report["checks"].items():
            say(f"  {name}: {check['status']}")
        session = db_session()
        identity = get_identity(session)
        if identity is None:
            say("The store is not initialised: run 'cardtrace init' first.")
            return
        ledger = runtime.ledger
        say(f"  log: {identity.origin}, platform key {ledger.platform.key_id}")

        say("\n1. The signed ledger")
        _register_cast(ledger, runtime.settings.key_dir / "demo-parties", say)
        with write_transaction(session):
            checkpoint = ledger.issue_checkpoint(session, now=current_runtime().now())
        say(f"  checkpoint: size {checkpoint.size}, root {checkpoint.root.hex()[:16]}...")
        bundle_path = runtime.settings.instance_path / "demo-ledger-bundle.jsonl"
        with open(bundle_path, "wb") as out:
            export_bundle(session, ledger, out, checkpoint)
        with open(bundle_path, "rb") as stream:
            verified = verify_bundle(stream, ledger.catalog, trusted_key=ledger.platform.public_key)
        digest = hashlib.sha256(bundle_path.read_bytes()).hexdigest()[:16]
        say(f"  bundle: {bundle_path} (sha256 {digest}...), {verified.stop} entries verified")
        pub = runtime.settings.key_dir / "log-signing.pub.pem"
        say("\nVerify the ledger yourself, offline, with the platform's public key:")
        say(f"  cardtrace ledger verify {bundle_path} --platform-key {pub}")
        say("  cardtrace ledger audit")
