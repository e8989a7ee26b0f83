"""Where each file of an evidence package lives, and the bytes the platform signs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from provenance.catalog import EntryCatalog
from provenance.entries import decode_record
from provenance.parties import KEY_MANAGEMENT_TYPES, KeyRegistry

FORMAT = "cardtrace-evidence"
VERSION = 1

REPORT = "data/report.pdf"
APPENDIX = "data/appendix.xlsx"
CASE = "data/case.json"
README = "data/README.txt"
BUNDLE = "data/ledger/bundle.jsonl"
ENTRIES = "data/ledger/entries.jsonl"
CHECKPOINT = "data/ledger/checkpoint.txt"
CONSISTENCY = "data/ledger/consistency.json"
KEYS = "data/keys/keys.json"
PLATFORM_PEM = "data/keys/platform.pub.pem"
ATTACHMENTS = "data/attachments/"

BAGIT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = "tagmanifest-sha256.txt.sig"

REQUIRED_PAYLOAD = (REPORT, APPENDIX, CASE, README, BUNDLE, ENTRIES, CHECKPOINT, CONSISTENCY, KEYS)
REQUIRED_TAGS = (BAGIT, BAG_INFO, MANIFEST)

# Domain separation: this signature cannot pass for an entry's or a checkpoint's.
SIGNING_CONTEXT = b"cardtrace/evidence-manifest/v1\n"


def signed_message(tagmanifest: bytes) -> bytes:
    """What the platform's Ed25519 signature in ``SIGNATURE`` is over."""
    return SIGNING_CONTEXT + tagmanifest


def replay_keys(
    records: Iterable[bytes], catalog: EntryCatalog, platform: str, *, stop: int
) -> KeyRegistry:
    """The key registry after the key-management ``records`` (in log order) before
    ``stop``: who could sign what at a checkpoint of that size. Other records are skipped.

    Raises:
        CardtraceError: a record does not decode or contradicts the registry.
    """
    registry = KeyRegistry(platform=platform)
    for raw in records:
        record = decode_record(raw)
        statement = record.statement
        if record.seq >= stop or statement.type not in KEY_MANAGEMENT_TYPES:
            continue
        body = catalog.get(statement.type).parse_body(statement)
        registry.apply(body, statement.time)
    return registry


def keys_json(registry: KeyRegistry, parties: Iterable[str]) -> list[dict[str, Any]]:
    """The keys of ``parties`` in ``registry``, as ``keys.json`` lists them."""
    import base64

    from provenance.entries import format_time

    wanted = set(parties)
    shown = []
    for key in sorted(registry.keys.values(), key=lambda k: (k.party, k.key_id)):
        if key.party not in wanted:
            continue
        shown.append(
            {
                "key_id": key.key_id,
                "party": key.party,
                "public_key": base64.b64encode(key.public_key).decode("ascii"),
                "not_before": format_time(key.not_before),
                "not_after": format_time(key.not_after) if key.not_after else None,
                "revoked_at": format_time(key.revoked_at) if key.revoked_at else None,
            }
        )
    return shown
