"""Role changes on the ledger: a platform-signed ``account.role`` entry for each, so who
was given which powers, by whom and when, is tamper-evident like every other decision.

The entry names accounts by username (staff ids, as officer ids are elsewhere in the
log), never a person's name or contact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from provenance.catalog import Body, EntryCatalog, EntryType
from provenance.ledger import Ledger
from webapp.accounts.roles import Role

ROLE_TYPE = "account.role"


RoleName = Literal["merchant", "reviewer", "approver", "analyst", "auditor", "administrator"]


class AccountRoleBody(Body):
    account: str
    role: RoleName
    previous: RoleName
    by: str


def accounts_catalog() -> EntryCatalog:
    return EntryCatalog.of([EntryType(ROLE_TYPE, AccountRoleBody, None, platform_only=True)])


def record_role_change(
    session: Session,
    ledger: Ledger,
    *,
    account: str,
    role: Role,
    previous: Role,
    by: str,
    now: datetime,
) -> None:
    """Append the role change, signed by the platform, in the caller's transaction."""
    body = {"account": account, "role": role.value, "previous": previous.value, "by": by}
    ledger.append_as_platform(session, [ledger.statement(ROLE_TYPE, body, now=now)], now=now)
