"""Tables of the partner exchange: sharing policies, imported notice files, and the taint
sources that partners' notices add (flagged buyer accounts, compromised codes).

Every table here is a projection of ``partner.*`` ledger entries (see
:mod:`provenance.partners.entries`): rebuilding them from the ledger gives the same rows.
Stolen instruments and reported devices live in the tables their existing entry types
keep (``stolen_payment``, ``risk_taint``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from provenance.db import Base


class PartnerPolicy(Base):
    """What one partner may receive, and how its notices must arrive."""

    __tablename__ = "partner_policy"

    partner: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The shared fields, sorted, comma-separated (a closed set: see SharedField).
    fields: Mapped[str] = mapped_column(String(200))
    tlp: Mapped[str] = mapped_column(String(16))
    pseudonymise: Mapped[bool] = mapped_column(Boolean)
    pseudonym_epoch: Mapped[int] = mapped_column(Integer)
    require_signature: Mapped[bool] = mapped_column(Boolean)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)


class PartnerImport(Base):
    """One notice file a partner sent that added at least one notice."""

    __tablename__ = "partner_import"

    partner: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    format: Mapped[str] = mapped_column(String(8))
    notices: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str | None] = mapped_column(String(16))
    imported_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)


class FlaggedAccount(Base):
    """A buyer account (by its keyed pseudonym) a partner reported as fraudulent."""

    __tablename__ = "partner_flagged_account"

    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)
    reporter: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)


class CompromisedCode(Base):
    """A code (by fingerprint) or a serial (by serial fingerprint) a partner reported
    compromised; verify-before-sale blocks every code it matches."""

    __tablename__ = "compromised_code"

    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    reporter: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)
