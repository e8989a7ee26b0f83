"""Every mapped table, imported in one place for migrations and model checks."""

from __future__ import annotations

# Each import registers its tables on the shared metadata.
import merchant_onboarding.models
import merchant_onboarding.screening_models
import provenance.analysis.models
import provenance.cases.models
import provenance.codes
import provenance.instance
import provenance.ledger
import provenance.parties
import provenance.partners.models
import provenance.risk
import webapp.accounts.models
import webapp.task_runs
from provenance.db import Base

metadata = Base.metadata

__all__ = ["merchant_onboarding", "metadata", "provenance", "webapp"]
