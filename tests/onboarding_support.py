"""Factories for onboarding tests: valid numbers from stdnum's check-digit functions,
application payloads, documents, registry extracts and officers."""

from __future__ import annotations

import itertools
import json
import struct
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import factory
from sqlalchemy.orm import Session
from stdnum.cn import ric, uscc

from merchant_onboarding.applications import ApplicationInput
from merchant_onboarding.documents import DocumentKind, check_document
from merchant_onboarding.officers import Actor, ActorKind, Role
from merchant_onboarding.protect import PersonalData
from merchant_onboarding.registries import OfflineRegistry, Registries, RegistryKind, import_extract
from merchant_onboarding.workflow import Onboarding, ReviewPolicy
from provenance.core import core_catalog
from provenance.ledger import Ledger, PlatformSigner
from tests.keys import PERSONAL_DATA_KEY
from tests.ledger_support import NOW, PLATFORM_KEY

_serials = itertools.count(1)


def credit_code(serial: int | None = None, *, region: str = "110105", kind: str = "91") -> str:
    """A valid unified social credit code: the check digit from stdnum."""
    body = f"{kind}{region}{serial if serial is not None else next(_serials):09d}"
    return body + uscc.calc_check_digit(body)


def id_number(serial: int = 1, *, region: str = "110105", born: str = "19800101") -> str:
    """A valid resident ID number: ``calc_check_digit`` reads all but the last character."""
    body = f"{region}{born}{serial:03d}"
    return body + ric.calc_check_digit(body + "0")


def wrong_check_digit(number: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY" if not number[:-1].isdigit() else "0123456789X"
    return number[:-1] + next(c for c in alphabet if c != number[-1])


BANK_ACCOUNT = "6222021234567890123"


class ApplicationPayload(factory.DictFactory):
    """The JSON an applicant sends: every field, all checks passing against the extract."""

    merchant = factory.Sequence(lambda n: f"shop-{n:04d}")
    legal_name = factory.Sequence(lambda n: f"北京龙门数码科技有限公司{n}")
    credit_code = factory.LazyFunction(credit_code)
    legal_rep_name = "张伟"
    legal_rep_id_number = factory.LazyFunction(id_number)
    registered_address = "北京市朝阳区建国路88号"
    domain = factory.Sequence(lambda n: f"shop{n}.example.cn")
    icp_number = factory.Sequence(lambda n: f"京ICP备{20000000 + n}号-1")
    payment_licence = None
    clearing_institution = "银联商务股份有限公司"
    fund_custody = "licensed_institution"
    user_agreement_url = factory.LazyAttribute(lambda o: f"https://{o.domain}/terms")
    privacy_policy_url = factory.LazyAttribute(lambda o: f"https://{o.domain}/privacy")
    owners = factory.LazyFunction(
        lambda: [{"name": "张伟", "share": "60.00", "id_number": id_number(2)}]
    )
    bank_name = "中国工商银行北京分行"
    bank_account = BANK_ACCOUNT


def pdf(text: str = "licence") -> bytes:
    return f"%PDF-1.7\n1 0 obj <</Title ({text})>> endobj\ntrailer <<>>\n%%EOF\n".encode()


def png(width: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )


def enterprise_extract(*records: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "registry": "enterprise",
            "source": "企查查 export",
            "extract_date": "2026-11-01",
            "records": list(records),
        },
        ensure_ascii=False,
    ).encode()


def enterprise_record(payload: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "credit_code": payload["credit_code"],
        "name": payload["legal_name"],
        "status": "存续",
        "established": "2015-03-02",
        "capital": "1000万元人民币",
        "legal_rep": payload["legal_rep_name"],
        **overrides,
    }


def icp_csv(*rows: dict[str, Any]) -> bytes:
    header = "icp_number,domain,holder_name,holder_credit_code,holder_kind,approved_on"
    lines = [header] + [",".join(str(r.get(k) or "") for k in header.split(",")) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def icp_record(payload: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "icp_number": payload["icp_number"],
        "domain": payload["domain"],
        "holder_name": payload["legal_name"],
        "holder_credit_code": payload["credit_code"],
        "holder_kind": "企业",
        "approved_on": "2016-01-01",
        **overrides,
    }


def load_registries(
    session: Session,
    enterprises: list[dict[str, Any]],
    filings: list[dict[str, Any]],
    now: datetime = NOW,
) -> None:
    import_extract(
        session, RegistryKind.ENTERPRISE, enterprise_extract(*enterprises), fmt="json", now=now
    )
    import_extract(
        session,
        RegistryKind.ICP,
        icp_csv(*filings),
        fmt="csv",
        source="MIIT filing extract",
        extract_date=date(2026, 11, 2),
        now=now,
    )


def registered(session: Session, payload: dict[str, Any]) -> None:
    """Put the payload's entity and filing in the registry extracts."""
    load_registries(session, [enterprise_record(payload)], [icp_record(payload)])


def onboarding_ledger() -> Ledger:
    from merchant_onboarding.workflow import onboarding_catalog

    return Ledger(core_catalog().merge(onboarding_catalog()), PlatformSigner(PLATFORM_KEY))


def make_service(ledger: Ledger) -> Onboarding:
    return Onboarding(
        ledger,
        PersonalData(PERSONAL_DATA_KEY),
        lambda s: Registries(OfflineRegistry(s), OfflineRegistry(s)),
        policy=ReviewPolicy(),
    )


@dataclass
class Officers:
    reviewer: Actor
    approver: Actor
    both: Actor
    second_reviewer: Actor


def make_officers(session: Session) -> Officers:
    """The officers the onboarding service sees (it takes its actor from the caller; the
    web app and the command line make it from a user account)."""

    def officer(officer_id: str, *roles: Role) -> Actor:
        return Actor(ActorKind.OFFICER, officer_id, frozenset(roles))

    return Officers(
        officer("li.reviewer", Role.REVIEWER),
        officer("wang.approver", Role.APPROVER),
        officer("chen.both", Role.REVIEWER, Role.APPROVER),
        officer("zhao.reviewer", Role.REVIEWER),
    )


def attach(
    service: Onboarding,
    session: Session,
    application_id: int,
    kind: DocumentKind,
    content: bytes,
    name: str = "doc.pdf",
) -> None:
    service.add_document(
        session,
        application_id,
        kind,
        check_document(content, name),
        actor=Actor.applicant(application_id),
        now=NOW,
    )


def submitted(service: Onboarding, session: Session, payload: dict[str, Any] | None = None) -> int:
    """A complete application, with its clearing agreement, submitted."""
    payload = payload or ApplicationPayload()
    created = service.create(session, ApplicationInput.model_validate(payload), now=NOW)
    app_id = created.application.id
    attach(service, session, app_id, DocumentKind.CLEARING_AGREEMENT, pdf(payload["merchant"]))
    service.submit(session, app_id, actor=Actor.applicant(app_id), now=NOW)
    return app_id


LATER = NOW + timedelta(minutes=1)
