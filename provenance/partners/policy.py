"""Sharing policies: which fields a partner receives, under which TLP marking, and whether
personal data reaches it only as pseudonyms keyed for that partner.

A policy is a ``partner.policy`` ledger entry (the platform writes it, naming the officer
who set it); the ``partner_policy`` table is its projection. A partner without one gets
:data:`DEFAULT_POLICY`.

Per-partner pseudonyms: the platform's ledger already knows people, accounts, instruments
and devices only by keyed pseudonyms. What a partner receives is a second HMAC over that
pseudonym, under a key derived (HKDF-SHA256) from the platform's fingerprint secret, the
partner's id and the policy's ``pseudonym_epoch``. Two partners therefore cannot join
their bundles on a buyer or a card; one partner sees the same value for the same card in
every bundle (until the epoch is raised); and nobody can go back to the platform's
pseudonym without the platform's secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from provenance.partners.errors import PolicyError
from provenance.partners.models import PartnerPolicy

_KEY_INFO = b"cardtrace/partner-pseudonym/v1\n"


class SharedField(StrEnum):
    """What a bundle may carry. Personal data: buyers, instruments, devices, ips."""

    MERCHANTS = "merchants"  # the merchants and other parties involved (organisations)
    BUYERS = "buyers"  # buyer accounts
    INSTRUMENTS = "instruments"  # payment-instrument fingerprints
    DEVICES = "devices"  # device fingerprints
    IPS = "ips"  # IP-address fingerprints
    CODES = "codes"  # card-code fingerprints and their products
    NARRATIVE = "narrative"  # the alert's reason, in words


PERSONAL_FIELDS = frozenset(
    {SharedField.BUYERS, SharedField.INSTRUMENTS, SharedField.DEVICES, SharedField.IPS}
)


class Tlp(StrEnum):
    """FIRST TLP 2.0 levels."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


@dataclass(frozen=True, slots=True)
class SharingPolicy:
    """One partner's policy, validated on construction."""

    partner: str
    fields: frozenset[SharedField]
    tlp: Tlp = Tlp.AMBER
    pseudonymise: bool = True
    pseudonym_epoch: int = 0
    require_signature: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.pseudonym_epoch <= 1_000_000:
            raise PolicyError("pseudonym_epoch must be 0-1000000", field="pseudonym_epoch")

    def allows(self, shared: SharedField) -> bool:
        return shared in self.fields

    def body(self, officer: str) -> dict[str, object]:
        """The ``partner.policy`` entry body for this policy, set by ``officer``."""
        return {
            "partner": self.partner,
            "fields": sorted(f.value for f in self.fields),
            "tlp": self.tlp.value,
            "pseudonymise": self.pseudonymise,
            "pseudonym_epoch": self.pseudonym_epoch,
            "require_signature": self.require_signature,
            "by": officer,
        }


DEFAULT_FIELDS = frozenset(
    {SharedField.MERCHANTS, SharedField.INSTRUMENTS, SharedField.DEVICES, SharedField.CODES}
)


def default_policy(partner: str) -> SharingPolicy:
    """What a partner without a policy receives: merchants, instruments, devices and
    codes (no buyer accounts, no IPs, no narrative), TLP:AMBER, pseudonymised."""
    return SharingPolicy(partner, DEFAULT_FIELDS)


def parse_fields(names: Iterable[str]) -> frozenset[SharedField]:
    """Raises: PolicyError naming the first unknown field."""
    found = set()
    for name in names:
        name = name.strip()
        if not name:
            continue
        try:
            found.add(SharedField(name))
        except ValueError:
            choices = ", ".join(f.value for f in SharedField)
            raise PolicyError(
                f"unknown field {name!r}; the fields are {choices}", field="fields"
            ) from None
    return frozenset(found)


def parse_tlp(value: str) -> Tlp:
    """Raises: PolicyError for anything but a TLP 2.0 level."""
    try:
        return Tlp(value.strip().lower().removeprefix("tlp:"))
    except ValueError:
        choices = ", ".join(t.value for t in Tlp)
        raise PolicyError(f"tlp must be one of {choices}", field="tlp") from None


def policy_from_row(row: PartnerPolicy) -> SharingPolicy:
    return SharingPolicy(
        partner=row.partner,
        fields=parse_fields(row.fields.split(",")),
        tlp=Tlp(row.tlp),
        pseudonymise=row.pseudonymise,
        pseudonym_epoch=row.pseudonym_epoch,
        require_signature=row.require_signature,
    )


def get_policy(session: Session, partner: str) -> SharingPolicy:
    """The partner's policy in force, or :func:`default_policy`."""
    row = session.get(PartnerPolicy, partner)
    return default_policy(partner) if row is None else policy_from_row(row)


class PartnerPseudonyms:
    """Pseudonyms for one partner: HMAC-SHA256 under a key derived for it (see module)."""

    __slots__ = ("_key", "partner")

    def __init__(self, platform_secret: bytes, partner: str, epoch: int) -> None:
        if len(platform_secret) < 32:
            raise ValueError("the platform secret must be at least 32 bytes")
        info = _KEY_INFO + partner.encode("utf-8") + b"\n" + str(epoch).encode("ascii")
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            platform_secret
        )
        self.partner = partner

    def __repr__(self) -> str:
        return f"PartnerPseudonyms({self.partner!r}, <key hidden>)"

    def of(self, kind: str, platform_pseudonym: str) -> str:
        """32 hex digits, the same for the same ``(kind, pseudonym)`` for this partner."""
        message = kind.encode("ascii") + b"\x00" + platform_pseudonym.encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]
