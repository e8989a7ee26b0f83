"""The spreadsheet appendix: the transactions and custody rows behind a case (xlsx)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import Workbook
from openpyxl.styles import Font

from provenance.evidence.facts import CaseFacts

SHEETS = ("transactions", "custody", "entries", "members")


def _when(text: str) -> datetime | str:
    # Real date cells (naive, UTC: spreadsheets keep no zone), so they sort and filter.
    try:
        return (
            datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)
        )
    except ValueError:
        return text


def render_appendix(facts: CaseFacts) -> bytes:
    """The workbook as bytes: one sheet each of sales, custody steps, entries, members.

    Every row names its ledger entry (``seq``), so each can be checked in the package.
    """
    book = Workbook()
    sales = book.active
    sales.title = "transactions"
    sales.append(
        [
            "seq",
            "time (UTC)",
            "merchant",
            "code",
            "buyer",
            "instrument",
            "device",
            "ip",
            "amount",
            "currency",
        ]
    )
    for s in facts.sales:
        sales.append(
            [
                s.seq,
                _when(s.time),
                s.merchant,
                s.code,
                s.buyer,
                s.instrument,
                s.device,
                s.ip,
                s.amount,
                s.currency,
            ]
        )
    custody = book.create_sheet("custody")
    custody.append(["code", "seq", "time (UTC)", "step", "by", "from", "to"])
    for r in facts.custody:
        custody.append([r.code, r.seq, _when(r.time), r.type, r.actor, r.sender, r.recipient])
    entries = book.create_sheet("entries")
    entries.append(["seq", "type", "time (UTC)", "actor", "leaf hash"])
    for e in facts.entries:
        entries.append([e.seq, e.type, _when(e.time), e.actor, e.leaf_hash])
    members = book.create_sheet("members")
    members.append(["kind", "value", "added in entry", "ledger entries"])
    for m in facts.case.members:
        seqs = facts.related.by_member.get((m.kind.value, m.value), ())
        members.append([m.kind.value, m.value, m.added_seq, " ".join(map(str, seqs))])
    for sheet in book.worksheets:
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            letter = column[0].column_letter
            sheet.column_dimensions[letter].width = min(
                48, max(8, *(len(str(c.value or "")) + 2 for c in column[:200]))
            )
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
    out = io.BytesIO()
    # A fixed creation time: the same case exports the same appendix bytes.
    book.properties.created = facts.exported_at.astimezone(UTC).replace(tzinfo=None)
    book.properties.modified = book.properties.created
    book.save(out)
    return out.getvalue()
