"""The demo: what cardtrace does, end to end, on the embedded default."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlalchemy import func, select

from merchant_onboarding.demo import build_cast
from provenance.bundle import export_bundle, verify_bundle
from provenance.db import write_transaction
from provenance.instance import get_identity
from provenance.scenario import SupplyChain
from provenance.verdict import CodeQuery, verify_codes
from webapp.health import health_report
from webapp.onboarding import onboarding_service
from webapp.runtime import current_runtime, db_session

EXAMPLES_FILE = "demo-examples.json"
ANALYSIS_CASES_FILE = "demo-analysis-cases.json"


class PartyKeys:
    """Each demo party's signing key, kept (owner-only) beside the platform's keys."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, Ed25519PrivateKey] = {}

    def __call__(self, party: str) -> Ed25519PrivateKey:
        if party in self._cache:
            return self._cache[party]
        path = self.directory / f"{party}.pem"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
        else:
            key = Ed25519PrivateKey.generate()
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
        self._cache[party] = key
        return key


def _load_supply_chain(scale: float, say: Callable[[str], None]) -> None:
    runtime = current_runtime()
    session = db_session()
    examples_path = runtime.settings.instance_path / EXAMPLES_FILE
    if examples_path.exists():
        say("  the demo supply chain is already loaded (delete the instance folder to start over)")
        return
    started = time.monotonic()
    chain = SupplyChain(
        session,
        runtime.ledger,
        fingerprint_key=runtime.secrets.fingerprint_key,
        party_keys=PartyKeys(runtime.settings.key_dir / "demo-parties"),
        clock=runtime.now,
        scale=scale,
        say=say,
    )
    result = chain.run()
    key = runtime.secrets.fingerprint_key
    # The examples are kept by fingerprint only: no PIN is written anywhere.
    examples = []
    for example in result.examples:
        query = CodeQuery.from_raw(
            key, example.issuer, example.product, example.serial, example.pin
        )
        examples.append(
            {
                "label": example.label,
                "merchant": example.merchant,
                "fingerprint": query.fingerprint.hex(),
                "serial_fp": query.serial_fp.hex() if query.serial_fp else None,
                "expect": example.expect,
            }
        )
    examples_path.write_text(json.dumps(examples, indent=2))
    cases_path = runtime.settings.instance_path / ANALYSIS_CASES_FILE
    cases_path.write_text(json.dumps(result.analysis_cases, indent=2))
    say(
        f"  {result.codes:,} codes, {result.sales:,} sales, {result.entries:,} ledger entries "
        f"in {time.monotonic() - started:.0f} s; {result.double_sales_refused} double sale "
        "refused by the ledger"
    )


def _show_verdicts(say: Callable[[str], None]) -> bool:
    runtime = current_runtime()
    examples = json.loads((runtime.settings.instance_path / EXAMPLES_FILE).read_text())
    all_as_expected = True
    for example in examples:
        serial_fp = bytes.fromhex(example["serial_fp"]) if example["serial_fp"] else None
        query = CodeQuery(bytes.fromhex(example["fingerprint"]), serial_fp)
        started = time.perf_counter()
        result = verify_codes(
            db_session(), [query], merchant=example["merchant"], now=runtime.now()
        )
        elapsed = (time.perf_counter() - started) * 1000
        verdict = result.verdicts[0]
        reasons = ", ".join(r.code.value for r in verdict.reasons) or "no reasons"
        expected = example["expect"]
        ok = (
            verdict.decision.value == "allow"
            if expected == "allow"
            else expected in {r.code.value for r in verdict.reasons}
        )
        all_as_expected &= ok
        mark = "ok " if ok else "?? "
        say(
            f"  {mark}{verdict.decision.value.upper():6} {example['label']:42} {reasons} "
            f"({elapsed:.1f} ms)"
        )
    return all_as_expected


def _show_alerts(say: Callable[[str], None]) -> None:
    from provenance.analysis.alerts import alert_key, list_alerts
    from webapp.analysis import analyse_ledger

    runtime, session = current_runtime(), db_session()
    started = time.monotonic()
    with write_transaction(session):
        done = analyse_ledger(session, runtime.ledger, onboarding_service(), now=runtime.now())
    say(
        f"  read {done.run.entries_read:,} new entries, {done.run.findings} findings, "
        f"{len(done.run.opened)} alerts opened in {time.monotonic() - started:.1f} s"
    )
    cases_path = runtime.settings.instance_path / ANALYSIS_CASES_FILE
    expected = json.loads(cases_path.read_text()) if cases_path.exists() else []
    keys = {alert_key(t, kind, subject) for t, kind, subject in expected}
    alerts = list_alerts(session, limit=1000)
    found = {a.key for a in alerts} & keys
    say(f"  {len(found)} of the {len(keys)} injected cases have an alert:")
    for alert in sorted(alerts, key=lambda a: (a.key not in keys, -a.score))[:12]:
        mark = "ok " if alert.key in keys else "   "
        evidence = alert.evidence
        kinds = sorted({n["kind"] for n in evidence["nodes"]})
        say(
            f"  {mark}#{alert.id} {alert.severity:6} {alert.typology:26} "
            f"{alert.subject_kind}:{alert.subject[:12]}  {alert.reason}"
        )
        say(
            f"       evidence: {len(evidence['nodes'])} nodes ({', '.join(kinds)}), "
            f"{len(evidence['edges'])} edges"
        )
    say("  see one with: cardtrace alerts show <id>; work it with cardtrace alerts triage <id>")


BURST = 7  # purchases in the burst; the default rules stop one card at its fifth in a minute


def _show_risk_burst(say: Callable[[str], None]) -> None:
    """A thief's burst of purchases with one card at one shop, one a few seconds after
    another: verify with the sale's context, sell while allowed, and show the verdict at
    the moment it flips from allow to block."""
    import uuid

    from provenance.codes import Code
    from provenance.fingerprints import pseudonym
    from provenance.parties import Party
    from provenance.risk import SaleContext
    from provenance.verdict import Decision
    from webapp.api_codes import verify_for_sale
    from webapp.api_risk import live_risk

    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # the alert tasks
    runtime, session = current_runtime(), db_session()
    key, ledger, live = runtime.secrets.fingerprint_key, runtime.ledger, live_risk()
    shop = session.scalar(
        select(Code.holder)
        .join(Party, Party.id == Code.holder)
        .where(Code.state == "listed", Party.status == "approved", Code.tainted.is_(False))
        .group_by(Code.holder)
        .order_by(func.count().desc())
        .limit(1)
    )
    if shop is None:
        say("  no approved shop has codes listed: nothing to buy")
        return
    candidates = list(
        session.scalars(
            select(Code.fingerprint)
            .where(Code.holder == shop, Code.state == "listed", Code.frozen.is_(False))
            .limit(BURST * 4)
        )
    )
    codes = [
        v.fingerprint
        for v in verify_codes(
            session, [CodeQuery(fp) for fp in candidates], merchant=shop, now=runtime.now()
        ).verdicts
        if v.decision is Decision.ALLOW
    ][:BURST]
    session.commit()
    run = uuid.uuid4().hex[:8]  # a new thief each run: the demo can run again
    card = pseudonym(key, "instrument", f"demo-stolen-card-{run}")
    context = SaleContext.parse(
        {
            "buyer": pseudonym(key, "buyer", f"demo-thief-{run}"),
            "instrument": {"fingerprint": card, "bin": "622202", "last4": "0420"},
            "device": f"demo-phone-{run}",
            "ip": "203.0.113.77",
            "amount": "200.00",
            "channel": "app",
        }
    )
    say(f"  one buyer, one card (BIN 622202, last four 0420), {len(codes)} purchases at {shop}:")
    previous = "allow"
    for n, fingerprint in enumerate(codes, 1):
        started = time.perf_counter()
        answer = verify_for_sale([CodeQuery(fingerprint)], shop, [context])
        elapsed = (time.perf_counter() - started) * 1000
        document = answer.to_json(single=True)
        decision = document["decision"]
        say(f"  purchase {n}: {decision.upper():6} ({elapsed:.1f} ms)")
        if decision != previous:
            for reason in document["reasons"]:
                say(f"      {reason['code']}: {reason['message']}")
                say(f"      {' ' * len(reason['code'])}  {reason['message_zh']}")
        previous = decision
        if decision == "block":
            continue
        facts = context.keys(key)
        body = {
            "code": base64.b64encode(fingerprint).decode("ascii"),
            "buyer": facts.buyer,
            "instrument": facts.instrument,
            "device": facts.device,
            "ip": facts.ip,
            "amount": context.amount,
            "currency": "CNY",
        }
        now = runtime.now()
        with write_transaction(session):
            statements = [ledger.statement("code.sale", body, now=now, actor=shop)]
            ledger.append_as_platform(session, statements, now=now)
            live.entries_appended(session, statements)
    session.commit()
    say(
        "  each block is an alert in the queue (typology risk-rule, one per rule and card): "
        "cardtrace alerts list --typology risk-rule"
    )


def run_demo(app: Flask, say: Callable[[str], None], *, scale: float = 1.0) -> bool:
    """Run the demo; returns False if the store is not initialised (nothing was done)."""
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
            return False
        ledger = runtime.ledger
        say(f"  log: {identity.origin}, platform key {ledger.platform.key_id}")

        say(f"\n1. A supply chain on the signed ledger (scale {scale})")
        _load_supply_chain(scale, say)

        say("\n2. Verify before sale: a verdict, and the reasons, for each kind of case")
        if not _show_verdicts(say):
            say("  (a verdict above is not the one the scenario expects)")

        say("\n2b. Ledger analysis: the injected frauds as alerts, with their evidence")
        _show_alerts(say)

        say("\n2c. Real-time risk at the moment of sale: a burst with a stolen card")
        _show_risk_burst(say)

        say("\n3. Evidence anyone can check offline")
        with write_transaction(session):
            checkpoint = ledger.issue_checkpoint(session, now=runtime.now())
        say(f"  checkpoint: size {checkpoint.size:,}, root {checkpoint.root.hex()[:16]}...")
        bundle_path = runtime.settings.instance_path / "demo-ledger-bundle.jsonl"
        first = max(checkpoint.size - 5000, 0)
        with open(bundle_path, "wb") as out:
            export_bundle(session, ledger, out, checkpoint, first=first)
        with open(bundle_path, "rb") as stream:
            verified = verify_bundle(stream, ledger.catalog, trusted_key=ledger.platform.public_key)
        digest = hashlib.sha256(bundle_path.read_bytes()).hexdigest()[:16]
        say(
            f"  bundle of entries {verified.first:,}..{verified.stop - 1:,}: {bundle_path} "
            f"(sha256 {digest}...), verified"
        )
        say("\n4. Merchant onboarding: a cast in every state, checks and four-eyes decisions")
        with write_transaction(session):
            build_cast(session, onboarding_service(), now=runtime.now(), say=say)
        say("  see them with: cardtrace onboarding queue; cardtrace onboarding show <id>")

        pub = runtime.settings.key_dir / "log-signing.pub.pem"
        say("\nTry it yourself:")
        say(f"  cardtrace ledger verify {bundle_path} --platform-key {pub}")
        say("  cardtrace ledger audit")
        say(
            "  cardtrace codes verify --merchant shop-longmen --fingerprint <hex from "
            f"{runtime.settings.instance_path / EXAMPLES_FILE}>"
        )
    from webapp.demo_reports import run_reports_demo

    run_reports_demo(app, say)

    from webapp.demo_partners import run_stix_demo

    run_stix_demo(app, say)

    from webapp.demo_accounts import run_accounts_demo

    run_accounts_demo(app, say)
    return True
