"""Build an evidence package for a case: a BagIt bag the platform signs.

The ledger part reuses the offline bundle format (``provenance/bundle.py``): the bundle
of the entries from the case's first to its last, proven against a signed checkpoint,
with the key history needed to check every signature. Beside it, the entries involved
each with its own inclusion proof, the checkpoint, a consistency proof to the newest
checkpoint and the keys in force. The report, the spreadsheet and the case's own record
sit in the same bag; the bag's tag manifest (which hashes the payload manifest, which
hashes every file) is signed with the platform key. See docs/EVIDENCE.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.bundle import export_bundle
from provenance.cases import CaseView, case_json, get_case, related_entries
from provenance.cases.attachments import AttachmentStore
from provenance.cases.entries import EXPORT_TYPE
from provenance.cases.related import read_records
from provenance.checkpoint import format_verifier_key
from provenance.entries import canonical, format_time
from provenance.evidence import layout
from provenance.evidence.appendix import render_appendix
from provenance.evidence.bag import make_bag
from provenance.evidence.errors import EvidenceError
from provenance.evidence.facts import gather_facts
from provenance.evidence.fonts import report_font
from provenance.evidence.report import render_report
from provenance.ledger import Ledger, LedgerEntry, StoredCheckpoint
from provenance.merkle import leaf_hash
from provenance.parties import KEY_MANAGEMENT_TYPES

LANGUAGES = ("zh", "en")
_OFFICER_RE = re.compile(r"[a-z][a-z0-9._-]{1,63}")


@dataclass(frozen=True, slots=True)
class Package:
    """What was written: where, the SHA-256 of its signed tag manifest (the package's
    hash), the checkpoint its entries are proven against, and any notices."""

    path: Path
    case_id: int
    package_sha256: str
    checkpoint_size: int
    newest_size: int
    entries: int
    language: str
    recipient: str
    notices: tuple[str, ...]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _evidence_checkpoint(session: Session, ledger: Ledger, last_seq: int) -> StoredCheckpoint:
    """The oldest checkpoint (under the current key) that covers every entry: the one
    most likely already seen by others, whose later extension the package proves."""
    row = session.scalars(
        select(StoredCheckpoint)
        .where(
            StoredCheckpoint.key_id == ledger.platform.key_id,
            StoredCheckpoint.size > last_seq,
        )
        .order_by(StoredCheckpoint.size)
        .limit(1)
    ).first()
    if row is None:
        raise EvidenceError(
            f"no signed checkpoint covers entry {last_seq} yet; issue one first "
            "(cardtrace evidence export does)",
            code="no-checkpoint",
        )
    return row


def _readme(case: CaseView, checkpoint: StoredCheckpoint, origin: str) -> str:
    return (
        f"cardtrace evidence package / 证据包 — {case.reference}\n"
        f"ledger / 账本: {origin}, checkpoint / 检查点 {checkpoint.size}\n\n"
        "Verify offline, with the platform's public key from a source you trust:\n"
        "离线核验（公钥请从您信任的渠道获取，不要使用包内的公钥）：\n\n"
        "    cardtrace evidence verify THIS_DIRECTORY --platform-key KEY\n\n"
        "report.pdf       the readable report / 可读报告\n"
        "appendix.xlsx    transactions and custody rows / 交易与流转明细\n"
        "case.json        the case as recorded / 案件记录\n"
        "ledger/          signed ledger entries, proofs, checkpoint / 签名账本记录、证明、检查点\n"
        "keys/            public keys in force / 有效公钥\n"
        "attachments/     the case's files, by SHA-256 / 案件附件（按 SHA-256 命名）\n"
    )


def _write(root: Path, relative: str, content: bytes) -> None:
    # Written before bagging, so without the "data/" prefix bagit adds.
    path = root / relative.removeprefix("data/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def build_package(
    session: Session,
    ledger: Ledger,
    case_id: int,
    out_dir: Path,
    *,
    exported_by: str,
    recipient: str,
    language: str,
    now: datetime,
    attachments: AttachmentStore | None = None,
    cjk_font: Path | None = None,
) -> Package:
    """Write the evidence package of case ``case_id`` into the new directory ``out_dir``.

    Reads only: the chain-of-custody entry is :func:`record_export`'s job, once the
    package is complete. A checkpoint covering the case's entries must exist.

    Args:
        language: ``zh`` or ``en``. Chinese needs ``cjk_font``; without one the report is
            written in English and a notice says so.

    Raises:
        EvidenceError: a bad language, officer id or recipient, ``out_dir`` is not empty, or no
            checkpoint covers the entries.
        CaseNotFoundError: no such case.
    """
    if language not in LANGUAGES:
        raise EvidenceError("language must be zh or en", code="bad-language")
    if not _OFFICER_RE.fullmatch(exported_by):
        raise EvidenceError("exported_by must be an officer id", code="bad-officer")
    recipient = recipient.strip()
    if not 1 <= len(recipient) <= 200:
        raise EvidenceError("recipient: 1-200 characters", code="bad-recipient")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise EvidenceError(f"{out_dir} exists and is not an empty directory", code="output-exists")
    notices: list[str] = []
    if language == "zh" and cjk_font is None:
        notices.append(
            "no CJK font found (install fonts-wqy-microhei: scripts/system-deps.sh); "
            "the report is in English"
        )
        language = "en"
    case = get_case(session, case_id)
    related = related_entries(session, case)
    if related.truncated:
        notices.append(f"the case has more entries than the package holds ({len(related.seqs)})")
    seqs = list(related.seqs)
    checkpoint = _evidence_checkpoint(session, ledger, seqs[-1])
    newest = ledger.latest_checkpoint(session)
    assert newest is not None  # the evidence checkpoint exists, so a latest one does
    size = checkpoint.size
    records = read_records(session, seqs)

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(out_dir / "bundle.jsonl", "wb") as bundle:
            export_bundle(session, ledger, bundle, checkpoint, first=seqs[0], stop=seqs[-1] + 1)
        _write(out_dir, layout.BUNDLE, (out_dir / "bundle.jsonl").read_bytes())
        (out_dir / "bundle.jsonl").unlink()
        lines = []
        for seq in seqs:
            raw = records[seq]
            proof = ledger.inclusion_proof(session, seq, size)
            line = {
                "seq": seq,
                "leaf_hash": _b64(leaf_hash(raw)),
                "record": raw.decode("utf-8"),
                "proof": [_b64(h) for h in proof],
            }
            lines.append(canonical(line) + b"\n")
        _write(out_dir, layout.ENTRIES, b"".join(lines))
        _write(out_dir, layout.CHECKPOINT, checkpoint.note.encode("utf-8"))
        consistency = {
            "old_size": size,
            "new_size": newest.size,
            "new_checkpoint": newest.note,
            "proof": [_b64(h) for h in ledger.consistency_proof(session, size, newest.size)],
        }
        _write(out_dir, layout.CONSISTENCY, canonical(consistency) + b"\n")

        key_records = session.scalars(
            select(LedgerEntry.record)
            .where(LedgerEntry.seq < size, LedgerEntry.type.in_(KEY_MANAGEMENT_TYPES))
            .order_by(LedgerEntry.seq)
        )
        registry = layout.replay_keys(key_records, ledger.catalog, ledger.platform.party, stop=size)
        signers = {ledger.platform.party} | {
            json.loads(raw)["entry"]["actor"] for raw in records.values()
        }
        public = Ed25519PublicKey.from_public_bytes(ledger.platform.public_key)
        keys = {
            "origin": ledger.platform.origin,
            "platform": ledger.platform.party,
            "platform_key": _b64(ledger.platform.public_key),
            "note_key": format_verifier_key(ledger.platform.origin, public),
            "checkpoint_size": size,
            "keys": layout.keys_json(registry, signers),
        }
        _write(out_dir, layout.KEYS, canonical(keys) + b"\n")
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write(out_dir, layout.PLATFORM_PEM, pem)

        shown_case = case_json(case)
        shown_case["related"] = [
            {"kind": kind, "value": value, "seqs": list(found)}
            for (kind, value), found in related.by_member.items()
        ]
        document: dict[str, Any] = {
            "format": layout.FORMAT,
            "version": layout.VERSION,
            "case": shown_case,
            "exported_at": format_time(now),
            "exported_by": exported_by,
            "recipient": recipient,
            "language": language,
            "checkpoint_size": size,
            "newest_size": newest.size,
            "entries": seqs,
        }
        _write(
            out_dir,
            layout.CASE,
            json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n",
        )
        if attachments is not None:
            for attachment in case.attachments:
                content = attachments.read(attachment.sha256)
                _write(out_dir, layout.ATTACHMENTS + attachment.sha256, content)

        facts = gather_facts(
            session,
            case,
            records,
            related,
            origin=ledger.platform.origin,
            platform_key_id=ledger.platform.key_id,
            checkpoint_size=size,
            checkpoint_root=checkpoint.root,
            newest_size=newest.size,
            exported_at=now,
            exported_by=exported_by,
            recipient=recipient,
            language=language,
        )
        font = report_font(cjk_font)
        _write(out_dir, layout.REPORT, render_report(facts, font, language))
        _write(out_dir, layout.APPENDIX, render_appendix(facts))
        _write(out_dir, layout.README, _readme(case, checkpoint, ledger.platform.origin).encode())

        bag_info = {
            "Source-Organization": ledger.platform.origin,
            "External-Identifier": case.reference,
            "External-Description": f"cardtrace evidence package of {case.reference}",
            "Contact-Name": exported_by,
            "Cardtrace-Recipient": recipient,
            "Cardtrace-Checkpoint-Size": str(size),
            "Cardtrace-Platform-Key-Id": ledger.platform.key_id,
        }
        # Not bagit.make_bag: it changes the working directory, which a threaded server
        # (or a task running in one) must not do.
        make_bag(out_dir, bag_info, bagging_date=now.date())
        tagmanifest = (out_dir / layout.TAGMANIFEST).read_bytes()
        signature = ledger.platform.private_key.sign(layout.signed_message(tagmanifest))
        (out_dir / layout.SIGNATURE).write_text(_b64(signature) + "\n", encoding="ascii")
    except BaseException:
        # Half a package is no package.
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return Package(
        path=out_dir,
        case_id=case.id,
        package_sha256=hashlib.sha256(tagmanifest).hexdigest(),
        checkpoint_size=size,
        newest_size=newest.size,
        entries=len(seqs),
        language=language,
        recipient=recipient,
        notices=tuple(notices),
    )


def record_export(
    session: Session, ledger: Ledger, package: Package, *, exported_by: str, now: datetime
) -> int:
    """Write the chain-of-custody entry of ``package``: who exported it, for whom, when
    (the entry's time) and its hash.

    Returns:
        The entry's seq.
    """
    body = {
        "case": package.case_id,
        "by": exported_by,
        "recipient": package.recipient,
        "package_sha256": package.package_sha256,
        "checkpoint_size": package.checkpoint_size,
        "entries": package.entries,
        "language": package.language,
    }
    [entry] = ledger.append_as_platform(
        session, [ledger.statement(EXPORT_TYPE, body, now=now)], now=now
    )
    return entry.seq
