"""The demo's partner exchange: a STIX 2.1 bundle for the demo's anti-fraud partner.

The bundle reports the demo case (or, without one, the strongest alert) under the
partner's sharing policy, is checked with the OASIS validator, and is written beside the
instance; the demo prints where it is and how to check it again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from provenance.analysis.models import Alert
from provenance.cases import list_cases
from provenance.db import write_transaction
from provenance.errors import CardtraceError
from provenance.partners.service import alert_subject, case_subject, export_stix
from provenance.partners.stix_out import ExportSubject, validate_bundle
from provenance.scenario import PARTNER
from webapp.runtime import current_runtime, db_session

BUNDLE_FILE = "demo-stix-{partner}.json"


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
            with write_transaction(session):
                done = export_stix(
                    session,
                    runtime.ledger,
                    subject,
                    partner=partner,
                    platform_secret=runtime.secrets.fingerprint_key,
                    now=runtime.now(),
                )
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
        say(
            f"  the partner's notices come back with: cardtrace partners import FILE "
            f"--partner {partner} [--signature FILE.sig]"
        )
        return path
