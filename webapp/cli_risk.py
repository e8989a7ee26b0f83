"""``cardtrace risk``: rules and their versions, four-eyes approval, backtests, the
IP-to-region table and rebuilding the risk state from the ledger. Thin.

Proposing and approving act as the staff account named by ``--as USERNAME`` (or
``CARDTRACE_AS``): an analyst or approver proposes, a different approver approves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import Flask

from webapp.cli_acting import acting_account
from webapp.officer_auth import cli_actor


def _app() -> Flask:
    from webapp import create_app

    return create_app()


def _officer(session: Any, role: str | None = None) -> str:
    from merchant_onboarding.officers import Role

    actor = cli_actor(session, "risk_api", "manage risk rules")
    if role is not None:
        actor.require_role(Role(role), "approve a risk rule")
    return actor.id


def _day(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


@click.group("risk")
def risk() -> None:
    """Real-time risk at the moment of sale: rules, backtests, regions (docs/RISK.md)."""


@risk.group("rules")
def rules() -> None:
    """Risk rules: list, check, propose a version, approve one."""


@rules.command("list")
@click.option("--json", "as_json", is_flag=True)
def rules_list(as_json: bool) -> None:
    """The rules in force and the versions waiting for approval."""
    from provenance.risk.rules import active_specs, versions
    from webapp.api_risk import spec_json, version_json
    from webapp.runtime import db_session

    with _app().app_context():
        session = db_session()
        active = [spec_json(s) for s in active_specs(session)]
        pending = [version_json(v) for v in versions(session) if v.status == "pending"]
    if as_json:
        click.echo(json.dumps({"rules": active, "pending": pending}, ensure_ascii=False, indent=2))
        return
    for spec in active:
        click.echo(
            f"{spec['rule']:28} v{spec['version']:<3} {spec['action']:6} {spec['mode']:7} "
            f"{spec['condition']}"
        )
    for row in pending:
        click.echo(f"pending: {row['rule']} v{row['version']} by {row['author']}")


@rules.command("check")
@click.argument("condition")
def rules_check(condition: str) -> None:
    """Check a condition (syntax, features, types) without saving anything."""
    from provenance.risk.language import check_condition

    checked = check_condition(condition)
    click.echo(f"ok: reads {', '.join(sorted(checked.features)) or 'no feature'}")


@rules.command("propose")
@acting_account
@click.option("--rule", required=True, help="The rule's id, e.g. burst-buyer.")
@click.option("--condition", required=True, help="A CEL condition over the features.")
@click.option("--action", required=True, help="review or block.")
@click.option("--reason", required=True, help="The reason code the verdict carries.")
@click.option("--en", required=True, help="The reason in English.")
@click.option("--zh", required=True, help="The reason in Chinese.")
@click.option("--mode", default="enforce", show_default=True, help="enforce, shadow or off.")
def rules_propose(**fields: str) -> None:
    """Propose a new version of a rule; a second officer must approve it."""
    from provenance.db import write_transaction
    from provenance.risk.rules import propose_rule
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        officer = _officer(session)
        with write_transaction(session):
            row = propose_rule(
                session, runtime.ledger, dict(fields), officer=officer, now=runtime.now()
            )
            click.echo(
                f"rule {row.rule} version {row.version} proposed by {officer}; awaiting approval"
            )


@rules.command("approve")
@acting_account
@click.argument("rule")
@click.argument("version", type=int)
def rules_approve(rule: str, version: int) -> None:
    """Approve a pending version (an approver other than its author)."""
    from provenance.db import write_transaction
    from provenance.risk.rules import approve_rule
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        officer = _officer(session, "approver")
        with write_transaction(session):
            approve_rule(session, runtime.ledger, rule, version, officer=officer, now=runtime.now())
    click.echo(f"rule {rule} version {version} approved by {officer}; it is now in force")


@risk.command("backtest")
@click.argument("rule")
@click.argument("version", type=int)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Day after the last (UTC).")
@click.option("--json", "as_json", is_flag=True)
def backtest_command(
    rule: str, version: int, since: datetime | None, until: datetime | None, as_json: bool
) -> None:
    """Replay the ledger's sales with VERSION of RULE in place of the current one."""
    from provenance.errors import NotFoundError
    from provenance.risk import backtest, ledger_sales, load_rules
    from provenance.risk.rules import DEFAULT_RULES, get_version
    from webapp.runtime import db_session

    with _app().app_context():
        session = db_session()
        current = load_rules(session)
        if version == 0:
            spec = next((s for s in DEFAULT_RULES if s.id == rule), None)
            if spec is None:
                raise NotFoundError(f"no shipped rule {rule}")
        else:
            spec = get_version(session, rule, version).spec()
        rows = backtest(
            ledger_sales(session, since=_day(since), until=_day(until)),
            current=current,
            candidate=current.replace(spec),
        )
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    click.echo(
        "day         merchant              sales  blocked now  would block  newly  no longer"
    )
    for row in rows:
        click.echo(
            f"{row.day}  {row.merchant:20} {row.sales:6} {row.blocked_current:12} "
            f"{row.blocked_candidate:12} {row.newly_blocked:6} {row.no_longer_blocked:10}"
        )


@risk.group("regions")
def regions() -> None:
    """The IP-to-region table (CSV of CIDR ranges)."""


@regions.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
def regions_import(csv_file: Any) -> None:
    """Replace the table with CSV_FILE (header network,region); all or nothing."""
    from provenance.db import write_transaction
    from provenance.risk.regions import import_region_table
    from webapp.runtime import db_session

    with _app().app_context():
        session = db_session()
        with write_transaction(session):
            count = import_region_table(session, csv_file)
    click.echo(f"{count} ranges imported")


@risk.command("rebuild")
@click.option("--days", default=180, show_default=True, help="How far back to replay sales.")
@click.option(
    "--redis-url",
    help="Rebuild the Redis state at this URL (default: CARDTRACE_REDIS_URL if set, else "
    "the local store).",
)
def rebuild(days: int, redis_url: str | None) -> None:
    """Rebuild the risk state from the ledger's sale entries."""
    from provenance.db import write_transaction
    from provenance.risk import SqlStore, rebuild_state
    from provenance.risk.store import StateStore
    from webapp.runtime import current_runtime, db_session

    with _app().app_context():
        session, runtime = db_session(), current_runtime()
        since = runtime.now() - timedelta(days=days)
        store: StateStore
        redis_url = redis_url or runtime.settings.redis_url
        if redis_url:
            import redis

            from provenance.risk.redis_store import RedisStore

            store = RedisStore(redis.Redis.from_url(redis_url))
            count = rebuild_state(session, store, since=since)
        else:
            with write_transaction(session):
                count = rebuild_state(session, SqlStore(session), since=since)
    click.echo(f"risk state rebuilt from {count} sales")
