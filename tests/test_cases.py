"""Cases: every action a ledger entry; bad transitions and bad input refused with nothing
written; attachments by content; the projections rebuild from the ledger."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.cases import (
    AttachmentStore,
    CaseClosedError,
    CaseInputError,
    CaseNotFoundError,
    CaseStatus,
    CaseTransitionError,
    MemberExistsError,
    MemberKind,
    add_members,
    add_note,
    assign_case,
    attach_file,
    case_json,
    change_status,
    get_case,
    list_cases,
    open_case,
    related_entries,
    sanitise_name,
)
from provenance.cases.models import CaseText
from provenance.ledger import Ledger, LedgerEntry, rebuild_projections
from tests.cases_support import OFFICER, TITLE, build_case, case_ledger
from tests.codes_support import SHOP, b64, fp, person
from tests.ledger_support import NOW
from tests.test_analysis_alerts import entries


@pytest.fixture()
def ledger(session: Session) -> Ledger:
    ledger = case_ledger()
    ledger.ensure_genesis(session, name="test", now=NOW)
    return ledger


def _types(session: Session, seqs: tuple[int, ...]) -> list[str]:
    rows = session.scalars(
        select(LedgerEntry).where(LedgerEntry.seq.in_(seqs)).order_by(LedgerEntry.seq)
    )
    return [r.type for r in rows]


def test_every_case_action_is_a_platform_signed_ledger_entry(
    session: Session, ledger: Ledger
) -> None:
    case = build_case(session, ledger)
    case = change_status(session, ledger, case.id, "under_investigation", officer=OFFICER, now=NOW)
    case = change_status(session, ledger, case.id, "reported", officer=OFFICER, now=NOW)
    case = change_status(
        session, ledger, case.id, "closed", officer=OFFICER, now=NOW, outcome="fraud_confirmed"
    )
    assert case.status is CaseStatus.CLOSED and case.outcome is not None
    assert _types(session, case.seqs) == [
        "case.open",
        "case.add",
        "case.assign",
        "case.note",
        "case.status",
        "case.status",
        "case.status",
    ]
    rows = session.scalars(select(LedgerEntry).where(LedgerEntry.seq.in_(case.seqs))).all()
    assert {(r.actor, r.key_id) for r in rows} == {("platform", ledger.platform.key_id)}
    assert case.assignee == "wang.analyst" and case.title == TITLE
    assert case.notes[0].text == "Buyer mule paid with a reported card"


def test_members_are_pseudonyms_and_fingerprints_a_hex_code_is_stored_as_base64(
    session: Session, ledger: Ledger
) -> None:
    case = build_case(session, ledger)
    assert set(case.members_of(MemberKind.CODE)) == {b64(fp(0)), b64(fp(1))}
    assert case.members_of(MemberKind.MERCHANT) == [SHOP]
    assert case.members_of(MemberKind.BUYER) == [person("buyer", "mule")]
    assert len(case.members_of(MemberKind.ALERT)) >= 1


def test_the_ledger_keeps_hashes_not_the_title_or_notes(session: Session, ledger: Ledger) -> None:
    case = build_case(session, ledger)
    records = b"".join(
        session.scalars(select(LedgerEntry.record).where(LedgerEntry.seq.in_(case.seqs)))
    )
    assert TITLE.encode() not in records and b"reported card" not in records
    assert hashlib.sha256(TITLE.encode()).hexdigest().encode() in records


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "reported"),
        ([], "open"),
        (["under_investigation"], "open"),
        (["under_investigation", "reported"], "under_investigation"),
    ],
)
def test_an_invalid_transition_is_refused_with_nothing_written(
    session: Session, ledger: Ledger, path: list[str], target: str
) -> None:
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    for step in path:
        change_status(session, ledger, case.id, step, officer=OFFICER, now=NOW)
    size = entries(session)
    with pytest.raises(CaseTransitionError) as e:
        change_status(session, ledger, case.id, target, officer=OFFICER, now=NOW)
    assert e.value.code == "case-transition"
    assert entries(session) == size


def test_closing_needs_an_outcome_and_only_closing_has_one(
    session: Session, ledger: Ledger
) -> None:
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    size = entries(session)
    with pytest.raises(CaseInputError):
        change_status(session, ledger, case.id, "closed", officer=OFFICER, now=NOW)
    with pytest.raises(CaseInputError):
        change_status(
            session,
            ledger,
            case.id,
            "under_investigation",
            officer=OFFICER,
            now=NOW,
            outcome="duplicate",
        )
    with pytest.raises(CaseInputError):
        change_status(
            session, ledger, case.id, "closed", officer=OFFICER, now=NOW, outcome="solved-ish"
        )
    assert entries(session) == size


def test_a_closed_case_refuses_changes_with_nothing_written(
    session: Session, ledger: Ledger, tmp_path: Path
) -> None:
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    change_status(session, ledger, case.id, "closed", officer=OFFICER, now=NOW, outcome="duplicate")
    size = entries(session)
    store = AttachmentStore(tmp_path)
    for act in (
        lambda: add_note(session, ledger, case.id, "late", officer=OFFICER, now=NOW),
        lambda: assign_case(session, ledger, case.id, "wang.analyst", officer=OFFICER, now=NOW),
        lambda: add_members(
            session, ledger, case.id, [("merchant", SHOP)], officer=OFFICER, now=NOW
        ),
        lambda: attach_file(
            session, ledger, store, case.id, "a.txt", b"x", officer=OFFICER, now=NOW
        ),
    ):
        with pytest.raises(CaseClosedError):
            act()
    assert entries(session) == size


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [
        ("person", "x", "kind"),
        ("buyer", "Zhang San", "value"),
        ("instrument", "6222021234567890123", "value"),
        ("code", "not-a-fingerprint", "value"),
        ("merchant", "no-such-shop", "value"),
        ("alert", "0" * 64, "value"),
        ("code", "00" * 32, "value"),
    ],
)
def test_a_bad_or_unknown_member_is_refused_with_nothing_written(
    session: Session, ledger: Ledger, kind: str, value: str, field: str
) -> None:
    case = build_case(session, ledger)
    size = entries(session)
    with pytest.raises(CaseInputError) as e:
        add_members(session, ledger, case.id, [(kind, value)], officer=OFFICER, now=NOW)
    assert e.value.field == field
    assert entries(session) == size
    assert len(get_case(session, case.id).members) == len(case.members)


def test_a_member_already_in_the_case_is_refused_with_nothing_written(
    session: Session, ledger: Ledger
) -> None:
    case = build_case(session, ledger)
    size = entries(session)
    with pytest.raises(MemberExistsError):
        add_members(session, ledger, case.id, [("merchant", SHOP)], officer=OFFICER, now=NOW)
    with pytest.raises(MemberExistsError):
        add_members(
            session,
            ledger,
            case.id,
            [("buyer", "a" * 32), ("buyer", "A" * 32)],
            officer=OFFICER,
            now=NOW,
        )
    assert entries(session) == size


@pytest.mark.parametrize(
    "act",
    [
        lambda s, lg, c: open_case(s, lg, title="  ", officer=OFFICER, now=NOW),
        lambda s, lg, c: open_case(s, lg, title="x" * 201, officer=OFFICER, now=NOW),
        lambda s, lg, c: open_case(s, lg, title="t", officer="Li Investigator", now=NOW),
        lambda s, lg, c: assign_case(s, lg, c, "Wang!", officer=OFFICER, now=NOW),
        lambda s, lg, c: add_note(s, lg, c, "", officer=OFFICER, now=NOW),
        lambda s, lg, c: change_status(s, lg, c, "solved", officer=OFFICER, now=NOW),
        lambda s, lg, c: add_members(s, lg, c, [], officer=OFFICER, now=NOW),
    ],
)
def test_bad_input_is_refused_with_nothing_written(
    session: Session, ledger: Ledger, act: object
) -> None:
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    size = entries(session)
    with pytest.raises(CaseInputError):
        act(session, ledger, case.id)  # type: ignore[operator]
    assert entries(session) == size


def test_an_unknown_case_is_not_found(session: Session, ledger: Ledger) -> None:
    with pytest.raises(CaseNotFoundError):
        get_case(session, 987654)
    with pytest.raises(CaseNotFoundError):
        add_note(session, ledger, 987654, "x", officer=OFFICER, now=NOW)


def test_an_attachment_is_stored_by_sha256_with_its_name_sanitised(
    session: Session, ledger: Ledger, tmp_path: Path
) -> None:
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    store = AttachmentStore(tmp_path / "attachments")
    content = "收据 receipt".encode()
    case = attach_file(
        session, ledger, store, case.id, "../../etc/收据\x00.txt", content, officer=OFFICER, now=NOW
    )
    [attachment] = case.attachments
    digest = hashlib.sha256(content).hexdigest()
    assert attachment.sha256 == digest and attachment.size == len(content)
    assert attachment.name == "收据_.txt"
    assert _types(session, (attachment.seq,)) == ["case.attach"]
    assert store.path(digest).read_bytes() == content
    assert store.path(digest).is_relative_to(tmp_path / "attachments")
    size = entries(session)
    with pytest.raises(MemberExistsError):
        attach_file(session, ledger, store, case.id, "again.txt", content, officer=OFFICER, now=NOW)
    assert entries(session) == size


def test_an_oversized_or_empty_attachment_is_refused_with_nothing_written(
    session: Session, ledger: Ledger, tmp_path: Path
) -> None:
    case = open_case(session, ledger, title=TITLE, officer=OFFICER, now=NOW)
    store = AttachmentStore(tmp_path / "attachments", max_bytes=10)
    size = entries(session)
    for content in (b"", b"x" * 11):
        with pytest.raises(CaseInputError) as e:
            attach_file(session, ledger, store, case.id, "f.bin", content, officer=OFFICER, now=NOW)
        assert e.value.field == "file"
    assert entries(session) == size
    assert not (tmp_path / "attachments").exists()


@pytest.mark.parametrize("name", ["", "...", "/", "\x00\x01"])
def test_a_name_with_nothing_usable_is_refused(name: str) -> None:
    with pytest.raises(CaseInputError):
        sanitise_name(name)


def test_rebuilding_the_projections_gives_the_same_cases(session: Session, ledger: Ledger) -> None:
    case = build_case(session, ledger)
    change_status(session, ledger, case.id, "under_investigation", officer=OFFICER, now=NOW)
    before = case_json(get_case(session, case.id))
    rebuild_projections(session, ledger.catalog)
    session.expire_all()
    assert case_json(get_case(session, case.id)) == before
    assert session.get(CaseText, case.id) is not None


def test_listing_filters_by_status_and_assignee(session: Session, ledger: Ledger) -> None:
    first = build_case(session, ledger)
    second = open_case(session, ledger, title="Other", officer=OFFICER, now=NOW)
    assert [c.id for c in list_cases(session, assignee="wang.analyst")] == [first.id]
    assert {c.id for c in list_cases(session, status="open")} == {first.id, second.id}
    with pytest.raises(CaseInputError):
        list_cases(session, status="pending")


def test_related_entries_cover_the_members_and_the_case(session: Session, ledger: Ledger) -> None:
    case = build_case(session, ledger)
    related = related_entries(session, case)
    assert set(case.seqs) <= set(related.seqs)
    sale_types = _types(
        session, related.by_member[("instrument", person("instrument", "stolen-card"))]
    )
    assert "payment.stolen" in sale_types and "code.sale" in sale_types
    assert "code.issue" in _types(session, related.by_member[("code", b64(fp(0)))]) or any(
        t.startswith("batch.") for t in _types(session, related.by_member[("code", b64(fp(0)))])
    )
    merchant = _types(session, related.by_member[("merchant", SHOP)])
    assert "party.register" in merchant and "party.status" in merchant
    json.dumps(case_json(case))
