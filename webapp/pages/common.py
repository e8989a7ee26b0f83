"""What every page module shares: who is signed in, as the domain services name them."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, render_template
from flask_babel import lazy_gettext as _l

from merchant_onboarding.officers import Actor, ActorKind
from merchant_onboarding.officers import Role as OfficerRole
from webapp.accounts.errors import ForbiddenError
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role
from webapp.accounts.web import current_session

STAFF = tuple(r for r in Role if r.is_staff)
# Staff who read the domain's records (the administrator manages accounts and keys).
READERS = (Role.REVIEWER, Role.APPROVER, Role.ANALYST, Role.AUDITOR)
OFFICERS = (Role.REVIEWER, Role.APPROVER)

_OFFICER_ROLES = {
    Role.REVIEWER: frozenset({OfficerRole.REVIEWER}),
    Role.APPROVER: frozenset({OfficerRole.APPROVER}),
}


def current_user() -> AccountUser:
    """The signed-in user (the view is behind ``login_required``)."""
    live = current_session()
    if live is None:
        raise ForbiddenError("sign in first")
    return live.user


def current_role() -> Role:
    return Role(current_user().role)


def officer_actor() -> Actor:
    """The signed-in staff member as the onboarding and analysis services name an officer:
    the username is the officer id, the role gives the onboarding roles (a reviewer
    recommends, an approver decides; other staff roles hold neither)."""
    user = current_user()
    role = Role(user.role)
    if not role.is_staff:
        raise ForbiddenError("only staff may act here")
    return Actor(ActorKind.OFFICER, user.username, _OFFICER_ROLES.get(role, frozenset()))


def merchant_party() -> str:
    """The party a signed-in merchant acts for.

    Raises:
        ForbiddenError: the user is no merchant, or a merchant account without a party.
    """
    user = current_user()
    if Role(user.role) is not Role.MERCHANT or not user.party:
        raise ForbiddenError("only a merchant account may open this page")
    return user.party


def page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a page (HTML, ``status``)."""
    return Response(render_template(template, **context), status=status, mimetype="text/html")


# The navigation: (endpoint, label, roles). A link shows when the endpoint exists and the
# signed-in role may open it.
NAVIGATION: tuple[tuple[str, Any, tuple[Role, ...]], ...] = (
    ("pages_dashboard.dashboard", _l("Dashboard"), STAFF),
    ("pages_applications.queue", _l("Applications"), READERS),
    ("pages_merchant.overview", _l("My applications"), (Role.MERCHANT,)),
    ("pages_codes.lookup", _l("Code lookup"), (Role.MERCHANT, *READERS)),
    ("pages_alerts.alerts", _l("Alerts"), READERS),
    ("pages_rules.rules", _l("Risk rules"), (Role.ANALYST, Role.APPROVER, Role.AUDITOR)),
    ("pages_ledger.entries", _l("Ledger"), STAFF),
    ("pages_tasks.analysis", _l("Analysis runs"), (Role.ANALYST,)),
    ("pages_tasks.evidence", _l("Evidence exports"), (Role.ANALYST,)),
    ("pages_imports.imports", _l("Code imports"), (Role.ADMINISTRATOR,)),
)


def navigation() -> list[tuple[str, str]]:
    """The (endpoint, label) links the signed-in user may follow, in order."""
    live = current_session()
    if live is None:
        return []
    role = Role(live.user.role)
    views = current_app.view_functions
    return [(e, str(label)) for e, label, roles in NAVIGATION if role in roles and e in views]
