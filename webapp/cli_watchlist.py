"""``cardtrace watchlist``: import watch lists and screen names against them. Thin."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click
from flask import Flask

from merchant_onboarding.screening import DEFAULT_LIMIT, DEFAULT_THRESHOLD


def _app() -> Flask:
    from webapp import create_app

    return create_app()


@click.group("watchlist")
def watchlist() -> None:
    """Watch lists: import (CSV or FollowTheMoney JSON) and screen names (docs/SCREENING.md)."""


@watchlist.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="The list's name; importing it again replaces it.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "ftm"]),
    required=True,
    help="csv (id,name,kind[,aliases,countries,note]) or ftm (one entity per line).",
)
@click.option("--source", required=True, help="Where the list came from (publisher, URL).")
@click.option(
    "--date",
    "extract_date",
    type=click.DateTime(["%Y-%m-%d"]),
    required=True,
    help="The extract's date.",
)
def watchlist_import(
    file: str, name: str, file_format: str, source: str, extract_date: datetime
) -> None:
    """Import a watch list, all or nothing, reporting bad lines by number."""
    from merchant_onboarding.errors import WatchlistImportError
    from merchant_onboarding.screening import import_watchlist
    from merchant_onboarding.watchlists import open_reader
    from provenance.db import write_transaction
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        runtime = current_runtime()
        session = db_session()
        with open(file, encoding="utf-8-sig", newline="") as f:
            reader = open_reader(file_format, f)
            try:
                with write_transaction(session):
                    result = import_watchlist(
                        session, name, source, extract_date.date(), reader, now=runtime.now()
                    )
            except WatchlistImportError as e:
                click.echo(
                    f"cardtrace: watch list refused, nothing was imported: {e.total} bad line(s)",
                    err=True,
                )
                for error in e.errors:
                    click.echo(f"  {error}", err=True)
                if e.total > len(e.errors):
                    click.echo(f"  ... and {e.total - len(e.errors)} more", err=True)
                sys.exit(1)
    info = result.watchlist
    replaced = f", replacing {result.replaced:,} entries" if result.replaced else ""
    click.echo(
        f"imported watch list {info.name}: {info.entries:,} entries, {info.names:,} names "
        f"(extract of {info.extract_date.isoformat()}){replaced}"
    )
    if reader.skipped:
        skipped = ", ".join(f"{schema} {n:,}" for schema, n in sorted(reader.skipped.items()))
        click.echo(f"skipped entities that are not persons or organisations: {skipped}")


@watchlist.command("screen")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["person", "entity", "unspecified"]),
    default="unspecified",
    show_default=True,
    help="person: listed persons; entity: listed companies and organisations; unspecified: both.",
)
@click.option(
    "--threshold",
    type=float,
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Lowest score shown, 50 to 100.",
)
@click.option("--list", "lists", multiple=True, help="Screen against this list (repeatable).")
@click.option("--limit", type=int, default=DEFAULT_LIMIT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
def watchlist_screen(
    name: str, kind: str, threshold: float, lists: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Screen NAME against the imported watch lists and print the hits, best first."""
    from merchant_onboarding.screening import list_watchlists, screen_name
    from webapp.runtime import db_session

    app = _app()
    with app.app_context():
        session = db_session()
        hits = screen_name(
            session, name, kind=kind, threshold=threshold, watchlists=lists or None, limit=limit
        )
        screened = [w for w in list_watchlists(session) if not lists or w.name in lists]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "hits": [hit.to_dict() for hit in hits],
                    "watchlists": [w.to_dict() for w in screened],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    against = ", ".join(f"{w.name} ({w.extract_date.isoformat()})" for w in screened)
    if not hits:
        click.echo(f"no hit at or above {threshold:g} in {against}")
        return
    click.echo(
        f"{len(hits)} hit(s) at or above {threshold:g} in {against}; an officer must clear each:"
    )
    for hit in hits:
        how = ", ".join(hit.normalisations) or "as written"
        click.echo(
            f"  {hit.score:5.1f}  {hit.watchlist}:{hit.entry_id}  {hit.kind}  "
            f"{hit.matched_name!r}  (listed as {hit.caption!r}; {how})"
        )


@watchlist.command("list")
def watchlist_list() -> None:
    """Show the imported watch lists."""
    from merchant_onboarding.screening import list_watchlists
    from webapp.runtime import db_session

    app = _app()
    with app.app_context():
        lists = list_watchlists(db_session())
    if not lists:
        click.echo("no watch list has been imported")
    for w in lists:
        click.echo(
            f"{w.name}: {w.entries:,} entries, {w.names:,} names, {w.format or '-'} extract of "
            f"{w.extract_date.isoformat()} from {w.source}, imported {w.imported_at.isoformat()}"
        )
