"""``cardtrace partners``: sharing policies, STIX bundles out, partners' notices in. Thin.

A policy change acts as the staff account named by ``--as USERNAME`` (or
``CARDTRACE_AS``), an analyst. Exports and imports are run by the operator; an import may
carry the partner's detached Ed25519 signature over the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click
from flask import Flask

from webapp.cli_acting import acting_account

MAX_SIGNATURE_FILE = 512


def _app() -> Flask:
    from webapp import create_app

    return create_app()


@click.group("partners")
def partners() -> None:
    """Anti-fraud partners: sharing policies, STIX 2.1 bundles out, notices in
    (see docs/PARTNERS.md)."""


@partners.group("policy")
def policy() -> None:
    """What each partner may receive."""


def _policy_json(found: object) -> dict[str, object]:
    from provenance.partners.policy import SharingPolicy

    assert isinstance(found, SharingPolicy)
    return {
        "partner": found.partner,
        "fields": sorted(f.value for f in found.fields),
        "tlp": found.tlp.value,
        "pseudonymise": found.pseudonymise,
        "pseudonym_epoch": found.pseudonym_epoch,
        "require_signature": found.require_signature,
    }


@policy.command("show")
@click.argument("partner")
def policy_show(partner: str) -> None:
    """The partner's policy in force (the default one if none was set)."""
    from provenance.partners.notices import require_partner
    from provenance.partners.policy import get_policy
    from webapp.runtime import db_session

    with _app().app_context():
        session = db_session()
        require_partner(session, partner)
        shown = _policy_json(get_policy(session, partner))
    click.echo(json.dumps(shown, indent=2))


@policy.command("set")
@acting_account
@click.argument("partner")
@click.option(
    "--fields",
    required=True,
    help="Comma-separated: merchants, buyers, instruments, devices, ips, codes, narrative.",
)
@click.option("--tlp", default="amber", show_default=True, help="TLP 2.0 level.")
@click.option(
    "--pseudonymise/--platform-pseudonyms",
    default=True,
    show_default=True,
    help="Personal data as pseudonyms keyed for this partner, or the platform's own.",
)
@click.option("--epoch", type=int, default=0, show_default=True, help="Raise to re-key.")
@click.option(
    "--require-signature/--signature-optional",
    default=False,
    show_default=True,
    help="Refuse this partner's notice files without a detached signature.",
)
def policy_set(
    partner: str, fields: str, tlp: str, pseudonymise: bool, epoch: int, require_signature: bool
) -> None:
    """Set a partner's sharing policy (a ledger entry naming the officer)."""
    from provenance.db import write_transaction
    from provenance.partners.policy import SharingPolicy, parse_fields, parse_tlp
    from provenance.partners.service import set_policy
    from webapp.officer_auth import cli_actor
    from webapp.runtime import current_runtime, db_session

    wanted = SharingPolicy(
        partner,
        parse_fields(fields.split(",")),
        parse_tlp(tlp),
        pseudonymise=pseudonymise,
        pseudonym_epoch=epoch,
        require_signature=require_signature,
    )
    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        actor = cli_actor(session, "cases_api", "set partners' sharing policies")
        with write_transaction(session):
            found = set_policy(session, runtime.ledger, wanted, officer=actor.id, now=runtime.now())
            shown = _policy_json(found)
    click.echo(json.dumps(shown, indent=2))


def _write_atomically(path: Path, document: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".stix-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(document)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@partners.command("export-stix")
@click.option("--alert", "alert_id", type=int, help="The alert to report.")
@click.option("--case", "case_id", type=int, help="The case to report.")
@click.option("--partner", required=True, help="The receiving partner's party id.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file.")
def export_stix(alert_id: int | None, case_id: int | None, partner: str, output: str) -> None:
    """Write a STIX 2.1 bundle reporting an alert or a case to a partner, under the
    partner's sharing policy; it is checked with the OASIS validator first, and the
    export is recorded on the ledger."""
    from provenance.db import write_transaction
    from provenance.partners.service import (
        alert_subject,
        build_export,
        case_subject,
        record_export,
    )
    from webapp.runtime import current_runtime, db_session

    if (alert_id is None) == (case_id is None):
        raise click.UsageError("give --alert ID or --case ID")
    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        subject = (
            alert_subject(session, alert_id)
            if alert_id is not None
            else case_subject(session, case_id or 0)
        )
        built = build_export(
            session,
            subject,
            partner=partner,
            platform_secret=runtime.secrets.fingerprint_key,
        )
        session.rollback()  # end the read: the write below starts its own transaction
        with write_transaction(session):
            done = record_export(session, runtime.ledger, built, now=runtime.now())
            _write_atomically(Path(output), done.document)
    click.echo(
        f"wrote {output}: STIX 2.1 bundle of {done.subject.reference} for {partner} "
        f"(TLP:{done.policy.tlp.value.upper()}), sha256 {done.sha256}; the OASIS validator "
        f"found no errors ({len(done.warnings)} warnings); ledger entry {done.seq}"
    )


@partners.command("import")
@click.argument("notice_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--partner", required=True, help="The sending partner's party id.")
@click.option(
    "--signature",
    "signature_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The partner's detached Ed25519 signature over the file (raw or base64).",
)
@click.option(
    "--require-signature",
    is_flag=True,
    help="Refuse the file unless it is signed (the partner's policy may require it anyway).",
)
def import_notices(
    notice_file: str, partner: str, signature_file: str | None, require_signature: bool
) -> None:
    """Import a partner's notices (STIX 2.1 bundle or CSV), all or nothing; notices
    already in force are left out, so importing a file again changes nothing."""
    from provenance.db import write_transaction
    from provenance.partners.errors import NoticeTooLargeError
    from provenance.partners.notices import MAX_NOTICE_BYTES, apply_notices, read_notice_file
    from webapp.api_risk import live_risk
    from webapp.runtime import current_runtime, db_session

    path = Path(notice_file)
    if path.stat().st_size > MAX_NOTICE_BYTES:
        raise NoticeTooLargeError(
            f"a notice file is at most {MAX_NOTICE_BYTES:,} bytes; this one has "
            f"{path.stat().st_size:,}",
            field="file",
        )
    data = path.read_bytes()
    signature = None
    if signature_file is not None:
        with open(signature_file, "rb") as f:
            signature = f.read(MAX_SIGNATURE_FILE + 1)
    with _app().app_context():
        session, runtime, live = db_session(), current_runtime(), live_risk()
        checked = read_notice_file(
            session,
            partner=partner,
            data=data,
            signature=signature,
            fingerprint_key=runtime.secrets.fingerprint_key,
            now=runtime.now(),
            require_signature=require_signature,
        )
        session.rollback()  # end the read: the write below starts its own transaction
        with write_transaction(session):
            report = apply_notices(session, runtime.ledger, checked, now=runtime.now())
            live.entries_appended(session, report.statements)
    signed = f", signed with key {report.key_id}" if report.key_id else ", unsigned"
    if not report.added:
        click.echo(
            f"{report.notices} notices from {partner} ({report.format.value}{signed}): all "
            "already in force, nothing written"
        )
        return
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.by_kind.items()))
    click.echo(
        f"{report.notices} notices from {partner} ({report.format.value}{signed}): "
        f"{report.added} added ({kinds}), {report.skipped} already in force; ledger entries "
        f"{report.seqs[0]}..{report.seqs[-1]}; file sha256 {report.sha256}"
    )
