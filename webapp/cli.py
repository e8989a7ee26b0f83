"""The ``cardtrace`` command line. Thin: parse, call one service, print."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from flask import Flask

from provenance.errors import CardtraceError
from webapp.accounts.cli import accounts, apikeys_group
from webapp.cli_analysis import alerts, analyze
from webapp.cli_cases import cases
from webapp.cli_evidence import evidence
from webapp.cli_onboarding import onboarding
from webapp.cli_partners import partners
from webapp.cli_risk import risk
from webapp.cli_watchlist import watchlist
from webapp.config import load_settings


class CardtraceGroup(click.Group):
    """Turns every cardtrace error into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CardtraceError as e:
            click.echo(f"cardtrace: error: {e}", err=True)
            ctx.exit(2)


def _app() -> Flask:
    from webapp import create_app

    return create_app()


def _local_app() -> Flask:
    """The app for the development server on this machine, over plain http: a browser
    sends no Secure cookie over http, so only here do session cookies drop that flag."""
    from webapp import create_app

    return create_app({"SESSION_COOKIE_SECURE": False})


@click.group(cls=CardtraceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cardtrace")
def cli() -> None:
    """cardtrace: card-code provenance and supply-chain audit.

    Settings come from CARDTRACE_* environment variables (see README); with none set,
    everything lives in ./instance on SQLite and tasks run in-process.
    """


@cli.command()
def init() -> None:
    """Create the store, run migrations and generate the platform's secrets (idempotent)."""
    from webapp.bootstrap import initialise

    settings = load_settings()
    report = initialise(settings)
    click.echo(f"instance:  {report.instance_path}")
    if report.secrets_created:
        click.echo(
            f"secrets:   created {', '.join(report.secrets_created)} in {settings.key_dir} "
            "(owner-only)"
        )
    else:
        click.echo(f"secrets:   present in {settings.key_dir}, unchanged")
    db = settings.database_url_display()
    if report.schema_before != report.schema_after:
        click.echo(
            f"database:  {db} migrated {report.schema_before or 'empty'} -> {report.schema_after}"
        )
    else:
        click.echo(f"database:  {db} at {report.schema_after}, unchanged")
    state = "created" if report.identity_created else "unchanged"
    click.echo(
        f"log:       origin {report.identity.origin}, instance "
        f"{report.identity.instance_id} ({state})"
    )
    if not report.changed:
        click.echo("Nothing to do: this installation is already initialised.")


@cli.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    from webapp.database import make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url)
    before, after = upgrade(engine, revision)
    if before == after:
        click.echo(f"database schema at {after}, unchanged")
    else:
        click.echo(f"database schema migrated {before or 'empty'} -> {after}")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision and the newest one."""
    from webapp.database import check_connection, current_revision, head_revision, make_engine

    settings = load_settings()
    engine = make_engine(settings.database_url)
    check_connection(engine)
    current = current_revision(engine)
    head = head_revision()
    click.echo(f"current: {current or 'empty'}\nhead:    {head}")
    if current != head:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def health(as_json: bool) -> None:
    """Check the database and the broker; exit 1 if either is not ok."""
    from webapp.health import health_report

    app = _app()
    with app.app_context():
        report = health_report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for name, check in report["checks"].items():
            detail = check.get("detail", "")
            click.echo(f"{name:9} {check['status']:6} {detail}".rstrip())
    if report["status"] != "ok":
        sys.exit(1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Run the development web server, over plain http.

    Only here, and only on this machine (127.0.0.1, localhost, ::1), do session cookies
    drop their Secure flag: a browser sends no Secure cookie over http. Anywhere else,
    serve with TLS ('cardtrace serve' behind a TLS-terminating proxy).
    """
    local = host in ("127.0.0.1", "localhost", "::1")
    if not local:
        click.echo(
            f"warning: {host} is not this machine: session cookies stay Secure, so signing "
            "in needs https",
            err=True,
        )
    app = _local_app() if local else _app()
    app.run(host=host, port=port, debug=False)


def _exec_module(module: str, args: list[str]) -> None:
    """Replace this process with ``python -m module args`` (same interpreter and venv)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *args])  # noqa: S606


def default_workers() -> int:
    """Gunicorn's recommended number of sync workers: two per core, plus one."""
    return 2 * (os.cpu_count() or 1) + 1


@cli.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes [default: 2 per core, plus 1].",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Threads per worker; more than 1 runs gunicorn's gthread workers.",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Run database migrations before serving.",
)
def serve(bind: str, workers: int | None, threads: int, migrate: bool) -> None:
    """Run the production web server (gunicorn), migrating the database first.

    Sync workers by default, two per core plus one (gunicorn's recommendation): a verify
    request spends much of its time waiting for the database, so a core has work while
    another worker waits. Behind a buffering proxy (nginx), slow clients never hold a
    worker.
    """
    from webapp.database import make_engine, upgrade

    settings = load_settings()
    _app()  # refuse bad configuration before forking workers
    if migrate:
        upgrade(make_engine(settings.database_url))
    count = workers if workers is not None else default_workers()
    _exec_module(
        "gunicorn",
        [
            "--bind",
            bind,
            "--workers",
            str(count),
            "--threads",
            str(threads),
            "--access-logfile",
            "-",
            "webapp.wsgi:app",
        ],
    )


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (extra arguments go to 'celery worker')."""
    settings = load_settings()
    if settings.broker_url is None:
        raise click.ClickException(
            "CARDTRACE_BROKER_URL is not set: without a broker, tasks run in-process and "
            "no worker is needed"
        )
    _app()
    _exec_module("celery", ["-A", "webapp.worker", "worker", "--loglevel", "INFO", *celery_args])


@cli.command()
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run Celery beat, which schedules periodic tasks."""
    settings = load_settings()
    if settings.broker_url is None:
        raise click.ClickException("CARDTRACE_BROKER_URL is not set: beat needs a broker")
    _app()
    _exec_module(
        "celery",
        [
            "-A",
            "webapp.worker",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(settings.instance_path / "celerybeat-schedule"),
            *celery_args,
        ],
    )


@cli.command()
@click.option(
    "--scale",
    type=click.FloatRange(0.001, 20),
    default=1.0,
    show_default=True,
    help="Size of the supply chain: 1.0 is about 200,000 codes.",
)
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Then serve the application on 127.0.0.1 until Ctrl-C "
    "[default: when standard output is a terminal].",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
def demo(scale: float, serve: bool | None, port: int) -> None:
    """Walk through cardtrace on the embedded default (run 'cardtrace init' first), then
    serve the application with one demo account per role printed."""
    from webapp.demo import run_demo

    if serve is None:
        serve = sys.stdout.isatty()
    app = _local_app() if serve else _app()
    if not run_demo(app, click.echo, scale=scale) or not serve:
        return
    click.echo(f"\nOpen http://127.0.0.1:{port}/sign-in and sign in with an account above.")
    click.echo("Ctrl-C stops the server.")
    app.run(host="127.0.0.1", port=port, debug=False)


def main() -> None:
    cli(prog_name="cardtrace")


# --- ledger ---------------------------------------------------------------------------


@cli.group()
def ledger() -> None:
    """The signed ledger: checkpoints, bundles, offline verification, audit."""


@ledger.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign the current tree head and print the checkpoint note."""

    from provenance.db import write_transaction
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        session = db_session()
        with write_transaction(session):
            checkpoint = current_runtime().ledger.issue_checkpoint(
                session, now=current_runtime().now()
            )
        click.echo(checkpoint.note, nl=False)


@ledger.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="Bundle file to write.",
)
@click.option(
    "--from",
    "first",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="First entry (sequence number) to include.",
)
@click.option(
    "--to",
    "stop",
    type=click.IntRange(min=0),
    default=None,
    help="Stop before this entry (default: the checkpoint's size).",
)
def ledger_export(output: str, first: int, stop: int | None) -> None:
    """Write a self-contained bundle that `cardtrace ledger verify` checks offline.

    The bundle is proven against the latest checkpoint; a new checkpoint is issued first
    if the latest one does not cover the log.
    """

    from provenance.bundle import export_bundle
    from provenance.db import write_transaction
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        session = db_session()
        ledger_service = current_runtime().ledger
        with write_transaction(session):
            checkpoint = ledger_service.issue_checkpoint(session, now=current_runtime().now())
        end = checkpoint.size if stop is None else stop
        tmp = f"{output}.partial"
        with (
            click.progressbar(
                length=max(end - first, 0), label="exporting", file=sys.stderr
            ) as bar,
            open(tmp, "wb") as out,
        ):
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                bar.update(count - done)
                done = count

            summary = export_bundle(
                session,
                ledger_service,
                out,
                checkpoint,
                first=first,
                stop=stop,
                progress=advance,
            )
        os.replace(tmp, output)
    click.echo(
        f"wrote {output}: entries {summary.first}..{summary.stop - 1} of {summary.tree_size}, "
        f"{summary.context_entries} key entries as context"
    )
    click.echo(f"verify it with: cardtrace ledger verify {output} --platform-key KEY")


def _trusted_key(value: str | None) -> bytes | None:
    """Read a platform key: a PEM public key file, a C2SP verifier key, or raw base64."""
    import base64
    import binascii
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from provenance.checkpoint import CheckpointError, parse_verifier_key

    if value is None:
        return None
    text = value
    path = Path(value)
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as e:
            raise click.BadParameter("not a PEM public key", param_hint="--platform-key") from e
        if not isinstance(key, Ed25519PublicKey):
            raise click.BadParameter("not an Ed25519 key", param_hint="--platform-key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if "+" in text and not text.endswith("="):
        try:
            return parse_verifier_key(text).public_key
        except CheckpointError as e:
            raise click.BadParameter(str(e), param_hint="--platform-key") from e
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise click.BadParameter(
            "expected a PEM file, a verifier key (name+id+key) or base64",
            param_hint="--platform-key",
        ) from e
    if len(raw) != 32:
        raise click.BadParameter("a raw Ed25519 key is 32 bytes", param_hint="--platform-key")
    return raw


@ledger.command("verify")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--platform-key",
    help="The platform's public key from a source you trust: "
    "a PEM file, a verifier key (origin+id+key) or base64.",
)
@click.option(
    "--threads",
    type=click.IntRange(0, 64),
    default=2,
    show_default=True,
    help="Signature-checking threads working while the bundle is read; 0 checks on one core.",
)
def ledger_verify(bundle: str, platform_key: str | None, threads: int) -> None:
    """Verify a bundle offline: signatures, keys, chain, tree and checkpoint.

    Needs no database and no network. Exits 1 naming the first bad entry.
    """
    from provenance.bundle import verify_bundle
    from provenance.verify import VerificationError
    from webapp.catalog import build_catalog

    trusted = _trusted_key(platform_key)
    if trusted is None:
        click.echo(
            "warning: no --platform-key given: the key inside the bundle is trusted, "
            "which proves only that the bundle is self-consistent",
            err=True,
        )
    try:
        with open(bundle, "rb") as stream:
            report = verify_bundle(stream, build_catalog(), trusted_key=trusted, threads=threads)
    except VerificationError as e:
        click.echo(f"FAILED: {e}", err=True)
        sys.exit(1)
    click.echo(
        f"OK: entries {report.first}..{report.stop - 1} of {report.origin} verified against "
        f"its signed checkpoint of size {report.tree_size} (root {report.root.hex()})"
    )


@ledger.command("consistency")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option("--platform-key", required=True, help="The platform's public key (see verify).")
@click.option(
    "--proof",
    "proof_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A consistency proof saved from GET /api/v1/ledger/proofs/consistency.",
)
@click.option("--server", help="Base URL of the cardtrace server to fetch the proof from.")
def ledger_consistency(
    old: str, new: str, platform_key: str, proof_file: str | None, server: str | None
) -> None:
    """Check offline that checkpoint NEW extends checkpoint OLD (no rewritten history).

    OLD and NEW are signed checkpoint notes as served by GET /api/v1/ledger/checkpoint.
    """
    from provenance.verify import VerificationError
    from webapp.consistency import check_consistency, fetch_proof, load_proof

    key = _trusted_key(platform_key)
    assert key is not None
    if (proof_file is None) == (server is None):
        raise click.UsageError("give exactly one of --proof FILE or --server URL")
    with open(old, "rb") as f:
        old_note = f.read()
    with open(new, "rb") as f:
        new_note = f.read()
    try:
        result = check_consistency(
            old_note,
            new_note,
            key,
            lambda a, b: (
                load_proof(proof_file, a, b) if proof_file else fetch_proof(server or "", a, b)
            ),
        )
    except VerificationError as e:
        click.echo(f"FAILED: {e}", err=True)
        sys.exit(1)
    click.echo(str(result))


@ledger.command("audit")
def ledger_audit() -> None:
    """Check the live database: every record, signature, chain link, tree node, checkpoint."""
    from provenance.verify import VerificationError
    from webapp.auditing import run_audit

    app = _app()
    with app.app_context():
        try:
            with click.progressbar(length=1, label="auditing", file=sys.stderr) as bar:
                report = run_audit(lambda done, total: _progress(bar, done, total))
        except VerificationError as e:
            click.echo(f"FAILED: {e}", err=True)
            sys.exit(1)
    click.echo(
        f"OK: {report.size} entries, {report.nodes_checked} tree nodes and "
        f"{report.checkpoints_checked} checkpoints verified (root {report.root.hex()})"
    )


def _progress(bar: Any, done: int, total: int) -> None:
    bar.length = max(total, 1)
    bar.update(done - bar.pos)


# --- codes ----------------------------------------------------------------------------


@cli.group()
def codes() -> None:
    """Card codes: import issuance, transfers and sales; verify before sale."""


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return max(sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1, 0)


def _load_party_keys(specs: tuple[str, ...]) -> dict[str, Any]:
    from pathlib import Path

    from webapp.config import load_signing_key

    keys: dict[str, Any] = {}
    for spec in specs:
        party, sep, path = spec.partition("=")
        if not sep or not party or not path:
            raise click.BadParameter(f"{spec!r}: expected PARTY=KEYFILE", param_hint="--key")
        keys[party] = load_signing_key(Path(path), setting="--key")
    return keys


# The tables a bulk import fills and verify reads.
_IMPORTED_TABLES = ("code", "code_event", "code_batch", "ledger_entry", "merkle_node")


def _analyze(engine: Any) -> None:
    """After a bulk import on PostgreSQL, refresh the planner's statistics at once.

    Without them, verify plans for the tables as they were before the import: it then
    scans code_event in full for each list of codes (8 s instead of 2 s for 10,000 codes
    after a million were imported), until autovacuum gets to the tables, if it is on.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {', '.join(_IMPORTED_TABLES)}")


@codes.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", type=click.Choice(["issuance", "transfers", "sales"]), required=True)
@click.option(
    "--key",
    "key_specs",
    multiple=True,
    metavar="PARTY=KEYFILE",
    help="Sign as PARTY with its Ed25519 PEM key (repeatable); parties without a "
    "key are signed for by the platform.",
)
@click.option(
    "--expires-at",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Issuance: the batches' expiry date (UTC midnight).",
)
def codes_import(csv_file: str, kind: str, key_specs: tuple[str, ...], expires_at: Any) -> None:
    """Import a CSV file, all or nothing, reporting bad lines by number.

    \b
    issuance:  batch,product,serial,pin
    transfers: from,to, and fingerprint or issuer,product,serial,pin
    sales:     merchant,buyer,amount,currency, the code as above, and optionally
               instrument,payment_ref,device,ip
    """
    from datetime import UTC

    from provenance import imports
    from provenance.db import write_transaction
    from webapp.runtime import current_runtime, db_session

    app = _app()
    keys = _load_party_keys(key_specs)
    total = _count_lines(csv_file)
    with app.app_context():
        runtime = current_runtime()
        session = db_session()
        on_append = None
        if kind == "sales":
            from webapp.api_risk import live_risk

            on_append = live_risk().entries_appended
        with open(csv_file, encoding="utf-8-sig", newline="") as f:
            try:
                with click.progressbar(
                    length=total, label=f"importing {kind}", file=sys.stderr
                ) as bar:
                    done = 0

                    def advance(rows: int) -> None:
                        nonlocal done
                        bar.update(rows - done)
                        done = rows

                    with write_transaction(session):
                        report = imports.import_csv(
                            session,
                            runtime.ledger,
                            kind,
                            f,
                            fingerprint_key=runtime.secrets.fingerprint_key,
                            signers=imports.Signers(runtime.ledger.platform, keys),
                            now=runtime.now(),
                            expires_at=(
                                expires_at.replace(tzinfo=UTC) if expires_at is not None else None
                            ),
                            progress=advance,
                            on_append=on_append,
                        )
                _analyze(runtime.engine)
            except imports.ImportFailedError as e:
                click.echo(
                    f"cardtrace: import refused, nothing was imported: {e.total} bad line(s)",
                    err=True,
                )
                for error in e.errors:
                    click.echo(f"  {error}", err=True)
                if e.total > len(e.errors):
                    click.echo(f"  ... and {e.total - len(e.errors)} more", err=True)
                sys.exit(1)
    batches = f", batches {', '.join(report.batches)}" if report.batches else ""
    click.echo(f"imported {report.rows} rows as {report.entries} ledger entries{batches}")


@codes.command("verify")
@click.option("--merchant", required=True, help="The selling merchant's party id.")
@click.option("--fingerprint", help="The code's fingerprint (hex).")
@click.option("--issuer")
@click.option("--product")
@click.option("--serial")
@click.option(
    "--context",
    "context_json",
    help="The sale's context as JSON, or @FILE (buyer, instrument, device, ip, region, "
    "amount, channel; docs/RISK.md): the risk rules then run too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full answer as JSON.")
def codes_verify(
    merchant: str,
    fingerprint: str | None,
    issuer: str | None,
    product: str | None,
    serial: str | None,
    context_json: str | None,
    as_json: bool,
) -> None:
    """Verify a code before sale. With --serial, the PIN is read from standard input (or
    asked for, hidden), never from the command line."""
    from provenance.verdict import CodeQuery
    from webapp.api_codes import decode_fingerprint, read_context, verify_for_sale
    from webapp.runtime import current_runtime

    app = _app()
    with app.app_context():
        context = read_context(context_json)
        runtime = current_runtime()
        if fingerprint is not None:
            query = CodeQuery(decode_fingerprint(fingerprint))
        elif issuer and product and serial:
            pin = (
                sys.stdin.readline().strip()
                if not sys.stdin.isatty()
                else click.prompt("PIN", hide_input=True)
            )
            query = CodeQuery.from_raw(
                runtime.secrets.fingerprint_key, issuer, product, serial, pin
            )
        else:
            raise click.UsageError("give --fingerprint, or --issuer, --product and --serial")
        answer = verify_for_sale([query], merchant, [context])
    document = answer.to_json(single=True)
    if as_json:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    verdict = answer.result.verdicts[0]
    click.echo(f"{document['decision'].upper()}  code {verdict.fingerprint.hex()}")
    for reason in document["reasons"]:
        click.echo(f"  - {reason['code']}: {reason['message']} / {reason['message_zh']}")
    for reason in document.get("risk", {}).get("shadow", []):
        click.echo(f"  (shadow) {reason['code']}: {reason['message']}")
    for step in verdict.custody:
        signer = "" if step.signer == step.actor else f" (signed by {step.signer})"
        click.echo(f"  #{step.seq} {step.time:%Y-%m-%d %H:%M} {step.type} by {step.actor}{signer}")


cli.add_command(watchlist)
cli.add_command(onboarding)
cli.add_command(risk)
cli.add_command(analyze)
cli.add_command(alerts)
cli.add_command(cases)
cli.add_command(evidence)
cli.add_command(partners)
cli.add_command(accounts)
cli.add_command(apikeys_group)
