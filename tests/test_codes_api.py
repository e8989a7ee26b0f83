"""Verify before sale through the API: one test per reason, proofs, and bad input."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from provenance.codes import Product
from provenance.db import write_transaction
from provenance.entries import format_time
from provenance.issuance import IssuerSigner, issue_codes
from provenance.ledger import LedgerEntry
from provenance.merkle import verify_inclusion
from provenance.parties import PLATFORM_PARTY
from tests.api_support import api_key, machine_client
from tests.codes_support import (
    DIST,
    ISSUER,
    PARTNER,
    PENDING_SHOP,
    PRODUCT,
    SHOP,
    SUSPENDED_SHOP,
    Chain,
    b64,
    build_chain,
    fp,
    person,
    pin,
    sale_body,
    serial,
)
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW, make_ledger
from tests.services import fresh_postgres_database, own_engines_app, terminate_other_connections
from webapp.accounts.apikeys import create_key
from webapp.database import make_engine, read_engine, upgrade
from webapp.runtime import current_runtime


@pytest.fixture()
def client(app: Flask, session: Session) -> FlaskClient:
    """The platform's sale system: an API key with every scope."""
    return machine_client(app, session)


@pytest.fixture()
def chain(app: Flask, session: Session) -> Chain:
    with app.app_context():
        built = build_chain(session, current_runtime().ledger)
        session.flush()
        return built


def raw(i: int, **overrides: str) -> dict[str, str]:
    return {"issuer": ISSUER, "product": PRODUCT, "serial": serial(i), "pin": pin(i), **overrides}


def verify(client: FlaskClient, i: int | None = None, merchant: str = SHOP, **item: Any) -> Any:
    body = {"merchant": merchant, **({"code": raw(i)} if i is not None else item)}
    response = client.post("/api/v1/codes/verify", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def codes_of(answer: dict[str, Any]) -> set[str]:
    return {r["code"] for r in answer["reasons"]}


def ledger_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def test_code_held_and_listed_by_an_approved_shop_is_allowed(
    chain: Chain, client: FlaskClient
) -> None:
    answer = verify(client, 0)
    assert answer["decision"] == "allow"
    assert answer["reasons"] == []
    assert answer["code"]["holder"] == SHOP
    assert [step["type"] for step in answer["custody"]] == [
        "batch.codes",
        "batch.issue",
        "code.transfer",
        "code.transfer",
        "code.list",
    ]


def test_verdict_carries_inclusion_proofs_against_the_checkpoint(
    app: Flask, session: Session, chain: Chain, client: FlaskClient
) -> None:
    with app.app_context():
        current_runtime().ledger.issue_checkpoint(session, now=NOW)
    answer = verify(client, 0)
    checkpoint = answer["proofs"]["checkpoint"]
    root = base64.b64decode(checkpoint["root"])
    seqs = [step["seq"] for step in answer["custody"]]
    assert sorted(int(s) for s in answer["proofs"]["entries"]) == seqs
    for seq in seqs:
        entry = answer["proofs"]["entries"][str(seq)]
        verify_inclusion(
            base64.b64decode(entry["leaf_hash"]),
            seq,
            checkpoint["size"],
            [base64.b64decode(h) for h in entry["proof"]],
            root,
        )


def test_entries_after_the_checkpoint_are_pending(chain: Chain, client: FlaskClient) -> None:
    answer = verify(client, 0)
    assert answer["proofs"]["checkpoint"] is None
    assert answer["proofs"]["pending"] == [step["seq"] for step in answer["custody"]]


def test_verify_by_fingerprint(chain: Chain, client: FlaskClient) -> None:
    assert verify(client, fingerprint=fp(1).hex())["decision"] == "allow"
    assert verify(client, fingerprint=b64(fp(1)))["decision"] == "allow"


@pytest.mark.parametrize(
    ("code", "problem", "field"),
    [
        (raw(0, issuer="ghost-issuer"), "unknown-issuer", "code.issuer"),
        (raw(0, issuer=SHOP), "unknown-issuer", "code.issuer"),
        (raw(0, product="acme-cards.nothing"), "unknown-product", "code.product"),
    ],
)
def test_unknown_issuer_or_product_is_a_clear_error(
    chain: Chain, client: FlaskClient, code: dict[str, str], problem: str, field: str
) -> None:
    response = client.post("/api/v1/codes/verify", json={"merchant": SHOP, "code": code})
    assert response.status_code == 422
    assert (response.get_json()["code"], response.get_json()["field"]) == (problem, field)
    batch = client.post(
        "/api/v1/codes/verify-batch",
        json={"merchant": SHOP, "items": [{"code": raw(1)}, {"code": code}]},
    )
    assert batch.status_code == 422
    assert batch.get_json()["field"] == f"items.1.{field}"


def test_a_product_once_found_is_not_read_again_and_unknown_ones_stay_refused(
    chain: Chain, client: FlaskClient, connection: Connection
) -> None:
    reads: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM product" in statement:
            reads.append(statement)

    event.listen(connection.engine, "before_cursor_execute", record)
    try:
        verify(client, 0)
        first = len(reads)
        verify(client, 1)
        again = len(reads) - first
        unknown = client.post(
            "/api/v1/codes/verify",
            json={"merchant": SHOP, "code": raw(0, product="acme-cards.nothing")},
        )
    finally:
        event.remove(connection.engine, "before_cursor_execute", record)
    assert first >= 1
    assert again == 0
    assert unknown.status_code == 422
    assert unknown.get_json()["code"] == "unknown-product"


def test_unknown_origin(chain: Chain, client: FlaskClient) -> None:
    answer = verify(client, code=raw(0, serial="880099999999", pin="123456789"))
    assert answer["decision"] == "block"
    assert codes_of(answer) == {"unknown-origin"}
    assert answer["code"] is None


def test_same_serial_with_a_different_pin(chain: Chain, client: FlaskClient) -> None:
    answer = verify(client, code=raw(3, pin="99999999999"))
    assert answer["decision"] == "block"
    assert codes_of(answer) == {"same-serial-different-pin"}


def test_custody_break_when_the_seller_does_not_hold_it(chain: Chain, client: FlaskClient) -> None:
    answer = verify(client, 12)  # still with the distributor
    assert codes_of(answer) == {"custody-break"}
    assert answer["decision"] == "block"


def test_already_sold(session: Session, chain: Chain, client: FlaskClient) -> None:
    chain.append(session, SHOP, "code.sale", sale_body(1))
    assert codes_of(verify(client, 1)) == {"already-sold"}


def test_redeemed(session: Session, chain: Chain, client: FlaskClient) -> None:
    chain.append(session, SHOP, "code.sale", sale_body(2))
    chain.append(session, ISSUER, "code.redeem", {"code": b64(fp(2))})
    assert codes_of(verify(client, 2)) == {"redeemed"}


def test_voided(session: Session, chain: Chain, client: FlaskClient) -> None:
    chain.append(session, ISSUER, "code.void", {"codes": [b64(fp(3))], "reason": "recalled"})
    answer = verify(client, 3)
    assert codes_of(answer) == {"voided"}
    assert answer["decision"] == "block"


def test_frozen(session: Session, chain: Chain, client: FlaskClient) -> None:
    chain.platform(session, "code.freeze", {"codes": [b64(fp(4))], "reason": "investigation"})
    assert codes_of(verify(client, 4)) == {"frozen"}
    chain.platform(session, "code.unfreeze", {"codes": [b64(fp(4))], "reason": "cleared"})
    assert verify(client, 4)["decision"] == "allow"


def test_tainted_by_a_stolen_payment_report(
    session: Session, chain: Chain, client: FlaskClient
) -> None:
    chain.append(session, SHOP, "code.sale", sale_body(5, instrument="stolen-card"))
    report = {
        "kind": "instrument",
        "pseudonym": person("instrument", "stolen-card"),
        "reported_at": format_time(NOW),
        "reason": "cardholder reported fraud",
    }
    chain.append(session, PARTNER, "payment.stolen", report)
    answer = verify(client, 5)
    assert codes_of(answer) == {"already-sold", "tainted-stolen-payment"}
    assert answer["code"]["tainted"] is True


def test_sale_with_an_instrument_already_reported_taints_the_code(
    session: Session, chain: Chain, client: FlaskClient
) -> None:
    report = {
        "kind": "instrument",
        "pseudonym": person("instrument", "known-bad"),
        "reported_at": format_time(NOW),
        "reason": "reported",
    }
    chain.append(session, PARTNER, "payment.stolen", report)
    chain.append(session, SHOP, "code.sale", sale_body(6, instrument="known-bad"))
    assert "tainted-stolen-payment" in codes_of(verify(client, 6))


def _batch(session: Session, chain: Chain, name: str, first: int, n: int, **kwargs: Any) -> None:
    product = session.get(Product, PRODUCT)
    assert product is not None
    issue_codes(
        session,
        chain.ledger,
        fingerprint_key=FINGERPRINT_KEY,
        product=product,
        batch=name,
        codes=[(serial(i), pin(i)) for i in range(first, first + n)],
        now=NOW,
        **kwargs,
    )


def test_expired(session: Session, chain: Chain, client: FlaskClient) -> None:
    _batch(
        session,
        chain,
        "b-old",
        100,
        3,
        signer=IssuerSigner(ISSUER, chain.keys[ISSUER]),
        expires_at=NOW - timedelta(days=1),
    )
    answer = verify(client, 100, merchant=SHOP)
    assert "expired" in codes_of(answer)


def test_issued_on_behalf_of_the_issuer(
    session: Session, chain: Chain, client: FlaskClient
) -> None:
    _batch(session, chain, "b-platform", 200, 3, signer=IssuerSigner(ISSUER))
    answer = verify(client, 200)
    assert "issued-on-behalf" in codes_of(answer)
    assert answer["code"]["origin"] == "issuer-on-behalf"


def test_issuance_incomplete(session: Session, chain: Chain, client: FlaskClient) -> None:
    from provenance.issuance import BatchBuilder

    product = session.get(Product, PRODUCT)
    assert product is not None
    builder = BatchBuilder(FINGERPRINT_KEY, product, "b-unsigned")
    builder.add(serial(300), pin(300))
    chain.append(session, ISSUER, "batch.codes", builder.flush() or {})
    assert "issuance-incomplete" in codes_of(verify(client, 300))


def test_supplier_attested_only(session: Session, chain: Chain, client: FlaskClient) -> None:
    from provenance.fingerprints import serial_fingerprint

    codes = [[b64(fp(400)), b64(serial_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, serial(400)))]]
    body = {"product": PRODUCT, "codes": codes, "evidence_sha256": "ab" * 32, "note": "invoice 7"}
    chain.append(session, SHOP, "code.attest", body)
    answer = verify(client, 400)
    assert codes_of(answer) == {"supplier-attested-only"}
    assert answer["decision"] == "review"


@pytest.mark.parametrize(
    ("merchant", "reason"),
    [
        ("nobody", "merchant-unknown"),
        (DIST, "merchant-unknown"),
        (PENDING_SHOP, "merchant-not-approved"),
        (SUSPENDED_SHOP, "merchant-suspended"),
    ],
)
def test_merchant_reasons(chain: Chain, client: FlaskClient, merchant: str, reason: str) -> None:
    answer = verify(client, 0, merchant=merchant)
    assert reason in codes_of(answer)
    assert answer["decision"] == "block"


def test_suspension_blocks_in_the_same_request_cycle(
    session: Session, chain: Chain, client: FlaskClient
) -> None:
    assert verify(client, 0)["decision"] == "allow"
    chain.platform(
        session, "party.status", {"party": SHOP, "status": "suspended", "reason": "alert"}
    )
    assert "merchant-suspended" in codes_of(verify(client, 0))


def test_batch_verify_returns_each_verdict_and_shared_proofs(
    chain: Chain, client: FlaskClient
) -> None:
    items = [{"code": raw(i)} for i in range(20)] + [{"fingerprint": "00" * 32}]
    response = client.post("/api/v1/codes/verify-batch", json={"merchant": SHOP, "items": items})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["decision"] for r in results[:5]] == ["allow"] * 5
    assert {r["decision"] for r in results[10:20]} == {"block"}
    assert codes_of(results[20]) == {"unknown-origin"}


def test_verify_writes_nothing(session: Session, chain: Chain, client: FlaskClient) -> None:
    before = ledger_size(session)
    verify(client, 0)
    client.post("/api/v1/codes/verify-batch", json={"merchant": SHOP, "items": [{"code": raw(1)}]})
    assert ledger_size(session) == before


PIN_SECRET = "73914628503917"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"merchant": SHOP, "code": raw(0, pin="7391-4628!5039")}, 422, "code.pin"),
        ({"merchant": SHOP, "code": raw(0, serial="")}, 422, "code.serial"),
        ({"merchant": SHOP, "code": {**raw(0), "cvv": "123"}}, 422, "code.cvv"),
        ({"merchant": SHOP}, 422, "body"),
        ({"merchant": SHOP, "code": raw(0), "fingerprint": "00" * 32}, 422, "body"),
        ({"merchant": SHOP, "fingerprint": "zz"}, 422, "fingerprint"),
        ({"merchant": SHOP, "fingerprint": "00" * 31}, 422, "fingerprint"),
        ({"merchant": 5, "fingerprint": "00" * 32}, 422, "merchant"),
        ({"merchant": SHOP, "code": raw(0, pin=PIN_SECRET * 10)}, 422, "code.pin"),
    ],
    ids=[
        "pin-with-symbols",
        "empty-serial",
        "unknown-field",
        "neither",
        "both",
        "fingerprint-not-hex",
        "fingerprint-short",
        "merchant-not-text",
        "oversized-pin",
    ],
)
def test_malformed_verify_request_is_refused_without_echoing_the_pin(
    chain: Chain, client: FlaskClient, body: dict[str, Any], status: int, field: str
) -> None:
    response = client.post("/api/v1/codes/verify", json=body)
    assert response.status_code == status
    problem = response.get_json()
    assert problem["code"] in {"invalid-input", "bad-code"}
    assert problem.get("field", "body").startswith(field) or field == "body"
    assert b"7391" not in response.data and PIN_SECRET.encode() not in response.data


def test_oversized_batch_is_refused(chain: Chain, client: FlaskClient) -> None:
    items = [{"fingerprint": "00" * 32}] * 10_001
    response = client.post("/api/v1/codes/verify-batch", json={"merchant": SHOP, "items": items})
    assert response.status_code == 422
    assert response.get_json()["field"] == "items"


def test_non_json_body_is_refused(chain: Chain, client: FlaskClient) -> None:
    response = client.post("/api/v1/codes/verify", data="merchant=x", content_type="text/plain")
    assert response.status_code == 415
    response = client.post("/api/v1/codes/verify", data="{", content_type="application/json")
    assert response.status_code == 422


# --- who may call the codes API ---------------------------------------------------


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/codes/verify"),
        ("POST", "/api/v1/codes/verify-batch"),
        ("GET", "/api/v1/codes/" + "00" * 32),
        ("POST", "/api/v1/entries"),
    ],
)
def test_the_codes_api_needs_a_credential(
    app: Flask, session: Session, chain: Chain, method: str, path: str
) -> None:
    stranger = app.test_client()
    body = {"merchant": SHOP, "code": raw(1)}
    response = stranger.open(path, method=method, json=body if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = stranger.open(
        path, method=method, json=body if method == "POST" else None, headers=_bearer("ctk_x_y")
    )
    assert wrong.status_code == 401


def test_a_key_verifies_only_with_its_scope(app: Flask, session: Session, chain: Chain) -> None:
    from webapp.accounts.roles import Scope

    appender = api_key(app, session, scopes=frozenset({Scope.ENTRIES_APPEND}))
    client = app.test_client()
    body = {"merchant": SHOP, "code": raw(1)}
    refused = client.post("/api/v1/codes/verify", json=body, headers=_bearer(appender))
    assert refused.status_code == 403 and refused.get_json()["code"] == "scope-denied"
    verifier = api_key(app, session, scopes=frozenset({Scope.CODES_VERIFY}))
    allowed = client.post("/api/v1/codes/verify", json=body, headers=_bearer(verifier))
    assert allowed.status_code == 200
    before = session.scalar(select(func.count()).select_from(LedgerEntry))
    append = client.post("/api/v1/entries", json={"entries": []}, headers=_bearer(verifier))
    assert append.status_code == 403
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == before


def test_a_merchant_key_verifies_its_own_sales_only(
    app: Flask, session: Session, chain: Chain
) -> None:
    from webapp.accounts.roles import Scope

    own = api_key(app, session, party=SHOP, scopes=frozenset({Scope.CODES_VERIFY}))
    client = app.test_client()
    mine = client.post(
        "/api/v1/codes/verify", json={"merchant": SHOP, "code": raw(1)}, headers=_bearer(own)
    )
    assert mine.status_code == 200 and mine.get_json()["decision"] == "allow"
    for other in (PENDING_SHOP, SUSPENDED_SHOP):
        theirs = client.post(
            "/api/v1/codes/verify", json={"merchant": other, "code": raw(1)}, headers=_bearer(own)
        )
        assert theirs.status_code == 403 and theirs.get_json()["code"] == "scope-denied"
        batch = client.post(
            "/api/v1/codes/verify-batch",
            json={"merchant": other, "items": [{"code": raw(1)}]},
            headers=_bearer(own),
        )
        assert batch.status_code == 403


# --- custody events through the API -----------------------------------------------


def attest_body(i: int, note: str = "invoice") -> dict[str, Any]:
    from provenance.fingerprints import serial_fingerprint

    sfp = serial_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, serial(i))
    return {
        "product": PRODUCT,
        "codes": [[b64(fp(i)), b64(sfp)]],
        "evidence_sha256": "ab" * 32,
        "note": note,
    }


def entries(chain: Chain, *signed: Any) -> dict[str, Any]:
    return {
        "entries": [
            {"entry": s.statement.to_json(), "sig": base64.b64encode(s.signature).decode()}
            for s in signed
        ]
    }


def test_signed_sale_is_appended(session: Session, chain: Chain, client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/entries", json=entries(chain, chain.signed(SHOP, "code.sale", sale_body(0)))
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["appended"][0]["type"] == "code.sale"
    assert codes_of(verify(client, 0)) == {"already-sold"}


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda c: [c.signed(SHOP, "code.sale", sale_body(12))], 409, "not-holder"),
        (
            lambda c: [
                c.signed(DIST, "code.transfer", {"codes": [b64(fp(0))], "from": DIST, "to": SHOP})
            ],
            409,
            "not-holder",
        ),
        (
            lambda c: [
                c.signed(SHOP, "code.sale", sale_body(0)),
                c.signed(SHOP, "code.sale", sale_body(0, amount="99.00")),
            ],
            409,
            "code-sold",
        ),
        (
            lambda c: [
                c.signed(SHOP, "code.transfer", {"codes": [b64(fp(0))], "from": DIST, "to": SHOP})
            ],
            422,
            "not-permitted",
        ),
        (
            lambda c: [c.signed(SHOP, "code.sale", {**sale_body(0), "pin": "1234"})],
            422,
            "bad-entry",
        ),
        (
            lambda c: [c.signed(SHOP, "code.sale", {**sale_body(0), "amount": "-5"})],
            422,
            "bad-entry",
        ),
        (
            lambda c: [c.signed(SHOP, "code.sale", sale_body(0), time=NOW - timedelta(days=3))],
            422,
            "entry-time-skew",
        ),
        (lambda c: [c.signed(SHOP, "code.redeem", {"code": b64(fp(0))})], 422, "not-permitted"),
        (lambda c: [c.signed(SHOP, "code.list", {"codes": [b64(bytes(32))]})], 409, "unknown-code"),
        (lambda c: [c.signed(SHOP, "code.attest", attest_body(3))], 409, "code-exists"),
        (
            lambda c: [
                c.signed(SHOP, "code.attest", attest_body(600)),
                c.signed(SHOP, "code.attest", attest_body(600, note="second invoice")),
            ],
            409,
            "code-exists",
        ),
    ],
    ids=[
        "sale-by-non-holder",
        "out-of-order-transfer",
        "double-sale-in-one-batch",
        "transfer-for-someone-else",
        "pin-smuggled-in-body",
        "negative-amount",
        "stale-time",
        "merchant-redeems",
        "unknown-code",
        "attest-an-issued-code",
        "attest-twice-in-one-batch",
    ],
)
def test_refused_custody_event_changes_nothing(
    session: Session, chain: Chain, client: FlaskClient, make: Any, status: int, code: str
) -> None:
    before = ledger_size(session)
    response = client.post("/api/v1/entries", json=entries(chain, *make(chain)))
    assert response.status_code == status, response.get_json()
    assert response.get_json()["code"] == code
    assert ledger_size(session) == before
    assert verify(client, 0)["code"]["state"] == "listed"


def test_replayed_custody_event_is_refused(
    session: Session, chain: Chain, client: FlaskClient
) -> None:
    sale = entries(chain, chain.signed(SHOP, "code.sale", sale_body(0)))
    assert client.post("/api/v1/entries", json=sale).status_code == 201
    before = ledger_size(session)
    replay = client.post("/api/v1/entries", json=sale)
    assert replay.status_code == 409
    assert replay.get_json()["code"] == "replayed-entry"
    assert ledger_size(session) == before


def test_codes_of_an_unsigned_batch_cannot_move(
    session: Session, chain: Chain, client: FlaskClient
) -> None:
    from provenance.issuance import BatchBuilder

    product = session.get(Product, PRODUCT)
    assert product is not None
    builder = BatchBuilder(FINGERPRINT_KEY, product, "b-pending")
    builder.add(serial(500), pin(500))
    chain.append(session, ISSUER, "batch.codes", builder.flush() or {})
    transfer = chain.signed(
        ISSUER, "code.transfer", {"codes": [b64(fp(500))], "from": ISSUER, "to": DIST}
    )
    response = client.post("/api/v1/entries", json=entries(chain, transfer))
    assert response.status_code == 409
    assert response.get_json()["code"] == "code-not-issued"


@pytest.mark.parametrize("value", ["ß" * 10, "１２３４５６７８９０", "١٢٣٤٥٦٧٨٩٠"])
def test_non_ascii_serials_are_refused(chain: Chain, client: FlaskClient, value: str) -> None:
    response = client.post(
        "/api/v1/codes/verify", json={"merchant": SHOP, "code": raw(0, serial=value)}
    )
    assert response.status_code == 422
    assert response.get_json()["field"] == "code.serial"


@pytest.mark.parametrize("amount", ["-0", "1_000", ".5", "١٠٠", "100.", "01.00", "1.00000"])
def test_amounts_have_one_plain_spelling(
    session: Session, chain: Chain, client: FlaskClient, amount: str
) -> None:
    sale = chain.signed(SHOP, "code.sale", {**sale_body(0), "amount": amount})
    response = client.post("/api/v1/entries", json=entries(chain, sale))
    assert response.status_code == 422
    assert response.get_json()["field"].endswith("body.amount")


def test_every_problem_type_uri_dereferences(chain: Chain, client: FlaskClient) -> None:
    sale = entries(chain, chain.signed(SHOP, "code.sale", sale_body(12)))
    problem = client.post("/api/v1/entries", json=sale).get_json()
    assert problem["code"] == "not-holder"
    assert client.get(problem["type"]).status_code == 200


def test_verify_on_postgresql_survives_the_server_dropping_its_connections(
    tmp_path: Path, key_dir: Path
) -> None:
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        ledger = make_ledger()
        with Session(engine) as session, write_transaction(session):
            build_chain(session, ledger)
            ledger.issue_checkpoint(session, now=NOW)
            token = create_key(
                session, "till", PLATFORM_PARTY, "codes:verify", now=NOW, actor="tests"
            ).token
        ledger.close()
        # The app makes its own sessions, as in production: verify and the check of its
        # API key read in autocommit, through the read engine.
        with own_engines_app(url, tmp_path / "instance", key_dir, lambda: NOW) as app:
            client = app.test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
            first = verify(client, 0)
            dropped = terminate_other_connections(engine)
            second = verify(client, 0)
        engine.dispose()
    assert dropped >= 1
    assert first["decision"] == "allow"
    assert first["proofs"]["entries"]
    assert second == first


def test_an_in_memory_database_has_no_read_engine() -> None:
    assert read_engine(make_url("sqlite://")) is None
    assert read_engine(make_url("sqlite:///:memory:")) is None
