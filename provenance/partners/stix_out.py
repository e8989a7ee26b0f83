"""Outbound STIX 2.1 bundles for anti-fraud partners, built with the OASIS ``stix2`` library.

A bundle reports one :class:`ExportSubject` (an alert, or a case: see
:func:`subject_from_alert`) to one partner, under that partner's
:class:`~provenance.partners.policy.SharingPolicy`:

- a ``report`` naming everything else, created by the platform's ``identity``;
- an ``identity`` per merchant or other party involved (field ``merchants``);
- SCOs for buyer accounts (``user-account``), payment instruments, devices, IP addresses
  (as fingerprints: cardtrace never holds them in clear) and codes, in one
  ``observed-data``; the non-standard SCOs are STIX 2.1 ``new-sco`` extensions whose
  ``extension-definition`` objects travel in the bundle;
- an ``indicator`` with a STIX pattern per payment-instrument and device fingerprint,
  ``based-on`` the observed data and ``related-to`` the merchants that took the payment,
  and a ``sighting`` of each by the platform;
- the FIRST TLP 2.0 ``marking-definition`` the policy names (the objects OASIS publishes),
  on every object.

A field the policy does not allow leaves no trace in the bundle; personal data (buyers,
instruments, devices, IPs) appears as the partner's own pseudonyms unless the policy
says otherwise.

Ids follow STIX 2.1 section 2.9: SCOs get UUIDv5 ids from their contributing properties
(the same card is the same object in every bundle to that partner); SDOs and SROs get
fresh UUIDv4 ids, except the identities a partner must recognise from one bundle to the
next: the platform (its instance id, a UUIDv4), the merchants (UUIDv5 over the instance,
the partner and the party id) and the fixed extension definitions. The OASIS validator
warns (103) on the UUIDv5 merchant ids and on the ids of the cardtrace SCOs (it cannot
know their contributing properties); neither is an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stix2
from stix2validator import ValidationOptions, validate_string

from provenance.analysis.models import Alert
from provenance.partners.errors import ExportError
from provenance.partners.policy import PartnerPseudonyms, SharedField, SharingPolicy, Tlp

# Namespace of the UUIDv5 ids of merchant identities (SCOs use the STIX 2.1 namespace).
NAMESPACE = uuid.UUID("6f1b7f0e-3c1a-5b9e-9d8c-2a4f0c6e9b11")

# FIRST TLP 2.0 as OASIS publishes it for STIX 2.1 (cti-stix-common-objects,
# extension-definition-specifications/tlp-2.0): fixed ids and creation time.
TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
_TLP_IDS = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}


def tlp_marking(level: Tlp) -> Any:
    """The OASIS TLP 2.0 marking definition of ``level``, as a ``stix2`` object."""
    return stix2.MarkingDefinition(
        id=_TLP_IDS[level],
        created="2022-10-01T00:00:00.000Z",
        name=f"TLP:{level.value.upper()}",
        extensions={
            TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level.value}
        },
    )


# --- the SCOs cardtrace adds (STIX 2.1 new-sco extensions) -------------------------------

_SCHEMA_CREATED = "2026-11-27T00:00:00.000Z"
# The author of the extension definitions: the cardtrace project, the same in every bundle.
SCHEMA_AUTHOR = stix2.Identity(
    id="identity--fb2799fd-2415-4920-b104-d2195ae5d6bd",
    created=_SCHEMA_CREATED,
    modified=_SCHEMA_CREATED,
    name="cardtrace",
    identity_class="system",
    description="Author of the cardtrace STIX extensions (docs/PARTNERS.md).",
)


@dataclass(frozen=True, slots=True)
class _ScoType:
    type: str
    extension_id: str  # fixed: every bundle names the same definition
    name: str
    schema: str
    properties: tuple[str, ...]
    contributing: tuple[str, ...]


_FINGERPRINT_SCHEMA = (
    "fingerprint: 32 lower-case hex digits, a keyed HMAC-SHA256 pseudonym of the {what} "
    "(never the clear value); fingerprint_scheme: 'partner-hmac-v1' when keyed for the "
    "receiving partner alone, 'platform-hmac-v1' when it is the platform's own pseudonym."
)
INSTRUMENT = _ScoType(
    "x-cardtrace-payment-instrument",
    "extension-definition--15773c88-bcf3-4e9d-a0bd-1f5576aefee6",
    "cardtrace payment instrument",
    _FINGERPRINT_SCHEMA.format(what="payment instrument (card token or instrument id)"),
    ("fingerprint", "fingerprint_scheme"),
    ("fingerprint",),
)
DEVICE = _ScoType(
    "x-cardtrace-device",
    "extension-definition--147ed932-cff9-42b0-959b-45077dc932dd",
    "cardtrace device",
    _FINGERPRINT_SCHEMA.format(what="buyer's device identifier"),
    ("fingerprint", "fingerprint_scheme"),
    ("fingerprint",),
)
NETWORK = _ScoType(
    "x-cardtrace-ip-address",
    "extension-definition--d03b9974-bb55-451e-a21a-e0f941c4c30e",
    "cardtrace IP address",
    _FINGERPRINT_SCHEMA.format(what="buyer's IP address"),
    ("fingerprint", "fingerprint_scheme"),
    ("fingerprint",),
)
CARD_CODE = _ScoType(
    "x-cardtrace-card-code",
    "extension-definition--4c1dfc46-a47d-4d62-b7d5-36292add2cbd",
    "cardtrace card code",
    "code_id: the first 12 hex digits of the platform's keyed fingerprint of the code "
    "(issuer, product, serial, PIN; the PIN is never shared); product: the product id.",
    ("code_id", "product"),
    ("code_id",),
)
SCO_TYPES = (INSTRUMENT, DEVICE, NETWORK, CARD_CODE)


def _register(sco: _ScoType) -> Any:
    properties = [(name, stix2.properties.StringProperty(required=True)) for name in sco.properties]
    cls = type(sco.type.replace("-", "_"), (), {})
    return stix2.CustomObservable(
        sco.type, properties, list(sco.contributing), extension_name=sco.extension_id
    )(cls)


_SCO_CLASSES = {sco.type: _register(sco) for sco in SCO_TYPES}


def extension_definition(sco: _ScoType) -> Any:
    return stix2.ExtensionDefinition(
        id=sco.extension_id,
        created=_SCHEMA_CREATED,
        modified=_SCHEMA_CREATED,
        created_by_ref=SCHEMA_AUTHOR.id,
        name=sco.name,
        description=f"STIX 2.1 SCO {sco.type}, defined by cardtrace.",
        schema=sco.schema,
        version="1.0.0",
        extension_types=["new-sco"],
    )


# --- what a bundle reports ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sale:
    """One sale in the evidence: who sold which code to whom, paying with what, from where."""

    merchant: str | None
    code: str | None
    buyer: str | None
    time: datetime | None
    instruments: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    ips: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ExportSubject:
    """An alert or a case, reduced to what a bundle can say about it.

    People and things are named by the platform's keyed pseudonyms (buyers, instruments,
    devices, IPs), party ids and short code fingerprints.
    """

    source: str  # "alert" or "case"
    reference: str  # e.g. "alert-12", "CASE-3"
    title: str
    narrative: str
    typologies: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    parties: frozenset[str] = frozenset()
    buyers: frozenset[str] = frozenset()
    instruments: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    ips: frozenset[str] = frozenset()
    codes: Mapping[str, str | None] = field(default_factory=dict)
    sales: tuple[Sale, ...] = ()


def _evidence_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def subject_from_alert(alert: Alert) -> ExportSubject:
    """What an alert's evidence subgraph (node-link JSON) shows."""
    nodes: dict[str, dict[str, Any]] = {n["id"]: n for n in alert.evidence.get("nodes", [])}
    groups: dict[str, set[str]] = {
        kind: set() for kind in ("party", "buyer", "instrument", "device", "ip")
    }
    codes: dict[str, str | None] = {}
    for node in nodes.values():
        node_kind, name = node.get("kind"), node.get("name")
        if node_kind == "code":
            codes[str(node["id"]).removeprefix("code:")] = node.get("product")
        elif isinstance(node_kind, str) and node_kind in groups and isinstance(name, str):
            groups[node_kind].add(name)
    by_seq: dict[Any, dict[str, Any]] = {}
    for edge in alert.evidence.get("edges", []):
        kind, seq = edge.get("kind"), edge.get("seq")
        if kind not in ("sold", "bought", "paid_with", "used") or seq is None:
            continue
        sale = by_seq.setdefault(
            seq, {"merchant": None, "code": None, "buyer": None, "time": None, "links": set()}
        )
        sale["time"] = _evidence_time(edge.get("time"))
        source, target = nodes.get(edge["source"], {}), nodes.get(edge["target"], {})
        if kind == "sold":
            sale["merchant"] = source.get("name")
            sale["code"] = str(target.get("id", "")).removeprefix("code:") or None
        elif kind == "bought":
            sale["buyer"] = target.get("name")
        else:
            sale["links"].add((target.get("kind"), target.get("name")))
    sales = tuple(
        Sale(
            merchant=s["merchant"],
            code=s["code"],
            buyer=s["buyer"],
            time=s["time"],
            instruments=frozenset(n for k, n in s["links"] if k == "instrument"),
            devices=frozenset(n for k, n in s["links"] if k == "device"),
            ips=frozenset(n for k, n in s["links"] if k == "ip"),
        )
        for _, s in sorted(by_seq.items(), key=lambda item: str(item[0]))
    )
    return ExportSubject(
        source="alert",
        reference=f"alert-{alert.id}",
        title=f"cardtrace alert {alert.id}: {alert.typology}",
        narrative=alert.reason,
        typologies=(alert.typology,),
        first_seen=alert.first_seen_at,
        last_seen=alert.last_seen_at,
        parties=frozenset(groups["party"]),
        buyers=frozenset(groups["buyer"]),
        instruments=frozenset(groups["instrument"]),
        devices=frozenset(groups["device"]),
        ips=frozenset(groups["ip"]),
        codes=codes,
        sales=sales,
    )


def merge_subjects(
    source: str, reference: str, title: str, narrative: str, subjects: Sequence[ExportSubject]
) -> ExportSubject:
    """One subject covering several (a case's alerts and members)."""
    if not subjects:
        raise ExportError(f"{reference} has nothing to report", field=source)
    codes: dict[str, str | None] = {}
    for subject in subjects:
        codes.update(subject.codes)
    return ExportSubject(
        source=source,
        reference=reference,
        title=title,
        narrative=narrative,
        typologies=tuple(sorted({t for s in subjects for t in s.typologies})),
        first_seen=min(s.first_seen for s in subjects),
        last_seen=max(s.last_seen for s in subjects),
        parties=frozenset().union(*(s.parties for s in subjects)),
        buyers=frozenset().union(*(s.buyers for s in subjects)),
        instruments=frozenset().union(*(s.instruments for s in subjects)),
        devices=frozenset().union(*(s.devices for s in subjects)),
        ips=frozenset().union(*(s.ips for s in subjects)),
        codes=codes,
        sales=tuple(sale for s in subjects for sale in s.sales),
    )


# --- building the bundle --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exporter:
    """Who exports: the installation (for the platform identity and the object ids)."""

    instance_id: str
    origin: str
    party_names: Mapping[str, str] = field(default_factory=dict)
    party_kinds: Mapping[str, str] = field(default_factory=dict)

    @property
    def identity_id(self) -> str:
        # The instance id is a UUIDv4 made once by 'cardtrace init': the platform is the
        # same identity in every bundle it sends.
        return f"identity--{uuid.UUID(self.instance_id)}"


class _Builder:
    def __init__(
        self,
        exporter: Exporter,
        subject: ExportSubject,
        policy: SharingPolicy,
        pseudonyms: PartnerPseudonyms | None,
    ) -> None:
        if policy.pseudonymise and pseudonyms is None:
            raise ExportError("the policy pseudonymises: the partner's pseudonym key is needed")
        self.exporter = exporter
        self.subject = subject
        self.policy = policy
        self.pseudonyms = pseudonyms if policy.pseudonymise else None
        self.marking = tlp_marking(policy.tlp)
        self.created = subject.first_seen
        self.modified = max(subject.last_seen, subject.first_seen)
        self.objects: list[Any] = []
        self.scos: dict[tuple[str, str], Any] = {}

    def _merchant_id(self, party: str) -> str:
        name = "/".join((self.exporter.instance_id, self.policy.partner, "party", party))
        return f"identity--{uuid.uuid5(NAMESPACE, name)}"

    def _common(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "modified": self.modified,
            "created_by_ref": self.exporter.identity_id,
            "object_marking_refs": [self.marking.id],
        }

    def _shown(self, kind: str, pseudonym: str) -> str:
        return pseudonym if self.pseudonyms is None else self.pseudonyms.of(kind, pseudonym)

    @property
    def _scheme(self) -> str:
        return "platform-hmac-v1" if self.pseudonyms is None else "partner-hmac-v1"

    def _sco(self, kind: str, value: str) -> Any:
        key = (kind, value)
        if key in self.scos:
            return self.scos[key]
        marking = {"object_marking_refs": [self.marking.id]}
        if kind == "buyer":
            # The account type says the user_id is a pseudonym, and whose: a partner that
            # sends the account back is then not taken to name a clear account id.
            sco = stix2.UserAccount(
                user_id=self._shown(kind, value),
                account_type=f"x-cardtrace-{self._scheme}",
                **marking,
            )
        elif kind == "code":
            product = self.subject.codes.get(value)
            sco = _SCO_CLASSES[CARD_CODE.type](
                code_id=value, product=product or "unknown", **marking
            )
        else:
            sco_type = {"instrument": INSTRUMENT, "device": DEVICE, "ip": NETWORK}[kind]
            sco = _SCO_CLASSES[sco_type.type](
                fingerprint=self._shown(kind, value), fingerprint_scheme=self._scheme, **marking
            )
        self.scos[key] = sco
        return sco

    def _allowed(self, shared: SharedField, values: Iterable[str]) -> list[str]:
        return sorted(values) if self.policy.allows(shared) else []

    def build(self) -> Any:
        subject, policy = self.subject, self.policy
        platform = stix2.Identity(
            id=self.exporter.identity_id,
            created=self.created,
            modified=self.modified,
            name=f"cardtrace platform {self.exporter.origin}",
            identity_class="organization",
            sectors=["financial-services"],
            object_marking_refs=[self.marking.id],
        )
        self.objects += [self.marking, platform]

        merchants: dict[str, Any] = {}
        for party in self._allowed(SharedField.MERCHANTS, subject.parties):
            merchants[party] = stix2.Identity(
                id=self._merchant_id(party),
                name=self.exporter.party_names.get(party, party),
                identity_class="organization",
                roles=[self.exporter.party_kinds.get(party, "party")],
                description=f"cardtrace party id {party}",
                **self._common(),
            )
        self.objects += merchants.values()

        kinds = (
            ("buyer", SharedField.BUYERS, subject.buyers),
            ("instrument", SharedField.INSTRUMENTS, subject.instruments),
            ("device", SharedField.DEVICES, subject.devices),
            ("ip", SharedField.IPS, subject.ips),
            ("code", SharedField.CODES, subject.codes.keys()),
        )
        for kind, shared, values in kinds:
            for value in self._allowed(shared, values):
                self._sco(kind, value)
        used_types = {sco.type for sco in self.scos.values()}
        self.objects += [extension_definition(s) for s in SCO_TYPES if s.type in used_types]
        if any(s.type in used_types for s in SCO_TYPES):
            self.objects.append(SCHEMA_AUTHOR)
        self.objects += self.scos.values()

        observed = None
        if self.scos:
            observed = stix2.ObservedData(
                first_observed=self.created,
                last_observed=self.modified,
                number_observed=max(len(subject.sales), 1),
                object_refs=[sco.id for sco in self.scos.values()],
                allow_custom=True,
                **self._common(),
            )
            self.objects.append(observed)

        for kind, shared in (
            ("instrument", SharedField.INSTRUMENTS),
            ("device", SharedField.DEVICES),
        ):
            values = subject.instruments if kind == "instrument" else subject.devices
            for value in self._allowed(shared, values):
                self._indicate(kind, value, observed, platform, merchants)

        report_refs = [o.id for o in self.objects if o.type not in ("marking-definition",)]
        narrative = (
            subject.narrative
            if policy.allows(SharedField.NARRATIVE)
            else f"A cardtrace {subject.source} ({', '.join(subject.typologies)})."
        )
        report = stix2.Report(
            name=subject.title,
            description=narrative,
            report_types=["threat-report"],
            published=self.modified,
            labels=list(subject.typologies),
            object_refs=report_refs,
            external_references=[{"source_name": "cardtrace", "external_id": subject.reference}],
            allow_custom=True,
            **self._common(),
        )
        self.objects.append(report)
        return stix2.Bundle(*self.objects, allow_custom=True)

    def _indicate(
        self,
        kind: str,
        value: str,
        observed: Any,
        platform: Any,
        merchants: Mapping[str, Any],
    ) -> None:
        subject = self.subject
        sco = self._sco(kind, value)
        sco_type = INSTRUMENT.type if kind == "instrument" else DEVICE.type
        pattern = f"[{sco_type}:fingerprint = '{sco.fingerprint}']"
        what = "Payment instrument" if kind == "instrument" else "Device"
        stolen = "stolen-payment-taint" in subject.typologies and kind == "instrument"
        indicator = stix2.Indicator(
            name=f"{what} {sco.fingerprint[:12]} in {subject.reference}",
            description=f"{what} fingerprint seen in {', '.join(subject.typologies)}.",
            indicator_types=["compromised" if stolen else "anomalous-activity"],
            pattern=pattern,
            pattern_type="stix",
            valid_from=self.created,
            **self._common(),
        )
        self.objects.append(indicator)
        if observed is not None:
            self.objects.append(
                stix2.Relationship(
                    relationship_type="based-on",
                    source_ref=indicator.id,
                    target_ref=observed.id,
                    **self._common(),
                )
            )
        field_name = "instruments" if kind == "instrument" else "devices"
        sales = [s for s in subject.sales if value in getattr(s, field_name)]
        sellers = {s.merchant for s in sales if s.merchant is not None and s.merchant in merchants}
        for party in sorted(sellers):
            target = merchants[party].id
            self.objects.append(
                stix2.Relationship(
                    relationship_type="related-to",
                    source_ref=indicator.id,
                    target_ref=target,
                    description="A sale by this merchant was paid or made with it.",
                    **self._common(),
                )
            )
        times = sorted(s.time for s in sales if s.time is not None)
        sighting: dict[str, Any] = {
            "sighting_of_ref": indicator.id,
            "where_sighted_refs": [platform.id],
            "count": max(len(sales), 1),
            "first_seen": times[0] if times else self.created,
            "last_seen": times[-1] if times else self.modified,
        }
        if observed is not None:
            sighting["observed_data_refs"] = [observed.id]
        self.objects.append(stix2.Sighting(**sighting, **self._common()))


def build_bundle(
    exporter: Exporter,
    subject: ExportSubject,
    policy: SharingPolicy,
    pseudonyms: PartnerPseudonyms | None,
) -> Any:
    """The ``stix2.Bundle`` reporting ``subject`` to ``policy.partner``.

    Raises:
        ExportError: the policy pseudonymises and no pseudonym key was given.
    """
    return _Builder(exporter, subject, policy, pseudonyms).build()


def bundle_bytes(bundle: Any) -> bytes:
    """The bundle as UTF-8 JSON, keys sorted, indented: the same bundle, the same bytes."""
    text: str = bundle.serialize(pretty=True, sort_keys=True)
    return text.encode("utf-8") + b"\n"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What the OASIS validator said: errors (must be none) and warnings."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_bundle(document: bytes | str) -> ValidationReport:
    """Run the OASIS ``stix2-validator`` (STIX 2.1) over a serialised bundle."""
    text = document.decode("utf-8") if isinstance(document, bytes) else document
    results = validate_string(text, ValidationOptions(version="2.1"))
    errors: list[str] = []
    warnings: list[str] = []
    for result in results if isinstance(results, list) else [results]:
        errors += [str(e) for e in result.errors or ()]
        warnings += [str(w) for w in result.warnings or ()]
        if not result.is_valid and not result.errors:
            errors.append("the validator refused the document")
    return ValidationReport(tuple(errors), tuple(warnings))
