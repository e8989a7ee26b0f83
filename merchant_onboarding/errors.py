"""Errors of the merchant onboarding package."""

from __future__ import annotations

from provenance.errors import CardtraceError


class OnboardingError(CardtraceError):
    """Root of the onboarding package's errors."""

    code = "onboarding-error"
    title = "Onboarding error"
