"""The ``cardtrace`` command line. Thin: parse, call one service, print."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from flask import Flask

from provenance.errors import CardtraceError
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
    """Run the development web server."""
    _app().run(host=host, port=port, debug=False)


def _exec_module(module: str, args: list[str]) -> None:
    """Replace this process with ``python -m module args`` (same interpreter and venv)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *args])  # noqa: S606


@cli.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Run database migrations before serving.",
)
def serve(bind: str, workers: int, migrate: bool) -> None:
    """Run the production web server (gunicorn), migrating the database first."""
    from webapp.database import make_engine, upgrade

    settings = load_settings()
    _app()  # refuse bad configuration before forking workers
    if migrate:
        upgrade(make_engine(settings.database_url))
    _exec_module(
        "gunicorn",
        ["--bind", bind, "--workers", str(workers), "--access-logfile", "-", "webapp.wsgi:app"],
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
def demo() -> None:
    """Walk through cardtrace on the embedded default (run 'cardtrace init' first)."""
    from webapp.demo import run_demo

    run_demo(_app(), click.echo)


def main() -> None:
    cli(prog_name="cardtrace")
