"""The readable report of an evidence package: a PDF in Chinese or English.

It states the case, its findings and why, the flow graph drawn, the parties with their
vetting decisions, the codes and their custody, the case's timeline and the ledger
entries behind each line (by number), and how to check all of it without trusting the
platform. Everything in it comes from :class:`~provenance.evidence.facts.CaseFacts`.
"""

from __future__ import annotations

import io
import math
from typing import Any
from xml.sax.saxutils import escape

import networkx as nx
from reportlab.graphics.shapes import Circle, Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from provenance.evidence.facts import CaseFacts
from provenance.evidence.fonts import ReportFont

MAX_TABLE_ROWS = 400

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Evidence package",
        "case": "Case",
        "case_title": "Title",
        "status": "Status",
        "outcome": "Outcome",
        "assignee": "Assigned to",
        "opened": "Opened",
        "exported": "Exported",
        "recipient": "Prepared for",
        "log": "Ledger",
        "checkpoint": "Signed checkpoint",
        "newest": "Newest checkpoint (consistency proven)",
        "platform_key": "Platform key id",
        "summary": "1. Summary",
        "summary_text": (
            "This case groups {members} members: {kinds}. The package carries {entries} "
            "signed ledger entries behind them, each with its proof of inclusion in the "
            "signed checkpoint of {size} entries."
        ),
        "findings": "2. Findings and why",
        "no_findings": "No analysis alert is part of this case.",
        "typology": "Pattern",
        "subject": "Subject",
        "score": "Score",
        "reason": "Why",
        "entry": "Entry",
        "graph": "3. Flow graph",
        "graph_text": (
            "Parties, codes, buyers and payment instruments from the findings' evidence; "
            "arrows show custody, sales and payments."
        ),
        "no_graph": "No flow graph: the case holds no alert with evidence.",
        "parties": "4. Parties and their vetting decisions",
        "no_parties": "No party is part of this case.",
        "party": "Party",
        "kind": "Kind",
        "registered": "registered in entry",
        "decision": "Decision",
        "time": "Time",
        "codes": "5. Codes and their custody",
        "no_codes": "No code is part of this case.",
        "code": "Code",
        "step": "Step",
        "actor": "By",
        "from_to": "From -> to",
        "sales": "Sales",
        "buyer": "Buyer",
        "instrument": "Paid with",
        "amount": "Amount",
        "timeline": "6. Case timeline",
        "action": "Action",
        "detail": "Detail",
        "notes": "Notes",
        "entries": "7. Ledger entries in this package",
        "type": "Type",
        "leaf": "Leaf hash (first 16 hex)",
        "more_rows": "... {n} more rows in appendix.xlsx",
        "verify": "8. How to check this package",
        "verify_text": (
            "Everything here can be checked offline, with the platform's public key only, "
            "without access to our systems: run <b>cardtrace evidence verify DIR "
            "--platform-key KEY</b>, where KEY is the platform key obtained from a source "
            "you trust (not from this package). See docs/EVIDENCE.md. The files, their "
            "SHA-256 hashes and the signature over them are listed in the bag's manifests."
        ),
        "limits": (
            "The ledger proves what was recorded, by whom and in which order, and that no "
            "entry was changed or removed afterwards. It does not prove that what a party "
            "declared was true; pseudonyms are not identities."
        ),
    },
    "zh": {
        "title": "证据包",
        "case": "案件",
        "case_title": "标题",
        "status": "状态",
        "outcome": "结论",
        "assignee": "承办人",
        "opened": "立案",
        "exported": "导出时间",
        "recipient": "提供对象",
        "log": "账本",
        "checkpoint": "签名检查点",
        "newest": "最新检查点（已证明一致）",
        "platform_key": "平台密钥编号",
        "summary": "一、概要",
        "summary_text": (
            "本案包含 {members} 个对象：{kinds}。本证据包附有与之相关的 {entries} 条签名账本记录，"
            "每条记录均附有其包含于 {size} 条记录的签名检查点中的证明。"
        ),
        "findings": "二、发现及理由",
        "no_findings": "本案不含分析告警。",
        "typology": "模式",
        "subject": "对象",
        "score": "评分",
        "reason": "理由",
        "entry": "记录号",
        "graph": "三、资金与卡密流向图",
        "graph_text": "来自告警证据的商户、卡密、买家与支付工具；箭头表示流转、销售与支付。",
        "no_graph": "无流向图：本案不含带证据的告警。",
        "parties": "四、相关方及其审核决定",
        "no_parties": "本案不含相关方。",
        "party": "相关方",
        "kind": "类型",
        "registered": "登记于记录",
        "decision": "决定",
        "time": "时间",
        "codes": "五、卡密及其流转",
        "no_codes": "本案不含卡密。",
        "code": "卡密",
        "step": "环节",
        "actor": "操作方",
        "from_to": "转出 -> 转入",
        "sales": "销售",
        "buyer": "买家",
        "instrument": "支付工具",
        "amount": "金额",
        "timeline": "六、案件时间线",
        "action": "操作",
        "detail": "详情",
        "notes": "备注",
        "entries": "七、本证据包所含账本记录",
        "type": "类型",
        "leaf": "叶哈希（前16位）",
        "more_rows": "……另有 {n} 行见 appendix.xlsx",
        "verify": "八、如何核验本证据包",
        "verify_text": (
            "本证据包的全部内容均可离线核验，只需平台公钥，无需访问我方系统：运行 "
            "<b>cardtrace evidence verify 目录 --platform-key 公钥</b>，"
            "其中公钥应从您信任的渠道获取（不要使用包内的公钥）。详见 docs/EVIDENCE.md。"
            "各文件及其 SHA-256 哈希和签名见包内清单。"
        ),
        "limits": (
            "账本能证明记录了什么、由谁记录、先后顺序，以及记录此后未被修改或删除；"
            "不能证明当事方所申报的内容属实；化名并非真实身份。"
        ),
    },
}

KIND_COLOURS = {
    "party": colors.HexColor("#1f77b4"),
    "code": colors.HexColor("#ff7f0e"),
    "buyer": colors.HexColor("#2ca02c"),
    "instrument": colors.HexColor("#d62728"),
    "payment_ref": colors.HexColor("#d62728"),
    "device": colors.HexColor("#9467bd"),
    "ip": colors.HexColor("#8c564b"),
    "product": colors.HexColor("#7f7f7f"),
    "batch": colors.HexColor("#bcbd22"),
}


def _styles(font: ReportFont) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=font.regular, fontSize=9, leading=12.5)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5),
        "title": ParagraphStyle("title", parent=base, fontName=font.bold, fontSize=18, leading=24),
        "h2": ParagraphStyle(
            "h2", parent=base, fontName=font.bold, fontSize=12.5, leading=17, spaceBefore=10
        ),
    }


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(
    header: list[str], rows: list[list[Any]], style: ParagraphStyle, widths: list[float]
) -> Table:
    cells = [[_p(h, style) for h in header]] + [[_p(c, style) for c in row] for row in rows]
    table = Table(cells, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


_ALWAYS_LABELLED = frozenset({"party", "instrument", "payment_ref", "batch"})


def _label(node: Any, data: dict[str, Any]) -> str:
    """``kind:name``, the name cut to 12 characters (pseudonyms and fingerprints are long)."""
    kind = str(data.get("kind", ""))
    name = str(data.get("name") or str(node).removeprefix(f"{kind}:"))
    return f"{kind}:{name[:12]}"


def _cells(count: int, width: float, height: float) -> list[tuple[float, float, float, float]]:
    """``count`` boxes ``(x, y, w, h)`` tiling the area, row by row from the top."""
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    w, h = width / columns, height / rows
    return [((i % columns) * w, height - (i // columns + 1) * h, w, h) for i in range(count)]


def _layout(
    graph: nx.MultiDiGraph, width: float, height: float, margin: float
) -> dict[Any, tuple[float, float]]:
    """Each connected part laid out on its own (a spring layout with a fixed seed, so the
    same case draws the same), the largest given most of the page, the rest tiled."""
    parts = sorted(
        nx.connected_components(nx.Graph(graph)), key=lambda c: (-len(c), sorted(map(str, c)))
    )
    inner_w, inner_h = width - 2 * margin, height - 2 * margin - 14
    if len(parts) == 1:
        boxes = [(0.0, 0.0, inner_w, inner_h)]
    elif len(parts[0]) * 2 >= graph.number_of_nodes():
        big = inner_w * 0.66
        boxes = [(0.0, 0.0, big, inner_h)] + [
            (big + x, y, w, h) for x, y, w, h in _cells(len(parts) - 1, inner_w - big, inner_h)
        ]
    else:
        boxes = _cells(len(parts), inner_w, inner_h)
    placed: dict[Any, tuple[float, float]] = {}
    for part, (bx, by, bw, bh) in zip(parts, boxes, strict=True):
        sub = nx.Graph(graph.subgraph(part))
        if len(part) == 1:
            layout = {next(iter(part)): (0.5, 0.5)}
        else:
            spread = 2.0 / math.sqrt(len(part))
            raw = nx.spring_layout(sub, seed=7, k=spread, iterations=200)
            xs = [float(p[0]) for p in raw.values()]
            ys = [float(p[1]) for p in raw.values()]
            span_x = (max(xs) - min(xs)) or 1.0
            span_y = (max(ys) - min(ys)) or 1.0
            layout = {
                n: ((float(p[0]) - min(xs)) / span_x, (float(p[1]) - min(ys)) / span_y)
                for n, p in raw.items()
            }
        pad = 0.12
        for node, (fx, fy) in layout.items():
            placed[node] = (
                margin + bx + bw * (pad + (1 - 2 * pad) * fx),
                margin + by + bh * (pad + (1 - 2 * pad) * fy),
            )
    return placed


def draw_graph(graph: nx.MultiDiGraph, font: ReportFont, width: float, height: float) -> Drawing:
    """The flow graph: a spring layout (fixed seed, so the same case draws the same)."""
    drawing = Drawing(width, height)
    drawing.add(Rect(0, 0, width, height, strokeColor=colors.lightgrey, fillColor=None))
    if graph.number_of_nodes() == 0:
        return drawing
    positions = _layout(graph, width, height, margin=36.0)

    def place(node: Any) -> tuple[float, float]:
        return positions[node]

    for source, target, data in graph.edges(data=True):
        (x1, y1), (x2, y2) = place(source), place(target)
        drawing.add(Line(x1, y1, x2, y2, strokeColor=colors.grey, strokeWidth=0.6))
        # An arrowhead: a short tick at 80% of the way, pointing at the target.
        ax, ay = x1 + (x2 - x1) * 0.8, y1 + (y2 - y1) * 0.8
        drawing.add(Circle(ax, ay, 1.6, fillColor=colors.black, strokeColor=None))
        kind = str(data.get("kind", ""))
        if kind and graph.number_of_edges() <= 40:
            drawing.add(
                String(
                    (x1 + x2) / 2,
                    (y1 + y2) / 2,
                    kind,
                    fontName=font.regular,
                    fontSize=5.5,
                    fillColor=colors.dimgrey,
                )
            )
    for node, data in graph.nodes(data=True):
        x, y = place(node)
        kind = str(data.get("kind", ""))
        colour = KIND_COLOURS.get(kind, colors.black)
        drawing.add(Circle(x, y, 5, fillColor=colour, strokeColor=colors.white))
        if graph.number_of_nodes() > 15 and kind not in _ALWAYS_LABELLED:
            continue  # a crowded graph names only its parties, instruments and batches
        label = _label(node, data)
        if x > width - 90:
            drawing.add(
                String(x - 7, y - 2, label, fontName=font.regular, fontSize=6.5, textAnchor="end")
            )
        else:
            drawing.add(String(x + 7, y - 2, label, fontName=font.regular, fontSize=6.5))
    legend_x = 6.0
    for kind in sorted({str(d.get("kind", "")) for _, d in graph.nodes(data=True)}):
        colour = KIND_COLOURS.get(kind, colors.black)
        drawing.add(Circle(legend_x + 4, height - 10, 3.5, fillColor=colour, strokeColor=None))
        drawing.add(String(legend_x + 10, height - 12.5, kind, fontName=font.regular, fontSize=7))
        legend_x += 16 + 4.2 * len(kind)
    return drawing


def _detail(detail: dict[str, Any]) -> str:
    def shown(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{n} {k}" for k, n in value.items())
        return str(value)

    return "; ".join(f"{k}: {shown(v)}" for k, v in detail.items())


def render_report(facts: CaseFacts, font: ReportFont, language: str) -> bytes:
    """The report as PDF bytes, in ``language`` (``zh`` needs a CJK font)."""
    t = TEXT[language]
    styles = _styles(font)
    body, small = styles["body"], styles["small"]
    case = facts.case
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"{t['title']} {case.reference}",
        author=facts.origin,
        subject=case.title or case.reference,
    )
    usable = A4[0] - 32 * mm
    story: list[Any] = [_p(f"{t['title']} — {t['case']} {case.reference}", styles["title"])]
    head = [
        [t["case_title"], case.title or "-"],
        [t["status"], case.status.value],
        [t["outcome"], case.outcome.value if case.outcome else "-"],
        [t["assignee"], case.assignee or "-"],
        [t["opened"], f"{case.opened_at:%Y-%m-%d %H:%M} UTC, {case.opened_by}"],
        [t["exported"], f"{facts.exported_at:%Y-%m-%d %H:%M} UTC, {facts.exported_by}"],
        [t["recipient"], facts.recipient],
        [t["log"], facts.origin],
        [t["checkpoint"], f"{facts.checkpoint_size} / {facts.checkpoint_root}"],
        [t["newest"], str(facts.newest_size)],
        [t["platform_key"], facts.platform_key_id],
    ]
    story.append(
        Table(
            [[_p(k, body), _p(v, body)] for k, v in head],
            colWidths=[42 * mm, usable - 42 * mm],
            style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]),
        )
    )
    kinds: dict[str, int] = {}
    for member in case.members:
        kinds[member.kind.value] = kinds.get(member.kind.value, 0) + 1
    story += [
        _p(t["summary"], styles["h2"]),
        _p(
            t["summary_text"].format(
                members=len(case.members),
                kinds=", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "-",
                entries=len(facts.entries),
                size=facts.checkpoint_size,
            ),
            body,
        ),
        _p(t["findings"], styles["h2"]),
    ]
    if facts.alerts:
        rows = [
            [
                a.typology,
                f"{a.subject_kind}:{a.subject}",
                f"{a.score:.2f} {a.severity}",
                a.reason,
                a.opened_seq,
            ]
            for a in facts.alerts
        ]
        story.append(
            _table(
                [t["typology"], t["subject"], t["score"], t["reason"], t["entry"]],
                rows,
                small,
                [32 * mm, 38 * mm, 18 * mm, usable - 104 * mm, 16 * mm],
            )
        )
    else:
        story.append(_p(t["no_findings"], body))
    story.append(_p(t["graph"], styles["h2"]))
    if facts.graph.number_of_nodes():
        story += [_p(t["graph_text"], small), draw_graph(facts.graph, font, usable, 110 * mm)]
    else:
        story.append(_p(t["no_graph"], body))
    story.append(_p(t["parties"], styles["h2"]))
    if not facts.parties:
        story.append(_p(t["no_parties"], body))
    for party in facts.parties:
        heading = (
            f"{t['party']} {party.id} — {party.name} ({party.kind}, {party.status}); "
            f"{t['registered']} {party.registered_seq}"
        )
        rows = [[d.seq, d.time[:19], d.summary] for d in party.decisions]
        block: list[Any] = [_p(heading, body)]
        if rows:
            block.append(
                _table(
                    [t["entry"], t["time"], t["decision"]],
                    rows,
                    small,
                    [16 * mm, 34 * mm, usable - 50 * mm],
                )
            )
        block.append(Spacer(1, 4))
        story.append(KeepTogether(block))
    story.append(_p(t["codes"], styles["h2"]))
    if facts.custody:
        rows = [
            [r.code, r.seq, r.time[:19], r.type, r.actor, f"{r.sender} -> {r.recipient}"]
            for r in facts.custody[:MAX_TABLE_ROWS]
        ]
        story.append(
            _table(
                [t["code"], t["entry"], t["time"], t["step"], t["actor"], t["from_to"]],
                rows,
                small,
                [24 * mm, 14 * mm, 30 * mm, 24 * mm, 26 * mm, usable - 118 * mm],
            )
        )
        if len(facts.custody) > MAX_TABLE_ROWS:
            story.append(_p(t["more_rows"].format(n=len(facts.custody) - MAX_TABLE_ROWS), small))
    else:
        story.append(_p(t["no_codes"], body))
    if facts.sales:
        story.append(_p(t["sales"], body))
        rows = [
            [
                s.seq,
                s.time[:19],
                s.merchant,
                s.code,
                s.buyer[:16],
                s.instrument[:16],
                f"{s.amount} {s.currency}",
            ]
            for s in facts.sales[:MAX_TABLE_ROWS]
        ]
        story.append(
            _table(
                [
                    t["entry"],
                    t["time"],
                    t["party"],
                    t["code"],
                    t["buyer"],
                    t["instrument"],
                    t["amount"],
                ],
                rows,
                small,
                [14 * mm, 30 * mm, 24 * mm, 24 * mm, 28 * mm, 28 * mm, usable - 148 * mm],
            )
        )
    story.append(_p(t["timeline"], styles["h2"]))
    rows = [
        [e.seq, f"{e.at:%Y-%m-%d %H:%M:%S}", e.action, e.by, _detail(e.detail)] for e in case.events
    ]
    story.append(
        _table(
            [t["entry"], t["time"], t["action"], t["actor"], t["detail"]],
            rows,
            small,
            [14 * mm, 32 * mm, 18 * mm, 28 * mm, usable - 92 * mm],
        )
    )
    notes = [n for n in case.notes if n.text]
    if notes:
        story.append(_p(t["notes"], body))
        story += [_p(f"[{n.seq}] {n.at:%Y-%m-%d %H:%M} {n.by}: {n.text}", small) for n in notes]
    story += [PageBreak(), _p(t["entries"], styles["h2"])]
    rows = [
        [e.seq, e.type, e.time[:19], e.actor, e.leaf_hash[:16]]
        for e in facts.entries[:MAX_TABLE_ROWS]
    ]
    story.append(
        _table(
            [t["entry"], t["type"], t["time"], t["actor"], t["leaf"]],
            rows,
            small,
            [16 * mm, 40 * mm, 34 * mm, 34 * mm, usable - 124 * mm],
        )
    )
    if len(facts.entries) > MAX_TABLE_ROWS:
        story.append(_p(t["more_rows"].format(n=len(facts.entries) - MAX_TABLE_ROWS), small))
    story += [
        _p(t["verify"], styles["h2"]),
        Paragraph(t["verify_text"], body),
        Spacer(1, 4),
        _p(t["limits"], body),
    ]
    doc.build(story)
    return out.getvalue()
