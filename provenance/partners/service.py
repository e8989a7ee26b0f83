"""The partner exchange as services: set a policy, export a bundle, import a notice file.

Each takes a session and plain values, flushes and never commits: the command or request
owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import get_alert
from provenance.analysis.models import Alert
from provenance.codes import Code
from provenance.instance import get_identity
from provenance.ledger import Ledger
from provenance.parties import Party
from provenance.partners.entries import EXPORT_TYPE, POLICY_TYPE
from provenance.partners.errors import ExportError, PolicyError
from provenance.partners.notices import require_partner
from provenance.partners.policy import PartnerPseudonyms, SharingPolicy, get_policy
from provenance.partners.stix_out import (
    Exporter,
    ExportSubject,
    build_bundle,
    bundle_bytes,
    merge_subjects,
    subject_from_alert,
    validate_bundle,
)

_OFFICER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def set_policy(
    session: Session, ledger: Ledger, policy: SharingPolicy, *, officer: str, now: datetime
) -> SharingPolicy:
    """Record ``policy`` for its partner as a ``partner.policy`` entry set by ``officer``.

    Raises:
        UnknownPartnerError: the partner is not registered.
        PolicyError: a malformed officer id.
    """
    require_partner(session, policy.partner)
    if not (2 <= len(officer) <= 64 and officer[0].isalpha() and set(officer) <= _OFFICER_CHARS):
        raise PolicyError("officer: 2-64 lower-case letters, digits, '.', '_' or '-'", field="by")
    ledger.append_as_platform(
        session, [ledger.statement(POLICY_TYPE, policy.body(officer), now=now)], now=now
    )
    return get_policy(session, policy.partner)


def exporter_for(session: Session, subject: ExportSubject) -> Exporter:
    """The installation's identity and the names of the parties ``subject`` involves."""
    identity = get_identity(session)
    if identity is None:
        raise ExportError("the store is not initialised: run 'cardtrace init'")
    parties = list(session.scalars(select(Party).where(Party.id.in_(sorted(subject.parties)))))
    return Exporter(
        identity.instance_id,
        identity.origin,
        {p.id: p.name for p in parties},
        {p.id: p.kind for p in parties},
    )


def alert_subject(session: Session, alert_id: int) -> ExportSubject:
    """Raises: AlertNotFoundError."""
    return subject_from_alert(get_alert(session, alert_id))


def case_subject(session: Session, case_id: int) -> ExportSubject:
    """What a case groups: its alerts' evidence and its own members (merchants, buyers,
    instruments, codes). The case's title is its narrative (shared only under the
    ``narrative`` field).

    Raises:
        CaseNotFoundError: no such case.
    """
    from provenance.cases import MemberKind, get_case

    view = get_case(session, case_id)
    keys = view.members_of(MemberKind.ALERT)
    alerts = list(session.scalars(select(Alert).where(Alert.key.in_(keys)))) if keys else []
    codes: dict[str, str | None] = {}
    fingerprints = [base64.b64decode(v) for v in view.members_of(MemberKind.CODE)]
    if fingerprints:
        rows = session.execute(
            select(Code.fingerprint, Code.product).where(Code.fingerprint.in_(fingerprints))
        )
        products = {fingerprint: product for fingerprint, product in rows}
        codes = {fp[:6].hex(): products.get(fp) for fp in fingerprints}
    own = ExportSubject(
        source="case",
        reference=view.reference,
        title="",
        narrative="",
        typologies=(),
        first_seen=view.opened_at,
        last_seen=view.updated_at,
        parties=frozenset(view.members_of(MemberKind.MERCHANT)),
        buyers=frozenset(view.members_of(MemberKind.BUYER)),
        instruments=frozenset(view.members_of(MemberKind.INSTRUMENT)),
        codes=codes,
    )
    subjects = [own, *(subject_from_alert(a) for a in sorted(alerts, key=lambda a: a.id))]
    return merge_subjects(
        "case",
        view.reference,
        f"cardtrace case {view.reference} ({view.status.value})",
        view.title or view.reference,
        subjects,
    )


@dataclass(frozen=True, slots=True)
class Export:
    """A validated bundle for a partner, its SHA-256, and (once recorded) its entry."""

    partner: str
    subject: ExportSubject
    policy: SharingPolicy
    document: bytes
    sha256: str
    warnings: tuple[str, ...]
    seq: int | None = None


def build_export(
    session: Session, subject: ExportSubject, *, partner: str, platform_secret: bytes
) -> Export:
    """Build the bundle reporting ``subject`` to ``partner`` under its policy and check it
    with the OASIS validator; reads only (the validator takes seconds for a large case,
    so the caller need not hold a write transaction meanwhile).

    Raises:
        UnknownPartnerError: ``partner`` is not a registered anti-fraud partner.
        ExportError: the validator found an error (the bundle is not handed out).
    """
    require_partner(session, partner)
    policy = get_policy(session, partner)
    pseudonyms = PartnerPseudonyms(platform_secret, partner, policy.pseudonym_epoch)
    bundle = build_bundle(exporter_for(session, subject), subject, policy, pseudonyms)
    document = bundle_bytes(bundle)
    report = validate_bundle(document)
    if not report.ok:
        raise ExportError(f"the bundle does not validate: {report.errors[0][:300]}")
    sha256 = hashlib.sha256(document).hexdigest()
    return Export(partner, subject, policy, document, sha256, report.warnings)


def record_export(session: Session, ledger: Ledger, export: Export, *, now: datetime) -> Export:
    """Record the export on the ledger: a ``partner.export`` entry (partner, alert or
    case, TLP level, the bundle's SHA-256)."""
    body = {
        "partner": export.partner,
        "source": export.subject.source,
        "reference": export.subject.reference,
        "tlp": export.policy.tlp.value,
        "sha256": export.sha256,
    }
    [entry] = ledger.append_as_platform(
        session, [ledger.statement(EXPORT_TYPE, body, now=now)], now=now
    )
    return replace(export, seq=entry.seq)


def export_stix(
    session: Session,
    ledger: Ledger,
    subject: ExportSubject,
    *,
    partner: str,
    platform_secret: bytes,
    now: datetime,
) -> Export:
    """:func:`build_export`, then :func:`record_export`, in the caller's transaction.

    Raises:
        UnknownPartnerError: ``partner`` is not a registered anti-fraud partner.
        ExportError: the validator found an error (nothing is recorded or handed out).
    """
    export = build_export(session, subject, partner=partner, platform_secret=platform_secret)
    return record_export(session, ledger, export, now=now)
