"""Each ledger detector finds its typology in a small constructed ledger and stays quiet
on the legitimate twin; the graph reads only new entries and round-trips as bytes."""

from __future__ import annotations

import base64
import gc
import hashlib
import zlib
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import orjson
import pytest
from sqlalchemy.orm import Session

from provenance.analysis import Typology
from provenance.analysis.detectors import BurstDetector
from provenance.analysis.ledger_detectors import (
    CustodyPatterns,
    DuplicateSerial,
    LedgerDetector,
    LedgerFinding,
    SaleBursts,
    SharedPaymentRing,
    StolenPaymentTaint,
    UnknownOriginAtVolume,
    analyze_ledger,
    evidence_digest,
)
from provenance.analysis.ledger_graph import (
    GraphSnapshotError,
    LedgerGraph,
    NodeKind,
    StringColumn,
    heap_frozen,
    read_ledger,
    short_code,
)
from provenance.analysis.scenario import generate
from provenance.ledger import Ledger
from tests.codes_support import SHOP, build_chain, sale_body

DAY = 86_400
T0 = 1_700_000_000


def fp(name: str) -> str:
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


def pseud(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Story:
    """A ledger told as entries, straight into a graph (no signing needed here)."""

    def __init__(self) -> None:
        self.graph = LedgerGraph()
        self.seq = 0
        self.codes = 0
        self.events: list[tuple[int, str, int, str, dict[str, Any]]] = []
        self.apply("product.register", 0, "issuer", {"product": "p", "face_value": "100.00"})

    def apply(self, kind: str, time: int, actor: str, body: dict[str, Any]) -> None:
        self.seq += 1
        self.events.append((self.seq, kind, T0 + time, actor, body))
        self.graph.apply(self.seq, kind, T0 + time, actor, body)

    def issue(self, n: int, holder: str = "issuer", serials: list[str] | None = None) -> list[str]:
        made = []
        for i in range(n):
            self.codes += 1
            made.append(
                (fp(f"code-{self.codes}"), fp((serials or [])[i] if serials else f"s-{self.codes}"))
            )
        self.apply(
            "batch.codes", 0, "issuer", {"product": "p", "batch": f"b{self.seq}", "codes": made}
        )
        codes = [c for c, _ in made]
        if holder != "issuer":
            self.transfer("issuer", holder, codes)
        return codes

    def transfer(self, sender: str, recipient: str, codes: list[str], time: int = 0) -> None:
        self.apply("code.transfer", time, sender, {"codes": codes, "from": sender, "to": recipient})

    def attest(self, party: str, n: int, serials: list[str] | None = None) -> list[str]:
        made = []
        for i in range(n):
            self.codes += 1
            made.append(
                (fp(f"code-{self.codes}"), fp(serials[i] if serials else f"s-{self.codes}"))
            )
        self.apply("code.attest", 0, party, {"product": "p", "codes": made})
        return [c for c, _ in made]

    def sell(
        self,
        merchant: str,
        code: str,
        buyer: str,
        time: int,
        instrument: str | None = None,
        device: str | None = None,
        ip: str | None = None,
    ) -> None:
        body = {"code": code, "buyer": pseud(buyer), "amount": "100.00", "currency": "CNY"}
        for name, value in (("instrument", instrument), ("device", device), ("ip", ip)):
            if value is not None:
                body[name] = pseud(value)
        self.apply("code.sale", time, merchant, body)

    def report_stolen(self, instrument: str) -> None:
        body = {"kind": "instrument", "pseudonym": pseud(instrument)}
        self.apply("payment.stolen", 0, "partner", body)

    def shop_day(self, merchant: str, sales: int, start: int = 0) -> None:
        """Ordinary trade: one-off buyers, each with their own card, device and IP."""
        for i, code in enumerate(self.issue(sales, holder=merchant)):
            who = f"{merchant}-customer-{i}"
            self.sell(merchant, code, who, start + i * 3600, who, who, who)


def found(detector: LedgerDetector, story: Story, typology: Typology) -> set[tuple[str, str]]:
    return {
        (f.subject_kind, f.subject) for f in detector.detect(story.graph) if f.typology is typology
    }


# --- stolen-payment taint ------------------------------------------------------------


def test_codes_bought_with_a_reported_card_and_the_dump_shop_are_found() -> None:
    story = Story()
    story.shop_day("shop-dump", 10)
    for i, code in enumerate(story.issue(8, holder="shop-dump")):
        story.sell("shop-dump", code, "mule", DAY + i * 600, "stolen-card")
    story.report_stolen("stolen-card")
    hits = found(StolenPaymentTaint(), story, Typology.STOLEN_PAYMENT_TAINT)
    assert ("instrument", pseud("stolen-card")) in hits
    assert ("party", "shop-dump") in hits
    assert ("buyer", pseud("mule")) in hits


def test_an_honest_shop_with_one_stolen_card_among_many_sales_is_not_flagged() -> None:
    story = Story()
    story.shop_day("shop-honest", 60)
    story.sell("shop-honest", story.issue(1, holder="shop-honest")[0], "thief", DAY, "stolen")
    story.report_stolen("stolen")
    hits = found(StolenPaymentTaint(), story, Typology.STOLEN_PAYMENT_TAINT)
    assert ("party", "shop-honest") not in hits
    assert ("instrument", pseud("stolen")) in hits


def test_sales_with_cards_never_reported_are_not_tainted() -> None:
    story = Story()
    story.shop_day("shop-honest", 20)
    story.report_stolen("some-other-card")
    assert StolenPaymentTaint().detect(story.graph) == []


# --- double sale, same serial ----------------------------------------------------------


def test_same_serial_with_another_pin_sold_twice_is_found() -> None:
    story = Story()
    first = story.issue(1, holder="shop-a", serials=["dup"])[0]
    clone = story.attest("shop-b", 1, serials=["dup"])[0]
    story.sell("shop-a", first, "alice", 10)
    story.sell("shop-b", clone, "bob", 20)
    serial = base64.b64decode(fp("dup"))[:6].hex()
    assert found(DuplicateSerial(), story, Typology.SAME_SERIAL_DIFFERENT_PIN) == {
        ("serial", serial)
    }
    assert found(DuplicateSerial(), story, Typology.DOUBLE_SALE) == {("serial", serial)}


def test_a_reissued_serial_not_yet_sold_twice_is_no_double_sale() -> None:
    story = Story()
    story.issue(1, holder="shop-a", serials=["dup"])
    story.issue(1, holder="shop-a", serials=["dup"])
    assert found(DuplicateSerial(), story, Typology.DOUBLE_SALE) == set()
    assert len(found(DuplicateSerial(), story, Typology.SAME_SERIAL_DIFFERENT_PIN)) == 1


def test_distinct_serials_sold_once_each_are_quiet() -> None:
    story = Story()
    story.shop_day("shop-a", 30)
    assert DuplicateSerial().detect(story.graph) == []


# --- unknown origin at volume ---------------------------------------------------------------


def test_a_shop_stocked_mostly_by_its_own_attestations_is_found() -> None:
    story = Story()
    story.issue(10, holder="shop-ghost")
    for i, code in enumerate(story.attest("shop-ghost", 40)):
        story.sell("shop-ghost", code, f"b{i}", i * 60, f"c{i}")
    assert found(UnknownOriginAtVolume(), story, Typology.UNKNOWN_ORIGIN) == {
        ("party", "shop-ghost")
    }


def test_a_small_attested_lot_beside_a_large_supply_is_quiet() -> None:
    story = Story()
    story.issue(500, holder="shop-big")
    story.attest("shop-big", 5)
    assert UnknownOriginAtVolume().detect(story.graph) == []


# --- bursts and rings in the sales' buyer data -----------------------------------------------


def test_a_burst_of_purchases_on_one_device_is_found() -> None:
    story = Story()
    story.shop_day("shop-a", 40)
    for i, code in enumerate(story.issue(12, holder="shop-a")):
        story.sell("shop-a", code, f"fresh-{i}", 5 * DAY + i * 120, f"card-{i}", "tablet-x")
    assert ("device", pseud("tablet-x")) in found(SaleBursts(), story, Typology.BURST)


def test_a_regular_customer_buying_often_over_weeks_is_no_burst() -> None:
    story = Story()
    story.shop_day("shop-a", 40)
    for i, code in enumerate(story.issue(30, holder="shop-a")):
        story.sell("shop-a", code, "regular", i * DAY, "regular-card", "regular-phone")
    assert found(SaleBursts(), story, Typology.BURST) == set()


def test_accounts_sharing_a_card_and_buying_together_are_a_ring() -> None:
    story = Story()
    story.shop_day("shop-a", 40)
    for i, code in enumerate(story.issue(8, holder="shop-a")):
        story.sell("shop-a", code, f"ring-{i % 4}", 3 * DAY + i * 1800, "shared-card", f"d{i % 4}")
    assert ("instrument", pseud("shared-card")) in found(
        SharedPaymentRing(), story, Typology.SHARED_ATTRIBUTE_RING
    )


def test_a_family_sharing_a_tablet_and_buying_now_and_then_is_no_ring() -> None:
    story = Story()
    story.shop_day("shop-a", 40)
    for i, code in enumerate(story.issue(9, holder="shop-a")):
        story.sell("shop-a", code, f"family-{i % 3}", i * 4 * DAY, f"card-{i % 3}", "tablet")
    assert found(SharedPaymentRing(), story, Typology.SHARED_ATTRIBUTE_RING) == set()


# --- custody patterns between parties ----------------------------------------------------


def _custody_background(story: Story) -> None:
    for d in range(300):
        codes = story.issue(1, holder=f"dist-{d % 10}")
        story.transfer(f"dist-{d % 10}", f"shop-{d}", codes, time=(d % 60) * DAY)


def test_a_resale_cycle_between_resellers_is_found() -> None:
    story = Story()
    _custody_background(story)
    codes = story.issue(5, holder="r1")
    story.transfer("r1", "r2", codes, time=DAY)
    story.transfer("r2", "r3", codes, time=2 * DAY)
    story.transfer("r3", "r1", codes, time=3 * DAY)
    assert ("party", "r1") in found(CustodyPatterns(), story, Typology.CYCLE)


def test_a_refund_back_to_the_supplier_is_no_cycle() -> None:
    story = Story()
    _custody_background(story)
    codes = story.issue(5, holder="r1")
    story.transfer("r1", "r2", codes, time=DAY)
    story.transfer("r2", "r1", codes, time=2 * DAY)
    assert found(CustodyPatterns(), story, Typology.CYCLE) == set()


# --- the graph --------------------------------------------------------------------------------


def test_findings_carry_their_evidence_subgraph() -> None:
    story = Story()
    for i, code in enumerate(story.issue(5, holder="shop-dump")):
        story.sell("shop-dump", code, "mule", i * 60, "stolen-card", "phone")
    story.report_stolen("stolen-card")
    finding = next(f for f in analyze_ledger(story.graph) if f.subject == pseud("stolen-card"))
    kinds = {data["kind"] for _, data in finding.evidence.nodes(data=True)}
    assert {"code", "party", "buyer", "instrument", "device"} <= kinds
    assert finding.evidence.number_of_edges() >= 20
    assert finding.severity.value == "high"


def test_entries_out_of_order_are_refused() -> None:
    story = Story()
    with pytest.raises(ValueError, match="not after"):
        story.graph.apply(1, "party.register", T0, "x", {"party": "x"})


def test_snapshot_roundtrips() -> None:
    story = Story()
    story.shop_day("shop-a", 5)
    story.report_stolen("c")
    again = LedgerGraph.from_bytes(story.graph.to_bytes())
    assert again.to_bytes() == story.graph.to_bytes()
    assert again.last_seq == story.graph.last_seq
    assert again.sales_table().accounts == story.graph.sales_table().accounts


def test_a_snapshot_with_names_holding_nul_or_nothing_roundtrips() -> None:
    graph = LedgerGraph()
    graph.apply(1, "party.register", T0, "x", {"party": "", "kind": "merchant"})
    graph.apply(2, "party.register", T0, "x", {"party": "odd\x00name", "kind": "merchant"})
    graph.apply(3, "party.register", T0, "x", {"party": "店铺", "kind": "merchant"})
    again = LedgerGraph.from_bytes(graph.to_bytes())
    assert again.names == ["", "odd\x00name", "店铺"]
    assert again.find(NodeKind.PARTY, "odd\x00name") == 1
    assert again.to_bytes() == graph.to_bytes()


def _snapshot() -> bytes:
    story = Story()
    story.shop_day("shop-a", 5)
    return story.graph.to_bytes()


def _flip_a_middle_byte(raw: bytes) -> bytes:
    middle = len(raw) // 2
    return raw[:middle] + bytes([raw[middle] ^ 0x01]) + raw[middle + 1 :]


def _next_version(raw: bytes) -> bytes:
    at = raw.index(b"\n") + 1
    version = int.from_bytes(raw[at : at + 4], "little")
    return raw[:at] + (version + 1).to_bytes(4, "little") + raw[at + 4 :]


def _json_snapshot_of_version_2(raw: bytes) -> bytes:
    # What snapshots were before the binary format: zlib over one JSON object.
    return zlib.compress(orjson.dumps({"version": 2, "last_seq": 5, "names": []}), 1)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"not a snapshot",
        lambda raw: b"",
        _json_snapshot_of_version_2,
        _next_version,
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw[:-1],
        lambda raw: raw + b"\0",
        _flip_a_middle_byte,
    ],
    ids=[
        "garbage",
        "empty",
        "older-json-snapshot",
        "newer-version",
        "truncated-in-half",
        "checksum-cut",
        "padded",
        "bit-flipped",
    ],
)
def test_a_damaged_or_foreign_snapshot_is_refused(damage: Callable[[bytes], bytes]) -> None:
    with pytest.raises(GraphSnapshotError) as caught:
        LedgerGraph.from_bytes(damage(_snapshot()))
    assert caught.value.code == "bad-analysis-snapshot"


def _outcome(findings: list[LedgerFinding]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            f.typology.value,
            f.subject_kind,
            f.subject,
            f.score,
            f.reason,
            sorted(f.members),
            orjson.dumps(nx.node_link_data(f.evidence, edges="edges"), option=orjson.OPT_SORT_KEYS),
        )
        for f in findings
    )


def test_an_incremental_run_finds_what_a_full_run_finds() -> None:
    _, stream = generate(20_000, fraud_rate=0.03, seed=4)
    events = list(stream)
    split = len(events) - len(events) // 20
    earlier, later = events[:split], events[split:]
    previous = LedgerGraph()
    for event in earlier:
        previous.apply(*event)
    for finding in analyze_ledger(previous):
        finding.evidence_with_sha256()
    # The new entries reach into the graph already kept: known buyers, devices, parties.
    sales = [body for _, kind, _, _, body in later if kind == "code.sale"]
    assert any(previous.find(NodeKind.BUYER, body["buyer"]) is not None for body in sales)
    assert any(previous.find(NodeKind.DEVICE, body.get("device", "")) is not None for body in sales)
    assert any(previous.find(NodeKind.PARTY, actor) is not None for _, _, _, actor, _ in later)

    incremental = LedgerGraph.from_bytes(previous.to_bytes())
    for event in later:
        incremental.apply(*event)
    full = LedgerGraph()
    for event in events:
        full.apply(*event)

    findings = analyze_ledger(incremental)
    found = _outcome(findings)
    assert found
    assert found == _outcome(analyze_ledger(full))
    # Most evidence is known from the snapshot, and rightly so.
    known = [f for f in findings if f.known_evidence_sha256 is not None]
    assert len(known) > len(findings) / 2
    assert all(f.known_evidence_sha256 == evidence_digest(f.evidence_json()) for f in known)


def test_a_second_read_takes_only_the_new_entries(session: Session, ledger: Ledger) -> None:
    chain = build_chain(session, ledger)
    graph, first = read_ledger(session)
    assert first == graph.last_seq + 1
    assert graph.n_sales == 0
    chain.append(session, SHOP, "code.sale", sale_body(0))
    chain.append(session, SHOP, "code.sale", sale_body(1))
    again, read = read_ledger(session, LedgerGraph.from_bytes(graph.to_bytes()))
    assert read == 2
    assert again.n_sales == 2
    assert read_ledger(session, again)[1] == 0


# --- incremental runs: what new entries change in what was found before ----------------------


class Resumed:
    """A story analysed, its graph kept as a snapshot, then told further: the run over
    the snapshot and the new entries against a run over every entry from the start."""

    def __init__(self, story: Story) -> None:
        self.story = story
        # As recording them as alerts does: every evidence drawn and hashed.
        for finding in analyze_ledger(story.graph):
            finding.evidence_with_sha256()
        self.snapshot = story.graph.to_bytes()
        self.told = len(story.events)

    def runs(self) -> tuple[list[LedgerFinding], list[LedgerFinding]]:
        incremental = LedgerGraph.from_bytes(self.snapshot)
        for event in self.story.events[self.told :]:
            incremental.apply(*event)
        full = LedgerGraph()
        for event in self.story.events:
            full.apply(*event)
        return analyze_ledger(incremental), analyze_ledger(full)

    def check(self) -> list[LedgerFinding]:
        """The incremental run's findings, once shown equal to the full run's, and every
        evidence digest it took from the snapshot equal to its evidence's."""
        incremental, full = self.runs()
        assert _outcome(incremental) == _outcome(full)
        for finding in incremental:
            known = finding.known_evidence_sha256
            if known is not None:
                assert known == evidence_digest(finding.evidence_json())
        return incremental


def _bursts(findings: list[LedgerFinding]) -> set[tuple[str, str, str]]:
    return {(f.subject_kind, f.subject, f.reason) for f in findings if f.typology is Typology.BURST}


def test_a_new_sale_of_the_same_pair_outside_the_window_ends_old_bursts() -> None:
    # Ten purchases by one buyer at one shop within the hour, on one phone: a burst of
    # the buyer and of the phone. A later purchase at the same shop shows the buyer
    # uses it outside that hour: none of the ten count any more, for either key.
    story = Story()
    story.shop_day("shop-a", 20)
    for i, code in enumerate(story.issue(10, holder="shop-a")):
        story.sell("shop-a", code, "spree", 5 * DAY + i * 60, "spree-card", "spree-phone")
    resumed = Resumed(story)
    assert ("buyer", pseud("spree"), "10 purchases by one sender within 60 minutes") in _bursts(
        analyze_ledger(LedgerGraph.from_bytes(resumed.snapshot))
    )
    (code,) = story.issue(1, holder="shop-a")
    story.sell("shop-a", code, "spree", 12 * DAY, "other-card", "other-phone")
    assert _bursts(resumed.check()) == set()


def test_a_new_sale_elsewhere_keeps_old_bursts() -> None:
    story = Story()
    story.shop_day("shop-a", 20)
    for i, code in enumerate(story.issue(10, holder="shop-a")):
        story.sell("shop-a", code, "spree", 5 * DAY + i * 60, "spree-card", "spree-phone")
    resumed = Resumed(story)
    (code,) = story.issue(1, holder="shop-b")
    story.sell("shop-b", code, "spree", 12 * DAY, "spree-card", "spree-phone")
    reasons = {reason for _, _, reason in _bursts(resumed.check())}
    phone = pseud("spree-phone")
    assert f"10 purchases by one device {phone} within 60 minutes" in reasons


def test_new_sales_on_a_shared_device_complete_a_burst_begun_before() -> None:
    # Six purchases on one tablet by different buyers, then four more by others: the
    # tablet's burst needs the old six and the new four.
    story = Story()
    story.shop_day("shop-a", 20)
    codes = story.issue(10, holder="shop-a")
    for i, code in enumerate(codes[:6]):
        story.sell("shop-a", code, f"early-{i}", 5 * DAY + i * 60, f"card-{i}", "tablet")
    resumed = Resumed(story)
    assert _bursts(analyze_ledger(LedgerGraph.from_bytes(resumed.snapshot))) == set()
    for i, code in enumerate(codes[6:]):
        story.sell("shop-a", code, f"late-{i}", 5 * DAY + 600 + i * 60, f"late-card-{i}", "tablet")
    assert {(k, s) for k, s, _ in _bursts(resumed.check())} == {("device", pseud("tablet"))}


def test_kept_findings_evidence_follows_custody() -> None:
    # The taint finding's evidence draws each code with its holder; moving one of its
    # codes after the snapshot redraws it, the untouched findings keep their digest.
    story = Story()
    story.shop_day("shop-a", 20)
    sold = story.issue(5, holder="shop-dump")
    for i, code in enumerate(sold):
        story.sell("shop-dump", code, "mule", i * 60, "stolen-card", "phone")
    story.report_stolen("stolen-card")
    for i, code in enumerate(story.issue(10, holder="shop-a")):
        story.sell("shop-a", code, "spree", 5 * DAY + i * 60, "spree-card", "spree-phone")
    resumed = Resumed(story)
    story.transfer("shop-dump", "shop-c", sold[:1], time=9 * DAY)
    found = resumed.check()
    card = next(f for f in found if f.subject == pseud("stolen-card"))
    assert card.known_evidence_sha256 is None
    assert "party:shop-c" in card.members
    spree = next(f for f in found if f.subject == pseud("spree"))
    assert spree.known_evidence_sha256 is not None


def test_a_new_stolen_report_and_new_codes_are_taken_in() -> None:
    story = Story()
    story.shop_day("shop-a", 20)
    for i, code in enumerate(story.issue(5, holder="shop-dump")):
        story.sell("shop-dump", code, "mule", i * 60, "card-later-reported", "phone")
    story.issue(3, serials=["dup-1", "dup-2", "dup-3"], holder="shop-a")
    resumed = Resumed(story)
    story.report_stolen("card-later-reported")
    story.attest("shop-a", 3, serials=["dup-1", "dup-2", "dup-3"])
    found = resumed.check()
    assert any(f.subject == pseud("card-later-reported") for f in found)
    assert any(f.typology is Typology.SAME_SERIAL_DIFFERENT_PIN for f in found)


def test_bursts_of_other_parameters_are_not_taken_from_the_snapshot() -> None:
    story = Story()
    story.shop_day("shop-a", 20)
    for i, code in enumerate(story.issue(6, holder="shop-a")):
        story.sell("shop-a", code, "spree", 5 * DAY + i * 60, "spree-card", "spree-phone")
    graph = LedgerGraph.from_bytes(Resumed(story).snapshot)
    loose = SaleBursts(BurstDetector(min_transfers=5))
    assert _bursts(loose.detect(graph))
    assert not _bursts(SaleBursts().detect(graph))


def test_a_snapshot_keeps_only_memos_of_its_own_state() -> None:
    story = Story()
    story.shop_day("shop-a", 5)
    analyze_ledger(story.graph)
    assert LedgerGraph.from_bytes(story.graph.to_bytes()).memos
    story.shop_day("shop-a", 1, start=DAY)
    assert LedgerGraph.from_bytes(story.graph.to_bytes()).memos == {}


def test_a_code_sold_before_the_graph_knew_it_is_shown_once_it_comes() -> None:
    story = Story()
    story.shop_day("shop-a", 20)
    for i, code in enumerate([*story.issue(4, holder="shop-dump"), fp("ghost")]):
        story.sell("shop-dump", code, "mule", i * 60, "stolen-card", "phone")
    story.report_stolen("stolen-card")
    resumed = Resumed(story)
    story.apply(
        "code.attest", DAY, "shop-dump", {"product": "p", "codes": [[fp("ghost"), fp("g")]]}
    )
    card = next(f for f in resumed.check() if f.subject == pseud("stolen-card"))
    assert card.known_evidence_sha256 is None
    ghost = next(
        d
        for n, d in card.evidence.nodes(data=True)
        if n.startswith("code:") and d.get("serial") == short_code(fp("g"))
    )
    assert ghost["origin"] == "attested"


def test_the_heap_is_frozen_only_for_the_block_and_never_someone_elses_freeze() -> None:
    assert gc.get_freeze_count() == 0
    with heap_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with heap_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    "strings",
    [
        [fp(f"c{i}") for i in range(6)] + [fp("c1")],  # one width: kept as bytes
        ["a", "bb", "ccc", "bb", "dddddddddd"],  # widths differ: split
        ["short", "", "a\0b", "short"],  # a NUL inside, an empty one: escaped
        [fp("x")],
        [],
    ],
    ids=["fixed", "varied", "escaped", "one", "none"],
)
def test_a_string_column_reads_back_what_was_written(strings: list[str]) -> None:
    written = StringColumn(list(strings))
    column = StringColumn.from_section(memoryview(written.joined()), len(strings))
    assert column is not None and len(column) == len(strings)
    assert [column[i] for i in range(len(strings))] == strings
    indices = np.arange(len(strings))[::-1]
    assert column.take(indices) == [strings[i] for i in indices]
    wanted = set(strings[-1:]) | {"absent", fp("absent")}
    first = {s: strings.index(s) for s in wanted if s in strings}
    assert column.first_of(wanted, len(strings)) == first
    column.extend(["later", strings[0] if strings else "later"])
    assert column.first_of({"later"}, len(column)) == {"later": len(strings)}
    assert column.joined() == StringColumn([*strings, "later", column[len(strings) + 1]]).joined()
    assert column.strings() == [*strings, "later", column[len(strings) + 1]]
    with pytest.raises(IndexError):
        column[-1]


def test_a_string_section_of_another_count_is_refused() -> None:
    raw = memoryview(StringColumn([fp("a"), fp("b")]).joined())
    assert StringColumn.from_section(raw, 3) is None


def test_new_sales_make_a_ring_on_a_shared_device_and_keep_the_others() -> None:
    story = Story()
    story.shop_day("shop-a", 20)
    codes = story.issue(14, holder="shop-a")
    for i, code in enumerate(codes[:8]):
        story.sell("shop-a", code, f"ring-{i % 4}", 3 * DAY + i * 1800, "shared-card", f"d{i % 4}")
    for i, code in enumerate(codes[8:12]):
        story.sell("shop-a", code, f"pair-{i % 2}", 6 * DAY + i * 1800, f"card-{i}", "tablet")
    resumed = Resumed(story)
    for i, code in enumerate(codes[12:]):
        story.sell("shop-a", code, f"third-{i}", 6 * DAY + 7200 + i * 600, f"c3-{i}", "tablet")
    rings = {
        (f.subject_kind, f.subject)
        for f in resumed.check()
        if f.typology is Typology.SHARED_ATTRIBUTE_RING
    }
    assert rings == {("instrument", pseud("shared-card")), ("device", pseud("tablet"))}
