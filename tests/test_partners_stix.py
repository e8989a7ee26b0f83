"""Outbound STIX 2.1 bundles: every kind validates with the OASIS validator with no
errors; sharing policies are honoured (fields withheld, TLP, per-partner pseudonyms);
policy changes and exports are ledger entries."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import run_ledger_analysis
from provenance.analysis.models import Alert
from provenance.cases import add_members, open_case
from provenance.instance import ensure_identity
from provenance.ledger import Ledger, LedgerEntry, PlatformSigner
from provenance.partners.entries import EXPORT_TYPE, POLICY_TYPE
from provenance.partners.errors import PolicyError, UnknownPartnerError
from provenance.partners.models import PartnerPolicy
from provenance.partners.policy import (
    DEFAULT_FIELDS,
    PartnerPseudonyms,
    SharedField,
    SharingPolicy,
    Tlp,
    get_policy,
    parse_fields,
    parse_tlp,
)
from provenance.partners.service import alert_subject, case_subject, export_stix, set_policy
from provenance.partners.stix_out import merge_subjects, validate_bundle
from tests.codes_support import PARTNER, SHOP, Chain, b64, build_chain, fp, person, sale_body
from tests.keys import FINGERPRINT_KEY
from tests.ledger_support import NOW, PLATFORM_KEY, register_party
from webapp.catalog import build_catalog

OTHER_PARTNER = "beacon"
OASIS_TLP = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
STOLEN = "stolen-card-token-1"
MULE = "mule-account"


def app_ledger(session: Session) -> Ledger:
    """A ledger with every entry type the application knows, in an initialised store."""
    ensure_identity(session, "cardtrace.test/log", NOW)
    return Ledger(build_catalog(), PlatformSigner(PLATFORM_KEY))


def partner_chain(session: Session, ledger: Ledger) -> Chain:
    """The small supply chain, a second partner, and five codes bought by one buyer with
    a card the partner then reports stolen."""
    built = build_chain(session, ledger)
    built.keys[OTHER_PARTNER] = register_party(session, ledger, OTHER_PARTNER, "partner")
    for i in range(5):
        body = sale_body(i, instrument=STOLEN) | {"buyer": person("buyer", MULE)}
        built.append(session, SHOP, "code.sale", body)
    report = {
        "kind": "instrument",
        "pseudonym": person("instrument", STOLEN),
        "reported_at": "2026-11-26T11:00:00.000000Z",
        "reason": "cardholder reported the card stolen",
    }
    built.append(session, PARTNER, "payment.stolen", report)
    return built


@pytest.fixture()
def ledger(session: Session) -> Ledger:
    return app_ledger(session)


@pytest.fixture()
def chain(session: Session, ledger: Ledger) -> Chain:
    return partner_chain(session, ledger)


@pytest.fixture()
def alert(session: Session, ledger: Ledger, chain: Chain) -> Alert:
    run_ledger_analysis(session, ledger, now=NOW)
    found = session.scalars(select(Alert).where(Alert.typology == "stolen-payment-taint")).first()
    assert found is not None
    return found


def entries(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def export(
    session: Session, ledger: Ledger, alert: Alert, partner: str = PARTNER
) -> tuple[dict[str, Any], bytes]:
    done = export_stix(
        session,
        ledger,
        alert_subject(session, alert.id),
        partner=partner,
        platform_secret=FINGERPRINT_KEY,
        now=NOW,
    )
    return json.loads(done.document), done.document


def with_policy(
    session: Session, ledger: Ledger, partner: str = PARTNER, **changes: Any
) -> SharingPolicy:
    policy = SharingPolicy(partner, changes.pop("fields", DEFAULT_FIELDS), **changes)
    return set_policy(session, ledger, policy, officer="li.officer", now=NOW)


def of_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [o for o in bundle["objects"] if o["type"] == kind]


# --- every kind of bundle validates --------------------------------------------------------

POLICIES: dict[str, dict[str, Any]] = {
    "default": {},
    "everything": {"fields": frozenset(SharedField)},
    "everything-platform-pseudonyms": {"fields": frozenset(SharedField), "pseudonymise": False},
    "nothing": {"fields": frozenset()},
    "merchants-only": {"fields": frozenset({SharedField.MERCHANTS})},
    "instruments-only-red": {"fields": frozenset({SharedField.INSTRUMENTS}), "tlp": Tlp.RED},
    "devices-ips-clear": {
        "fields": frozenset({SharedField.DEVICES, SharedField.IPS}),
        "tlp": Tlp.CLEAR,
    },
    "buyers-codes-green": {
        "fields": frozenset({SharedField.BUYERS, SharedField.CODES, SharedField.NARRATIVE}),
        "tlp": Tlp.GREEN,
    },
    "amber-strict": {"fields": frozenset(SharedField), "tlp": Tlp.AMBER_STRICT},
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_bundle_kind_from_an_alert_validates_with_no_errors(
    session: Session, ledger: Ledger, alert: Alert, name: str
) -> None:
    if POLICIES[name]:
        with_policy(session, ledger, **POLICIES[name])
    bundle, document = export(session, ledger, alert)
    report = validate_bundle(document)
    assert report.errors == ()
    assert of_type(bundle, "report") and of_type(bundle, "identity")


def open_demo_case(session: Session, ledger: Ledger, alert: Alert) -> int:
    """A case holding the alert, the shop, the buyer, the card and two codes."""
    view = open_case(
        session, ledger, title="Stolen card at shop-good", officer="li.officer", now=NOW
    )
    members = [
        ("alert", alert.key),
        ("merchant", SHOP),
        ("buyer", person("buyer", MULE)),
        ("instrument", person("instrument", STOLEN)),
        ("code", b64(fp(0))),
        ("code", b64(fp(7))),
    ]
    add_members(session, ledger, view.id, members, officer="li.officer", now=NOW)
    return view.id


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_bundle_kind_from_a_case_validates_with_no_errors(
    session: Session, ledger: Ledger, alert: Alert, name: str
) -> None:
    case_id = open_demo_case(session, ledger, alert)
    if POLICIES[name]:
        with_policy(session, ledger, **POLICIES[name])
    done = export_stix(
        session,
        ledger,
        case_subject(session, case_id),
        partner=PARTNER,
        platform_secret=FINGERPRINT_KEY,
        now=NOW,
    )
    assert validate_bundle(done.document).errors == ()
    [report] = of_type(json.loads(done.document), "report")
    assert report["external_references"][0]["external_id"] == f"CASE-{case_id}"
    narrative_shared = SharedField.NARRATIVE in POLICIES[name].get("fields", DEFAULT_FIELDS)
    assert ("Stolen card at shop-good" in done.document.decode()) is narrative_shared


def test_a_case_bundle_carries_its_members_and_its_alerts_evidence(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    case_id = open_demo_case(session, ledger, alert)
    with_policy(session, ledger, fields=frozenset(SharedField), pseudonymise=False)
    done = export_stix(
        session,
        ledger,
        case_subject(session, case_id),
        partner=PARTNER,
        platform_secret=FINGERPRINT_KEY,
        now=NOW,
    )
    bundle = json.loads(done.document)
    codes = {s["code_id"] for s in of_type(bundle, "x-cardtrace-card-code")}
    assert {fp(0)[:6].hex(), fp(7)[:6].hex()} <= codes
    accounts = {s["user_id"] for s in of_type(bundle, "user-account")}
    assert person("buyer", MULE) in accounts
    assert of_type(bundle, "sighting")  # from the alert's sales


def test_a_bundle_from_several_subjects_validates_with_no_errors(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    # What a case does: one subject over its alerts' evidence.
    subject = merge_subjects(
        "case", "CASE-1", "two alerts", "grouped", [alert_subject(session, alert.id)] * 2
    )
    with_policy(session, ledger, fields=frozenset(SharedField))
    done = export_stix(
        session, ledger, subject, partner=PARTNER, platform_secret=FINGERPRINT_KEY, now=NOW
    )
    assert validate_bundle(done.document).errors == ()
    assert of_type(json.loads(done.document), "report")[0]["external_references"] == [
        {"source_name": "cardtrace", "external_id": "CASE-1"}
    ]


def test_the_full_bundle_carries_report_identities_observables_indicators_and_sightings(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    with_policy(session, ledger, fields=frozenset(SharedField))
    bundle, _ = export(session, ledger, alert)
    identities = of_type(bundle, "identity")
    platform = [i for i in identities if i["name"].startswith("cardtrace platform")]
    assert len(platform) == 1
    assert any(i["name"] == f"{SHOP} Ltd" for i in of_type(bundle, "identity"))
    [observed] = of_type(bundle, "observed-data")
    instrument_scos = of_type(bundle, "x-cardtrace-payment-instrument")
    assert {s["id"] for s in instrument_scos} <= set(observed["object_refs"])
    patterns = {i["pattern"] for i in of_type(bundle, "indicator")}
    for sco in instrument_scos + of_type(bundle, "x-cardtrace-device"):
        assert f"[{sco['type']}:fingerprint = '{sco['fingerprint']}']" in patterns
    kinds = {r["relationship_type"] for r in of_type(bundle, "relationship")}
    assert kinds == {"based-on", "related-to"}
    sightings = of_type(bundle, "sighting")
    assert sightings and all(s["where_sighted_refs"] == [platform[0]["id"]] for s in sightings)
    assert max(s["count"] for s in sightings) == 5
    for obj in bundle["objects"]:
        if (
            obj["type"] not in ("marking-definition", "extension-definition")
            and obj["id"] != "identity--fb2799fd-2415-4920-b104-d2195ae5d6bd"
        ):
            assert obj.get("created_by_ref", platform[0]["id"]) == platform[0]["id"]


# --- policies -----------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(Tlp))
def test_every_object_carries_the_policys_oasis_tlp_marking(
    session: Session, ledger: Ledger, alert: Alert, level: Tlp
) -> None:
    with_policy(session, ledger, fields=frozenset(SharedField), tlp=level)
    bundle, _ = export(session, ledger, alert)
    [marking] = of_type(bundle, "marking-definition")
    assert marking["id"] == OASIS_TLP[level]
    extension = marking["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]
    assert extension == {"extension_type": "property-extension", "tlp_2_0": level.value}
    for obj in bundle["objects"]:
        if obj["type"] not in ("marking-definition", "extension-definition") and not obj[
            "id"
        ].startswith("identity--fb2799fd"):
            assert obj["object_marking_refs"] == [marking["id"]], obj["type"]


def test_the_default_policy_withholds_buyers_ips_and_the_narrative(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    _, document = export(session, ledger, alert)
    text = document.decode()
    assert '"user-account"' not in text and "x-cardtrace-ip-address--" not in text
    for kind, value in (("buyer", MULE), ("ip", "203.0.113.7"), ("instrument", STOLEN)):
        assert person(kind, value) not in text  # no platform pseudonym leaves
    assert alert.reason not in text
    assert "x-cardtrace-payment-instrument--" in text


def test_a_policy_without_instruments_leaves_no_instrument_anywhere(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    with_policy(session, ledger, fields=frozenset({SharedField.MERCHANTS}))
    bundle, document = export(session, ledger, alert)
    keyed = PartnerPseudonyms(FINGERPRINT_KEY, PARTNER, 0)
    shown = keyed.of("instrument", person("instrument", STOLEN))
    assert shown not in document.decode() and not of_type(bundle, "indicator")
    assert not of_type(bundle, "observed-data")


def test_pseudonyms_differ_between_partners_and_stay_the_same_for_one(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    def fingerprints(partner: str) -> set[str]:
        bundle, _ = export(session, ledger, alert, partner)
        return {s["fingerprint"] for s in of_type(bundle, "x-cardtrace-payment-instrument")}

    first, again, other = fingerprints(PARTNER), fingerprints(PARTNER), fingerprints(OTHER_PARTNER)
    assert first and first == again
    assert first.isdisjoint(other)
    assert person("instrument", STOLEN) not in first | other


def test_raising_the_epoch_rekeys_a_partners_pseudonyms(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    before, _ = export(session, ledger, alert)
    with_policy(session, ledger, pseudonym_epoch=1)
    after, _ = export(session, ledger, alert)
    values = [{s["fingerprint"] for s in of_type(b, "x-cardtrace-device")} for b in (before, after)]
    assert values[0] and values[0].isdisjoint(values[1])


def test_platform_pseudonyms_are_shared_only_when_the_policy_says_so(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    with_policy(session, ledger, pseudonymise=False)
    bundle, _ = export(session, ledger, alert)
    [sco] = of_type(bundle, "x-cardtrace-payment-instrument")
    assert sco["fingerprint"] == person("instrument", STOLEN)
    assert sco["fingerprint_scheme"] == "platform-hmac-v1"


def test_a_policy_change_is_a_ledger_entry_and_takes_effect(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    before = entries(session)
    assert get_policy(session, PARTNER).fields == DEFAULT_FIELDS
    with_policy(session, ledger, fields=frozenset({SharedField.CODES}), tlp=Tlp.RED)
    assert entries(session) == before + 1
    last = session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
    assert last is not None and last.type == POLICY_TYPE
    row = session.get(PartnerPolicy, PARTNER)
    assert row is not None and row.set_by == "li.officer" and row.seq == last.seq
    assert get_policy(session, PARTNER).tlp is Tlp.RED


def test_bad_policies_are_refused_with_nothing_written(
    session: Session, ledger: Ledger, chain: Chain
) -> None:
    before = entries(session)
    with pytest.raises(PolicyError) as bad_field:
        parse_fields(["merchants", "passport-numbers"])
    assert bad_field.value.field == "fields"
    with pytest.raises(PolicyError):
        parse_tlp("white")
    with pytest.raises(UnknownPartnerError):
        with_policy(session, ledger, partner=SHOP)
    assert entries(session) == before


def test_an_export_is_recorded_with_the_bundles_hash(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    _, document = export(session, ledger, alert)
    last = session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
    assert last is not None and last.type == EXPORT_TYPE
    assert hashlib.sha256(document).hexdigest() in last.record.decode()


def test_an_export_to_a_party_that_is_not_a_partner_is_refused(
    session: Session, ledger: Ledger, alert: Alert
) -> None:
    before = entries(session)
    with pytest.raises(UnknownPartnerError):
        export(session, ledger, alert, partner=SHOP)
    assert entries(session) == before
