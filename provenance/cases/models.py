"""Tables of investigators' cases.

``case_file``, ``case_member``, ``case_event`` and ``case_attachment`` are projections of
the ``case.*`` ledger entries: rebuilding them from the ledger gives the same state. A
case's number is the ledger seq of the entry that opened it.

``case_text`` holds what the ledger keeps only as a SHA-256: a case's title, its notes
and its attachments' file names. They may name people, so they stay off the ledger
(an erasure deletes the row and leaves every hash and signature intact).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from provenance.db import Base


class CaseFile(Base):
    __tablename__ = "case_file"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(24), index=True)
    outcome: Mapped[str | None] = mapped_column(String(32))
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_seq: Mapped[int] = mapped_column(BigInteger)


class CaseMember(Base):
    """An alert, merchant, buyer, payment instrument or code grouped into a case."""

    __tablename__ = "case_member"

    case_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    added_seq: Mapped[int] = mapped_column(BigInteger)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime]


class CaseEvent(Base):
    """Each ``case.*`` entry of a case, in log order: the case's timeline."""

    __tablename__ = "case_event"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    case_id: Mapped[int] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(24))
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class CaseAttachment(Base):
    """A file attached to a case, by the SHA-256 of its bytes."""

    __tablename__ = "case_attachment"

    case_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime]


class CaseText(Base):
    """The text behind a hash on the ledger: a title, a note or an attachment's name."""

    __tablename__ = "case_text"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    case_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(String(4000))
