"""Onboarding tables.

Ordinary tables hold what the applicant and the officers wrote (personal data sealed,
see :mod:`merchant_onboarding.protect`). The state of each application is a projection
of its ledger entries (``onboarding_status``, ``onboarding_history``), so rebuilding the
projections from the ledger gives the same states, and no personal data is on the ledger.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from provenance.db import Base, intpk


class Officer(Base):
    """Retired: officers are user accounts now (webapp.accounts), acting through a session
    or a personal API key. The table is kept so that an existing database keeps its rows;
    nothing reads or writes it."""

    __tablename__ = "onboarding_officer"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class Application(Base):
    __tablename__ = "onboarding_application"

    id: Mapped[intpk]
    merchant: Mapped[str] = mapped_column(String(64), index=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), index=True)
    # Set while the application is open or approved, cleared when it is rejected or
    # terminated: the unique constraint refuses a second live application per entity.
    live_credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    legal_rep_name: Mapped[str | None] = mapped_column(String(100))
    legal_rep_id_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    legal_rep_id_masked: Mapped[str | None] = mapped_column(String(18))
    registered_address: Mapped[str | None] = mapped_column(String(500))
    domain: Mapped[str | None] = mapped_column(String(253))
    icp_number: Mapped[str | None] = mapped_column(String(64))
    payment_licence: Mapped[str | None] = mapped_column(String(32))
    clearing_institution: Mapped[str | None] = mapped_column(String(200))
    fund_custody: Mapped[str | None] = mapped_column(String(32))
    user_agreement_url: Mapped[str | None] = mapped_column(String(500))
    privacy_policy_url: Mapped[str | None] = mapped_column(String(500))
    bank_name: Mapped[str | None] = mapped_column(String(100))
    bank_account_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    bank_account_masked: Mapped[str | None] = mapped_column(String(40))
    bank_account_lookup: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    # Retired: applicants act through their merchant account. Older rows keep theirs.
    applicant_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    check_run: Mapped[int] = mapped_column(Integer, default=0)
    risk_score: Mapped[int | None] = mapped_column(Integer)
    risk_level: Mapped[str | None] = mapped_column(String(8))
    risk: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class Owner(Base):
    """A beneficial owner; ``share_bp`` is the share in basis points (100 = 1 %)."""

    __tablename__ = "onboarding_owner"

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("onboarding_application.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    share_bp: Mapped[int] = mapped_column(Integer)
    id_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_masked: Mapped[str | None] = mapped_column(String(18))


class Blob(Base):
    """A document's content, sealed, stored once by the SHA-256 of its clear bytes."""

    __tablename__ = "onboarding_blob"

    sha256: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class Document(Base):
    __tablename__ = "onboarding_document"
    __table_args__ = (UniqueConstraint("application_id", "sha256"),)

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("onboarding_application.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[bytes] = mapped_column(ForeignKey("onboarding_blob.sha256"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime]


class CheckRecord(Base):
    """One automated check's result, in the numbered run that produced it."""

    __tablename__ = "onboarding_check"

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("onboarding_application.id"), index=True)
    run: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(200))
    extract_date: Mapped[date | None] = mapped_column(Date)
    checked_at: Mapped[datetime]


class Question(Base):
    """An officer's question while the application needs information, and the answer."""

    __tablename__ = "onboarding_question"

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("onboarding_application.id"), index=True)
    asked_by: Mapped[str] = mapped_column(String(64))
    asked_at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]


class Amendment(Base):
    """An officer's change to an application's data: that officer may not approve it."""

    __tablename__ = "onboarding_amendment"

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("onboarding_application.id"), index=True)
    officer: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime]


class ScreeningHitRecord(Base):
    """A watch-list hit on one party of an application, for an officer to clear or confirm.

    The listed entry is copied as it was when found (list, source, extract date, entry,
    names, score): a later import may replace the list, and the officer's decision must
    still say what was decided on. A hit is identified by the screened party (kind and
    name: a legal representative who is also an owner is screened once, ``party_roles``
    says both) and the listed entry; checks that find it again update ``last_run``.
    """

    __tablename__ = "onboarding_screening_hit"
    __table_args__ = (
        UniqueConstraint("application_id", "party_kind", "party_name", "watchlist", "entry_id"),
    )

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("onboarding_application.id"), index=True)
    party_kind: Mapped[str] = mapped_column(String(16))
    party_roles: Mapped[str] = mapped_column(String(64))
    party_name: Mapped[str] = mapped_column(String(200))
    watchlist: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
    extract_date: Mapped[date] = mapped_column(Date)
    entry_id: Mapped[str] = mapped_column(String(200))
    entry_kind: Mapped[str] = mapped_column(String(16))
    caption: Mapped[str] = mapped_column(String(500))
    matched_name: Mapped[str] = mapped_column(String(500))
    score: Mapped[float] = mapped_column(Float)
    normalisations: Mapped[list[str]] = mapped_column(JSON)
    countries: Mapped[list[str]] = mapped_column(JSON)
    first_run: Mapped[int] = mapped_column(Integer)
    last_run: Mapped[int] = mapped_column(Integer)
    found_at: Mapped[datetime]


# --- projections of the onboarding ledger entries -----------------------------------


class Status(Base):
    """Where an application stands, rebuilt from ``onboarding.*`` ledger entries."""

    __tablename__ = "onboarding_status"

    application_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    merchant: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    since: Mapped[datetime]
    state_seq: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime | None]
    renewal: Mapped[bool] = mapped_column(Boolean)
    recommendation: Mapped[str | None] = mapped_column(String(16))
    recommended_by: Mapped[str | None] = mapped_column(String(64))
    recommended_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    next_review_at: Mapped[datetime | None]


class HistoryStep(Base):
    """Each onboarding ledger entry of an application, for its history and proofs."""

    __tablename__ = "onboarding_history"

    application_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    action: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    reasons: Mapped[list[str]] = mapped_column(JSON)


class HitDecision(Base):
    """An officer's decision on a screening hit, rebuilt from ``onboarding.hit_decision``
    entries: ``cleared`` (a false positive) or ``confirmed`` (a true match)."""

    __tablename__ = "onboarding_hit_decision"

    hit_id: Mapped[int] = mapped_column(
        ForeignKey("onboarding_screening_hit.id"), primary_key=True, autoincrement=False
    )
    application_id: Mapped[int] = mapped_column(BigInteger, index=True)
    decision: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)
    reasons: Mapped[list[str]] = mapped_column(JSON)


# --- registry extracts --------------------------------------------------------------


class RegistryExtract(Base):
    """Which extract of each registry is in use: its source and date."""

    __tablename__ = "registry_extract"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    extract_date: Mapped[date] = mapped_column(Date)
    imported_at: Mapped[datetime]
    records: Mapped[int] = mapped_column(Integer)


class RegistryEnterprise(Base):
    __tablename__ = "registry_enterprise"

    credit_code: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    established: Mapped[date | None] = mapped_column(Date)
    capital: Mapped[str | None] = mapped_column(String(64))
    capital_yuan: Mapped[int | None] = mapped_column(BigInteger)
    legal_rep: Mapped[str | None] = mapped_column(String(100))


class RegistryIcp(Base):
    __tablename__ = "registry_icp"

    icp_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), primary_key=True, index=True)
    holder_name: Mapped[str] = mapped_column(String(200))
    holder_credit_code: Mapped[str | None] = mapped_column(String(18))
    holder_kind: Mapped[str] = mapped_column(String(16))
    approved_on: Mapped[date | None] = mapped_column(Date)
