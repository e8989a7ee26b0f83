"""What an evidence package states about a case, gathered once as plain values.

The report and the spreadsheet are drawn from these facts only, and every fact comes
from a ledger entry that the package carries (or from the case and alert tables that
those entries' hashes bind), so a reader can trace each line to an entry number.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import networkx as nx
from networkx.readwrite import json_graph
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.models import Alert
from provenance.cases import CaseView, MemberKind
from provenance.cases.related import RelatedEntries, party_decisions
from provenance.entries import decode_record, format_time
from provenance.ledger import LedgerEntry
from provenance.parties import Party

MAX_GRAPH_NODES = 40
MAX_PARTIES = 20

# Entry types that move or end a code's custody, and the body fields naming its codes.
CUSTODY_TYPES = {
    "batch.codes": "codes",
    "code.attest": "codes",
    "code.transfer": "codes",
    "code.list": "codes",
    "code.redeem": "code",
    "code.void": "codes",
    "code.freeze": "codes",
    "code.unfreeze": "codes",
}


def short(fingerprint_b64: str) -> str:
    """How the report names a code: the first 12 hex digits of its fingerprint."""
    return base64.b64decode(fingerprint_b64)[:6].hex()


@dataclass(frozen=True, slots=True)
class EntryFact:
    seq: int
    type: str
    time: str
    actor: str
    leaf_hash: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlertFact:
    key: str
    typology: str
    subject_kind: str
    subject: str
    score: float
    severity: str
    status: str
    reason: str
    opened_seq: int


@dataclass(frozen=True, slots=True)
class Decision:
    seq: int
    time: str
    summary: str


@dataclass(frozen=True, slots=True)
class PartyFact:
    id: str
    kind: str
    name: str
    status: str
    registered_seq: int
    decisions: tuple[Decision, ...]


@dataclass(frozen=True, slots=True)
class CustodyRow:
    seq: int
    time: str
    type: str
    actor: str
    code: str
    sender: str
    recipient: str


@dataclass(frozen=True, slots=True)
class SaleRow:
    seq: int
    time: str
    merchant: str
    code: str
    buyer: str
    instrument: str
    device: str
    ip: str
    amount: str
    currency: str


@dataclass(frozen=True, slots=True)
class CaseFacts:
    case: CaseView
    origin: str
    platform_key_id: str
    checkpoint_size: int
    checkpoint_root: str
    newest_size: int
    exported_at: datetime
    exported_by: str
    recipient: str
    language: str
    related: RelatedEntries
    entries: tuple[EntryFact, ...]
    alerts: tuple[AlertFact, ...]
    parties: tuple[PartyFact, ...]
    codes: tuple[str, ...]
    custody: tuple[CustodyRow, ...]
    sales: tuple[SaleRow, ...]
    graph: nx.MultiDiGraph = field(repr=False)

    def entry_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.type] = counts.get(entry.type, 0) + 1
        return counts


def _decision_summary(type_name: str, body: dict[str, Any]) -> str:
    if type_name == "party.status":
        return f"status -> {body['status']}: {body['reason']}"
    by = body.get("by", "")
    reasons = "; ".join(body.get("reasons", []))
    if type_name == "onboarding.transition":
        text = f"{body['action']} ({body.get('from_state') or 'new'} -> {body['to_state']}) by {by}"
    elif type_name == "onboarding.recommend":
        text = f"recommend {body['recommendation']} by {by}"
    else:
        text = f"screening hit {body.get('decision', '')} by {by}"
    return f"{text}: {reasons}" if reasons else text


def _party(session: Session, party_id: str) -> PartyFact | None:
    party = session.get(Party, party_id)
    if party is None:
        return None
    decisions = tuple(
        Decision(seq, _entry_time(session, seq), _decision_summary(type_name, body))
        for seq, type_name, body in party_decisions(session, party_id)
    )
    return PartyFact(
        party.id, party.kind, party.name, party.status, party.registered_seq, decisions
    )


def _entry_time(session: Session, seq: int) -> str:
    moment = session.scalar(select(LedgerEntry.time).where(LedgerEntry.seq == seq))
    return format_time(moment) if moment is not None else ""


def _union_graph(evidence: list[dict[str, Any]]) -> nx.MultiDiGraph:
    graph: nx.MultiDiGraph = nx.MultiDiGraph()
    for data in evidence:
        try:
            part = json_graph.node_link_graph(data, directed=True, multigraph=True, edges="edges")
        except (KeyError, TypeError, nx.NetworkXError):
            continue
        graph.add_nodes_from(part.nodes(data=True))
        graph.add_edges_from(part.edges(data=True))
    if graph.number_of_nodes() > MAX_GRAPH_NODES:
        keep = sorted(graph.nodes, key=lambda n: (-graph.degree(n), str(n)))[:MAX_GRAPH_NODES]
        graph = nx.MultiDiGraph(graph.subgraph(keep))
    return graph


def gather_facts(
    session: Session,
    case: CaseView,
    records: dict[int, bytes],
    related: RelatedEntries,
    *,
    origin: str,
    platform_key_id: str,
    checkpoint_size: int,
    checkpoint_root: bytes,
    newest_size: int,
    exported_at: datetime,
    exported_by: str,
    recipient: str,
    language: str,
) -> CaseFacts:
    """Collect the facts of ``case`` from its entries' ``records`` (seq -> bytes)."""
    entries = []
    for seq in sorted(records):
        record = decode_record(records[seq])
        statement = record.statement
        entries.append(
            EntryFact(
                seq,
                statement.type,
                format_time(statement.time),
                statement.actor,
                record.leaf_hash.hex(),
                statement.body,
            )
        )
    keys = case.members_of(MemberKind.ALERT)
    rows = list(session.scalars(select(Alert).where(Alert.key.in_(keys)))) if keys else []
    rows.sort(key=lambda a: (-a.score, a.id))
    alerts = tuple(
        AlertFact(
            a.key,
            a.typology,
            a.subject_kind,
            a.subject,
            a.score,
            a.severity,
            a.status,
            a.reason,
            a.opened_seq,
        )
        for a in rows
    )
    graph = _union_graph([a.evidence for a in rows])
    party_ids = list(dict.fromkeys(case.members_of(MemberKind.MERCHANT)))
    for _, data in graph.nodes(data=True):
        if data.get("kind") == "party" and data.get("name") not in party_ids:
            party_ids.append(str(data.get("name")))
    parties = tuple(
        p for p in (_party(session, pid) for pid in party_ids[:MAX_PARTIES]) if p is not None
    )
    interesting = {short(v) for v in case.members_of(MemberKind.CODE)}
    interesting |= {
        str(node).removeprefix("code:")
        for node, data in graph.nodes(data=True)
        if data.get("kind") == "code"
    }
    custody: list[CustodyRow] = []
    sales: list[SaleRow] = []
    for entry in entries:
        body = entry.body
        if entry.type == "code.sale":
            sales.append(
                SaleRow(
                    entry.seq,
                    entry.time,
                    entry.actor,
                    short(body["code"]),
                    body.get("buyer") or "",
                    body.get("instrument") or body.get("payment_ref") or "",
                    body.get("device") or "",
                    body.get("ip") or "",
                    body["amount"],
                    body["currency"],
                )
            )
            interesting.add(short(body["code"]))
    for entry in entries:
        field_name = CUSTODY_TYPES.get(entry.type)
        if field_name is None:
            continue
        value = entry.body.get(field_name)
        codes = [value] if isinstance(value, str) else list(value or [])
        for code in codes:
            fingerprint = code[0] if isinstance(code, list) else code
            if not isinstance(fingerprint, str) or short(fingerprint) not in interesting:
                continue
            custody.append(
                CustodyRow(
                    entry.seq,
                    entry.time,
                    entry.type,
                    entry.actor,
                    short(fingerprint),
                    str(entry.body.get("from", entry.actor)),
                    str(entry.body.get("to", "")),
                )
            )
    for sale in sales:
        custody.append(
            CustodyRow(
                sale.seq,
                sale.time,
                "code.sale",
                sale.merchant,
                sale.code,
                sale.merchant,
                sale.buyer,
            )
        )
    custody.sort(key=lambda r: (r.code, r.seq))
    return CaseFacts(
        case=case,
        origin=origin,
        platform_key_id=platform_key_id,
        checkpoint_size=checkpoint_size,
        checkpoint_root=checkpoint_root.hex(),
        newest_size=newest_size,
        exported_at=exported_at,
        exported_by=exported_by,
        recipient=recipient,
        language=language,
        related=related,
        entries=tuple(entries),
        alerts=alerts,
        parties=parties,
        codes=tuple(sorted(interesting)),
        custody=tuple(custody),
        sales=tuple(sales),
        graph=graph,
    )


def facts_json(facts: CaseFacts) -> str:
    """A short JSON digest of the facts (for logs and tests)."""
    return json.dumps(
        {
            "case": facts.case.id,
            "entries": len(facts.entries),
            "alerts": len(facts.alerts),
            "parties": [p.id for p in facts.parties],
            "codes": list(facts.codes),
        },
        ensure_ascii=False,
    )
