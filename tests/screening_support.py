"""Watch-list files for the screening tests, and the counts that show nothing was written."""

from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from merchant_onboarding.screening import WatchlistImport, import_watchlist
from merchant_onboarding.screening_models import (
    Watchlist,
    WatchlistEntry,
    WatchlistKey,
    WatchlistKeyStat,
    WatchlistName,
)
from merchant_onboarding.watchlists import WatchlistReader, open_reader
from tests.ledger_support import NOW

EXTRACT = date(2026, 11, 20)

SANCTIONS_CSV = """id,name,kind,aliases,countries,note
E1,深圳市腾讯计算机系统有限公司,entity,Shenzhen Tencent Computer Systems Co. Ltd,cn,
E2,Tencent Holdings Limited,entity,,cn;hk,listed for the tests
E3,Gazprom Neft JSC,entity,OAO Gazprom Neft,ru,
E4,Alpha Beta Trading GmbH,entity,,de,
E5,广东省深圳市华为技术有限公司,entity,,cn,
P1,张伟,person,Zhang Wei,cn,
P2,John Michael Doe,person,Johnny Doe,us,
U1,Northwind Logistics,unspecified,,gb,
"""


def csv_reader(text: str) -> WatchlistReader:
    return open_reader("csv", io.StringIO(text))


def ftm_reader(entities: list[Any] | str) -> WatchlistReader:
    if isinstance(entities, str):
        return open_reader("ftm", io.StringIO(entities))
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in entities]
    return open_reader("ftm", io.StringIO("\n".join(lines) + "\n"))


def import_csv(
    session: Session, text: str = SANCTIONS_CSV, name: str = "test-sanctions"
) -> WatchlistImport:
    return import_watchlist(session, name, "tests", EXTRACT, csv_reader(text), now=NOW)


def table_counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Watchlist, WatchlistEntry, WatchlistName, WatchlistKey, WatchlistKeyStat)
    }


EMPTY = {
    "watchlist": 0,
    "watchlist_entry": 0,
    "watchlist_name": 0,
    "watchlist_key": 0,
    "watchlist_key_stat": 0,
}
