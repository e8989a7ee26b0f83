"""Automated checks on an application, run before any officer looks at it.

Each check returns a :class:`CheckResult`: ``pass``, ``warn`` or ``fail``, a one-line
summary, the evidence behind it (never a clear ID number or bank account), its source
(the library, the declared data, or the registry extract and its date) and the time.
Checks read only what they are given and the database; none fetches from the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import stdnum
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum import exceptions as stdnum_errors
from stdnum import numdb
from stdnum.cn import ric, uscc

from merchant_onboarding.applications import FundCustody
from merchant_onboarding.documents import DocumentKind
from merchant_onboarding.models import Application, Document, Owner, Status
from merchant_onboarding.protect import PersonalData, Purpose
from merchant_onboarding.registries import Registries, Source, normalise_name
from provenance.parties import Party, PartyStatus


class Result(StrEnum):
    PASS = "pass"  # noqa: S105
    WARN = "warn"
    FAIL = "fail"


class CheckName(StrEnum):
    CREDIT_CODE = "credit_code"
    LEGAL_REP_ID = "legal_rep_id"
    ENTERPRISE_REGISTRY = "enterprise_registry"
    ICP_FILING = "icp_filing"
    DOMAIN = "domain"
    PAYMENT_LICENCE = "payment_licence"
    FUND_CUSTODY = "fund_custody"
    POLICIES = "policies"
    REUSE = "reuse"
    SCREENING = "screening"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: CheckName
    result: Result
    summary: str
    evidence: dict[str, Any]
    source: str
    checked_at: datetime
    extract_date: date | None = None


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the checks see of one application."""

    session: Session
    application: Application
    owners: Sequence[Owner]
    documents: Sequence[Document]
    personal_data: PersonalData = field(repr=False)
    registries: Registries
    now: datetime

    def has_document(self, kind: DocumentKind) -> bool:
        return any(d.kind == kind.value for d in self.documents)

    def result(
        self,
        name: CheckName,
        result: Result,
        summary: str,
        evidence: dict[str, Any],
        source: str | Source,
    ) -> CheckResult:
        if isinstance(source, Source):
            return CheckResult(
                name, result, summary, evidence, source.describe(), self.now, source.extract_date
            )
        return CheckResult(name, result, summary, evidence, source, self.now)


STDNUM_SOURCE = f"python-stdnum {stdnum.__version__}"
DECLARED = "the application as declared"


def _region(code: str) -> str | None:
    info = {k: v for _, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    if not info:
        return None
    return " ".join(dict.fromkeys(v for v in (info.get("province"), info.get("county")) if v))


# GB 32100-2015: the first character is the registering authority, the second the kind
# of entity it registered; "9" is market regulation (工商), whose "1" is an enterprise.
_AUTHORITY_9_KINDS = {"1": "enterprise", "2": "individual business", "3": "farmers' cooperative"}


def check_credit_code(ctx: CheckContext) -> CheckResult:
    code = ctx.application.credit_code
    source = f"{STDNUM_SOURCE} (GB 32100-2015 check digit), administrative division codes"
    try:
        uscc.validate(code)
    except stdnum_errors.ValidationError as e:
        return ctx.result(
            CheckName.CREDIT_CODE,
            Result.FAIL,
            f"the unified social credit code is invalid: {e}",
            {"credit_code": code},
            source,
        )
    region = _region(code[2:8])
    evidence = {
        "credit_code": code,
        "authority": code[0],
        "entity_kind": code[1],
        "region_code": code[2:8],
        "region": region,
    }
    if code[0] != "9" or code[1] not in _AUTHORITY_9_KINDS:
        return ctx.result(
            CheckName.CREDIT_CODE,
            Result.WARN,
            "the code is valid but not issued by market regulation to a business "
            f"(authority {code[0]}, kind {code[1]})",
            evidence,
            source,
        )
    evidence["entity"] = _AUTHORITY_9_KINDS[code[1]]
    if region is None:
        return ctx.result(
            CheckName.CREDIT_CODE,
            Result.WARN,
            f"the code is valid but its region code {code[2:8]} is not a known division",
            evidence,
            source,
        )
    if code[1] != "1":
        return ctx.result(
            CheckName.CREDIT_CODE,
            Result.WARN,
            f"the code is valid; the entity is registered as a {evidence['entity']}",
            evidence,
            source,
        )
    return ctx.result(
        CheckName.CREDIT_CODE,
        Result.PASS,
        f"valid code of an enterprise registered in {region}",
        evidence,
        source,
    )


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def check_legal_rep_id(ctx: CheckContext) -> CheckResult:
    source = f"{STDNUM_SOURCE} (GB 11643-1999 check digit, birth date and place)"
    sealed = ctx.application.legal_rep_id_sealed
    masked = ctx.application.legal_rep_id_masked
    if sealed is None:
        return ctx.result(
            CheckName.LEGAL_REP_ID,
            Result.FAIL,
            "no ID number was given for the legal representative",
            {},
            source,
        )
    number = ctx.personal_data.open_text(Purpose.ID_NUMBER, sealed)
    try:
        ric.validate(number)
        born = ric.get_birth_date(number)
    except stdnum_errors.ValidationError as e:
        return ctx.result(
            CheckName.LEGAL_REP_ID,
            Result.FAIL,
            f"the legal representative's ID number is invalid: {e}",
            {"id_number": masked},
            source,
        )
    adult = _age(born, ctx.now.date()) >= 18
    evidence = {"id_number": masked, "birth_place_known": True, "adult": adult}
    if not adult:
        return ctx.result(
            CheckName.LEGAL_REP_ID,
            Result.FAIL,
            "the legal representative's ID number belongs to a minor",
            evidence,
            source,
        )
    return ctx.result(
        CheckName.LEGAL_REP_ID,
        Result.PASS,
        "valid resident ID number of an adult",
        evidence,
        source,
    )


YOUNG_COMPANY_DAYS = 365


def check_enterprise_registry(ctx: CheckContext) -> CheckResult:
    app = ctx.application
    answer = ctx.registries.enterprise.enterprise(app.credit_code)
    if answer.source is None:
        return ctx.result(
            CheckName.ENTERPRISE_REGISTRY,
            Result.WARN,
            "no enterprise registry extract has been imported; the entity is unverified",
            {},
            "enterprise registry (none imported)",
        )
    record = answer.found
    if record is None:
        return ctx.result(
            CheckName.ENTERPRISE_REGISTRY,
            Result.FAIL,
            "no enterprise with this credit code is in the registry",
            {"credit_code": app.credit_code},
            answer.source,
        )
    age_days = (ctx.now.date() - record.established).days if record.established else None
    name_matches = normalise_name(record.name) == normalise_name(app.legal_name)
    rep_matches = (
        None
        if not (record.legal_rep and app.legal_rep_name)
        else normalise_name(record.legal_rep) == normalise_name(app.legal_rep_name)
    )
    evidence = {
        "registered_name": record.name,
        "status": record.status,
        "established": record.established.isoformat() if record.established else None,
        "age_days": age_days,
        "capital": record.capital,
        "capital_yuan": record.capital_yuan,
        "name_matches": name_matches,
        "legal_rep_matches": rep_matches,
    }
    if not record.active:
        return ctx.result(
            CheckName.ENTERPRISE_REGISTRY,
            Result.FAIL,
            f"the registry lists the enterprise as {record.status}, not in business",
            evidence,
            answer.source,
        )
    if not name_matches:
        return ctx.result(
            CheckName.ENTERPRISE_REGISTRY,
            Result.FAIL,
            "the registered name differs from the applicant's legal name",
            evidence,
            answer.source,
        )
    if rep_matches is False:
        return ctx.result(
            CheckName.ENTERPRISE_REGISTRY,
            Result.WARN,
            "the registered legal representative differs from the one declared",
            evidence,
            answer.source,
        )
    if age_days is not None and age_days < YOUNG_COMPANY_DAYS:
        return ctx.result(
            CheckName.ENTERPRISE_REGISTRY,
            Result.WARN,
            f"in business ({record.status}), but established only {age_days} days ago",
            evidence,
            answer.source,
        )
    return ctx.result(
        CheckName.ENTERPRISE_REGISTRY,
        Result.PASS,
        f"registered, {record.status}, name and legal representative match",
        evidence,
        answer.source,
    )


_PROVINCES = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新"
ICP_NUMBER_RE = re.compile(rf"[{_PROVINCES}]ICP备[0-9]{{6,10}}号(-[0-9]{{1,3}})?")


def check_icp_filing(ctx: CheckContext) -> CheckResult:
    app = ctx.application
    number = (app.icp_number or "").strip()
    if not ICP_NUMBER_RE.fullmatch(number):
        return ctx.result(
            CheckName.ICP_FILING,
            Result.FAIL,
            "the ICP filing number is missing or not of the form 京ICP备12345678号(-1)",
            {"icp_number": number or None},
            DECLARED,
        )
    answer = ctx.registries.icp.filings(number, app.domain)
    if answer.source is None:
        return ctx.result(
            CheckName.ICP_FILING,
            Result.WARN,
            "the number is well formed; no ICP filing extract has been imported to check it",
            {"icp_number": number},
            "ICP filing registry (none imported)",
        )
    base = re.sub(r"-[0-9]+$", "", number)
    under_number = [f for f in answer.found if f.icp_number == base]
    evidence: dict[str, Any] = {
        "icp_number": number,
        "filed_domains": sorted({f.domain for f in under_number}),
        "domain_filed_under": sorted(
            {f.icp_number for f in answer.found if f.domain == app.domain}
        ),
    }
    if not under_number:
        return ctx.result(
            CheckName.ICP_FILING,
            Result.FAIL,
            "no ICP filing with this number is in the registry",
            evidence,
            answer.source,
        )
    holder = under_number[0]
    evidence["holder_name"] = holder.holder_name
    evidence["holder_kind"] = holder.holder_kind
    holder_matches = holder.holder_credit_code == app.credit_code or normalise_name(
        holder.holder_name
    ) == normalise_name(app.legal_name)
    evidence["holder_matches"] = holder_matches
    if not holder_matches:
        return ctx.result(
            CheckName.ICP_FILING,
            Result.FAIL,
            "the ICP filing's holder is not the applicant",
            evidence,
            answer.source,
        )
    if app.domain not in evidence["filed_domains"]:
        return ctx.result(
            CheckName.ICP_FILING,
            Result.FAIL,
            "the ICP filing does not cover the shop's domain",
            evidence,
            answer.source,
        )
    return ctx.result(
        CheckName.ICP_FILING,
        Result.PASS,
        "filed, held by the applicant, covering the shop's domain",
        evidence,
        answer.source,
    )


_SECOND_LEVEL = {"com", "net", "org", "gov", "edu", "ac"}


def base_domain(host: str) -> str:
    """The registrable part: ``shop.example.com.cn`` -> ``example.com.cn``."""
    labels = host.lower().rstrip(".").split(".")
    if len(labels) >= 3 and labels[-1] == "cn" and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


def check_domain(ctx: CheckContext) -> CheckResult:
    app = ctx.application
    if not app.domain:
        return ctx.result(
            CheckName.DOMAIN, Result.FAIL, "no shop domain was declared", {}, DECLARED
        )
    shop = base_domain(app.domain)
    hosts = {
        name: _host(url)
        for name, url in (
            ("user_agreement_url", app.user_agreement_url),
            ("privacy_policy_url", app.privacy_policy_url),
        )
        if url
    }
    elsewhere = sorted(n for n, h in hosts.items() if h and base_domain(h) != shop)
    evidence = {"domain": app.domain, "registrable_domain": shop, "hosts": hosts}
    if elsewhere:
        evidence["elsewhere"] = elsewhere
        return ctx.result(
            CheckName.DOMAIN,
            Result.WARN,
            f"{', '.join(elsewhere)} not on the shop's domain {shop}",
            evidence,
            DECLARED,
        )
    return ctx.result(
        CheckName.DOMAIN,
        Result.PASS,
        f"the shop and its published pages are on {shop}",
        evidence,
        DECLARED,
    )


PAYMENT_LICENCE_RE = re.compile(r"Z[0-9]{13}")


def check_payment_licence(ctx: CheckContext) -> CheckResult:
    app = ctx.application
    licence = app.payment_licence
    evidence: dict[str, Any] = {
        "payment_licence": licence,
        "licence_document": ctx.has_document(DocumentKind.PAYMENT_LICENCE),
        "clearing_institution": app.clearing_institution,
        "clearing_agreement_document": ctx.has_document(DocumentKind.CLEARING_AGREEMENT),
    }
    if licence and not PAYMENT_LICENCE_RE.fullmatch(licence):
        return ctx.result(
            CheckName.PAYMENT_LICENCE,
            Result.FAIL,
            "the payment licence number is not of the form Z followed by 13 digits",
            evidence,
            DECLARED,
        )
    if licence and evidence["licence_document"]:
        return ctx.result(
            CheckName.PAYMENT_LICENCE,
            Result.PASS,
            "holds a payment business licence, document provided",
            evidence,
            DECLARED,
        )
    if app.clearing_institution and evidence["clearing_agreement_document"]:
        return ctx.result(
            CheckName.PAYMENT_LICENCE,
            Result.PASS,
            f"clearing agreement with {app.clearing_institution}, document provided",
            evidence,
            DECLARED,
        )
    if licence or app.clearing_institution:
        return ctx.result(
            CheckName.PAYMENT_LICENCE,
            Result.WARN,
            "a licence or clearing institution is named but its document is missing",
            evidence,
            DECLARED,
        )
    return ctx.result(
        CheckName.PAYMENT_LICENCE,
        Result.FAIL,
        "neither a payment licence nor a clearing agreement with a licensed institution",
        evidence,
        DECLARED,
    )


def check_fund_custody(ctx: CheckContext) -> CheckResult:
    custody = ctx.application.fund_custody
    has_agreement = ctx.has_document(DocumentKind.CUSTODY_AGREEMENT) or ctx.has_document(
        DocumentKind.CLEARING_AGREEMENT
    )
    evidence = {"fund_custody": custody, "custody_document": has_agreement}
    if custody in (FundCustody.LICENSED_INSTITUTION.value, FundCustody.BANK_CUSTODY.value):
        if not has_agreement:
            return ctx.result(
                CheckName.FUND_CUSTODY,
                Result.WARN,
                f"funds declared as {custody}, but no custody or clearing agreement provided",
                evidence,
                DECLARED,
            )
        return ctx.result(
            CheckName.FUND_CUSTODY,
            Result.PASS,
            f"customer funds held under {custody}, agreement provided",
            evidence,
            DECLARED,
        )
    if custody is None:
        summary = "how customer funds are held was not declared"
    elif custody == FundCustody.PLATFORM_POOLED.value:
        summary = "customer funds are pooled by the platform (二清, unlicensed clearing)"
    else:
        summary = "customer funds are collected into the merchant's own account"
    return ctx.result(CheckName.FUND_CUSTODY, Result.FAIL, summary, evidence, DECLARED)


def check_policies(ctx: CheckContext) -> CheckResult:
    app = ctx.application
    urls = {
        "user_agreement_url": app.user_agreement_url,
        "privacy_policy_url": app.privacy_policy_url,
    }
    source = "declared URLs (format and host only; the pages are not fetched)"
    missing = sorted(k for k, v in urls.items() if not v)
    evidence: dict[str, Any] = {"urls": urls}
    if missing:
        evidence["missing"] = missing
        return ctx.result(
            CheckName.POLICIES,
            Result.FAIL,
            f"not published: {', '.join(missing)}",
            evidence,
            source,
        )
    plain = sorted(k for k, v in urls.items() if v and urlsplit(v).scheme != "https")
    if plain:
        evidence["not_https"] = plain
        return ctx.result(
            CheckName.POLICIES,
            Result.WARN,
            f"served without TLS: {', '.join(plain)}",
            evidence,
            source,
        )
    return ctx.result(
        CheckName.POLICIES,
        Result.PASS,
        "user agreement and privacy policy published over https",
        evidence,
        source,
    )


_BAD_STATES = ("rejected", "terminated")


def _standing(session: Session, application_ids: set[int]) -> dict[int, tuple[str, bool]]:
    """Each application's state and whether it counts as rejected or banned."""
    if not application_ids:
        return {}
    rows = session.execute(
        select(Status.application_id, Status.state, Party.status)
        .outerjoin(Party, Party.id == Status.merchant)
        .where(Status.application_id.in_(application_ids))
    )
    return {
        app_id: (state, state in _BAD_STATES or party == PartyStatus.TERMINATED.value)
        for app_id, state, party in rows
    }


def check_reuse(ctx: CheckContext) -> CheckResult:
    session, app = ctx.session, ctx.application
    account_users: set[int] = set()
    if app.bank_account_lookup is not None:
        account_users = set(
            session.scalars(
                select(Application.id).where(
                    Application.bank_account_lookup == app.bank_account_lookup,
                    Application.id != app.id,
                )
            )
        )
    hashes = {d.sha256 for d in ctx.documents}
    document_users: dict[int, set[bytes]] = {}
    if hashes:
        for other, sha in session.execute(
            select(Document.application_id, Document.sha256).where(
                Document.sha256.in_(hashes), Document.application_id != app.id
            )
        ):
            document_users.setdefault(other, set()).add(sha)
    standing = _standing(session, account_users | set(document_users))
    evidence = {
        "bank_account": [
            {"application": i, "state": standing.get(i, ("draft", False))[0]}
            for i in sorted(account_users)
        ],
        "documents": [
            {
                "application": i,
                "state": standing.get(i, ("draft", False))[0],
                "sha256": sorted(s.hex() for s in shas),
            }
            for i, shas in sorted(document_users.items())
        ],
    }
    bad = sorted(i for i in account_users | set(document_users) if standing.get(i, ("", False))[1])
    if bad:
        return ctx.result(
            CheckName.REUSE,
            Result.FAIL,
            "the bank account or a document was used by a rejected or banned merchant "
            f"(application {', '.join(map(str, bad))})",
            evidence,
            "applications on this platform (bank accounts by keyed HMAC, documents by SHA-256)",
        )
    if account_users or document_users:
        return ctx.result(
            CheckName.REUSE,
            Result.WARN,
            "the bank account or a document is also used by another application",
            evidence,
            "applications on this platform (bank accounts by keyed HMAC, documents by SHA-256)",
        )
    return ctx.result(
        CheckName.REUSE,
        Result.PASS,
        "bank account and documents are used by no other application",
        evidence,
        "applications on this platform (bank accounts by keyed HMAC, documents by SHA-256)",
    )


Check = Callable[[CheckContext], CheckResult]

CHECKS: tuple[Check, ...] = (
    check_credit_code,
    check_legal_rep_id,
    check_enterprise_registry,
    check_icp_filing,
    check_domain,
    check_payment_licence,
    check_fund_custody,
    check_policies,
    check_reuse,
)


ScreeningCheck = Callable[[CheckContext], Sequence[CheckResult]]
"""Watch-list screening of the entity, the legal representative and the owners.

Given to :func:`run_checks` as ``screening``; its results carry
:attr:`CheckName.SCREENING` and count in the risk score like the other checks.
"""


def run_checks(ctx: CheckContext, screening: ScreeningCheck | None = None) -> list[CheckResult]:
    """Every check, in a fixed order; screening's results last."""
    results = [check(ctx) for check in CHECKS]
    if screening is not None:
        results.extend(screening(ctx))
    return results
