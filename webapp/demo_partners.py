"""The demo's partner exchange: a STIX 2.1 bundle for the demo's anti-fraud partner,
and a notice from it.

The bundle reports the demo case (or, without one, the strongest alert) under the
partner's sharing policy, is checked with the OASIS validator, and is written beside the
instance; the demo prints where it is and how to check it again. Then the partner
reports a code on sale compromised, in a CSV notice signed with its key: the code's
verdict is shown before and after the import.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from provenance.analysis.models import Alert
from provenance.cases import list_cases
from provenance.codes import Code, CodeState, Origin
from provenance.db import write_transaction
from provenance.errors import CardtraceError
from provenance.parties import Party, PartyKind, PartyStatus
from provenance.partners.notices import import_notices
from provenance.partners.service import (
    alert_subject,
    build_export,
    case_subject,
    record_export,
)
from provenance.partners.stix_out import ExportSubject, validate_bundle
from provenance.scenario import PARTNER
from provenance.verdict import CodeQuery, verify_codes
from webapp.api_risk import live_risk
from webapp.runtime import current_runtime, db_session

BUNDLE_FILE = "demo-stix-{partner}.json"
NOTICE_FILE = "demo-partner-notice.csv"
NOTICE_STATE_FILE = "demo-partner-notice.json"
EXAMPLES_FILE = "demo-examples.json"


def _subject() -> ExportSubject | None:
    session = db_session()
    cases = list_cases(session, limit=1)
    if cases:
        return case_subject(session, cases[0].id)
    alert = session.scalars(
        select(Alert).order_by(
            (Alert.typology == "stolen-payment-taint").desc(), Alert.score.desc(), Alert.id
        )
    ).first()
    return None if alert is None else alert_subject(session, alert.id)


def _code_on_sale(instance: Path) -> tuple[bytes, str] | None:
    """A code an approved shop holds that may be sold (not one of the demo's examples)."""
    session = db_session()
    examples_path = instance / EXAMPLES_FILE
    examples = (
        {bytes.fromhex(e["fingerprint"]) for e in json.loads(examples_path.read_text())}
        if examples_path.exists()
        else set()
    )
    rows = session.execute(
        select(Code.fingerprint, Code.holder)
        .join(Party, Party.id == Code.holder)
        .where(
            Party.kind == PartyKind.MERCHANT.value,
            Party.status == PartyStatus.APPROVED.value,
            Code.state.in_([CodeState.HELD.value, CodeState.LISTED.value]),
            Code.origin == Origin.ISSUER_SIGNED.value,
            Code.frozen.is_(False),
            Code.tainted.is_(False),
        )
        .order_by(Code.fingerprint)
        .limit(50)
    )
    now = current_runtime().now()
    for fingerprint, holder in rows:
        if fingerprint in examples:
            continue
        result = verify_codes(session, [CodeQuery(fingerprint)], merchant=holder, now=now)
        if result.verdicts[0].decision.value == "allow":
            return fingerprint, holder
    return None


def _verdict(fingerprint: bytes, merchant: str) -> str:
    result = verify_codes(
        db_session(), [CodeQuery(fingerprint)], merchant=merchant, now=current_runtime().now()
    )
    verdict = result.verdicts[0]
    reasons = ", ".join(r.code.value for r in verdict.reasons) or "no reasons"
    return f"{verdict.decision.value.upper()} ({reasons})"


def _notice_demo(partner: str, say: Callable[[str], None]) -> None:
    from webapp.demo import PartyKeys

    runtime, session = current_runtime(), db_session()
    instance = runtime.settings.instance_path
    state_path, notice_path = instance / NOTICE_STATE_FILE, instance / NOTICE_FILE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        fingerprint, merchant = bytes.fromhex(state["fingerprint"]), state["merchant"]
    else:
        found = _code_on_sale(instance)
        if found is None:
            say("  no code on sale to report")
            return
        fingerprint, merchant = found
        state_path.write_text(json.dumps({"fingerprint": fingerprint.hex(), "merchant": merchant}))
        notice_path.write_text(
            "kind,fingerprint,reported_at,reason\n"
            f"code,{fingerprint.hex()},{runtime.now().isoformat()},code-leaked\n"
        )
        key = PartyKeys(runtime.settings.key_dir / "demo-parties")(partner)
        signature_path = notice_path.with_name(notice_path.name + ".sig")
        signature_path.write_bytes(key.sign(notice_path.read_bytes()))
    data = notice_path.read_bytes()
    signature = notice_path.with_name(notice_path.name + ".sig").read_bytes()
    before = _verdict(fingerprint, merchant)
    say(f"  code {fingerprint.hex()[:12]} at {merchant}, before the notice: {before}")
    with write_transaction(session):
        report = import_notices(
            session,
            runtime.ledger,
            partner=partner,
            data=data,
            signature=signature,
            fingerprint_key=runtime.secrets.fingerprint_key,
            now=runtime.now(),
            require_signature=True,
        )
        live_risk().entries_appended(session, report.statements)
    done = (
        f"{report.added} notice added (ledger entries {report.seqs[0]}..{report.seqs[-1]})"
        if report.added
        else "already in force, nothing written"
    )
    say(f"  {partner} reports it compromised in {notice_path}, signed with key {report.key_id}")
    say(f"  import: {done}; the next verify: {_verdict(fingerprint, merchant)}")
    say(
        f"  import it again (nothing changes): cardtrace partners import {notice_path} "
        f"--partner {partner} --signature {notice_path}.sig"
    )


def run_stix_demo(app: Flask, say: Callable[[str], None]) -> Path | None:
    """Write, validate and show the demo partner's bundle; return its path."""
    partner = PARTNER[0]
    with app.app_context():
        say(f"\n6. A STIX 2.1 bundle for the anti-fraud partner {partner}")
        runtime, session = current_runtime(), db_session()
        try:
            subject = _subject()
            if subject is None:
                say("  no case and no alert to report: run the analysis first")
                return None
            built = build_export(
                session, subject, partner=partner, platform_secret=runtime.secrets.fingerprint_key
            )
            session.rollback()  # end the read: the write below starts its own transaction
            with write_transaction(session):
                done = record_export(session, runtime.ledger, built, now=runtime.now())
        except CardtraceError as e:
            say(f"  the bundle could not be built: {e}")
            return None
        path = runtime.settings.instance_path / BUNDLE_FILE.format(partner=partner)
        path.write_bytes(done.document)
        report = validate_bundle(path.read_bytes())
        fields = ", ".join(sorted(f.value for f in done.policy.fields)) or "none"
        say(
            f"  {subject.reference} for {partner} under TLP:{done.policy.tlp.value.upper()}, "
            f"fields {fields}, pseudonyms keyed for {partner}: "
            f"{path} (sha256 {done.sha256[:16]}...)"
        )
        say(
            f"  OASIS stix2-validator: {len(report.errors)} errors, {len(report.warnings)} "
            f"warnings; the export is ledger entry {done.seq}"
        )
        say(f"  check it again with: stix2_validator --version 2.1 {path}")
        say(f"\n7. A notice from {partner}: a code on sale reported compromised")
        try:
            _notice_demo(partner, say)
        except CardtraceError as e:
            say(f"  the notice could not be imported: {e}")
        return path
