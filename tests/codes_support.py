"""A small supply chain built through the ledger, for the card-code tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from provenance.codes import Product
from provenance.fingerprints import code_fingerprint, pseudonym
from provenance.issuance import IssuerSigner, issue_codes
from provenance.ledger import Ledger
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW, register_party, signed_by

ISSUER = "acme-cards"
PRODUCT = "acme-cards.game-100"
DIST = "dist-one"
SHOP = "shop-good"
PENDING_SHOP = "shop-new"
SUSPENDED_SHOP = "shop-bad"
PARTNER = "alliance"


def serial(i: int) -> str:
    return f"8800{i:08d}"


def pin(i: int) -> str:
    return f"{(i * 7919 + 104729) % 10**12:012d}5"


def fp(i: int) -> bytes:
    return code_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, serial(i), pin(i))


def b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


@dataclass
class Chain:
    ledger: Ledger
    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    def signed(self, party: str, kind: str, body: dict[str, Any], time: datetime = NOW) -> Any:
        return signed_by(self.keys[party], party, kind, body, time=time)

    def append(self, session: Session, party: str, kind: str, body: dict[str, Any]) -> None:
        self.ledger.append(session, [self.signed(party, kind, body)], now=NOW)

    def platform(
        self, session: Session, kind: str, body: dict[str, Any], actor: str | None = None
    ) -> None:
        self.ledger.append_as_platform(
            session, [self.ledger.statement(kind, body, now=NOW, actor=actor)], now=NOW
        )


PRODUCT_BODY = {
    "product": PRODUCT,
    "issuer": ISSUER,
    "sku": "GAME-100",
    "name": "Game points 100",
    "face_value": "100.00",
    "currency": "CNY",
    "serial": {"charset": "digits", "min_length": 10, "max_length": 16},
    "pin": {"charset": "digits", "min_length": 8, "max_length": 16},
}


def build_chain(session: Session, ledger: Ledger, codes: int = 20) -> Chain:
    """Issuer -> distributor -> an approved shop; codes 0..14 reach the distributor,
    0..9 the shop, 0..4 are listed. Also a pending shop, a suspended shop, a partner."""
    ledger.ensure_genesis(session, name="test", now=NOW)
    chain = Chain(ledger)
    for party, kind in (
        (ISSUER, "issuer"),
        (DIST, "distributor"),
        (SHOP, "merchant"),
        (PENDING_SHOP, "merchant"),
        (SUSPENDED_SHOP, "merchant"),
        (PARTNER, "partner"),
    ):
        chain.keys[party] = register_party(session, ledger, party, kind, now=NOW)
    for shop, status in ((SHOP, "approved"), (SUSPENDED_SHOP, "suspended")):
        chain.platform(
            session, "party.status", {"party": shop, "status": status, "reason": "vetted"}
        )
    chain.append(session, ISSUER, "product.register", PRODUCT_BODY)
    product = session.get(Product, PRODUCT)
    assert product is not None
    issue_codes(
        session,
        ledger,
        fingerprint_key=FINGERPRINT_KEY,
        product=product,
        batch="b1",
        codes=[(serial(i), pin(i)) for i in range(codes)],
        signer=IssuerSigner(ISSUER, chain.keys[ISSUER]),
        now=NOW,
    )
    chain.append(
        session,
        ISSUER,
        "code.transfer",
        {"codes": [b64(fp(i)) for i in range(15)], "from": ISSUER, "to": DIST},
    )
    chain.append(
        session,
        DIST,
        "code.transfer",
        {"codes": [b64(fp(i)) for i in range(10)], "from": DIST, "to": SHOP},
    )
    chain.append(session, SHOP, "code.list", {"codes": [b64(fp(i)) for i in range(5)]})
    return chain


def person(kind: str, value: str) -> str:
    return pseudonym(FINGERPRINT_KEY, kind, value)


def sale_body(i: int, instrument: str = "card-1", amount: str = "100.00") -> dict[str, Any]:
    return {
        "code": b64(fp(i)),
        "buyer": person("buyer", f"buyer-{i}"),
        "instrument": person("instrument", instrument),
        "device": person("device", "device-1"),
        "ip": person("ip", "203.0.113.7"),
        "amount": amount,
        "currency": "CNY",
    }


YESTERDAY = NOW - timedelta(days=1)
