"""Partners' notices in: STIX 2.1 and CSV, each notice a ledger entry signed for the
partner and a taint source at once; every bad file refused with its reason and nothing
written; a re-import writes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import run_ledger_analysis
from provenance.analysis.models import Alert
from provenance.codes import Code, StolenPayment
from provenance.entries import format_time, key_id_for, raw_public_key
from provenance.errors import CardtraceError
from provenance.ledger import Ledger, LedgerEntry, rebuild_projections
from provenance.partners.entries import IMPORT_TYPE
from provenance.partners.errors import (
    NoticeFormatError,
    NoticeSignatureError,
    NoticeTooLargeError,
    UnknownPartnerError,
)
from provenance.partners.models import (
    CompromisedCode,
    FlaggedAccount,
    PartnerImport,
    PartnerPolicy,
)
from provenance.partners.notices import (
    MAX_NOTICE_BYTES,
    MAX_STIX_OBJECTS,
    ImportReport,
    import_notices,
    read_csv,
)
from provenance.partners.policy import SharedField, SharingPolicy, Tlp
from provenance.partners.service import alert_subject, export_stix, set_policy
from provenance.risk.store import RiskTaint
from provenance.verdict import CodeQuery, ReasonCode, verify_codes
from tests.codes_support import (
    ISSUER,
    PARTNER,
    PRODUCT,
    SHOP,
    Chain,
    fp,
    person,
    pin,
    sale_body,
    serial,
)
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW, party_key
from tests.test_partners_stix import MULE, OTHER_PARTNER, app_ledger, entries, partner_chain

HEADER = "kind,id,pseudonym,fingerprint,issuer,product,serial,pin,reported_at,reason\n"
WHEN = "2026-11-26T10:00:00Z"
DEVICE = "device-1"  # the device of every sale in the chain
CODE_PIN = 5  # held and listed by the shop, not sold: allowed until reported
CODE_SERIAL = 6  # reported by its serial alone
INSTRUMENT_ID = "card-token-77"
SOLD = 9  # sold by the shop with INSTRUMENT_ID before the notice arrives

EXTENSIONS = {
    "x-cardtrace-payment-instrument": "extension-definition--15773c88-bcf3-4e9d-a0bd-1f5576aefee6",
    "x-cardtrace-device": "extension-definition--147ed932-cff9-42b0-959b-45077dc932dd",
    "x-cardtrace-card-code": "extension-definition--4c1dfc46-a47d-4d62-b7d5-36292add2cbd",
}


@pytest.fixture()
def ledger(session: Session) -> Ledger:
    return app_ledger(session)


@pytest.fixture()
def chain(session: Session, ledger: Ledger) -> Chain:
    return partner_chain(session, ledger)


def csv_file(*rows: str) -> bytes:
    return (HEADER + "".join(row + "\n" for row in rows)).encode()


def every_kind_csv() -> bytes:
    return csv_file(
        f"instrument,{INSTRUMENT_ID},,,,,,,{WHEN},card-reported-stolen",
        f"account,{MULE},,,,,,,{WHEN},account-takeover",
        f"device,{DEVICE},,,,,,,{WHEN},",
        f"code,,,,{ISSUER},{PRODUCT},{serial(CODE_PIN)},{pin(CODE_PIN)},{WHEN},code-leaked",
        f"code,,,,{ISSUER},{PRODUCT},{serial(CODE_SERIAL)},,{WHEN},serial-leaked",
    )


def sco(kind: str, n: int, **properties: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": kind,
        "spec_version": "2.1",
        "id": f"{kind}--1b1e9c8e-6c55-4b9a-9d7e-{n:012d}",
        **properties,
    }
    if kind in EXTENSIONS:
        obj["extensions"] = {EXTENSIONS[kind]: {"extension_type": "new-sco"}}
    return obj


def every_kind_stix() -> bytes:
    objects = [
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": "identity--7b1e9c8e-6c55-4b9a-9d7e-000000000001",
            "created": "2026-11-26T10:00:00.000Z",
            "modified": "2026-11-26T10:00:00.000Z",
            "name": "Payment Anti-Fraud Alliance",
            "identity_class": "organization",
        },
        sco("x-cardtrace-payment-instrument", 1, token=INSTRUMENT_ID),
        sco("user-account", 2, user_id=MULE),
        sco("x-cardtrace-device", 3, device_id=DEVICE),
        sco(
            "x-cardtrace-card-code",
            4,
            issuer=ISSUER,
            product=PRODUCT,
            serial=serial(CODE_PIN),
            pin=pin(CODE_PIN),
        ),
        sco("x-cardtrace-card-code", 5, issuer=ISSUER, product=PRODUCT, serial=serial(CODE_SERIAL)),
        sco("ipv4-addr", 6, value="198.51.100.7"),
    ]
    ids = [o["id"] for o in objects]
    objects.append(
        {
            "type": "report",
            "spec_version": "2.1",
            "id": "report--7b1e9c8e-6c55-4b9a-9d7e-000000000002",
            "created": "2026-11-26T10:00:00.000Z",
            "modified": "2026-11-26T10:00:00.000Z",
            "created_by_ref": ids[0],
            "name": "Stolen cards and leaked codes",
            "published": "2026-11-26T10:00:00.000Z",
            "report_types": ["threat-report"],
            "labels": ["card-reported-stolen"],
            "object_refs": ids,
        }
    )
    bundle = {
        "type": "bundle",
        "id": "bundle--7b1e9c8e-6c55-4b9a-9d7e-000000000003",
        "objects": objects,
    }
    return json.dumps(bundle, indent=2).encode()


def run(
    session: Session,
    ledger: Ledger,
    data: bytes,
    *,
    partner: str = PARTNER,
    signature: bytes | None = None,
    require_signature: bool = False,
) -> ImportReport:
    return import_notices(
        session,
        ledger,
        partner=partner,
        data=data,
        signature=signature,
        fingerprint_key=FINGERPRINT_KEY,
        now=NOW,
        require_signature=require_signature,
    )


def verdict(session: Session, i: int) -> tuple[str, set[str]]:
    result = verify_codes(session, [CodeQuery(fp(i))], merchant=SHOP, now=NOW)
    found = result.verdicts[0]
    return found.decision.value, {r.code.value for r in found.reasons}


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return base64.b64encode(key.sign(data))


# --- good files ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [every_kind_csv, every_kind_stix], ids=["csv", "stix"])
def test_every_kind_of_notice_becomes_an_entry_for_the_partner_and_a_taint_source(
    session: Session, ledger: Ledger, chain: Chain, make: Callable[[], bytes]
) -> None:
    assert verdict(session, CODE_PIN) == ("allow", set())
    assert verdict(session, CODE_SERIAL) == ("allow", set())
    chain.append(session, SHOP, "code.sale", sale_body(SOLD, instrument=INSTRUMENT_ID))
    before = entries(session)
    report = run(session, ledger, make())
    assert report.added == report.notices == 5
    assert report.by_kind == {"instrument": 1, "account": 1, "device": 1, "code": 2}
    assert entries(session) == before + 6  # five notices and the file's record
    written = session.scalars(select(LedgerEntry).where(LedgerEntry.seq.in_(report.seqs))).all()
    assert {e.actor for e in written[:-1]} == {PARTNER} and written[-1].type == IMPORT_TYPE
    assert {e.key_id for e in written} == {ledger.platform.key_id}  # signed for the partner
    # Each one is in force at once.
    assert session.get(StolenPayment, ("instrument", person("instrument", INSTRUMENT_ID)))
    assert session.get(FlaggedAccount, person("buyer", MULE)) is not None
    assert session.get(RiskTaint, ("device", person("device", DEVICE))) is not None
    for i in (CODE_PIN, CODE_SERIAL):
        decision, reasons = verdict(session, i)
        assert decision == "block" and ReasonCode.COMPROMISED.value in reasons
    assert verdict(session, 7) == ("allow", set())  # another code of the shop
    # A batch verify reads the notice too.
    batch = verify_codes(
        session, [CodeQuery(fp(CODE_PIN)), CodeQuery(fp(7))], merchant=SHOP, now=NOW
    )
    assert [v.decision.value for v in batch.verdicts] == ["block", "allow"]
    # The code bought with the stolen card is tainted.
    assert ReasonCode.TAINTED.value in verdict(session, SOLD)[1]
    assert session.scalars(select(Code.tainted).where(Code.fingerprint == fp(SOLD))).one()


@pytest.mark.parametrize("make", [every_kind_csv, every_kind_stix], ids=["csv", "stix"])
def test_clear_identifiers_and_pins_never_reach_the_ledger(
    session: Session, ledger: Ledger, chain: Chain, make: Callable[[], bytes]
) -> None:
    report = run(session, ledger, make())
    records = b"".join(
        session.scalars(select(LedgerEntry.record).where(LedgerEntry.seq.in_(report.seqs)))
    )
    for clear in (INSTRUMENT_ID, MULE, DEVICE, pin(CODE_PIN), serial(CODE_PIN)):
        assert clear.encode() not in records


def test_a_compromised_codes_verdict_cites_the_notice_entry(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    report = run(session, ledger, every_kind_csv())
    result = verify_codes(session, [CodeQuery(fp(CODE_PIN))], merchant=SHOP, now=NOW)
    custody = {(step.seq, step.type, step.actor) for step in result.verdicts[0].custody}
    assert any(kind == "partner.code" and actor == PARTNER for _, kind, actor in custody)
    assert {seq for seq, _, _ in custody} & set(report.seqs)


def test_a_code_issued_after_its_serial_was_reported_is_blocked_too(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    row = f"code,,,,{ISSUER},{PRODUCT},{serial(99)},,{WHEN},serial-leaked"
    run(session, ledger, csv_file(row))
    assert session.get(CompromisedCode, _serial_fp(99)) is not None


def _serial_fp(i: int) -> bytes:
    from provenance.fingerprints import serial_fingerprint

    return serial_fingerprint(FINGERPRINT_KEY, ISSUER, PRODUCT, serial(i))


def test_platform_pseudonyms_and_fingerprints_are_accepted_as_they_are(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    data = csv_file(
        f"instrument,,{person('instrument', INSTRUMENT_ID)},,,,,,{WHEN},",
        f"code,,,{fp(8).hex()},,,,,{WHEN},",
    )
    report = run(session, ledger, data)
    assert report.added == 2
    assert verdict(session, 8)[0] == "block"


# --- idempotence ----------------------------------------------------------------------------


def test_reimporting_the_same_file_writes_nothing(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    run(session, ledger, every_kind_csv())
    before = entries(session)
    again = run(session, ledger, every_kind_csv())
    assert (again.added, again.skipped, again.seqs) == (0, 5, ())
    assert entries(session) == before
    assert session.scalar(select(func.count()).select_from(PartnerImport)) == 1


def test_the_same_notices_in_the_other_format_write_nothing(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    run(session, ledger, every_kind_csv())
    before = entries(session)
    assert run(session, ledger, every_kind_stix()).added == 0
    assert entries(session) == before


def test_a_file_repeating_a_notice_adds_it_once_and_only_the_new_ones_later(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    row = f"device,{DEVICE},,,,,,,{WHEN},"
    assert run(session, ledger, csv_file(row, row)).added == 1
    more = csv_file(row, f"account,{MULE},,,,,,,{WHEN},")
    assert run(session, ledger, more).by_kind == {"account": 1}


# --- signatures ----------------------------------------------------------------------------


def test_a_signed_file_records_the_key_and_the_signature(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    data = every_kind_csv()
    signature = sign(chain.keys[PARTNER], data)
    report = run(session, ledger, data, signature=signature, require_signature=True)
    assert report.key_id == key_id_for(raw_public_key(chain.keys[PARTNER]))
    record = session.get(PartnerImport, (PARTNER, report.sha256))
    assert record is not None and record.key_id == report.key_id
    last = session.get(LedgerEntry, report.seqs[-1])
    assert last is not None and signature.decode() in last.record.decode()


def test_a_raw_64_byte_signature_is_accepted(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    data = every_kind_csv()
    assert run(session, ledger, data, signature=chain.keys[PARTNER].sign(data)).added == 5


def _policy_requiring_signatures(session: Session, ledger: Ledger) -> None:
    policy = SharingPolicy(PARTNER, frozenset(), Tlp.AMBER, require_signature=True)
    set_policy(session, ledger, policy, officer="li.officer", now=NOW)


def _revoke_partner_key(session: Session, ledger: Ledger, chain: Chain) -> None:
    body = {
        "party": PARTNER,
        "key_id": key_id_for(raw_public_key(chain.keys[PARTNER])),
        "revoked_at": format_time(NOW),
        "reason": "key lost",
    }
    ledger.append_as_platform(session, [ledger.statement("key.revoke", body, now=NOW)], now=NOW)


# (name, setup, file, signature, require, expected error, expected code)
Case = tuple[
    Callable[[Session, Ledger, Chain], None] | None,
    Callable[[Chain], bytes],
    Callable[[Chain, bytes], bytes | None],
    bool,
    type[CardtraceError],
    str,
]


def _no_setup(session: Session, ledger: Ledger, chain: Chain) -> None:
    return None


def _csv(chain: Chain) -> bytes:
    return every_kind_csv()


def _unsigned(chain: Chain, data: bytes) -> bytes | None:
    return None


def _signed(chain: Chain, data: bytes) -> bytes | None:
    return sign(chain.keys[PARTNER], data)


BAD_SIGNATURES: dict[str, Case] = {
    "unsigned-when-the-caller-requires": (
        None,
        _csv,
        _unsigned,
        True,
        NoticeSignatureError,
        "notice-unsigned",
    ),
    "unsigned-when-the-policy-requires": (
        lambda s, lg, c: _policy_requiring_signatures(s, lg),
        _csv,
        _unsigned,
        False,
        NoticeSignatureError,
        "notice-unsigned",
    ),
    "tampered-file": (
        None,
        _csv,
        lambda c, data: sign(c.keys[PARTNER], data.replace(b"account-takeover", b"chargeback-xx")),
        False,
        NoticeSignatureError,
        "bad-notice-signature",
    ),
    "signed-by-another-partner": (
        None,
        _csv,
        lambda c, data: sign(c.keys[OTHER_PARTNER], data),
        False,
        NoticeSignatureError,
        "bad-notice-signature",
    ),
    "signed-by-an-unregistered-key": (
        None,
        _csv,
        lambda c, data: sign(party_key("mallory"), data),
        False,
        NoticeSignatureError,
        "bad-notice-signature",
    ),
    "malformed-signature": (
        None,
        _csv,
        lambda c, data: b"not a signature",
        False,
        NoticeSignatureError,
        "bad-notice-signature",
    ),
    "signed-with-a-revoked-key": (
        _revoke_partner_key,
        _csv,
        _signed,
        False,
        NoticeSignatureError,
        "bad-notice-signature",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SIGNATURES))
def test_unauthenticated_files_are_refused_with_nothing_written(
    session: Session, ledger: Ledger, chain: Chain, name: str
) -> None:
    setup, make, signature_of, required, error, code = BAD_SIGNATURES[name]
    if setup is not None:
        setup(session, ledger, chain)
    data = make(chain)
    before = entries(session)
    with pytest.raises(error) as refused:
        run(session, ledger, data, signature=signature_of(chain, data), require_signature=required)
    assert refused.value.code == code
    assert entries(session) == before
    assert session.get(StolenPayment, ("instrument", person("instrument", INSTRUMENT_ID))) is None


@pytest.mark.parametrize("sender", ["nobody", SHOP])
def test_a_sender_that_is_not_a_registered_partner_is_refused(
    session: Session, ledger: Ledger, chain: Chain, sender: str
) -> None:
    before = entries(session)
    with pytest.raises(UnknownPartnerError):
        run(session, ledger, every_kind_csv(), partner=sender)
    assert entries(session) == before


# --- malformed files --------------------------------------------------------------------------


def _stix_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    bundle = json.loads(every_kind_stix())
    change(bundle)
    return json.dumps(bundle).encode()


def _drop_id(bundle: dict[str, Any]) -> None:
    del bundle["objects"][1]["id"]


def _unknown_custom(bundle: dict[str, Any]) -> None:
    bundle["objects"][1]["type"] = "x-other-thing"
    bundle["objects"][1]["id"] = "x-other-thing--1b1e9c8e-6c55-4b9a-9d7e-000000000001"


def _partner_keyed(bundle: dict[str, Any]) -> None:
    bundle["objects"][1].pop("token")
    bundle["objects"][1].update(fingerprint="ab" * 16, fingerprint_scheme="partner-hmac-v1")


def _context_only(bundle: dict[str, Any]) -> None:
    bundle["objects"] = [bundle["objects"][0]]


PAN = "4111 1111 1111 1111"

# name -> (file, expected code, a value the message must not repeat)
MALFORMED: dict[str, tuple[bytes, str, str | None]] = {
    "oversized": (b"kind,reported_at\n" + b"x" * MAX_NOTICE_BYTES, "notice-too-large", None),
    "too-many-stix-objects": (
        _stix_with(lambda b: b.update(objects=b["objects"][1:2] * (MAX_STIX_OBJECTS + 1))),
        "notice-too-large",
        None,
    ),
    "not-json": (b"{ this is not json", "bad-notice", None),
    "json-but-not-a-bundle": (b'{"type": "report"}', "bad-notice", None),
    "stix-object-without-id": (_stix_with(_drop_id), "bad-notice", None),
    "unknown-custom-object": (_stix_with(_unknown_custom), "bad-notice", None),
    "partner-keyed-fingerprint": (_stix_with(_partner_keyed), "bad-notice", None),
    "bundle-naming-nothing": (_stix_with(_context_only), "bad-notice", None),
    "not-utf8": (b"kind,reported_at\n\xff\xfe,\x00\n", "bad-notice", None),
    "empty": (b"", "bad-notice", None),
    "header-only": (HEADER.encode(), "bad-notice", None),
    "unknown-column": (b"kind,reported_at,cardholder_name\n", "bad-notice", None),
    "missing-column": (b"kind,id\ninstrument,x\n", "bad-notice", None),
    "unknown-kind": (csv_file(f"passport,X1,,,,,,,{WHEN},"), "bad-notice", "X1"),
    "id-and-pseudonym": (
        csv_file(f"device,dev-9,{'a' * 32},,,,,,{WHEN},"),
        "bad-notice",
        "dev-9",
    ),
    "neither-id-nor-pseudonym": (csv_file(f"account,,,,,,,,{WHEN},"), "bad-notice", None),
    "bad-pseudonym": (csv_file(f"account,,XYZ,,,,,,{WHEN},"), "bad-notice", "XYZ"),
    "full-card-number": (csv_file(f"instrument,{PAN},,,,,,,{WHEN},"), "bad-notice", "4111"),
    "time-without-zone": (
        csv_file("device,dev-secret,,,,,,,2026-11-26T10:00:00,"),
        "bad-notice",
        "dev-secret",
    ),
    "free-text-reason": (
        csv_file(f"device,dev-2,,,,,,,{WHEN},Zhang San's phone"),
        "bad-notice",
        "Zhang",
    ),
    "code-without-serial": (csv_file(f"code,,,,{ISSUER},{PRODUCT},,,{WHEN},"), "bad-notice", None),
    "code-with-a-bad-pin": (
        csv_file(f"code,,,,{ISSUER},{PRODUCT},{serial(1)},12-34-ß,{WHEN},"),
        "bad-notice",
        "ß",
    ),
    "code-fingerprint-and-serial": (
        csv_file(f"code,,,{fp(1).hex()},{ISSUER},{PRODUCT},{serial(1)},,{WHEN},"),
        "bad-notice",
        None,
    ),
    "pin-on-a-device-notice": (
        csv_file(f"device,dev-3,,,,,,998877,{WHEN},"),
        "bad-notice",
        "998877",
    ),
    "ragged-row": (HEADER.encode() + b"device,dev-4\n", "bad-notice", "dev-4"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_are_refused_with_the_reason_and_nothing_written(
    session: Session, ledger: Ledger, chain: Chain, name: str
) -> None:
    data, code, secret = MALFORMED[name]
    before = entries(session)
    with pytest.raises((NoticeFormatError, NoticeTooLargeError)) as refused:
        run(session, ledger, data)
    assert refused.value.code == code
    assert entries(session) == before
    if secret is not None:
        assert secret not in refused.value.message


def test_a_bad_csv_line_is_named_by_its_number(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    data = csv_file(f"device,{DEVICE},,,,,,,{WHEN},", "device,dev-5,,,,,,,yesterday,")
    with pytest.raises(NoticeFormatError) as refused:
        run(session, ledger, data)
    assert refused.value.line == 3 and refused.value.message.startswith("line 3: reported_at")
    assert session.get(RiskTaint, ("device", person("device", DEVICE))) is None


# --- our own bundles sent back ------------------------------------------------------------


def _own_bundle(session: Session, ledger: Ledger, pseudonymise: bool) -> bytes:
    run_ledger_analysis(session, ledger, now=NOW)
    query = select(Alert).where(Alert.typology == "stolen-payment-taint").order_by(Alert.id)
    alert = session.scalars(query).first()
    assert alert is not None
    fields = frozenset({SharedField.BUYERS, SharedField.INSTRUMENTS, SharedField.DEVICES})
    policy = SharingPolicy(PARTNER, fields, Tlp.AMBER, pseudonymise=pseudonymise)
    set_policy(session, ledger, policy, officer="li.officer", now=NOW)
    subject = alert_subject(session, alert.id)
    done = export_stix(
        session, ledger, subject, partner=PARTNER, platform_secret=FINGERPRINT_KEY, now=NOW
    )
    return done.document


def test_a_bundle_with_platform_pseudonyms_can_come_back_as_notices(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    document = _own_bundle(session, ledger, pseudonymise=False)
    report = run(session, ledger, document)
    assert report.by_kind == {"account": 1, "device": 1}  # the card was already reported
    assert session.get(FlaggedAccount, person("buyer", MULE)) is not None


def test_a_bundle_with_partner_pseudonyms_sent_back_is_refused(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    document = _own_bundle(session, ledger, pseudonymise=True)
    before = entries(session)
    with pytest.raises(NoticeFormatError) as refused:
        run(session, ledger, document)
    assert refused.value.field in ("account_type", "fingerprint_scheme")
    assert entries(session) == before


def test_the_csv_example_in_the_docs_reads() -> None:
    text = (Path(__file__).parent.parent / "docs" / "PARTNERS.md").read_text()
    example = text.split("```csv\n", 1)[1].split("```", 1)[0]
    notices = read_csv(example.encode(), FINGERPRINT_KEY)
    assert [n.kind.value for n in notices] == ["instrument", "account", "device", "code", "code"]
    assert [n.scope.value for n in notices if n.scope] == ["code", "serial"]


def test_rebuilding_the_projections_from_the_ledger_gives_the_same_partner_tables(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    _policy_requiring_signatures(session, ledger)
    data = every_kind_csv()
    run(session, ledger, data, signature=sign(chain.keys[PARTNER], data))
    tables = (PartnerPolicy, PartnerImport, FlaggedAccount, CompromisedCode, StolenPayment)

    def snapshot() -> list[list[tuple[Any, ...]]]:
        session.expire_all()
        found = []
        for table in tables:
            columns = list(table.__table__.columns)
            rows = session.execute(select(*columns)).all()
            found.append(sorted(tuple(row) for row in rows))
        return found

    before = snapshot()
    assert all(before)
    rebuild_projections(session, ledger.catalog)
    assert snapshot() == before
