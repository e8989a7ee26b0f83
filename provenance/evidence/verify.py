"""Verify an evidence package offline, with public keys only (no database, no network).

The steps, in order; the first failure names its file (``PackageVerificationError.path``):

1. The tag manifest and its signature are present; the signature verifies with the
   platform key (the trusted key if given, else the package's own, which proves only
   self-consistency).
2. Every tag file the tag manifest lists is present and has its hash; no other file
   outside ``data/`` (but the signature) is there.
3. Every payload file the manifest lists is present and has its hash; no other file is
   in ``data/``; the files a package must hold are all listed.
4. The ledger bundle verifies (``provenance.bundle.verify_bundle``: every entry's
   signature by a key entitled to sign it, the hash chain, the key history, the tree
   against the signed checkpoint).
5. ``checkpoint.txt`` is the bundle's checkpoint; each entry of ``entries.jsonl`` is the
   bundle's record at its seq and its inclusion proof verifies against the checkpoint.
6. The consistency proof shows the newest checkpoint extends the package's.
7. ``keys.json`` lists the keys exactly as the ledger's key history has them.
8. ``case.json``: replaying the case's own entries gives its members, status, outcome
   and assignee; the title, notes and attachments have the hashes their entries record,
   each attachment's bytes their name; every entry it cites is in the package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.bundle import BundleReport, verify_bundle
from provenance.catalog import EntryCatalog
from provenance.consistency import check_extends
from provenance.entries import canonical, decode_record
from provenance.errors import CardtraceError
from provenance.evidence import layout
from provenance.evidence.errors import PackageVerificationError
from provenance.merkle import ProofError, leaf_hash, verify_inclusion
from provenance.parties import KEY_MANAGEMENT_TYPES
from provenance.verify import VerificationError

_MANIFEST_LINE = re.compile(r"([0-9a-f]{64}) +(.+)")
_CHUNK = 1 << 20
_SIGNATURE_FILE = re.compile(rb"[A-Za-z0-9+/]{85}[AQgw]==\n")


@dataclass(frozen=True, slots=True)
class PackageReport:
    case: str
    files: int
    entries: int
    bundle: BundleReport
    newest_size: int
    key_was_trusted: bool


def _fail(
    path: str, message: str, code: str = "package-verification-failed"
) -> PackageVerificationError:
    return PackageVerificationError(path, message, code=code)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        if path.is_file() or path.is_symlink():
            yield path.relative_to(root).as_posix()


def _manifest(root: Path, name: str) -> dict[str, str]:
    """``path -> sha256`` of a BagIt manifest (RFC 8493 section 2.1.3)."""
    path = root / name
    if not path.is_file():
        raise _fail(name, "missing", "file-missing")
    entries: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(name, "not UTF-8 text", "bad-manifest") from None
    for number, line in enumerate(text.splitlines(), 1):
        match = _MANIFEST_LINE.fullmatch(line.rstrip("\r"))
        if match is None:
            raise _fail(name, f"line {number} is not '<sha256> <path>'", "bad-manifest")
        digest, listed = match.groups()
        # Paths are percent-encoded for CR, LF and % (RFC 8493 section 2.1.3).
        listed = listed.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
        parts = listed.split("/")
        if listed.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise _fail(name, f"line {number} names an unsafe path", "bad-manifest")
        if listed in entries:
            raise _fail(name, f"line {number} lists {listed} twice", "bad-manifest")
        entries[listed] = digest
    return entries


def _check_hashes(root: Path, manifest_name: str, listed: dict[str, str]) -> None:
    for name, digest in listed.items():
        path = root / name
        if not path.is_file():
            raise _fail(name, f"missing (listed in {manifest_name})", "file-missing")
        if _sha256(path) != digest:
            raise _fail(name, f"its SHA-256 is not the one {manifest_name} lists", "file-changed")


def _platform_key(root: Path, trusted: bytes | None) -> tuple[bytes, Ed25519PublicKey]:
    if trusted is not None:
        try:
            return trusted, Ed25519PublicKey.from_public_bytes(trusted)
        except ValueError as e:
            raise VerificationError("the trusted key is not an Ed25519 key", code="bad-key") from e
    path = root / layout.PLATFORM_PEM
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError):
        raise _fail(layout.PLATFORM_PEM, "missing or not a PEM public key", "bad-key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise _fail(layout.PLATFORM_PEM, "not an Ed25519 key", "bad-key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw), key


def _json(root: Path, name: str) -> Any:
    try:
        return json.loads((root / name).read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(name, "not JSON", "bad-file") from None


def _proof(values: Any, name: str) -> list[bytes]:
    if not isinstance(values, list):
        raise _fail(name, "a proof must be a list", "bad-file")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, ValueError, TypeError):
        raise _fail(name, "a proof hash is not base64", "bad-file") from None


def _bundle_records(root: Path, wanted: set[int]) -> tuple[dict[int, bytes], list[bytes]]:
    """The bundle's records at ``wanted`` seqs, and every key-management record it shows
    (context, range and later lines), in log order. Read after the bundle verified."""
    records: dict[int, bytes] = {}
    keys: dict[int, bytes] = {}
    with open(root / layout.BUNDLE, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line.startswith(b'{"entry":'):
                record = decode_record(line)
                if record.seq in wanted:
                    records[record.seq] = line
                if record.statement.type in KEY_MANAGEMENT_TYPES:
                    keys[record.seq] = line
                continue
            value = json.loads(line)
            if value.get("kind") in ("context", "later"):
                keys[int(value["seq"])] = value["record"].encode("utf-8")
    return records, [keys[seq] for seq in sorted(keys)]


def verify_package(
    directory: Path, catalog: EntryCatalog, *, trusted_key: bytes | None = None
) -> PackageReport:
    """Check an evidence package (see the module docstring).

    Raises:
        PackageVerificationError: naming the first file at fault and why.
        VerificationError: the trusted key is unusable.
    """
    root = directory
    if not root.is_dir():
        raise _fail(str(directory), "not a directory", "file-missing")
    raw_key, public = _platform_key(root, trusted_key)

    # 1. The signature over the tag manifest.
    tag_path = root / layout.TAGMANIFEST
    if not tag_path.is_file():
        raise _fail(layout.TAGMANIFEST, "missing", "file-missing")
    sig_path = root / layout.SIGNATURE
    if not sig_path.is_file():
        raise _fail(layout.SIGNATURE, "missing: the package is not signed", "file-missing")
    # Exactly the base64 of 64 bytes and one LF: no byte of the file may change unseen.
    text = sig_path.read_bytes()
    if not _SIGNATURE_FILE.fullmatch(text):
        raise _fail(
            layout.SIGNATURE, "not one base64 Ed25519 signature and a newline", "bad-signature"
        )
    try:
        signature = base64.b64decode(text[:-1], validate=True)
        public.verify(signature, layout.signed_message(tag_path.read_bytes()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise _fail(
            layout.TAGMANIFEST,
            f"the platform's signature ({layout.SIGNATURE}) over it does not verify",
            "bad-signature",
        ) from None

    # 2. Tag files.
    tags = _manifest(root, layout.TAGMANIFEST)
    for name in layout.REQUIRED_TAGS:
        if name not in tags:
            raise _fail(name, f"not listed in {layout.TAGMANIFEST}", "file-missing")
    _check_hashes(root, layout.TAGMANIFEST, tags)
    allowed = set(tags) | {layout.TAGMANIFEST, layout.SIGNATURE}
    on_disk = list(_files(root))
    for name in on_disk:
        # A link could make the checks read a file outside the package.
        if (root / name).is_symlink():
            raise _fail(name, "a symbolic link; a package holds only plain files", "file-added")
    for name in on_disk:
        if not name.startswith("data/") and name not in allowed:
            raise _fail(name, "a file the signed manifests do not list", "file-added")

    # 3. Payload files.
    payload = _manifest(root, layout.MANIFEST)
    for name in layout.REQUIRED_PAYLOAD:
        if name not in payload:
            raise _fail(name, f"not listed in {layout.MANIFEST}", "file-missing")
    for name in payload:
        if not name.startswith("data/"):
            raise _fail(layout.MANIFEST, f"lists {name} outside data/", "bad-manifest")
    _check_hashes(root, layout.MANIFEST, payload)
    for name in on_disk:
        if name.startswith("data/") and name not in payload:
            raise _fail(name, "a file the signed manifests do not list", "file-added")

    # 4. The ledger bundle.
    try:
        with open(root / layout.BUNDLE, "rb") as stream:
            bundle = verify_bundle(stream, catalog, trusted_key=raw_key)
    except VerificationError as e:
        raise _fail(layout.BUNDLE, str(e), e.code) from e

    # 5. The checkpoint and each entry involved.
    note = (root / layout.CHECKPOINT).read_bytes()
    with open(root / layout.BUNDLE, "rb") as stream:
        stream.readline()
        bundle_note = json.loads(stream.readline())["note"].encode("utf-8")
    if note != bundle_note:
        raise _fail(layout.CHECKPOINT, "not the checkpoint the ledger bundle is proven against")
    listed: list[dict[str, Any]] = []
    for number, line in enumerate((root / layout.ENTRIES).read_bytes().splitlines(), 1):
        try:
            value = json.loads(line)
            if canonical(value) != line:
                raise ValueError("not canonical")
        except (ValueError, CardtraceError):
            raise _fail(
                layout.ENTRIES, f"line {number} is not canonical JSON", "bad-file"
            ) from None
        listed.append(value)
    seqs: list[int] = []
    for value in listed:
        seq = value.get("seq")
        if type(seq) is not int or (seqs and seq <= seqs[-1]):
            raise _fail(layout.ENTRIES, "each entry once, in log order", "bad-file")
        seqs.append(seq)
    records, key_records = _bundle_records(root, set(seqs))
    for value in listed:
        seq = value["seq"]
        raw = str(value.get("record", "")).encode("utf-8")
        if records.get(seq) != raw:
            raise _fail(
                layout.ENTRIES, f"entry {seq} is not the bundle's entry {seq}", "entry-mismatch"
            )
        try:
            verify_inclusion(
                leaf_hash(raw),
                seq,
                bundle.tree_size,
                _proof(value.get("proof"), layout.ENTRIES),
                bundle.root,
            )
        except ProofError:
            raise _fail(
                layout.ENTRIES, f"entry {seq}: the inclusion proof fails", "bad-proof"
            ) from None
        if value.get("leaf_hash") != base64.b64encode(leaf_hash(raw)).decode("ascii"):
            raise _fail(layout.ENTRIES, f"entry {seq}: wrong leaf hash", "bad-proof")

    # 6. Consistency with the newest checkpoint.
    consistency = _json(root, layout.CONSISTENCY)
    if not isinstance(consistency, dict) or consistency.get("old_size") != bundle.tree_size:
        raise _fail(
            layout.CONSISTENCY, "not a consistency proof from the package's checkpoint", "bad-file"
        )
    new_note = consistency.get("new_checkpoint")
    if not isinstance(new_note, str):
        raise _fail(layout.CONSISTENCY, "no newest checkpoint", "bad-file")
    proof = _proof(consistency.get("proof"), layout.CONSISTENCY)
    try:
        result = check_extends(note, new_note.encode("utf-8"), raw_key, lambda old, new: proof)
    except VerificationError as e:
        raise _fail(layout.CONSISTENCY, str(e), e.code) from e
    if result.new.size != consistency.get("new_size"):
        raise _fail(layout.CONSISTENCY, "new_size is not the newest checkpoint's size", "bad-file")

    # 7. The keys in force.
    keys = _json(root, layout.KEYS)
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise _fail(layout.KEYS, "not a key list", "bad-file")
    try:
        registry = layout.replay_keys(
            key_records, catalog, str(keys.get("platform")), stop=bundle.tree_size
        )
    except CardtraceError as e:
        raise _fail(layout.BUNDLE, f"key history: {e}", e.code) from e
    parties = {k.get("party") for k in keys["keys"] if isinstance(k, dict)}
    if keys["keys"] != layout.keys_json(registry, {p for p in parties if isinstance(p, str)}):
        raise _fail(
            layout.KEYS, "the keys listed are not those the ledger's key history has", "bad-keys"
        )
    if keys.get("platform_key") != base64.b64encode(raw_key).decode("ascii"):
        raise _fail(
            layout.KEYS, "platform_key is not the key the package is signed with", "bad-keys"
        )

    # 8. The case's record.
    case_doc = _json(root, layout.CASE)
    reference = _check_case(root, case_doc, {v["seq"]: v["record"] for v in listed}, payload)
    return PackageReport(
        case=reference,
        files=len(payload) + len(tags),
        entries=len(listed),
        bundle=bundle,
        newest_size=result.new.size,
        key_was_trusted=trusted_key is not None,
    )


def _body(records: dict[int, str], seq: Any, type_name: str) -> dict[str, Any]:
    raw = records.get(seq) if isinstance(seq, int) else None
    if raw is None:
        raise _fail(
            layout.CASE, f"cites entry {seq}, which the package does not hold", "entry-missing"
        )
    entry = json.loads(raw)["entry"]
    if entry["type"] != type_name:
        raise _fail(
            layout.CASE, f"entry {seq} is a {entry['type']}, not a {type_name}", "case-mismatch"
        )
    body: dict[str, Any] = entry["body"]
    return body


def _check_case_state(case: dict[str, Any], number: int, records: dict[int, str]) -> None:
    """Replay the case's own entries: its members, status, outcome and assignee must be
    what they record, and its timeline exactly those entries."""
    status, outcome, assignee = "open", None, None
    members: set[tuple[str, str]] = set()
    timeline = [event.get("seq") for event in case.get("timeline", [])]
    for seq in timeline:
        raw = records.get(seq) if isinstance(seq, int) else None
        if raw is None:
            raise _fail(
                layout.CASE, f"cites entry {seq}, which the package does not hold", "entry-missing"
            )
        entry = json.loads(raw)["entry"]
        body = entry["body"]
        if not entry["type"].startswith("case.") or body.get("case", seq) != number:
            raise _fail(
                layout.CASE, f"entry {seq} is not an action on case {number}", "case-mismatch"
            )
        if entry["type"] == "case.add":
            members |= {(m["kind"], m["value"]) for m in body["members"]}
        elif entry["type"] == "case.status":
            status, outcome = body["to_status"], body.get("outcome")
        elif entry["type"] == "case.assign":
            assignee = body["assignee"]
    if not timeline or timeline[0] != number or timeline != sorted(timeline):
        raise _fail(
            layout.CASE, "the timeline does not start with the case's opening", "case-mismatch"
        )
    actions = set()
    for seq, raw in records.items():
        entry = json.loads(raw)["entry"]
        if entry["type"].startswith("case.") and entry["body"].get("case", seq) == number:
            actions.add(seq)
    if actions != set(timeline):
        raise _fail(layout.CASE, "the timeline leaves out actions on the case", "case-mismatch")
    listed = {(m.get("kind"), m.get("value")) for m in case.get("members", [])}
    if listed != members:
        raise _fail(layout.CASE, "the members are not those its entries added", "case-mismatch")
    if (case.get("status"), case.get("outcome"), case.get("assignee")) != (
        status,
        outcome,
        assignee,
    ):
        raise _fail(
            layout.CASE,
            "the status, outcome or assignee is not what its entries record",
            "case-mismatch",
        )


def _text_hash(text: Any) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _check_case(root: Path, document: Any, records: dict[int, str], payload: dict[str, str]) -> str:
    if not isinstance(document, dict) or document.get("format") != layout.FORMAT:
        raise _fail(layout.CASE, "not a cardtrace case record", "bad-file")
    case = document.get("case")
    if not isinstance(case, dict) or not isinstance(case.get("id"), int):
        raise _fail(layout.CASE, "no case", "bad-file")
    number = case["id"]
    for seq in document.get("entries", []):
        if seq not in records:
            raise _fail(
                layout.CASE, f"cites entry {seq}, which the package does not hold", "entry-missing"
            )
    opened = _body(records, number, "case.open")
    _check_case_state(case, number, records)
    if case.get("title") is not None and _text_hash(case["title"]) != opened["title_sha256"]:
        raise _fail(
            layout.CASE, f"the title is not the one entry {number} records", "case-mismatch"
        )
    for note in case.get("notes", []):
        body = _body(records, note.get("seq"), "case.note")
        if body["case"] != number or (
            note.get("text") is not None and _text_hash(note["text"]) != body["note_sha256"]
        ):
            raise _fail(
                layout.CASE,
                f"note {note.get('seq')} is not the one its entry records",
                "case-mismatch",
            )
    for attachment in case.get("attachments", []):
        body = _body(records, attachment.get("seq"), "case.attach")
        if body["case"] != number or body["sha256"] != attachment.get("sha256"):
            raise _fail(
                layout.CASE,
                f"attachment {attachment.get('seq')} is not the one its entry records",
                "case-mismatch",
            )
        if (
            attachment.get("name") is not None
            and _text_hash(attachment["name"]) != body["name_sha256"]
        ):
            raise _fail(
                layout.CASE,
                f"attachment {attachment.get('seq')}: the name is not the one recorded",
                "case-mismatch",
            )
        name = layout.ATTACHMENTS + body["sha256"]
        if name in payload and payload[name] != body["sha256"]:
            raise _fail(name, "its bytes are not the ones the case recorded", "file-changed")
    return f"CASE-{number}"
