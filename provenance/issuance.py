"""Issuing a batch: fingerprint the codes, chunk them onto the ledger, sign the root.

The issuer's one signature covers the whole batch: it signs the RFC 6962 root of the
batch's code fingerprints (leaf = SHA-256(0x00 || fingerprint)), after the fingerprints
themselves were appended in chunks of :data:`~provenance.codes.CHUNK_SIZE`. A million
codes cost two thousand chunk entries and one issuer signature.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from provenance.codes import CHUNK_SIZE, FINGERPRINT_SCHEME, MAX_BATCH_SIZE, Product
from provenance.entries import Statement, format_time, key_id_for, raw_public_key, sign_statement
from provenance.errors import ValidationError
from provenance.fingerprints import CodeFingerprint, ProductFingerprints, normalise_part
from provenance.ledger import AppendedEntry, Ledger
from provenance.merkle import CompactRange, leaf_hash


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class _PartRule:
    field: str
    digits: bool
    low: int
    high: int


def _rules(product: Product) -> tuple[_PartRule, _PartRule]:
    return (
        _PartRule(
            "serial", product.serial_charset == "digits", product.serial_min, product.serial_max
        ),
        _PartRule("pin", product.pin_charset == "digits", product.pin_min, product.pin_max),
    )


def _check(rules: tuple[_PartRule, _PartRule], product_id: str, serial: str, pin: str) -> None:
    for rule, value in zip(rules, (serial, pin), strict=True):
        if not rule.low <= len(value) <= rule.high:
            raise ValidationError(
                f"{rule.field} must be {rule.low}-{rule.high} characters for {product_id}",
                code="bad-code",
                field=rule.field,
            )
        if rule.digits and not value.isdigit():
            raise ValidationError(
                f"{rule.field} must be digits for {product_id}", code="bad-code", field=rule.field
            )


@dataclass(slots=True)
class BatchBuilder:
    """Builds a batch's entries as codes stream in; memory stays one chunk."""

    fingerprint_key: bytes = field(repr=False)
    product: Product
    batch: str
    _chunk: list[list[str]] = field(default_factory=list)
    _offset: int = 0
    _count: int = 0
    _tree: CompactRange = field(default_factory=CompactRange.empty)
    # The product's rules and keyed hashes, read once: the builder sees every code.
    _rules: tuple[_PartRule, _PartRule] = field(init=False, repr=False)
    _fingerprints: ProductFingerprints = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rules = _rules(self.product)
        self._fingerprints = ProductFingerprints(
            self.fingerprint_key, self.product.issuer, self.product.id
        )

    def add(self, serial: str, pin: str) -> dict[str, Any] | None:
        """Add one raw code; returns a full chunk's body when one is ready.

        Raises:
            ValidationError: the code is malformed for the product (no value echoed).
        """
        return self.add_normalised(normalise_part(serial, "serial"), normalise_part(pin, "pin"))[1]

    def add_normalised(
        self, serial: str, pin: str
    ) -> tuple[CodeFingerprint, dict[str, Any] | None]:
        """Add one code whose serial and PIN :func:`normalise_part` already returned.

        Returns:
            The code's fingerprint, and a full chunk's body when one is ready.

        Raises:
            ValidationError: the code is malformed for the product (no value echoed).
        """
        _check(self._rules, self.product.id, serial, pin)
        if self._count >= MAX_BATCH_SIZE:
            raise ValidationError(f"a batch holds at most {MAX_BATCH_SIZE} codes", code="bad-batch")
        fp = self._fingerprints.code(serial, pin)
        sfp = self._fingerprints.serial(serial)
        self._chunk.append([_b64(fp), _b64(sfp)])
        self._tree.push_leaf(leaf_hash(fp))
        self._count += 1
        if len(self._chunk) >= CHUNK_SIZE:
            return fp, self.flush()
        return fp, None

    def flush(self) -> dict[str, Any] | None:
        """The body of the codes not yet handed out, if any."""
        if not self._chunk:
            return None
        body = {
            "batch": self.batch,
            "product": self.product.id,
            "offset": self._offset,
            "codes": self._chunk,
        }
        self._offset += len(self._chunk)
        self._chunk = []
        return body

    @property
    def count(self) -> int:
        return self._count

    def issue_body(self, *, expires_at: datetime | None = None) -> dict[str, Any]:
        """The body the issuer signs once every chunk has been handed out."""
        if self._chunk:
            raise ValidationError("flush the last chunk before issuing", code="bad-batch")
        if self._count == 0:
            raise ValidationError(f"batch {self.batch} has no codes", code="bad-batch")
        return {
            "batch": self.batch,
            "product": self.product.id,
            "count": self._count,
            "face_value": self.product.face_value,
            "currency": self.product.currency,
            "expires_at": format_time(expires_at) if expires_at else None,
            "root": _b64(self._tree.root()),
            "scheme": FINGERPRINT_SCHEME,
        }


@dataclass(frozen=True, slots=True)
class IssuerSigner:
    """Who signs issuance entries: the issuer's own key, or the platform on its behalf."""

    issuer: str
    key: Ed25519PrivateKey | None = field(default=None, repr=False)

    def statements(
        self, ledger: Ledger, bodies: Iterable[tuple[str, dict[str, Any]]], now: datetime
    ) -> Iterator[Any]:
        for kind, body in bodies:
            if self.key is None:
                yield sign_statement(
                    ledger.statement(kind, body, now=now, actor=self.issuer),
                    ledger.platform.private_key,
                )
            else:
                key_id = key_id_for(raw_public_key(self.key))
                yield sign_statement(
                    Statement(kind, now, self.issuer, key_id, False, body), self.key
                )


def issue_codes(
    session: Session,
    ledger: Ledger,
    *,
    fingerprint_key: bytes,
    product: Product,
    batch: str,
    codes: Iterable[tuple[str, str]],
    signer: IssuerSigner,
    now: datetime,
    expires_at: datetime | None = None,
) -> list[AppendedEntry]:
    """Issue a batch in one call (the streaming import uses :class:`BatchBuilder` itself)."""
    builder = BatchBuilder(fingerprint_key, product, batch)
    bodies: list[tuple[str, dict[str, Any]]] = []
    for serial, pin in codes:
        chunk = builder.add(serial, pin)
        if chunk is not None:
            bodies.append(("batch.codes", chunk))
    last = builder.flush()
    if last is not None:
        bodies.append(("batch.codes", last))
    bodies.append(("batch.issue", builder.issue_body(expires_at=expires_at)))
    return ledger.append(session, list(signer.statements(ledger, bodies, now)), now=now)
