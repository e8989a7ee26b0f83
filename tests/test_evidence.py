"""Evidence packages: a package verifies offline; any changed, removed or added file
fails naming it; a re-signed package with wrong content still fails; the PDF states the
case's facts and renders; the spreadsheet reads back; each export is on the ledger."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import bagit
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from provenance.cases import AttachmentStore, CaseView, attach_file, get_case, open_case
from provenance.entries import canonical
from provenance.evidence import (
    EvidenceError,
    Package,
    PackageVerificationError,
    build_package,
    find_cjk_font,
    layout,
    record_export,
    verify_package,
)
from provenance.ledger import Ledger, LedgerEntry
from provenance.verify import VerificationError
from tests.cases_support import OFFICER, TITLE, build_case, case_ledger
from tests.codes_support import SHOP
from tests.ledger_support import NOW, PLATFORM_KEY
from tests.test_analysis_alerts import entries
from webapp.database import make_engine, upgrade

RECIPIENT = "Nanshan Public Security Bureau"
CJK = find_cjk_font()


def _build(
    session: Session,
    ledger: Ledger,
    case: CaseView,
    out: Path,
    *,
    language: str = "en",
    store: AttachmentStore | None = None,
    font: Path | None = CJK,
) -> Package:
    return build_package(
        session,
        ledger,
        case.id,
        out,
        exported_by=OFFICER,
        recipient=RECIPIENT,
        language=language,
        now=NOW,
        attachments=store,
        cjk_font=font,
    )


def _case_with_files(session: Session, ledger: Ledger, store: AttachmentStore) -> CaseView:
    case = build_case(session, ledger)
    return attach_file(
        session,
        ledger,
        store,
        case.id,
        "bank-statement.csv",
        b"date,amount\n",
        officer=OFFICER,
        now=NOW,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One package, built on a database of its own, for the tampering tests to copy."""
    root = tmp_path_factory.mktemp("evidence")
    engine = make_engine(make_url(f"sqlite:///{root / 'db.sqlite'}"))
    upgrade(engine)
    with Session(engine) as session:
        ledger = case_ledger()
        ledger.ensure_genesis(session, name="test", now=NOW)
        case = _case_with_files(session, ledger, AttachmentStore(root / "attachments"))
        ledger.issue_checkpoint(session, now=NOW)
        open_case(session, ledger, title="a later case", officer=OFFICER, now=NOW)
        ledger.issue_checkpoint(session, now=NOW)
        _build(session, ledger, case, root / "package", store=AttachmentStore(root / "attachments"))
        session.commit()
    engine.dispose()
    yield root / "package"


@pytest.fixture()
def package(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "package"
    shutil.copytree(built, copy)
    return copy


def _verify(path: Path) -> None:
    verify_package(path, case_ledger().catalog, trusted_key=case_ledger().platform.public_key)


def _files(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def _resign(path: Path) -> None:
    """Recompute the bag's manifests and sign them again with the platform key: what a
    dishonest platform could do, so the content checks must catch it on their own."""
    bagit.Bag(str(path)).save(manifests=True)
    tagmanifest = (path / layout.TAGMANIFEST).read_bytes()
    signature = PLATFORM_KEY.sign(layout.signed_message(tagmanifest))
    (path / layout.SIGNATURE).write_text(base64.b64encode(signature).decode() + "\n")


# --- it verifies ----------------------------------------------------------------------------


def test_the_package_verifies_offline_with_the_platform_key(package: Path) -> None:
    report = verify_package(
        package, case_ledger().catalog, trusted_key=case_ledger().platform.public_key
    )
    assert report.key_was_trusted and report.entries > 10
    assert report.newest_size > report.bundle.tree_size  # a later checkpoint, proven consistent
    consistency = json.loads((package / layout.CONSISTENCY).read_bytes())
    assert consistency["proof"]


def test_the_package_verifies_with_its_own_key_but_not_with_another(package: Path) -> None:
    assert not verify_package(package, case_ledger().catalog).key_was_trusted
    with pytest.raises(PackageVerificationError) as e:
        verify_package(package, case_ledger().catalog, trusted_key=bytes(range(32)))
    assert e.value.path == layout.TAGMANIFEST and e.value.code == "bad-signature"


def test_the_bag_is_a_valid_bagit_bag(package: Path) -> None:
    bag = bagit.Bag(str(package))
    assert bag.is_valid()
    assert bag.info["External-Identifier"].startswith("CASE-")


# --- tampering ---------------------------------------------------------------------------------


def test_changing_any_byte_of_any_file_fails_naming_the_file(built: Path, tmp_path: Path) -> None:
    for name in _files(built):
        size = (built / name).stat().st_size
        for position in sorted({0, size // 2, size - 1}):
            copy = tmp_path / f"t-{abs(hash((name, position)))}"
            shutil.copytree(built, copy)
            raw = bytearray((copy / name).read_bytes())
            raw[position] ^= 0x01
            (copy / name).write_bytes(bytes(raw))
            with pytest.raises(PackageVerificationError) as e:
                _verify(copy)
            assert name in str(e.value), (name, position, str(e.value))
            shutil.rmtree(copy)


def test_removing_any_file_fails_naming_it(built: Path, tmp_path: Path) -> None:
    for name in _files(built):
        copy = tmp_path / "removed"
        shutil.copytree(built, copy)
        (copy / name).unlink()
        with pytest.raises(PackageVerificationError) as e:
            _verify(copy)
        assert name in str(e.value), (name, str(e.value))
        shutil.rmtree(copy)


@pytest.mark.parametrize(
    "name", ["extra.txt", "data/extra.pdf", "data/ledger/more.jsonl", "data/attachments/x"]
)
def test_adding_a_file_fails_naming_it(package: Path, name: str) -> None:
    (package / name).write_bytes(b"planted")
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == name and e.value.code == "file-added"


def test_a_resigned_package_with_a_wrong_inclusion_proof_fails_naming_the_entries(
    package: Path,
) -> None:
    lines = (package / layout.ENTRIES).read_bytes().splitlines()
    first = json.loads(lines[-1])
    first["proof"][0] = base64.b64encode(bytes(32)).decode()
    lines[-1] = canonical(first)
    (package / layout.ENTRIES).write_bytes(b"\n".join(lines) + b"\n")
    _resign(package)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.ENTRIES and e.value.code == "bad-proof"


def test_a_resigned_package_with_a_forged_entry_fails_naming_the_bundle(package: Path) -> None:
    text = (package / layout.BUNDLE).read_text()
    forged = text.replace('"reason":"vetted"', '"reason":"vetteD"', 1)
    assert forged != text
    (package / layout.BUNDLE).write_text(forged)
    _resign(package)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.BUNDLE


def test_a_resigned_package_with_a_changed_note_fails_naming_the_case(package: Path) -> None:
    document = json.loads((package / layout.CASE).read_text())
    document["case"]["notes"][0]["text"] = "Buyer mule is innocent"
    (package / layout.CASE).write_text(json.dumps(document, ensure_ascii=False))
    _resign(package)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.CASE and e.value.code == "case-mismatch"


def test_a_resigned_package_with_a_bad_consistency_proof_fails_naming_it(package: Path) -> None:
    consistency = json.loads((package / layout.CONSISTENCY).read_text())
    consistency["proof"] = consistency["proof"][:-1]
    (package / layout.CONSISTENCY).write_text(json.dumps(consistency))
    _resign(package)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.CONSISTENCY and e.value.code == "history-rewritten"


def test_a_resigned_package_with_an_invented_key_fails_naming_the_keys(package: Path) -> None:
    keys = json.loads((package / layout.KEYS).read_text())
    keys["keys"][0]["revoked_at"] = (
        None if keys["keys"][0]["revoked_at"] else "2026-01-01T00:00:00.000000Z"
    )
    (package / layout.KEYS).write_text(json.dumps(keys))
    _resign(package)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.KEYS


# --- contents ---------------------------------------------------------------------------------


def test_the_pdf_states_the_case_key_facts(package: Path) -> None:
    document = json.loads((package / layout.CASE).read_text())
    case = document["case"]
    text = "\n".join(p.extract_text() for p in PdfReader(package / layout.REPORT).pages)
    flat = text.replace("\n", " ")
    for fact in (
        case["reference"],
        TITLE,
        RECIPIENT,
        SHOP,
        "stolen-payment-taint",
        "approved",
        "Buyer mule paid with a reported card",
        str(document["checkpoint_size"]),
        "cardtrace evidence verify",
    ):
        assert fact in flat, fact
    assert "Flow graph" in flat and "code.sale" in flat


def test_the_pdf_pages_render_to_png(package: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", str(package / layout.REPORT), str(tmp_path / "page")],
        check=True,
        timeout=120,
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == len(PdfReader(package / layout.REPORT).pages) >= 2
    for page in pages:
        assert page.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and page.stat().st_size > 2000


def test_the_spreadsheet_reads_back_with_the_sales_and_custody(package: Path) -> None:
    book = load_workbook(package / layout.APPENDIX, read_only=True)
    assert book.sheetnames == ["transactions", "custody", "entries", "members"]
    sales = list(book["transactions"].iter_rows(values_only=True))
    assert sales[0][:3] == ("seq", "time (UTC)", "merchant")
    assert len(sales) == 1 + 5 and {row[2] for row in sales[1:]} == {SHOP}
    custody = list(book["custody"].iter_rows(values_only=True))
    steps = {row[3] for row in custody[1:]}
    assert {"batch.codes", "code.transfer", "code.sale"} <= steps
    listed = [
        json.loads(line)["seq"] for line in (package / layout.ENTRIES).read_bytes().splitlines()
    ]
    assert [row[0] for row in list(book["entries"].iter_rows(values_only=True))[1:]] == listed


def test_attachments_travel_by_sha256(package: Path) -> None:
    digest = hashlib.sha256(b"date,amount\n").hexdigest()
    assert (package / layout.ATTACHMENTS / digest).read_bytes() == b"date,amount\n"


@pytest.mark.skipif(CJK is None, reason="no CJK font installed (scripts/system-deps.sh)")
def test_a_chinese_report_is_in_chinese(session: Session, tmp_path: Path) -> None:
    ledger = case_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    case = build_case(session, ledger)
    ledger.issue_checkpoint(session, now=NOW)
    package = _build(session, ledger, case, tmp_path / "zh", language="zh")
    assert package.language == "zh" and package.notices == ()
    text = "".join(p.extract_text() for p in PdfReader(tmp_path / "zh" / layout.REPORT).pages)
    assert "证据包" in text and "发现及理由" in text and case.reference in text


def test_without_a_cjk_font_the_report_is_english_and_says_why(
    session: Session, tmp_path: Path
) -> None:
    ledger = case_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    case = build_case(session, ledger)
    ledger.issue_checkpoint(session, now=NOW)
    package = _build(session, ledger, case, tmp_path / "p", language="zh", font=None)
    assert package.language == "en"
    assert any("CJK font" in notice for notice in package.notices)
    _verify(tmp_path / "p")


# --- chain of custody and refusals --------------------------------------------------------------


def test_an_export_is_recorded_on_the_ledger_with_the_package_hash(
    session: Session, tmp_path: Path
) -> None:
    ledger = case_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    case = build_case(session, ledger)
    ledger.issue_checkpoint(session, now=NOW)
    package = _build(session, ledger, case, tmp_path / "p")
    seq = record_export(
        session, ledger, package, exported_by=OFFICER, now=NOW + timedelta(seconds=1)
    )
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.seq == seq)).one()
    body = json.loads(entry.record)["entry"]["body"]
    tagmanifest = (tmp_path / "p" / layout.TAGMANIFEST).read_bytes()
    assert entry.type == "case.export"
    assert body["package_sha256"] == hashlib.sha256(tagmanifest).hexdigest()
    assert body["recipient"] == RECIPIENT and body["by"] == OFFICER
    assert get_case(session, case.id).events[-1].action == "export"


def test_an_export_without_a_covering_checkpoint_or_into_a_full_directory_is_refused(
    session: Session, tmp_path: Path
) -> None:
    ledger = case_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    case = build_case(session, ledger)
    size = entries(session)
    with pytest.raises(EvidenceError) as e:
        _build(session, ledger, case, tmp_path / "p")
    assert e.value.code == "no-checkpoint" and not (tmp_path / "p").exists()
    ledger.issue_checkpoint(session, now=NOW)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(EvidenceError) as e:
        _build(session, ledger, case, tmp_path / "full")
    assert e.value.code == "output-exists"
    for field, value in (
        ("exported_by", "Li Investigator"),
        ("recipient", " "),
        ("language", "fr"),
    ):
        arguments = {"exported_by": OFFICER, "recipient": RECIPIENT, "language": "en"}
        arguments[field] = value
        with pytest.raises(EvidenceError):
            build_package(session, ledger, case.id, tmp_path / "q", now=NOW, **arguments)
    assert not (tmp_path / "q").exists()
    assert _files(tmp_path / "full") == ["keep.txt"]
    assert entries(session) == size


def test_verify_names_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(VerificationError):
        verify_package(tmp_path / "nothing", case_ledger().catalog)


@pytest.mark.parametrize(
    "change",
    [
        lambda case: case.update(status="closed", outcome="no_fraud"),
        lambda case: case.update(assignee="someone.else"),
        lambda case: case["members"].pop(),
        lambda case: case["timeline"].pop(),
    ],
)
def test_a_resigned_package_whose_case_record_differs_from_its_entries_fails(
    package: Path, change: Any
) -> None:
    document = json.loads((package / layout.CASE).read_text())
    change(document["case"])
    (package / layout.CASE).write_text(json.dumps(document, ensure_ascii=False))
    _resign(package)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.CASE and e.value.code == "case-mismatch"


def test_a_symbolic_link_in_the_package_fails_naming_it(package: Path) -> None:
    report = package / layout.REPORT
    moved = package.parent / "outside.pdf"
    report.rename(moved)
    report.symlink_to(moved)
    with pytest.raises(PackageVerificationError) as e:
        _verify(package)
    assert e.value.path == layout.REPORT
