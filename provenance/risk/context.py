"""The sale's context as verify-before-sale receives it, and its pseudonymised keys.

A context crosses a trust boundary, so it is a pydantic model that refuses unknown
fields. The buyer and the payment instrument arrive already pseudonymised by the caller
(keyed hashes); the device fingerprint and the IP address arrive in clear and are turned
into keyed pseudonyms (:func:`provenance.fingerprints.pseudonym`, kinds ``device`` and
``ip``, the same as in ``code.sale`` entries) before anything is stored. A full card
number anywhere in the context is refused with ``card-number-refused``; the message never
repeats it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, NewType, Self

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from stdnum import luhn

from provenance.fingerprints import pseudonym
from provenance.risk.errors import CardNumberRefusedError, SaleContextError

Pseudonym = NewType("Pseudonym", str)
AMOUNT_SCALE = 10_000  # amounts are kept as integers of 1/10 000 of the currency unit
MAX_DEVICE = 256


class Channel(StrEnum):
    WEB = "web"
    APP = "app"
    API = "api"
    POS = "pos"  # a shop's point-of-sale terminal
    OTHER = "other"


def _looks_like_pan(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return digits.isdigit() and 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def _refuse_pans(value: Any, where: str) -> None:
    if isinstance(value, str):
        if _looks_like_pan(value):
            raise CardNumberRefusedError(
                f"{where}: full card numbers are refused; send the instrument's keyed "
                "fingerprint with its BIN and last four digits",
                field=where,
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key != "amount":
                _refuse_pans(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_pans(item, f"{where}.{index}")


_PSEUDONYM_RE = re.compile(r"[0-9a-f]{32}")


def _pseudonym(value: str) -> str:
    if _PSEUDONYM_RE.fullmatch(value) is None:
        raise ValueError("must be a 32-hex-digit keyed pseudonym")
    return value


def _device(value: str) -> str:
    if not value.strip() or len(value) > MAX_DEVICE or not value.isprintable():
        raise ValueError(f"must be 1-{MAX_DEVICE} printable characters")
    return value


def _amount(value: str) -> str:
    # One spelling per amount, as in code.sale bodies: no sign, exponent or leading zeros.
    head, _, tail = value.partition(".")
    if (
        not head.isascii()
        or not head.isdigit()
        or (len(head) > 1 and head[0] == "0")
        or len(head) > 15
        or ("." in value and not (1 <= len(tail) <= 4 and tail.isascii() and tail.isdigit()))
    ):
        raise ValueError("must be a non-negative amount written like '100.00' (at most 4 decimals)")
    return value


def _ip(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an IPv4 or IPv6 address")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


PseudonymStr = Annotated[str, AfterValidator(_pseudonym)]
IPAddress = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, BeforeValidator(_ip)]


class InstrumentRef(BaseModel):
    """A payment instrument without its number: keyed fingerprint, BIN, last four."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: PseudonymStr
    bin: str = Field(pattern=r"^[0-9]{6,8}$")
    last4: str = Field(pattern=r"^[0-9]{4}$")


class SaleContext(BaseModel):
    """What the shop knows about the buyer at the moment of sale.

    Attributes:
        buyer: the buyer account's keyed pseudonym.
        instrument: the payment instrument (keyed fingerprint, BIN, last four), if any.
        device: the device fingerprint, in clear here; stored only as a keyed pseudonym.
        ip: the buyer's IP address (IPv4 or IPv6), likewise pseudonymised before storing.
        region: the region the buyer declared (ISO 3166-1 alpha-2, optionally with the
            ISO 3166-2 subdivision, e.g. ``CN`` or ``CN-GD``).
        amount: the sale's amount as a decimal string, e.g. ``"100.00"``.
        channel: where the sale happens.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    buyer: PseudonymStr
    instrument: InstrumentRef | None = None
    device: Annotated[str, AfterValidator(_device)] | None = None
    ip: IPAddress | None = None
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    amount: Annotated[str, AfterValidator(_amount)]
    channel: Channel = Channel.WEB

    @model_validator(mode="before")
    @classmethod
    def _no_card_numbers(cls, value: Any) -> Any:
        _refuse_pans(value, "")
        return value

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        """Validate a context received as JSON-like values.

        Raises:
            CardNumberRefusedError: a field looks like a full card number.
            SaleContextError: any other malformed or unknown field (named; the value is
                never repeated).
        """
        try:
            return cls.model_validate(raw)
        except pydantic.ValidationError as e:
            first = e.errors(include_url=False, include_input=False, include_context=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "context"
            raise SaleContextError(f"{where}: {first['msg']}", field=where) from e

    @property
    def amount_units(self) -> int:
        return int(Decimal(self.amount) * AMOUNT_SCALE)

    def keys(self, key: bytes) -> SaleKeys:
        """The pseudonyms this sale is known by in the risk state and on the ledger."""
        return SaleKeys(
            buyer=Pseudonym(self.buyer),
            instrument=Pseudonym(self.instrument.fingerprint) if self.instrument else None,
            device=Pseudonym(pseudonym(key, "device", self.device)) if self.device else None,
            ip=Pseudonym(pseudonym(key, "ip", str(self.ip))) if self.ip is not None else None,
        )


@dataclass(frozen=True, slots=True)
class SaleKeys:
    """The keyed pseudonyms of the parties to a sale (32 hex digits each)."""

    buyer: Pseudonym
    instrument: Pseudonym | None = None
    device: Pseudonym | None = None
    ip: Pseudonym | None = None


@dataclass(frozen=True, slots=True)
class SaleFacts:
    """One sale as the state stores record it: nothing in clear.

    Attributes:
        ref: the sale's stable reference (the code fingerprint's hex), so recording the
            same sale twice counts it once.
        at: when it happened (aware UTC).
        merchant: the selling party's id.
        keys: the pseudonyms.
        amount_units: the amount in 1/10 000 of the currency unit.
        region: the region the sale came from (IP table, else declared), if known.
    """

    ref: str
    at: datetime
    merchant: str
    keys: SaleKeys
    amount_units: int
    region: str | None = None
