# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Ledger explorer pages: entries with filters and keyset paging, one entry with its
record and inclusion proof, checkpoints, consistency between two checkpoints (the
embedded proofs verify), bad input, and who may open them."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.ledger import LedgerEntry, StoredCheckpoint
from provenance.merkle import (
    consistency_plan,
    leaf_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from tests.codes_support import SHOP, Chain, b64, build_chain, fp
from tests.ledger_support import NOW
from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    sign_in_as,
    web,
)
from webapp.accounts.roles import Role
from webapp.pages import ledger as ledger_pages
from webapp.runtime import current_runtime

STAFF = [r for r in Role if r is not Role.MERCHANT]
JSON_RE = r'<script type="application/json" id="{}">(.*?)</script>'


@pytest.fixture()
def chain(accounts: Accounts, session: Session) -> Chain:
    """The codes' supply chain with a checkpoint after it, more entries, and another."""
    with accounts.app.app_context():
        ledger = current_runtime().ledger
        built = build_chain(session, ledger)
        ledger.issue_checkpoint(session, now=NOW)
        built.append(session, SHOP, "code.list", {"codes": [b64(fp(i)) for i in range(5, 8)]})
        for i in range(3):
            built.platform(
                session, "party.status", {"party": SHOP, "status": "approved", "reason": f"r{i}"}
            )
        ledger.issue_checkpoint(session, now=NOW)
        session.flush()
        return built


def sign_in(accounts: Accounts, client: FlaskClient, role: Role) -> None:
    username = f"{role.value}.one"
    sign_in_as(accounts, client, role, username)


def embedded(page: str, element: str) -> dict[str, Any]:
    found = re.search(JSON_RE.format(element), page, re.DOTALL)
    assert found, page
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def seqs_on(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)">', page)]


def size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def checkpoint_sizes(session: Session) -> list[int]:
    return sorted(session.scalars(select(StoredCheckpoint.size)))


@pytest.fixture()
def auditor(accounts: Accounts, chain: Chain, web: FlaskClient) -> FlaskClient:
    sign_in(accounts, web, Role.AUDITOR)
    return web


# --- entries -----------------------------------------------------------------------------


def test_entries_are_listed_newest_first(auditor: FlaskClient, session: Session) -> None:
    response = auditor.get("/ledger")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    total = size(session)
    shown = seqs_on(page)
    assert shown == list(range(total - 1, max(total - 1 - ledger_pages.PAGE_SIZE, -1), -1))
    last = session.scalars(select(LedgerEntry).where(LedgerEntry.seq == total - 1)).one()
    assert last.leaf_hash.hex() in page and last.key_id in page and last.actor in page


def test_keyset_pages_walk_the_whole_log_once(
    auditor: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_pages, "PAGE_SIZE", 4)
    seen: list[int] = []
    url: str | None = "/ledger"
    while url:
        page = auditor.get(url).get_data(as_text=True)
        seen += seqs_on(page)
        older = re.search(r'id="older" href="([^"]+)"', page)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert seen == list(range(size(session) - 1, -1, -1))
    # And back: the newer link of the oldest page leads to the page before it.
    page = auditor.get("/ledger?before=4").get_data(as_text=True)
    assert seqs_on(page) == [3, 2, 1, 0]
    newer = re.search(r'id="newer" href="([^"]+)"', page)
    assert newer
    back = auditor.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert seqs_on(back) == [7, 6, 5, 4]


def test_entries_filter_by_type_and_actor(auditor: FlaskClient, session: Session) -> None:
    page = auditor.get("/ledger?type=code.transfer").get_data(as_text=True)
    expected = list(
        session.scalars(
            select(LedgerEntry.seq)
            .where(LedgerEntry.type == "code.transfer")
            .order_by(LedgerEntry.seq.desc())
        )
    )
    assert seqs_on(page) == expected and len(expected) == 2
    page = auditor.get(f"/ledger?actor={SHOP}&type=code.list").get_data(as_text=True)
    expected = list(
        session.scalars(
            select(LedgerEntry.seq)
            .where(LedgerEntry.actor == SHOP, LedgerEntry.type == "code.list")
            .order_by(LedgerEntry.seq.desc())
        )
    )
    assert seqs_on(page) == expected and len(expected) == 2
    assert "No entry matches." in auditor.get("/ledger?actor=nobody").get_data(as_text=True)


@pytest.mark.parametrize(
    "query",
    [
        "type=no.such",
        "type=%3Cscript%3E",
        "actor=Not%20An%20Actor",
        "before=-1",
        "after=x1",
        "before=99999999999999999",
        "seq=abc",
    ],
)
def test_bad_filters_are_a_clear_error(auditor: FlaskClient, query: str) -> None:
    response = auditor.get(f"/ledger?{query}")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="ledger-error"' in page and "<script>" not in page.split("</head>")[1]


def test_a_sequence_number_opens_its_entry(auditor: FlaskClient) -> None:
    response = auditor.get("/ledger?seq=3")
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/ledger/entries/3"
    )


# --- one entry ---------------------------------------------------------------------------


def test_an_entry_shows_its_record_signature_chain_and_a_proof_that_verifies(
    auditor: FlaskClient, session: Session
) -> None:
    row = session.scalars(select(LedgerEntry).where(LedgerEntry.seq == 5)).one()
    previous = session.scalars(select(LedgerEntry).where(LedgerEntry.seq == 4)).one()
    response = auditor.get("/ledger/entries/5")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    record = json.loads(row.record)
    assert previous.leaf_hash.hex() in page  # the chain link
    assert record["sig"] in page and row.leaf_hash.hex() in page and row.key_id in page
    assert '<pre class="record" id="record">{\n  &#34;entry&#34;: {' in page
    data = embedded(page, "proof-data")
    latest = max(checkpoint_sizes(session))
    stored = session.scalars(select(StoredCheckpoint).where(StoredCheckpoint.size == latest)).one()
    assert data["checkpoint"] == {
        "origin": stored.note.split("\n")[0],
        "size": latest,
        "root": base64.b64encode(stored.root).decode(),
    }
    (item,) = data["inclusion"]
    raw = base64.b64decode(item["record"])
    assert raw == row.record
    assert leaf_hash(raw) == base64.b64decode(item["leaf_hash"])
    verify_inclusion(
        leaf_hash(raw),
        item["seq"],
        item["size"],
        [base64.b64decode(h) for h in item["proof"]],
        stored.root,
    )
    assert 'id="verify-proofs"' in page and "js/ledger.js" in page


def test_an_entry_after_the_latest_checkpoint_has_no_proof_yet(
    accounts: Accounts, auditor: FlaskClient, chain: Chain, session: Session
) -> None:
    with accounts.app.app_context():
        chain.platform(
            session, "party.status", {"party": SHOP, "status": "approved", "reason": "late"}
        )
        session.flush()
    page = auditor.get(f"/ledger/entries/{size(session) - 1}").get_data(as_text=True)
    assert 'id="pending"' in page and 'id="proof-data"' not in page


def test_the_entry_pages_link_their_neighbours_only(auditor: FlaskClient, session: Session) -> None:
    first = auditor.get("/ledger/entries/0").get_data(as_text=True)
    assert "Previous entry<" not in first and 'href="/ledger/entries/1"' in first
    last = size(session) - 1
    page = auditor.get(f"/ledger/entries/{last}").get_data(as_text=True)
    assert f'href="/ledger/entries/{last - 1}"' in page and "Next entry<" not in page


def test_entry_rows_link_to_their_type_and_actor(auditor: FlaskClient) -> None:
    page = auditor.get("/ledger").get_data(as_text=True)
    assert 'href="/ledger?type=party.status"' in page and 'href="/ledger?actor=' in page


def test_an_unknown_entry_is_not_found(auditor: FlaskClient, session: Session) -> None:
    for seq in (size(session), 2**60):
        response = auditor.get(f"/ledger/entries/{seq}")
        assert response.status_code == 404
        assert "The ledger has no such entry." in response.get_data(as_text=True)


# --- checkpoints and consistency -------------------------------------------------------


def test_checkpoints_are_listed_with_their_signed_notes(
    auditor: FlaskClient, session: Session
) -> None:
    page = auditor.get("/ledger/checkpoints").get_data(as_text=True)
    rows = session.scalars(select(StoredCheckpoint).order_by(StoredCheckpoint.size.desc())).all()
    assert [int(s) for s in re.findall(r'<tr data-size="(\d+)">', page)] == [r.size for r in rows]
    for row in rows:
        assert base64.b64encode(row.root).decode() in page
        assert row.note.split("\n")[-2] in page  # the signature line


def test_consistency_between_two_checkpoints_verifies(
    auditor: FlaskClient, session: Session
) -> None:
    old, new = checkpoint_sizes(session)
    response = auditor.get(f"/ledger/consistency?old={old}&new={new}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    data = embedded(page, "consistency-data")
    roots = {
        r.size: r.root
        for r in session.scalars(
            select(StoredCheckpoint).where(StoredCheckpoint.size.in_([old, new]))
        )
    }
    assert data["old"] == {"size": old, "root": base64.b64encode(roots[old]).decode()}
    assert data["new"] == {"size": new, "root": base64.b64encode(roots[new]).decode()}
    proof = [base64.b64decode(h) for h in data["proof"]]
    assert len(proof) == len(consistency_plan(old, new)) > 0
    verify_consistency(old, new, roots[old], roots[new], proof)
    assert 'id="verify-consistency"' in page and "js/ledger.js" in page


def test_consistency_defaults_to_the_latest_checkpoint(
    auditor: FlaskClient, session: Session
) -> None:
    old, new = checkpoint_sizes(session)
    data = embedded(
        auditor.get(f"/ledger/consistency?old={old}").get_data(as_text=True), "consistency-data"
    )
    assert data["new"]["size"] == new
    same = embedded(
        auditor.get(f"/ledger/consistency?old={new}&new={new}").get_data(as_text=True),
        "consistency-data",
    )
    assert same["proof"] == []


def test_the_consistency_form_alone(auditor: FlaskClient) -> None:
    response = auditor.get("/ledger/consistency")
    assert response.status_code == 200
    assert 'id="consistency-form"' in response.get_data(as_text=True)


def test_consistency_input_errors(auditor: FlaskClient, session: Session) -> None:
    old, new = checkpoint_sizes(session)
    cases = [
        (f"old={new}&new={old}", 422, "must not be larger"),
        (f"old={old + 1}&new={new}", 404, "No checkpoint of that size"),
        (f"old={old}&new={new + 1}", 404, "No checkpoint of that size"),
        ("old=abc", 422, "whole number"),
        ("old=1&new=-5", 422, "whole number"),
    ]
    for query, status, message in cases:
        response = auditor.get(f"/ledger/consistency?{query}")
        assert response.status_code == status, query
        page = response.get_data(as_text=True)
        assert message in page and 'id="consistency-data"' not in page


def test_the_pages_hold_no_inline_code(auditor: FlaskClient, session: Session) -> None:
    old, new = checkpoint_sizes(session)
    for path in (
        "/ledger",
        "/ledger/entries/3",
        "/ledger/checkpoints",
        f"/ledger/consistency?old={old}&new={new}",
    ):
        page = auditor.get(path).get_data(as_text=True)
        for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL):
            assert 'type="application/json"' in attributes or (
                'src="' in attributes and not body.strip()
            )
        assert " style=" not in page and not re.search(r"\son[a-z]+=", page)


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_every_staff_role_may_explore_and_a_merchant_may_not(
    accounts: Accounts, chain: Chain, session: Session, web: FlaskClient, role: Role
) -> None:
    sign_in(accounts, web, role)
    old, new = checkpoint_sizes(session)
    expected = 200 if role in STAFF else 403
    for path in (
        "/ledger",
        "/ledger?type=code.list",
        "/ledger/entries/1",
        "/ledger/checkpoints",
        f"/ledger/consistency?old={old}&new={new}",
    ):
        assert web.get(path).status_code == expected, path
    nav = web.get("/").get_data(as_text=True)
    assert ('href="/ledger"' in nav) is (role in STAFF)


def test_the_explorer_writes_nothing(auditor: FlaskClient, session: Session) -> None:
    before = (size(session), checkpoint_sizes(session))
    old, new = checkpoint_sizes(session)
    for path in (
        "/ledger",
        "/ledger/entries/2",
        "/ledger/checkpoints",
        f"/ledger/consistency?old={old}&new={new}",
    ):
        auditor.get(path)
    session.expire_all()
    assert (size(session), checkpoint_sizes(session)) == before


# --- proof.js against the Python verifier ---------------------------------------------

PROOF_JS = Path(__file__).resolve().parent.parent / "webapp" / "static" / "js" / "proof.js"

NODE_CHECK = """
import { readFileSync } from "node:fs";
import * as proof from %(module)s;
const cases = JSON.parse(readFileSync(0, "utf8"));
const b = (s) => proof.base64ToBytes(s);
const out = [];
for (const c of cases.inclusion) {
  try {
    await proof.verifyInclusion(
      b(c.leaf), BigInt(c.index), BigInt(c.size), c.proof.map(b), b(c.root));
    out.push(true);
  } catch (e) { if (!(e instanceof proof.ProofError)) throw e; out.push(false); }
}
for (const c of cases.consistency) {
  try {
    await proof.verifyConsistency(
      BigInt(c.old), BigInt(c.new), b(c.old_root), b(c.new_root), c.proof.map(b));
    out.push(true);
  } catch (e) { if (!(e instanceof proof.ProofError)) throw e; out.push(false); }
}
console.log(JSON.stringify(out));
"""


def _e(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_proof_js_agrees_with_the_python_verifier(tmp_path: Path) -> None:
    """Every proof of trees up to 9 leaves, good and with one thing changed, gives the same
    answer in proof.js (run by Node, whose WebCrypto the browser shares) as in Python."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    from provenance.merkle import (
        ProofError,
        assemble,
        inclusion_plan,
        node_id,
        plan_node_ids,
    )

    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(9)]

    def nodes_for(plan: list[list[int]]) -> dict[Any, bytes]:
        found = {}
        for nid in plan_node_ids(plan):  # type: ignore[arg-type]
            for level in range(5):
                for index in range(16):
                    if node_id(level, index) == nid:
                        start = index << level
                        found[nid] = root_from_leaves(leaves[start : start + (1 << level)])
        return found

    inclusion: list[dict[str, Any]] = []
    consistency: list[dict[str, Any]] = []
    flip = bytes([1] + [0] * 31)
    for n in range(1, 10):
        root = root_from_leaves(leaves[:n])
        for m in range(n):
            plan = inclusion_plan(m, n)
            path = assemble(plan, nodes_for(plan))
            good = {"leaf": leaves[m], "index": m, "size": n, "proof": path, "root": root}
            inclusion.append(good)
            inclusion.append({**good, "index": (m + 1) % n} if n > 1 else {**good, "size": 2})
            inclusion.append({**good, "size": n + 1})
            inclusion.append({**good, "proof": [*path, leaves[0]]})
            if path:
                bad = bytes(a ^ b for a, b in zip(path[0], flip, strict=True))
                inclusion.append({**good, "proof": [bad, *path[1:]]})
                inclusion.append({**good, "proof": path[:-1]})
        for old in range(n + 1):
            plan = consistency_plan(old, n)
            path = assemble(plan, nodes_for(plan))
            old_root = root_from_leaves(leaves[:old])
            good = {"old": old, "new": n, "old_root": old_root, "new_root": root, "proof": path}
            consistency.append(good)
            consistency.append({**good, "new_root": root_from_leaves([*leaves[: n - 1], flip])})
            if path:
                consistency.append({**good, "proof": path[:-1]})
                consistency.append({**good, "proof": [*path, leaves[0]]})
                consistency.append({**good, "old": old - 1 if old > 1 else old + 1})

    def python_says(case: dict[str, Any], check: Any) -> bool:
        try:
            check(case)
        except ProofError:
            return False
        return True

    expected = [
        python_says(
            c, lambda c: verify_inclusion(c["leaf"], c["index"], c["size"], c["proof"], c["root"])
        )
        for c in inclusion
    ] + [
        python_says(
            c,
            lambda c: verify_consistency(
                c["old"], c["new"], c["old_root"], c["new_root"], c["proof"]
            ),
        )
        for c in consistency
    ]
    assert True in expected and False in expected

    def encode(case: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (_e(v) if isinstance(v, bytes) else [_e(h) for h in v] if isinstance(v, list) else v)
            for k, v in case.items()
        }

    script = tmp_path / "check.mjs"
    script.write_text(NODE_CHECK % {"module": json.dumps(PROOF_JS.as_uri())}, encoding="utf-8")
    cases = json.dumps(
        {
            "inclusion": [encode(c) for c in inclusion],
            "consistency": [encode(c) for c in consistency],
        }
    )
    done = subprocess.run(
        [node, str(script)], input=cases, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
