"""Fonts for the report: a CJK font for Chinese text, if one is installed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

# scripts/system-deps.sh installs the first (Debian/Ubuntu fonts-wqy-microhei).
CJK_FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
CJK_FONT_NAME = "CardtraceCJK"


@dataclass(frozen=True, slots=True)
class ReportFont:
    """The font family the report is set in, and whether it can show Chinese."""

    regular: str
    bold: str
    cjk: bool


LATIN = ReportFont("Helvetica", "Helvetica-Bold", cjk=False)


def find_cjk_font(candidates: tuple[Path, ...] = CJK_FONT_FILES) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


def report_font(path: Path | None) -> ReportFont:
    """Register the CJK font at ``path`` (a TrueType collection: its first face) and
    return it; with no path, the built-in Latin font."""
    if path is None:
        return LATIN
    name = f"{CJK_FONT_NAME}-{path.stem}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
    return ReportFont(name, name, cjk=True)
