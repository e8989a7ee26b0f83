"""Tables of the ledger analysis: alerts, their notes, and where the last run stopped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from provenance.db import Base, intpk


class Alert(Base):
    """One finding worth an officer's look, kept once per ``key`` across runs.

    ``key`` is the SHA-256 (hex) of the typology and the subject, so a pattern found
    again by a later run updates its alert instead of opening another.
    """

    __tablename__ = "analysis_alert"

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(64), unique=True)
    typology: Mapped[str] = mapped_column(String(32), index=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(100), index=True)
    score: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    assignee: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    runs: Mapped[int] = mapped_column(Integer)
    opened_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class AlertNote(Base):
    """An officer's note on an alert; the ledger keeps its SHA-256, not its text."""

    __tablename__ = "analysis_alert_note"

    id: Mapped[intpk]
    alert_id: Mapped[int] = mapped_column(ForeignKey("analysis_alert.id"), index=True)
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(2000))
    seq: Mapped[int] = mapped_column(BigInteger)


class AnalysisState(Base):
    """What an incremental analysis kept: the last ledger seq it read and its graph."""

    __tablename__ = "analysis_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
