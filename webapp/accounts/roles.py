"""Roles of web accounts and the API scopes (operations) a credential may carry."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    MERCHANT = "merchant"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"

    @property
    def is_staff(self) -> bool:
        """Staff act on other parties' data; every staff account needs a second factor."""
        return self is not Role.MERCHANT


class Scope(StrEnum):
    """Operations an API key (or a signed-in role) may perform on the JSON API.

    New operations are added here; a key is created with a subset, and a request for an
    operation outside it is refused with ``scope-denied``.
    """

    CODES_VERIFY = "codes:verify"
    CODES_IMPORT = "codes:import"
    ENTRIES_APPEND = "entries:append"
    PARTNERS_NOTICE = "partners:notice"
    LEDGER_READ = "ledger:read"
    ALERTS_READ = "alerts:read"


# What a signed-in user of each role may do through the JSON API (api_actor).
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.MERCHANT: frozenset({Scope.CODES_VERIFY, Scope.CODES_IMPORT, Scope.ENTRIES_APPEND}),
    Role.REVIEWER: frozenset({Scope.CODES_VERIFY, Scope.LEDGER_READ, Scope.ALERTS_READ}),
    Role.APPROVER: frozenset({Scope.CODES_VERIFY, Scope.LEDGER_READ, Scope.ALERTS_READ}),
    Role.ANALYST: frozenset(
        {Scope.CODES_VERIFY, Scope.LEDGER_READ, Scope.ALERTS_READ, Scope.PARTNERS_NOTICE}
    ),
    Role.AUDITOR: frozenset({Scope.CODES_VERIFY, Scope.LEDGER_READ, Scope.ALERTS_READ}),
    Role.ADMINISTRATOR: frozenset({Scope.LEDGER_READ}),
}


def parse_scopes(raw: str | list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """``"codes:verify entries:append"`` (or a list) -> scopes.

    Raises:
        ValueError: naming the first unknown scope.
    """
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    scopes: set[Scope] = set()
    for item in items:
        try:
            scopes.add(Scope(item.strip()))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {item.strip()!r} (known: {known})") from None
    return frozenset(scopes)
