"""The risk engine's errors: bad sale context, bad region table, bad rules, four eyes."""

from __future__ import annotations

from provenance.errors import ConflictError, ProvenanceError, ValidationError


class RiskError(ProvenanceError):
    """Root of the risk engine's errors."""

    code = "risk-error"
    title = "Risk engine error"


class SaleContextError(ValidationError):
    """A sale context was refused before anything was read or written."""

    code = "bad-sale-context"
    title = "Malformed sale context"


class CardNumberRefusedError(SaleContextError):
    """A field carried what looks like a full card number (a Luhn-valid PAN)."""

    code = "card-number-refused"
    title = "Full card number refused"


class RegionTableError(ValidationError):
    """An IP-to-region table could not be imported; nothing was replaced."""

    code = "bad-region-table"
    title = "Malformed IP-to-region table"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class RuleError(ValidationError):
    """A rule version was refused; nothing was saved.

    Attributes:
        line, column: 1-based position of the error in the condition, when it has one.
    """

    code = "bad-rule"
    title = "Rule refused"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = "condition",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{message}{where}", code=code, field=field)
        self.line = line
        self.column = column


class RuleStateError(ConflictError):
    """The rule version cannot change that way (already approved, unknown, superseded)."""

    code = "bad-rule-state"
    title = "Rule version cannot change that way"


class FourEyesError(ConflictError):
    """The officer who wrote a rule version may not approve it."""

    code = "four-eyes"
    title = "A second officer must approve"


class StoreUnavailableError(RiskError):
    """The risk state store could not be reached."""

    code = "risk-store-unavailable"
    title = "Risk state unavailable"
