"""A demo cast: merchants in every state, with data that passes or fails each check.

The entities, filings, people and the watch list are invented; credit codes and ID
numbers carry valid check digits (computed with python-stdnum) so that only the intended
checks fail. One merchant's representative is a listed person written with a full-width
space (an open hit); another's shares a name with a listed person and the reviewer
cleared it as a false positive before another officer approved.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.cn import ric, uscc

from merchant_onboarding.applications import ApplicationInput
from merchant_onboarding.documents import DocumentKind, check_document
from merchant_onboarding.hits import HitOutcome, hits_of
from merchant_onboarding.models import Application
from merchant_onboarding.officers import Actor, ActorKind, Role
from merchant_onboarding.registries import RegistryKind, import_extract
from merchant_onboarding.screening import import_watchlist
from merchant_onboarding.watchlists import open_reader
from merchant_onboarding.workflow import Onboarding, Recommendation, latest_checks

REVIEWER = "demo.reviewer"
APPROVER = "demo.approver"
WATCHLIST = "demo-sanctions"
WATCHLIST_CSV = """id,name,kind,aliases,countries,note
DP-001,陈志强,person,Chen Zhiqiang,cn,invented listing: born 1962 in Harbin
DP-002,张晓东,person,Zhang Xiaodong,cn,invented listing: born 1958 in Dalian
DE-001,深圳黑石贸易有限公司,entity,Shenzhen Heishi Trading Co. Ltd,cn,invented listing
DE-002,Northwind Shell Holdings Ltd,entity,,vg,invented listing
"""


def _credit_code(region: str, serial: int, kind: str = "91") -> str:
    body = f"{kind}{region}{serial:09d}"
    return body + uscc.calc_check_digit(body)


def _id_number(region: str, born: str, serial: int) -> str:
    body = f"{region}{born}{serial:03d}"
    return body + ric.calc_check_digit(body + "0")


def _pdf(title: str) -> bytes:
    return f"%PDF-1.7\n1 0 obj <</Title ({title})>> endobj\ntrailer <<>>\n%%EOF\n".encode()


@dataclass
class Member:
    """One merchant of the cast: what it applies with and where it should end up."""

    merchant: str
    legal_name: str
    region: str
    serial: int
    target: str
    story: str
    rep: str = "王磊"
    registry: dict[str, Any] = field(default_factory=dict)
    filing: dict[str, Any] | None = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    documents: tuple[DocumentKind, ...] = (DocumentKind.CLEARING_AGREEMENT,)
    clear_hits: str | None = None

    @property
    def credit_code(self) -> str:
        return _credit_code(self.region, self.serial)

    @property
    def domain(self) -> str:
        return f"{self.merchant.removeprefix('ob-')}.example.cn"

    def payload(self) -> dict[str, Any]:
        domain = self.domain
        return {
            "merchant": self.merchant,
            "legal_name": self.legal_name,
            "credit_code": self.credit_code,
            "legal_rep_name": self.rep,
            "legal_rep_id_number": _id_number(self.region, "19850612", self.serial % 1000),
            "registered_address": "示例市示例区示例路1号",
            "domain": domain,
            "icp_number": f"京ICP备{30000000 + self.serial}号-1",
            "clearing_institution": "示例支付有限公司",
            "fund_custody": "licensed_institution",
            "user_agreement_url": f"https://{domain}/terms",
            "privacy_policy_url": f"https://{domain}/privacy",
            "owners": [{"name": self.rep, "share": "70.00"}],
            "bank_name": "示例银行",
            "bank_account": f"62220200{self.serial:011d}",
            **self.fields,
        }


CAST: tuple[Member, ...] = (
    Member("ob-qinghe", "杭州青禾网络科技有限公司", "330106", 101, "draft", "a draft, not sent"),
    Member("ob-jinyun", "成都锦云数码有限公司", "510112", 102, "submitted", "every check passes"),
    Member(
        "ob-xinghe",
        "深圳星河游戏科技有限公司",
        "440305",
        103,
        "in_review",
        "its ICP filing is held by a private person",
        filing={"holder_name": "李强", "holder_credit_code": "", "holder_kind": "个人"},
    ),
    Member(
        "ob-yunduan",
        "广州云端卡券有限公司",
        "440106",
        104,
        "needs_information",
        "collects customer funds into its own account",
        fields={"fund_custody": "merchant_account"},
    ),
    Member(
        "ob-longmen",
        "北京龙门数码科技有限公司",
        "110105",
        105,
        "approved",
        "approved, four eyes; its representative shares a listed person's name, cleared by "
        "the reviewer as a false positive",
        rep="张晓东",
        clear_hits="different person: born 1985 in Beijing (ID checked), the listed one 1958",
    ),
    Member(
        "ob-suchong",
        "上海速充网络有限公司",
        "310104",
        106,
        "rejected",
        "licence revoked (吊销), no clearing agreement, policies over http",
        registry={"status": "吊销"},
        fields={
            "clearing_institution": None,
            "user_agreement_url": "http://suchong.example.cn/terms",
        },
        documents=(),
    ),
    Member(
        "ob-xunchong",
        "上海迅充网络科技有限公司",
        "310104",
        107,
        "submitted",
        "settles to the bank account of the rejected 上海速充",
        registry={"established": "2026-08-01", "capital": "10万元人民币"},
        fields={"bank_account": "6222020000000000106"},
    ),
    Member(
        "ob-changwan",
        "武汉畅玩科技有限公司",
        "420106",
        108,
        "suspended",
        "approved, then suspended on an analysis alert",
    ),
    Member(
        "ob-yika",
        "南京易卡贸易有限公司",
        "320102",
        109,
        "terminated",
        "approved, then terminated after confirmed fraud",
        rep="赵敏",
        registry={"legal_rep": "孙浩"},
    ),
    Member(
        "ob-heishan",
        "北京黑山网络科技有限公司",
        "110108",
        110,
        "in_review",
        "its legal representative is the listed 陈志强, written with a full-width space",
        rep="陈　志强",
    ),
)


def _registries(session: Session, now: datetime) -> None:
    enterprises = []
    filings = []
    for m in CAST:
        enterprises.append(
            {
                "credit_code": m.credit_code,
                "name": m.legal_name,
                "status": "存续",
                "established": "2016-04-18",
                "capital": "1000万元人民币",
                "legal_rep": m.rep,
                **m.registry,
            }
        )
        if m.filing is not None:
            filings.append(
                {
                    "icp_number": f"京ICP备{30000000 + m.serial}号",
                    "domain": m.domain,
                    "holder_name": m.legal_name,
                    "holder_credit_code": m.credit_code,
                    "holder_kind": "企业",
                    "approved_on": "2017-02-20",
                    **m.filing,
                }
            )
    for kind, records, source in (
        (RegistryKind.ENTERPRISE, enterprises, "demo enterprise registry extract"),
        (RegistryKind.ICP, filings, "demo ICP filing extract"),
    ):
        raw = json.dumps(
            {
                "registry": kind.value,
                "source": source,
                "extract_date": now.date().isoformat(),
                "records": records,
            },
            ensure_ascii=False,
        ).encode()
        import_extract(
            session,
            kind,
            raw,
            fmt="json",
            now=now,
            extract_date=date.fromisoformat(now.date().isoformat()),
        )


def _watchlist(session: Session, now: datetime) -> None:
    import_watchlist(
        session,
        WATCHLIST,
        "demo watch list (invented entries)",
        now.date(),
        open_reader("csv", io.StringIO(WATCHLIST_CSV)),
        now=now,
    )


def _officers() -> tuple[Actor, Actor]:
    """The demo's reviewer and approver, by the usernames of their demo accounts."""
    return (
        Actor(ActorKind.OFFICER, REVIEWER, frozenset({Role.REVIEWER})),
        Actor(ActorKind.OFFICER, APPROVER, frozenset({Role.APPROVER})),
    )


def build_cast(
    session: Session, service: Onboarding, *, now: datetime, say: Callable[[str], None]
) -> bool:
    """Create the cast (once: returns ``False`` if it is already there). The caller commits."""
    first = select(Application.id).where(Application.merchant == CAST[0].merchant)
    if session.scalars(first).first() is not None:
        say("  the onboarding cast is already loaded")
        return False
    _registries(session, now)
    _watchlist(session, now)
    reviewer, approver = _officers()
    for member in CAST:
        created = service.create(
            session, ApplicationInput.model_validate(member.payload()), now=now
        )
        app_id = created.application.id
        applicant = Actor.applicant(app_id)
        for kind in member.documents:
            service.add_document(
                session,
                app_id,
                kind,
                check_document(_pdf(f"{member.merchant} {kind.value}"), f"{kind.value}.pdf"),
                actor=applicant,
                now=now,
            )
        if member.target != "draft":
            service.submit(session, app_id, actor=applicant, now=now)
        if member.target not in ("draft", "submitted"):
            service.start_review(session, app_id, actor=reviewer, now=now)
        if member.clear_hits is not None:
            for view in hits_of(session, app_id):
                service.decide_hit(
                    session,
                    app_id,
                    view.hit.id,
                    HitOutcome.CLEARED,
                    [member.clear_hits],
                    actor=reviewer,
                    now=now,
                )
            service.run_checks(session, app_id, now=now)
        if member.target == "needs_information":
            service.request_information(
                session,
                app_id,
                ["Who holds customer funds before settlement? Please attach the agreement."],
                actor=reviewer,
                now=now,
            )
        if member.target == "rejected":
            service.recommend(
                session, app_id, Recommendation.REJECT, [member.story], actor=reviewer, now=now
            )
            service.reject(session, app_id, [member.story], actor=approver, now=now)
        if member.target in ("approved", "suspended", "terminated"):
            service.recommend(
                session, app_id, Recommendation.APPROVE, ["checks clear"], actor=reviewer, now=now
            )
            service.approve(session, app_id, ["checks clear"], actor=approver, now=now)
        if member.target == "suspended":
            service.suspend(
                session, app_id, ["analysis alert: resale cycle"], actor=reviewer, now=now
            )
        if member.target == "terminated":
            service.terminate(session, app_id, ["fraud confirmed"], actor=approver, now=now)
        results = latest_checks(session, created.application)
        failed = [c.name for c in results if c.result == "fail"]
        warned = [c.name for c in results if c.result == "warn"]
        outcome = (
            "checks not run yet"
            if not results
            else f"risk {created.application.risk_score}"
            + (f"; fail: {', '.join(failed)}" if failed else "")
            + (f"; warn: {', '.join(warned)}" if warned else "")
        )
        for view in hits_of(session, app_id):
            hit = view.hit
            decided = "" if view.decision is None else f" by {view.decision.by}"
            outcome += (
                f"; hit {hit.id} {view.status.value}{decided}: {hit.party_name} ~ {hit.caption} "
                f"({hit.watchlist} {hit.entry_id}, score {hit.score:.0f}, "
                f"{', '.join(hit.normalisations) or 'as written'})"
            )
        say(f"  #{app_id} {member.target:18} {member.legal_name}: {member.story} ({outcome})")
    return True
