"""``cardtrace partners`` and ``POST /api/v1/partners/<partner>/notices``: a notice
imported over HTTP with the partner's API key changes the next verify's verdict; bad or
unauthenticated requests are refused with nothing written."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import record_findings
from provenance.ledger import LedgerEntry
from provenance.partners.notices import MAX_NOTICE_BYTES
from provenance.partners.policy import SharingPolicy, Tlp
from provenance.partners.service import set_policy
from provenance.partners.stix_out import validate_bundle
from tests.api_support import machine_client
from tests.cli_support import add_account, fresh_instance, run
from tests.codes_support import (
    ISSUER,
    PARTNER,
    PRODUCT,
    SHOP,
    Chain,
    build_chain,
    fp,
    person,
    pin,
    serial,
)
from tests.ledger_support import NOW, party_key, register_party
from tests.risk_support import redis_client
from tests.services import redis_url
from tests.test_analysis_alerts import finding
from webapp.accounts.apikeys import create_key
from webapp.accounts.roles import Scope
from webapp.api_risk import live_risk
from webapp.runtime import current_runtime

WHEN = "2026-11-26T10:00:00Z"
HEADER = "kind,id,pseudonym,fingerprint,issuer,product,serial,pin,reported_at,reason\n"


def code_notice(i: int) -> bytes:
    row = f"code,,,,{ISSUER},{PRODUCT},{serial(i)},{pin(i)},{WHEN},code-leaked\n"
    return (HEADER + row).encode()


# --- the command line ------------------------------------------------------------------------


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fresh_instance(tmp_path, monkeypatch)
    from provenance.db import write_transaction
    from webapp import create_app
    from webapp.runtime import db_session

    with create_app().app_context():
        session, runtime = db_session(), current_runtime()
        with write_transaction(session):
            register_party(session, runtime.ledger, PARTNER, "partner", now=runtime.now())
            record_findings(session, runtime.ledger, [finding("shop-x")], now=runtime.now())
    return tmp_path


def ledger_size() -> int:
    from webapp import create_app
    from webapp.runtime import db_session

    with create_app().app_context():
        return int(db_session().scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def test_export_stix_writes_a_bundle_that_validates(instance: Path) -> None:
    out = instance / "alert-1.json"
    done = run("partners", "export-stix", "--alert", "1", "--partner", PARTNER, "-o", str(out))
    assert done.exit_code == 0, done.output
    assert "found no errors" in done.output
    assert validate_bundle(out.read_bytes()).errors == ()
    assert json.loads(out.read_bytes())["type"] == "bundle"


def _open_case() -> int:
    from provenance.analysis.models import Alert
    from provenance.cases import add_members, open_case
    from provenance.db import write_transaction
    from webapp import create_app
    from webapp.runtime import db_session

    with create_app().app_context():
        session, runtime = db_session(), current_runtime()
        with write_transaction(session):
            alert = session.scalars(select(Alert)).one()
            view = open_case(
                session, runtime.ledger, title="shop-x", officer="li.officer", now=runtime.now()
            )
            members = [("alert", alert.key), ("merchant", PARTNER)]
            add_members(
                session, runtime.ledger, view.id, members, officer="li.officer", now=runtime.now()
            )
        return view.id


def test_export_stix_from_a_case_writes_a_bundle_that_validates(instance: Path) -> None:
    case_id = _open_case()
    out = instance / "case.json"
    done = run(
        "partners", "export-stix", "--case", str(case_id), "--partner", PARTNER, "-o", str(out)
    )
    assert done.exit_code == 0, done.output
    assert f"bundle of CASE-{case_id}" in done.output
    assert validate_bundle(out.read_bytes()).errors == ()


def test_export_stix_needs_exactly_one_subject(instance: Path) -> None:
    out = str(instance / "x.json")
    assert run("partners", "export-stix", "--partner", PARTNER, "-o", out).exit_code == 2
    both = run("partners", "export-stix", "--alert", "1", "--case", "1", "--partner", PARTNER)
    assert both.exit_code == 2


def test_export_stix_for_an_unknown_partner_writes_nothing(instance: Path) -> None:
    out = instance / "x.json"
    before = ledger_size()
    done = run("partners", "export-stix", "--alert", "1", "--partner", "nobody", "-o", str(out))
    assert done.exit_code == 2 and "no anti-fraud partner 'nobody'" in done.output
    assert not out.exists() and ledger_size() == before


def test_import_then_import_again_changes_nothing(instance: Path) -> None:
    notice = instance / "notice.csv"
    notice.write_text(HEADER + f"device,device-9,,,,,,,{WHEN},\n")
    first = run("partners", "import", str(notice), "--partner", PARTNER)
    assert first.exit_code == 0, first.output
    assert "1 added (1 device)" in first.output
    size = ledger_size()
    again = run("partners", "import", str(notice), "--partner", PARTNER)
    assert again.exit_code == 0 and "nothing written" in again.output
    assert ledger_size() == size


def test_import_with_a_good_signature_and_refusals_by_reason(instance: Path) -> None:
    notice = instance / "notice.csv"
    notice.write_text(HEADER + f"account,buyer-7,,,,,,,{WHEN},account-takeover\n")
    signature = instance / "notice.csv.sig"
    signature.write_bytes(base64.b64encode(party_key("mallory").sign(notice.read_bytes())))
    before = ledger_size()
    forged = run(
        "partners", "import", str(notice), "--partner", PARTNER, "--signature", str(signature)
    )
    assert forged.exit_code == 2 and "does not verify" in forged.output
    unsigned = run("partners", "import", str(notice), "--partner", PARTNER, "--require-signature")
    assert (
        unsigned.exit_code == 2 and "must come with a detached Ed25519 signature" in unsigned.output
    )
    big = instance / "big.csv"
    big.write_bytes(b"x" * (MAX_NOTICE_BYTES + 1))
    oversized = run("partners", "import", str(big), "--partner", PARTNER)
    assert oversized.exit_code == 2 and "at most" in oversized.output
    assert ledger_size() == before
    signature.write_bytes(party_key(PARTNER).sign(notice.read_bytes()))
    good = run(
        "partners", "import", str(notice), "--partner", PARTNER, "--signature", str(signature)
    )
    assert good.exit_code == 0 and "signed with key" in good.output


def test_policy_set_needs_an_analyst_and_shows_what_it_set(instance: Path) -> None:
    refused = run("partners", "policy", "set", PARTNER, "--fields", "codes", as_user="nope")
    assert refused.exit_code == 2 and "no active account" in refused.output
    add_account("li.reviewer", "reviewer")
    reviewer = run("partners", "policy", "set", PARTNER, "--fields", "codes", as_user="li.reviewer")
    assert reviewer.exit_code == 2 and "the reviewer role may not" in reviewer.output
    token = add_account("li.officer", "analyst")
    done = run(
        "partners", "policy", "set", PARTNER, "--fields", "codes,merchants", "--tlp", "red",
        "--require-signature", as_user=token,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    shown = json.loads(run("partners", "policy", "show", PARTNER).output)
    assert shown["fields"] == ["codes", "merchants"] and shown["tlp"] == "red"
    assert shown["require_signature"] is True
    bad = run("partners", "policy", "set", PARTNER, "--fields", "passports", as_user=token)
    assert bad.exit_code == 2 and "unknown field 'passports'" in bad.output


# --- the HTTP endpoint --------------------------------------------------------------------------


@pytest.fixture()
def client(app: Flask, session: Session) -> FlaskClient:
    """The platform's sale system: an API key with every scope (notices carry their own)."""
    return machine_client(app, session)


@pytest.fixture()
def chain(app: Flask, session: Session) -> Chain:
    with app.app_context():
        built = build_chain(session, current_runtime().ledger)
        session.flush()
        return built


def api_key(session: Session, party: str, *scopes: Scope) -> str:
    chosen = frozenset(scopes or (Scope.PARTNERS_NOTICE,))
    issued = create_key(session, "notices", party, chosen, now=NOW, actor="root.admin")
    session.flush()
    return issued.token


@pytest.fixture()
def key(chain: Chain, session: Session) -> str:
    return api_key(session, PARTNER)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def verify(client: FlaskClient, i: int) -> Any:
    response = client.post(
        "/api/v1/codes/verify", json={"merchant": SHOP, "fingerprint": fp(i).hex()}
    )
    assert response.status_code == 200
    return response.get_json()


def post(
    client: FlaskClient,
    data: bytes,
    signature: bytes | None,
    token: str | None,
    partner: str = PARTNER,
) -> Any:
    body: dict[str, Any] = {"notice": base64.b64encode(data).decode()}
    if signature is not None:
        body["signature"] = base64.b64encode(signature).decode()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # The partner's own system, not the sale system's client (and its key).
    partner_system = client.application.test_client()
    return partner_system.post(f"/api/v1/partners/{partner}/notices", json=body, headers=headers)


def test_a_notice_posted_over_http_blocks_the_code_on_the_next_verify(
    client: FlaskClient, chain: Chain, session: Session, key: str
) -> None:
    assert verify(client, 7)["decision"] == "allow"
    data = code_notice(7)
    done = post(client, data, None, key)
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["added"] == 1 and done.get_json()["by_kind"] == {"code": 1}
    after = verify(client, 7)
    assert after["decision"] == "block"
    assert "compromised-code-reported" in {r["code"] for r in after["reasons"]}
    before = count(session)
    again = post(client, data, chain.keys[PARTNER].sign(data), key)
    assert again.status_code == 200 and again.get_json()["added"] == 0
    assert again.get_json()["key_id"] is not None
    assert count(session) == before


@pytest.fixture(params=["sql-store", "redis-store"])
def risk_state(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    """The app's real-time risk state in the database, or in Redis under a fresh prefix."""
    if request.param == "sql-store":
        yield request.param
        return
    client = redis_client()
    cardtrace = app.extensions["cardtrace"]
    cardtrace.settings = cardtrace.settings.with_overrides(redis_url=redis_url())
    app.config["RISK_REDIS_PREFIX"] = f"cardtrace-test:{uuid.uuid4().hex}:"
    live = live_risk(app)
    assert live.redis_store is not None
    yield request.param
    live.redis_store.reset()
    client.close()


def test_a_stolen_card_posted_over_http_blocks_the_next_sale_paid_with_it(
    risk_state: str, client: FlaskClient, chain: Chain, key: str
) -> None:
    card = "card-token-31"
    context = {
        "buyer": person("buyer", "buyer-31"),
        "instrument": {"fingerprint": person("instrument", card), "bin": "622202", "last4": "0031"},
        "amount": "100.00",
    }
    body = {"merchant": SHOP, "fingerprint": fp(7).hex(), "context": context}
    before = client.post("/api/v1/codes/verify", json=body).get_json()
    assert before["decision"] == "allow", before
    notice = (HEADER + f"instrument,{card},,,,,,,{WHEN},card-reported-stolen\n").encode()
    assert post(client, notice, None, key).status_code == 201
    after = client.post("/api/v1/codes/verify", json=body).get_json()
    assert after["decision"] == "block"
    assert "instrument-stolen" in {r["code"] for r in after["reasons"]}


@pytest.mark.parametrize(
    "name, status, code",
    [
        ("no-api-key", 401, "unauthenticated"),
        ("unknown-api-key", 401, "api-key-invalid"),
        ("another-partys-key", 403, "forbidden"),
        ("key-without-the-scope", 403, "scope-denied"),
        ("unsigned-when-the-policy-requires", 401, "notice-unsigned"),
        ("tampered", 401, "bad-notice-signature"),
        ("foreign-signature", 401, "bad-notice-signature"),
        ("not-base64", 422, "invalid-input"),
        ("oversized", 413, "notice-too-large"),
        ("malformed", 422, "bad-notice"),
    ],
)
def test_bad_notice_requests_are_refused_with_nothing_written(
    app: Flask,
    client: FlaskClient,
    chain: Chain,
    session: Session,
    key: str,
    name: str,
    status: int,
    code: str,
) -> None:
    data = code_notice(7)
    signer = chain.keys[PARTNER]
    before = count(session)
    if name == "no-api-key":
        response = post(client, data, signer.sign(data), None)
    elif name == "unknown-api-key":
        response = post(client, data, None, "ctk_000000000000_" + "x" * 43)
    elif name == "another-partys-key":
        response = post(client, data, None, api_key(session, SHOP))
    elif name == "key-without-the-scope":
        response = post(client, data, None, api_key(session, PARTNER, Scope.CODES_VERIFY))
    elif name == "unsigned-when-the-policy-requires":
        with app.app_context():
            policy = SharingPolicy(PARTNER, frozenset(), Tlp.AMBER, require_signature=True)
            set_policy(session, current_runtime().ledger, policy, officer="li.officer", now=NOW)
        before = count(session)
        response = post(client, data, None, key)
    elif name == "tampered":
        response = post(client, data.replace(b"code-leaked", b"code-lost"), signer.sign(data), key)
    elif name == "foreign-signature":
        response = post(client, data, party_key("mallory").sign(data), key)
    elif name == "not-base64":
        response = client.post(
            f"/api/v1/partners/{PARTNER}/notices",
            json={"notice": "%%%"},
            headers={"Authorization": f"Bearer {key}"},
        )
    elif name == "oversized":
        response = post(client, b"x" * (MAX_NOTICE_BYTES + 1), None, key)
    else:
        response = post(client, HEADER.encode() + b"code,,,,,,,,yesterday,\n", None, key)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
    if name == "malformed":
        assert response.get_json()["line"] == 2
    assert count(session) == before
    assert verify(client, 7)["decision"] == "allow"


def test_the_demo_writes_a_bundle_for_its_partner_that_validates(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provenance.db import write_transaction
    from provenance.scenario import PARTNER as DEMO_PARTNER
    from webapp import create_app
    from webapp.demo_partners import run_stix_demo
    from webapp.runtime import db_session

    app = create_app()
    with app.app_context():
        session, runtime = db_session(), current_runtime()
        with write_transaction(session):
            register_party(session, runtime.ledger, DEMO_PARTNER[0], "partner", now=runtime.now())
    said: list[str] = []
    path = run_stix_demo(app, said.append)
    assert path is not None and path.exists()
    assert validate_bundle(path.read_bytes()).errors == ()
    assert any(str(path) in line for line in said)
    assert any("0 errors" in line for line in said)
