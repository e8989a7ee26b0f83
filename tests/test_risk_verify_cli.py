"""``cardtrace codes verify --context`` and the sales import feeding the risk state, on
the embedded default (SQLite, the SQL store) and with ``CARDTRACE_REDIS_URL``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from provenance.db import write_transaction
from provenance.ledger import LedgerEntry
from provenance.risk.redis_store import RedisStore
from provenance.risk.store import RiskSale
from tests.codes_support import ISSUER, PRODUCT, SHOP, build_chain, person, pin, serial
from tests.keys import write_key_dir
from tests.ledger_support import make_ledger
from tests.risk_support import GD_IP, card, redis_client
from tests.services import redis_url
from webapp.cli import cli
from webapp.database import make_engine, upgrade

PAN = "4111111111111111"


@pytest.fixture(params=["sql-store", "redis-store"])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A SQLite instance holding the test supply chain; its environment for the CLI."""
    for name in list(os.environ):
        if name.startswith("CARDTRACE_") and not name.startswith("CARDTRACE_TEST_"):
            monkeypatch.delenv(name)
    url = make_url(f"sqlite:///{tmp_path / 'cardtrace.db'}")
    engine = make_engine(url)
    upgrade(engine)
    ledger = make_ledger()
    with Session(engine) as session, write_transaction(session):
        build_chain(session, ledger)
    ledger.close()
    env = {
        "CARDTRACE_DATABASE_URL": str(url),
        "CARDTRACE_KEY_DIR": str(write_key_dir(tmp_path / "keys")),
        "CARDTRACE_INSTANCE": str(tmp_path / "instance"),
    }
    store = None
    if request.param == "redis-store":
        client = redis_client()
        # The CLI keeps the state under the production prefix: a database of its own.
        store = RedisStore(client, prefix="cardtrace:risk:")
        store.reset()
        env["CARDTRACE_REDIS_URL"] = redis_url()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    env["_db"] = str(url)
    yield env
    engine.dispose()
    if store is not None:
        store.reset()
        store.client.close()


def cardtrace(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def sales_csv(path: Path, codes: range) -> Path:
    lines = ["merchant,buyer,amount,currency,issuer,product,serial,pin,instrument,device,ip"]
    for i in codes:
        lines.append(
            f"{SHOP},alice,100.00,CNY,{ISSUER},{PRODUCT},{serial(i)},{pin(i)},card-alice,"
            f"phone-alice,{GD_IP}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def context(**more: Any) -> str:
    raw = {
        "buyer": person("buyer", "alice"),
        "instrument": card("card-alice"),
        "device": "phone-alice",
        "ip": GD_IP,
        "amount": "100.00",
        **more,
    }
    # The import pseudonymises the CSV's instrument token the same way.
    raw["instrument"]["fingerprint"] = person("instrument", "card-alice")
    return json.dumps(raw)


def verify(i: int, ctx: str, *more: str) -> Any:
    return cardtrace(
        "codes", "verify", "--merchant", SHOP, "--issuer", ISSUER, "--product", PRODUCT,
        "--serial", serial(i), "--context", ctx, *more, stdin=pin(i) + "\n",
    )  # fmt: skip


def test_imported_sales_feed_the_state_and_verify_blocks_the_burst(
    instance: dict[str, str], tmp_path: Path
) -> None:
    path = sales_csv(tmp_path / "sales.csv", range(3))
    imported = cardtrace("codes", "import", str(path), "--kind", "sales")
    assert imported.exit_code == 0, imported.output
    # Three sales imported, a fourth held by its verify: the fifth is one too many.
    allowed = verify(8, context(), "--json")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["decision"] == "allow"
    blocked = verify(9, context())
    assert blocked.exit_code == 0, blocked.output
    assert blocked.output.startswith("BLOCK")
    assert "burst-instrument: This payment card was used too many times" in blocked.output
    assert "该支付卡在短时间内使用次数过多。" in blocked.output


def test_a_quiet_buyer_is_allowed(instance: dict[str, str]) -> None:
    answer = verify(8, context(), "--json")
    assert answer.exit_code == 0, answer.output
    document = json.loads(answer.output)
    assert document["decision"] == "allow"
    assert document["risk"] == {"decision": "allow", "reasons": [], "shadow": []}


def test_a_full_card_number_is_refused_and_nothing_written(instance: dict[str, str]) -> None:
    engine = make_engine(make_url(instance["_db"]))
    with Session(engine) as session:
        before = (
            session.scalar(select(func.count()).select_from(LedgerEntry)),
            session.scalar(select(func.count()).select_from(RiskSale)),
        )
    answer = verify(8, context(device=PAN))
    assert answer.exit_code != 0
    assert "full card numbers are refused" in answer.output
    assert PAN not in answer.output
    with Session(engine) as session:
        after = (
            session.scalar(select(func.count()).select_from(LedgerEntry)),
            session.scalar(select(func.count()).select_from(RiskSale)),
        )
    engine.dispose()
    assert after == before


def test_bad_context_json_is_a_clear_error(instance: dict[str, str]) -> None:
    answer = verify(8, "{not json")
    assert answer.exit_code != 0
    assert "context: not valid JSON" in answer.output


def test_context_from_a_file(instance: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "context.json"
    path.write_text(context())
    answer = verify(8, f"@{path}", "--json")
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["risk"]["decision"] == "allow"
