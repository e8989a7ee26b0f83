"""A stand-in for a live registry service, plugged in through CARDTRACE_REGISTRIES."""

from __future__ import annotations

from sqlalchemy.orm import Session

from merchant_onboarding.registries import (
    EnterpriseRecord,
    IcpFiling,
    Lookup,
    Registries,
    Source,
)

LIVE = Source("registry.example live service", None)
NOT_A_FACTORY = "a string, not a callable"


class _LiveService:
    def enterprise(self, credit_code: str) -> Lookup[EnterpriseRecord | None]:
        return Lookup(None, LIVE)

    def filings(self, icp_number: str, domain: str | None) -> Lookup[list[IcpFiling]]:
        return Lookup([], LIVE)


def outside_registries(session: Session) -> Registries:
    service = _LiveService()
    return Registries(enterprise=service, icp=service)
