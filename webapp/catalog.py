"""The entry catalog the application runs with: every package's entry types."""

from __future__ import annotations

from functools import cache

from merchant_onboarding.workflow import onboarding_catalog
from provenance.analysis.alerts import analysis_catalog
from provenance.cases import cases_catalog
from provenance.catalog import EntryCatalog
from provenance.core import core_catalog
from provenance.partners.entries import partners_catalog
from provenance.risk.rules import risk_catalog


@cache
def build_catalog() -> EntryCatalog:
    # Imported here: the accounts package imports the runtime, which imports this module.
    from webapp.accounts.ledger import accounts_catalog

    return (
        core_catalog()
        .merge(onboarding_catalog())
        .merge(risk_catalog())
        .merge(analysis_catalog())
        .merge(partners_catalog())
        .merge(cases_catalog())
        .merge(accounts_catalog())
    )
