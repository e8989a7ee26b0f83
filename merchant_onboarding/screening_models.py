"""Tables of imported watch lists and their screening index.

A list's entries, names and keys are replaced together when the list is imported again.
``watchlist_key`` is the blocking index: one row per (list, key, name), keys stored as
64-bit hashes (:func:`merchant_onboarding.names.key_hash`). ``watchlist_key_stat`` holds
how many names share each key that at least ``FREQUENT_KEY`` names share; a key absent
from it is rare, so screening can pick the selective keys without counting postings.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provenance.db import Base, BigIntId, intpk, str64, str200

FREQUENT_KEY = 64


class Watchlist(Base):
    __tablename__ = "watchlist"

    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    source: Mapped[str200]
    format: Mapped[str | None] = mapped_column(String(8))
    extract_date: Mapped[date] = mapped_column(Date)
    imported_at: Mapped[datetime]
    entries: Mapped[int] = mapped_column(Integer)
    names: Mapped[int] = mapped_column(Integer)


class WatchlistEntry(Base):
    __tablename__ = "watchlist_entry"
    __table_args__ = (UniqueConstraint("watchlist_id", "entry_id"),)

    id: Mapped[intpk]
    watchlist_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("watchlist.id"))
    entry_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    caption: Mapped[str] = mapped_column(String(500))
    schema: Mapped[str | None] = mapped_column(String(64))
    countries: Mapped[str | None] = mapped_column(String(200))
    datasets: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(String(500))


class WatchlistName(Base):
    __tablename__ = "watchlist_name"

    id: Mapped[intpk]
    watchlist_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("watchlist.id"), index=True)
    entry: Mapped[int] = mapped_column(BigIntId, ForeignKey("watchlist_entry.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(500))
    normalised: Mapped[str] = mapped_column(String(500))
    romanised: Mapped[str | None] = mapped_column(String(2000))
    stripped: Mapped[str | None] = mapped_column(String(500))
    steps: Mapped[str] = mapped_column(String(200))


class WatchlistKey(Base):
    __tablename__ = "watchlist_key"

    # No foreign key to watchlist_name: this is a derived index, written and deleted
    # with the list's names, and a foreign key would make every name deletion search it.
    watchlist_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("watchlist.id"), primary_key=True
    )
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name_id: Mapped[int] = mapped_column(BigIntId, primary_key=True)


class WatchlistKeyStat(Base):
    __tablename__ = "watchlist_key_stat"

    watchlist_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("watchlist.id"), primary_key=True
    )
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    postings: Mapped[int] = mapped_column(Integer)
