"""``cardtrace evidence export|verify``: evidence packages for law enforcement. Thin.

``export`` runs as the staff account named by ``--as USERNAME`` (or ``CARDTRACE_AS``) and
records the export on the ledger (chain of custody). ``verify``
needs no database, no network and no secrets: only the package and a public key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from webapp.cli_acting import acting_account

if TYPE_CHECKING:
    # Only for types: the command line starts without loading the PDF and bag libraries.
    from sqlalchemy.orm import Session

    from provenance.evidence import Package
    from webapp.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Exported:
    package: Package
    custody_seq: int


def export_evidence(
    session: Session,
    runtime: Runtime,
    case_id: int,
    out_dir: Path,
    *,
    officer: str,
    recipient: str,
    language: str,
) -> Exported:
    """Issue a checkpoint covering the log, write the package (reading only), then record
    its export: three steps, so the ledger is not held while the PDF is drawn.

    Raises:
        CardtraceError: the case, the output directory or the input is refused.
    """
    from provenance.db import write_transaction
    from provenance.evidence import build_package, find_cjk_font, record_export
    from webapp.api_cases import attachment_store

    ledger = runtime.ledger
    with write_transaction(session):
        ledger.issue_checkpoint(session, now=runtime.now())
    with write_transaction(session):
        # Read in a transaction of its own: one consistent view of the log and the case.
        package = build_package(
            session,
            ledger,
            case_id,
            out_dir,
            exported_by=officer,
            recipient=recipient,
            language=language,
            now=runtime.now(),
            attachments=attachment_store(),
            cjk_font=find_cjk_font(),
        )
    with write_transaction(session):
        seq = record_export(session, ledger, package, exported_by=officer, now=runtime.now())
    return Exported(package, seq)


@click.group("evidence")
def evidence() -> None:
    """Evidence packages: export a case, verify a package offline."""


@evidence.command("export")
@acting_account
@click.argument("case_id", type=int)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new (or empty) directory for the package.",
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option(
    "--for",
    "recipient",
    default="law enforcement",
    show_default=True,
    help="Who the package is for (recorded on the ledger).",
)
def evidence_export(case_id: int, output: Path, lang: str, recipient: str) -> None:
    """Write the evidence package of a case as a signed BagIt bag, and record the export."""
    from webapp.cli import _app
    from webapp.officer_auth import cli_actor
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        actor = cli_actor(session, "cases_api", "export evidence")
        done = export_evidence(
            session, runtime, case_id, output, officer=actor.id, recipient=recipient, language=lang
        )
        pub = runtime.settings.key_dir / "log-signing.pub.pem"
    package = done.package
    for notice in package.notices:
        click.echo(f"note: {notice}", err=True)
    click.echo(
        f"wrote {package.path}: case {package.case_id}, {package.entries} ledger entries proven "
        f"against checkpoint {package.checkpoint_size} (newest {package.newest_size}), "
        f"report in {package.language}"
    )
    click.echo(
        f"package sha256 {package.package_sha256}; export recorded in entry {done.custody_seq}"
    )
    click.echo(f"verify it with: cardtrace evidence verify {package.path} --platform-key {pub}")


@evidence.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--platform-key",
    help="The platform's public key from a source you trust: "
    "a PEM file, a verifier key (origin+id+key) or base64.",
)
def evidence_verify(directory: Path, platform_key: str | None) -> None:
    """Check a package offline: files and hashes, the signature, every entry's signature,
    chain and inclusion, the checkpoint and the consistency proof. Exits 1 naming the
    first file that fails."""
    from provenance.evidence import verify_package
    from provenance.verify import VerificationError
    from webapp.catalog import build_catalog
    from webapp.cli import _trusted_key

    trusted = _trusted_key(platform_key)
    if trusted is None:
        click.echo(
            "warning: no --platform-key given: the key inside the package is trusted, "
            "which proves only that the package is self-consistent",
            err=True,
        )
    try:
        report = verify_package(directory, build_catalog(), trusted_key=trusted)
    except VerificationError as e:
        click.echo(f"FAILED: {e}", err=True)
        sys.exit(1)
    bundle = report.bundle
    click.echo(
        f"OK: {report.case}: {report.files} files, {report.entries} ledger entries of "
        f"{bundle.origin} verified against its signed checkpoint of size {bundle.tree_size} "
        f"(root {bundle.root.hex()}), consistent with the newest of size {report.newest_size}"
    )
