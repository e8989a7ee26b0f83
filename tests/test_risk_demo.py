"""The demo's real-time risk section: a burst with one card, blocked in the middle, the
verdict printed with its reasons in English and Chinese at the moment it flips."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.analysis.alerts import RISK_TYPOLOGY
from provenance.analysis.models import Alert
from tests.codes_support import build_chain
from webapp.demo import _show_risk_burst
from webapp.runtime import current_runtime


def test_the_demo_burst_flips_from_allow_to_block_with_its_reasons(
    app: Flask, session: Session
) -> None:
    lines: list[str] = []
    with app.app_context():
        build_chain(session, current_runtime().ledger)  # shop-good lists five codes
        session.commit()
        _show_risk_burst(lines.append)
    purchases = [line.split(":")[1].split()[0] for line in lines if "purchase " in line]
    assert purchases == ["ALLOW", "ALLOW", "ALLOW", "ALLOW", "BLOCK"]
    flip = lines.index(next(line for line in lines if "purchase 5: BLOCK" in line))
    assert "burst-instrument: This payment card was used too many times" in lines[flip + 1]
    assert "该支付卡在短时间内使用次数过多。" in lines[flip + 2]
    alerts = session.scalars(select(Alert).where(Alert.typology == RISK_TYPOLOGY)).all()
    assert [a.subject_kind for a in alerts] == ["instrument"]
