"""A separate appender process for the concurrency and crash tests.

Usage: python -m tests.append_worker DATABASE_URL PARTY BATCHES BATCH_SIZE
Prints "committed N" after each committed batch.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from provenance.db import write_transaction
from tests.ledger_support import make_ledger, party_key, signed_by
from webapp.database import make_engine


def main(url: str, party: str, batches: int, batch_size: int) -> None:
    engine = make_engine(make_url(url))
    ledger = make_ledger()
    key = party_key(party)
    for b in range(batches):
        now = datetime.now(UTC)
        batch = [
            signed_by(key, party, body={"text": f"{party}-{b}-{i}", "n": i}, time=now)
            for i in range(batch_size)
        ]
        with Session(engine) as session, write_transaction(session):
            ledger.append(session, batch, now=now)
        print(f"committed {b + 1}", flush=True)
    ledger.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
