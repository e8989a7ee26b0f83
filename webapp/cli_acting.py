"""``--as USERNAME``: the account a command line step acts as (only click here, so that
every command group may import it without loading the web app).

The command line runs on the server, with the database's credentials; it names the staff
account that acts, and that account's current role decides what it may do
(:func:`webapp.officer_auth.cli_actor`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

AS_VARIABLE = "CARDTRACE_AS"
_AS_META = "cardtrace.acting_as"

F = TypeVar("F", bound=Callable[..., Any])


def acting_account(command: F) -> F:
    """Give a command ``--as USERNAME`` (or ``CARDTRACE_AS``): the account it acts as."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value:
            ctx.meta[_AS_META] = value.strip()
        return value

    option = click.option(
        "--as",
        "acting_as",
        envvar=AS_VARIABLE,
        metavar="USERNAME",
        expose_value=False,
        callback=remember,
        help=f"The staff account this acts as (or {AS_VARIABLE}).",
    )
    return option(command)


def acting_username() -> str | None:
    """The username ``--as`` named for the running command, if any."""
    ctx = click.get_current_context(silent=True)
    name = ctx.meta.get(_AS_META) if ctx is not None else None
    return name if isinstance(name, str) and name else None
