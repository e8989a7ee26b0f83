"""CSV imports: all or nothing, bad lines named by number, no PIN left behind."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from provenance.codes import Code, CodeBatch
from provenance.db import write_transaction
from provenance.errors import ValidationError
from provenance.imports import (
    ImportFailedError,
    Signers,
    import_csv,
    import_issuance,
    import_sales,
    import_transfers,
    instrument_pseudonym,
)
from provenance.ledger import LedgerEntry
from tests.codes_support import DIST, ISSUER, PRODUCT, SHOP, Chain, build_chain, fp, pin, serial
from tests.keys import FINGERPRINT_KEY, write_key_dir
from tests.ledger_support import NOW, make_ledger
from tests.processes import run
from tests.services import fresh_postgres_database
from webapp.database import make_engine, upgrade
from webapp.runtime import current_runtime


def rows(text: str) -> list[dict[str, str | None]]:
    return list(csv.DictReader(io.StringIO(text)))


def count(session: Session, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture()
def chain(app: Flask, session: Session) -> Chain:
    with app.app_context():
        return build_chain(session, current_runtime().ledger)


def issue(session: Session, chain: Chain, text: str, keys: bool = True) -> Any:
    signers = Signers(chain.ledger.platform, {ISSUER: chain.keys[ISSUER]} if keys else {})
    return import_issuance(
        session, chain.ledger, rows(text), fingerprint_key=FINGERPRINT_KEY, signers=signers, now=NOW
    )


def issuance_csv(batch: str, first: int, n: int) -> str:
    lines = ["batch,product,serial,pin"]
    lines += [f"{batch},{PRODUCT},{serial(i)},{pin(i)}" for i in range(first, first + n)]
    return "\n".join(lines) + "\n"


def test_issuance_import_issues_each_batch_signed_by_its_issuer(
    session: Session, chain: Chain
) -> None:
    text = issuance_csv("imp-1", 1000, 1203) + issuance_csv("imp-2", 3000, 7).split("\n", 1)[1]
    report = issue(session, chain, text)
    assert report.rows == 1210
    assert report.batches == ["imp-1", "imp-2"]
    batch = session.get(CodeBatch, "imp-1")
    assert batch is not None and batch.status == "active" and batch.count == 1203
    assert batch.origin == "issuer-signed"
    assert session.get(Code, fp(1500)) is not None


def test_issuance_without_the_issuers_key_is_signed_on_its_behalf(
    session: Session, chain: Chain
) -> None:
    issue(session, chain, issuance_csv("imp-3", 5000, 3), keys=False)
    batch = session.get(CodeBatch, "imp-3")
    assert batch is not None and batch.origin == "issuer-on-behalf"


def test_bad_lines_are_all_reported_and_nothing_is_imported(session: Session, chain: Chain) -> None:
    before = count(session, LedgerEntry), count(session, Code)
    text = issuance_csv("imp-4", 6000, 1100)
    lines = text.splitlines()
    lines[3] = f"imp-4,{PRODUCT},{serial(6001)},12ab"  # bad PIN characters
    lines[700] = f"imp-4,no-such-product,{serial(6698)},{pin(6698)}"
    lines[900] = f"imp-4,{PRODUCT},,{pin(6898)}"
    with pytest.raises(ImportFailedError) as info, session.begin_nested():
        issue(session, chain, "\n".join(lines) + "\n")
    where = [(e.line, e.field) for e in info.value.errors]
    assert (4, "pin") in where
    assert (701, "product") in where
    assert (901, "serial") in where
    assert "12ab" not in str(info.value)
    assert (count(session, LedgerEntry), count(session, Code)) == before


def test_code_already_issued_is_reported_with_its_line(session: Session, chain: Chain) -> None:
    text = issuance_csv("imp-5", 7000, 5) + f"imp-5,{PRODUCT},{serial(3)},{pin(3)}\n"
    with pytest.raises(ImportFailedError) as info:
        issue(session, chain, text)
    assert [(e.line, e.field) for e in info.value.errors] == [(7, "pin")]


def test_batch_split_across_the_file_is_refused(session: Session, chain: Chain) -> None:
    text = (
        issuance_csv("imp-6", 8000, 2)
        + issuance_csv("imp-7", 8100, 2).split("\n", 1)[1]
        + f"imp-6,{PRODUCT},{serial(8200)},{pin(8200)}\n"
    )
    with pytest.raises(ImportFailedError) as info:
        issue(session, chain, text)
    assert info.value.errors[0].line == 6
    assert info.value.errors[0].field == "batch"


def test_error_messages_never_repeat_a_cell_that_could_hold_a_pin(
    session: Session, chain: Chain
) -> None:
    """A line shifted by one column puts its PIN where a product or batch belongs."""
    text = issuance_csv("imp-8", 8300, 3) + "".join(
        (
            f"{pin(8400)},{PRODUCT},{serial(8400)},{pin(8401)}\n",  # PIN in the batch column
            f"imp-8,{pin(8402)},{serial(8402)},{PRODUCT}\n",  # PIN in the product column
            f"imp-8,{PRODUCT},{serial(8403)},{pin(8403)}\n",  # imp-8 again, after another batch
        )
    )
    with pytest.raises(ImportFailedError) as info:
        issue(session, chain, text)
    messages = [str(e) for e in info.value.errors]
    assert [(e.line, e.field) for e in info.value.errors] == [(6, "product"), (7, "batch")]
    assert "this line's product is not registered" in messages[0]
    assert "started at line 2" in messages[1]
    for value in (pin(8400), pin(8401), pin(8402), pin(8403)):
        assert value not in str(info.value)
        assert all(value not in message for message in messages)


def test_transfers_import_moves_codes_in_groups(session: Session, chain: Chain) -> None:
    text = "from,to,fingerprint\n" + "".join(
        f"{DIST},{SHOP},{fp(i).hex()}\n" for i in range(10, 15)
    )
    report = import_transfers(
        session,
        chain.ledger,
        rows(text),
        fingerprint_key=FINGERPRINT_KEY,
        signers=Signers(chain.ledger.platform, {DIST: chain.keys[DIST]}),
        now=NOW,
    )
    assert report.entries == 1
    assert {session.get(Code, fp(i)).holder for i in range(10, 15)} == {SHOP}  # type: ignore[union-attr]


def test_transfer_not_from_the_holder_names_its_line(session: Session, chain: Chain) -> None:
    text = "from,to,issuer,product,serial,pin\n"
    text += f"{DIST},{SHOP},{ISSUER},{PRODUCT},{serial(11)},{pin(11)}\n"
    text += (
        f"{SHOP},{DIST},{ISSUER},{PRODUCT},{serial(12)},{pin(12)}\n"  # the shop does not hold 12
    )
    with pytest.raises(ImportFailedError) as info:
        import_transfers(
            session,
            chain.ledger,
            rows(text),
            fingerprint_key=FINGERPRINT_KEY,
            signers=Signers(chain.ledger.platform),
            now=NOW,
        )
    assert info.value.errors[0].line == 3
    assert info.value.errors[0].message.startswith("code")


def test_sales_import_pseudonymises_buyers_and_refuses_card_numbers(
    session: Session, chain: Chain
) -> None:
    header = "merchant,buyer,instrument,amount,currency,fingerprint\n"
    good = f"{SHOP},alice@example.com,tok_123,100.00,CNY,{fp(0).hex()}\n"
    bad = f"{SHOP},bob@example.com,4111 1111 1111 1111,100.00,CNY,{fp(1).hex()}\n"
    with pytest.raises(ImportFailedError) as info, session.begin_nested():
        import_sales(
            session,
            chain.ledger,
            rows(header + good + bad),
            fingerprint_key=FINGERPRINT_KEY,
            signers=Signers(chain.ledger.platform),
            now=NOW,
        )
    assert (info.value.errors[0].line, info.value.errors[0].field) == (3, "instrument")
    assert "4111" not in str(info.value)
    assert session.get(Code, fp(0)).state == "listed"  # type: ignore[union-attr]
    import_sales(
        session,
        chain.ledger,
        rows(header + good),
        fingerprint_key=FINGERPRINT_KEY,
        signers=Signers(chain.ledger.platform),
        now=NOW,
    )
    records = b"".join(session.scalars(select(LedgerEntry.record)))
    assert b"alice" not in records and b"tok_123" not in records
    assert session.get(Code, fp(0)).state == "sold"  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["4111111111111111", "5500-0000-0000-0004", "378282246310005"])
def test_full_card_numbers_are_refused(value: str) -> None:
    with pytest.raises(Exception, match="full card numbers are refused"):
        instrument_pseudonym(FINGERPRINT_KEY, value)


def test_instrument_token_is_pseudonymised() -> None:
    assert len(instrument_pseudonym(FINGERPRINT_KEY, "4111111111111112")) == 32  # fails Luhn


def test_bad_amount_in_a_sale_is_reported_on_its_own_line(session: Session, chain: Chain) -> None:
    header = "merchant,buyer,amount,currency,fingerprint\n"
    text = header + "".join(
        f"{SHOP},buyer-{i},{'1e3' if i == 3 else '100.00'},CNY,{fp(i).hex()}\n" for i in range(5)
    )
    with pytest.raises(ImportFailedError) as info, session.begin_nested():
        import_sales(
            session,
            chain.ledger,
            rows(text),
            fingerprint_key=FINGERPRINT_KEY,
            signers=Signers(chain.ledger.platform),
            now=NOW,
        )
    assert [(e.line, e.field) for e in info.value.errors] == [(5, "amount")]


def test_reused_batch_id_is_reported_at_the_batch_first_line(
    session: Session, chain: Chain
) -> None:
    with pytest.raises(ImportFailedError) as info, session.begin_nested():
        issue(session, chain, issuance_csv("b1", 9000, 3))  # "b1" was issued by the chain
    assert info.value.errors[0].line == 2


def csv_file(session: Session, chain: Chain, kind: str, text: str, **options: Any) -> Any:
    signers = Signers(chain.ledger.platform, {})
    return import_csv(
        session,
        chain.ledger,
        kind,
        io.StringIO(text, newline=""),
        fingerprint_key=FINGERPRINT_KEY,
        signers=signers,
        now=NOW,
        **options,
    )


def test_a_file_is_imported_by_its_kind(session: Session, chain: Chain) -> None:
    report = csv_file(session, chain, "issuance", issuance_csv("imp-9", 8500, 4))
    assert (report.rows, report.batches) == (4, ["imp-9"])
    assert session.get(Code, fp(8501)) is not None


def test_a_line_the_csv_reader_cannot_read_is_named_and_not_quoted(
    session: Session, chain: Chain
) -> None:
    before = count(session, LedgerEntry), count(session, Code)
    huge = pin(8600) * (csv.field_size_limit() // len(pin(8600)) + 1)
    text = issuance_csv("imp-10", 8600, 2) + f"imp-10,{PRODUCT},{serial(8602)},{huge}\n"
    with pytest.raises(ImportFailedError) as info, session.begin_nested():
        csv_file(session, chain, "issuance", text)
    assert [(e.line, e.field) for e in info.value.errors] == [(4, None)]
    assert "not valid CSV" in str(info.value) and pin(8600) not in str(info.value)
    assert (count(session, LedgerEntry), count(session, Code)) == before


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        ("refunds", {}, "kind"),
        ("transfers", {"expires_at": NOW + timedelta(days=30)}, "expires_at"),
    ],
)
def test_a_bad_kind_or_option_is_refused_before_reading(
    session: Session, chain: Chain, kind: str, options: dict[str, Any], field: str
) -> None:
    before = count(session, LedgerEntry)
    with pytest.raises(ValidationError) as info:
        csv_file(session, chain, kind, "from,to,fingerprint\n", **options)
    assert info.value.field == field
    assert count(session, LedgerEntry) == before


def test_a_file_without_the_kinds_columns_is_refused_on_line_1(
    session: Session, chain: Chain
) -> None:
    with pytest.raises(ImportFailedError) as info:
        csv_file(session, chain, "sales", "merchant,buyer\nshop,b1\n")
    assert info.value.errors[0].line == 1 and "amount, currency" in str(info.value)


def test_cli_import_leaves_planner_statistics_on_postgresql(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        ledger = make_ledger()
        with Session(engine) as session, write_transaction(session):
            build_chain(session, ledger)
        ledger.close()
        path = tmp_path / "issuance.csv"
        path.write_text(issuance_csv("b-cli", 100, 30))
        result = run(
            ["codes", "import", str(path), "--kind", "issuance"],
            tmp_path,
            CARDTRACE_DATABASE_URL=url.render_as_string(hide_password=False),
            CARDTRACE_KEY_DIR=str(write_key_dir(tmp_path / "keys")),
            CARDTRACE_INSTANCE=str(tmp_path / "instance"),
        )
        assert result.returncode == 0, result.stderr
        with engine.connect() as conn:
            analyzed = dict(
                conn.execute(
                    text(
                        "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                        "WHERE relname IN ('code', 'code_event', 'code_batch')"
                    )
                ).all()
            )
            codes = conn.execute(select(func.count()).select_from(Code)).scalar_one()
        engine.dispose()
    assert codes == 20 + 30
    assert analyzed == {"code": True, "code_event": True, "code_batch": True}
