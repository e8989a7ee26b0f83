"""Self-contained ledger bundles: export a range of the log, verify it offline.

A bundle is a text file of JSON lines (each line canonical RFC 8785 JSON), in order:

1. ``{"kind":"header", ...}``: format, origin, the range ``[first, stop)``, tree size, the
   platform's public key.
2. ``{"kind":"checkpoint","note": ...}``: a C2SP signed checkpoint of ``tree_size``.
3. ``{"kind":"context", ...}``: every key-management entry before ``first`` (who could
   sign what), each with its inclusion proof against the checkpoint.
4. ``{"kind":"left", ...}`` and ``{"kind":"prev", ...}`` (when ``first > 0``): the tree's
   right edge before ``first``, and the leaf hash of entry ``first - 1`` with its proof.
5. The records ``first .. stop - 1`` themselves, one per line, byte for byte.
6. ``{"kind":"later", ...}``: every key-management entry in ``[stop, tree_size)``, with
   its inclusion proof, so the verifier knows who could sign at the checkpoint's size.
7. ``{"kind":"tail", ...}`` (unless the range ends the log): the log's last entry with
   its proof; its ``keyprev`` shows the key chain shown is the whole chain.
8. ``{"kind":"right", ...}``: the perfect subtrees covering ``[stop, tree_size)``.
9. ``{"kind":"end","count": n}``.

Verification streams the file once, holding O(log n) hashes and the key registry, so
its memory does not grow with the bundle. ``docs/LEDGER_FORMAT.md`` has the details.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.catalog import EntryCatalog
from provenance.checkpoint import CheckpointError, format_verifier_key, verify_checkpoint
from provenance.entries import canonical, decode_record
from provenance.errors import CardtraceError, ValidationError
from provenance.ledger import Ledger, LedgerEntry, MerkleNode, StoredCheckpoint
from provenance.merkle import (
    CompactRange,
    NodeId,
    ProofError,
    aligned_nodes,
    leaf_hash,
    node_id,
    verify_inclusion,
)
from provenance.parties import KEY_MANAGEMENT_TYPES, KeyRegistry
from provenance.verify import LogVerifier, VerificationError, check_platform_key

FORMAT = "cardtrace-bundle"
VERSION = 1
_RECORD_PREFIX = b'{"entry":'


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: Any, what: str, line: int) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"line {line}: {what} must be a base64 string", code="bad-bundle")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerificationError(f"line {line}: {what} is not base64", code="bad-bundle") from e
    if _b64(raw) != value:
        raise VerificationError(f"line {line}: {what} is not canonical base64", code="bad-bundle")
    return raw


def _line(value: dict[str, Any]) -> bytes:
    return canonical(value) + b"\n"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    first: int
    stop: int
    tree_size: int
    context_entries: int


def export_bundle(
    session: Session,
    ledger: Ledger,
    out: IO[bytes],
    checkpoint: StoredCheckpoint,
    *,
    first: int = 0,
    stop: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the bundle of entries ``[first, stop)`` proven against ``checkpoint``.

    Raises:
        ValidationError: the range is not inside the checkpoint's tree.
    """
    size = checkpoint.size
    stop = size if stop is None else stop
    if not 0 <= first <= stop <= size:
        raise ValidationError(
            f"range [{first}, {stop}) is not inside the checkpoint's {size} entries",
            code="bad-range",
        )
    platform = ledger.platform
    public = Ed25519PublicKey.from_public_bytes(platform.public_key)
    out.write(
        _line(
            {
                "kind": "header",
                "format": FORMAT,
                "version": VERSION,
                "origin": platform.origin,
                "platform": platform.party,
                "platform_key": _b64(platform.public_key),
                "note_key": format_verifier_key(platform.origin, public),
                "first": first,
                "stop": stop,
                "tree_size": size,
            }
        )
    )
    out.write(_line({"kind": "checkpoint", "note": checkpoint.note}))
    context = 0
    for seq, record in session.execute(
        select(LedgerEntry.seq, LedgerEntry.record)
        .where(LedgerEntry.seq < first, LedgerEntry.type.in_(KEY_MANAGEMENT_TYPES))
        .order_by(LedgerEntry.seq)
    ):
        out.write(_key_line("context", ledger, session, seq, record, size))
        context += 1
    if first > 0:
        left = _fetch_nodes(session, aligned_nodes(0, first))
        out.write(_line({"kind": "left", "hashes": [_b64(h) for h in left]}))
        prev_leaf = session.scalar(
            select(LedgerEntry.leaf_hash).where(LedgerEntry.seq == first - 1)
        )
        assert prev_leaf is not None
        prev_proof = ledger.inclusion_proof(session, first - 1, size)
        out.write(
            _line({"kind": "prev", "leaf": _b64(prev_leaf), "proof": [_b64(h) for h in prev_proof]})
        )
    cursor = first
    while cursor < stop:
        rows = session.execute(
            select(LedgerEntry.seq, LedgerEntry.record)
            .where(LedgerEntry.seq >= cursor, LedgerEntry.seq < stop)
            .order_by(LedgerEntry.seq)
            .limit(5000)
        ).all()
        for _, record in rows:
            out.write(record)
            out.write(b"\n")
        cursor = rows[-1][0] + 1
        if progress is not None:
            progress(cursor - first)
    for seq, record in session.execute(
        select(LedgerEntry.seq, LedgerEntry.record)
        .where(
            LedgerEntry.seq >= stop,
            LedgerEntry.seq < size,
            LedgerEntry.type.in_(KEY_MANAGEMENT_TYPES),
        )
        .order_by(LedgerEntry.seq)
    ):
        out.write(_key_line("later", ledger, session, seq, record, size))
    if _needs_tail(first, stop, size):
        tail = session.scalar(select(LedgerEntry.record).where(LedgerEntry.seq == size - 1))
        assert tail is not None
        out.write(_key_line("tail", ledger, session, size - 1, tail, size))
    right = _fetch_nodes(session, aligned_nodes(stop, size))
    out.write(_line({"kind": "right", "hashes": [_b64(h) for h in right]}))
    out.write(_line({"kind": "end", "count": stop - first}))
    return ExportSummary(first, stop, size, context)


def _needs_tail(first: int, stop: int, size: int) -> bool:
    """Whether the tree's last entry must be shown: its ``keyprev`` proves that the key
    chain the bundle shows ends where the log's does (none left out after the range)."""
    return size > 0 and not (first < stop == size)


def _key_line(
    kind: str, ledger: Ledger, session: Session, seq: int, record: bytes, size: int
) -> bytes:
    proof = ledger.inclusion_proof(session, seq, size)
    return _line(
        {
            "kind": kind,
            "seq": seq,
            "record": record.decode("utf-8"),
            "proof": [_b64(h) for h in proof],
        }
    )


def _fetch_nodes(session: Session, nodes: list[tuple[int, int]]) -> list[bytes]:
    ids = [node_id(level, index) for level, index in nodes]
    if not ids:
        return []
    found = {
        NodeId(i): h
        for i, h in session.execute(
            select(MerkleNode.id, MerkleNode.hash).where(MerkleNode.id.in_(ids))
        )
    }
    return [found[i] for i in ids]


@dataclass(frozen=True, slots=True)
class BundleReport:
    origin: str
    first: int
    stop: int
    tree_size: int
    root: bytes
    platform_key: bytes
    key_was_trusted: bool


_PROGRESS_EVERY = 10_000


class _Lines:
    """Numbered lines of a bundle, each parsed as canonical JSON unless it is a record."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(stream)
        self.number = 0
        self._peeked: bytes | None = None

    def peek(self) -> bytes | None:
        if self._peeked is None:
            try:
                self._peeked = next(self._it)
            except StopIteration:
                return None
        return self._peeked

    def take(self) -> bytes:
        line = self.peek()
        if line is None:
            raise VerificationError(
                f"line {self.number + 1}: the bundle ends too early", code="bad-bundle"
            )
        self._peeked = None
        self.number += 1
        if not line.endswith(b"\n"):
            raise VerificationError(
                f"line {self.number}: the bundle's last line has no newline", code="bad-bundle"
            )
        return line[:-1]

    def records(self, count: int) -> Iterator[bytes]:
        """The next ``count`` lines, without their newlines, for as long as they are records.

        Stops early at the end of the bundle or before a line that is not a record (which
        stays peeked). :meth:`peek` and :meth:`take` written out: this runs once an entry.
        """
        it = self._it
        for _ in range(count):
            line = self._peeked
            if line is None:
                line = next(it, None)
                if line is None:
                    return
            if not line.startswith(_RECORD_PREFIX):
                self._peeked = line
                return
            self._peeked = None
            self.number += 1
            if not line.endswith(b"\n"):
                raise VerificationError(
                    f"line {self.number}: the bundle's last line has no newline",
                    code="bad-bundle",
                )
            yield line[:-1]

    def take_object(self, kind: str) -> dict[str, Any]:
        raw = self.take()
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise VerificationError(f"line {self.number}: not JSON", code="bad-bundle") from e
        if not isinstance(value, dict) or value.get("kind") != kind:
            raise VerificationError(
                f"line {self.number}: expected the {kind!r} line", code="bad-bundle"
            )
        try:
            canonical_form = canonical(value)
        except CardtraceError as e:
            raise VerificationError(f"line {self.number}: {e}", code="bad-bundle") from e
        if canonical_form != raw:
            raise VerificationError(f"line {self.number}: not in canonical form", code="bad-bundle")
        return value

    def next_kind(self) -> str | None:
        line = self.peek()
        if line is None or line.startswith(_RECORD_PREFIX):
            return None
        try:
            kind = json.loads(line).get("kind")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return None
        return kind if isinstance(kind, str) else None


def _int(value: Any, what: str, line: int) -> int:
    if type(value) is not int or value < 0:
        raise VerificationError(
            f"line {line}: {what} must be a non-negative integer", code="bad-bundle"
        )
    return value


def _proof(value: Any, line: int) -> list[bytes]:
    if not isinstance(value, list):
        raise VerificationError(f"line {line}: proof must be a list", code="bad-bundle")
    return [_unb64(h, "proof hash", line) for h in value]


def verify_bundle(
    stream: Iterable[bytes],
    catalog: EntryCatalog,
    *,
    trusted_key: bytes | None = None,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
    progress_every: int = _PROGRESS_EVERY,
) -> BundleReport:
    """Verify a bundle with no database and no network.

    Args:
        stream: the bundle's lines (a file opened in binary mode).
        catalog: the entry types, for their bodies and signing rules.
        trusted_key: the platform's raw Ed25519 public key, from a source you trust. If
            ``None``, the key in the bundle is used, which proves only self-consistency.
        progress: called with the number of entries verified so far, every
            ``progress_every`` sequence numbers.

    Raises:
        VerificationError: naming the first bad entry (or line) and why.
    """
    lines = _Lines(stream)
    header = lines.take_object("header")
    if (
        header.get("format") != FORMAT
        or type(header.get("version")) is not int
        or (header["version"] != VERSION)
    ):
        raise VerificationError("line 1: not a cardtrace bundle of version 1", code="bad-bundle")
    expected = {
        "kind",
        "format",
        "version",
        "origin",
        "platform",
        "platform_key",
        "note_key",
        "first",
        "stop",
        "tree_size",
    }
    if set(header) != expected:
        raise VerificationError(
            "line 1: the header's fields are not the expected ones", code="bad-bundle"
        )
    origin, platform = header["origin"], header["platform"]
    if not isinstance(origin, str) or not isinstance(platform, str):
        raise VerificationError("line 1: origin and platform must be strings", code="bad-bundle")
    first = _int(header["first"], "first", 1)
    stop = _int(header["stop"], "stop", 1)
    size = _int(header["tree_size"], "tree_size", 1)
    if not first <= stop <= size:
        raise VerificationError("line 1: the range is not inside the tree", code="bad-bundle")
    bundle_key = _unb64(header["platform_key"], "platform_key", 1)
    if trusted_key is not None and bundle_key != trusted_key:
        raise VerificationError(
            "line 1: the bundle's platform key is not the key you trust", code="untrusted-key"
        )
    key = trusted_key or bundle_key
    try:
        public = Ed25519PublicKey.from_public_bytes(key)
    except ValueError as e:
        raise VerificationError(
            "line 1: platform_key is not an Ed25519 key", code="bad-bundle"
        ) from e
    try:
        note_key = format_verifier_key(origin, public)
    except CheckpointError as e:
        raise VerificationError(f"line 1: origin: {e}", code="bad-bundle") from e
    if header["note_key"] != note_key:
        raise VerificationError("line 1: note_key does not match platform_key", code="bad-bundle")

    note_line = lines.take_object("checkpoint")
    note = note_line.get("note")
    if set(note_line) != {"kind", "note"} or not isinstance(note, str):
        raise VerificationError("line 2: malformed checkpoint line", code="bad-bundle")
    try:
        checkpoint = verify_checkpoint(note.encode("utf-8"), origin, origin, public)
    except CheckpointError as e:
        raise VerificationError(f"line 2: checkpoint: {e}", code=e.code) from e
    if checkpoint.size != size:
        raise VerificationError(
            f"line 2: the checkpoint is of size {checkpoint.size}, the header says {size}",
            code="bad-bundle",
        )
    root = checkpoint.root

    registry = KeyRegistry(platform=platform)
    key_seq = _replay_key_entries(
        lines, "context", catalog, registry, low=0, high=first, last=-1, size=size, root=root
    )
    if first > 0 and key_seq == -1:
        raise VerificationError(
            "the bundle has no context entries before its range", code="bad-bundle"
        )

    left = CompactRange.empty()
    prev: bytes | None = None
    if first == 0:
        prev = bytes(32)
    else:
        left_line = lines.take_object("left")
        hashes = [_unb64(h, "left hash", lines.number) for h in left_line.get("hashes", [])]
        levels = [level for level, _ in aligned_nodes(0, first)]
        if set(left_line) != {"kind", "hashes"} or len(hashes) != len(levels):
            raise VerificationError(f"line {lines.number}: malformed left edge", code="bad-bundle")
        for level, value in zip(levels, hashes, strict=True):
            left.push_node(level, value)
        prev_line = lines.take_object("prev")
        if set(prev_line) != {"kind", "leaf", "proof"}:
            raise VerificationError(f"line {lines.number}: malformed prev line", code="bad-bundle")
        prev = _unb64(prev_line.get("leaf"), "prev leaf", lines.number)
        try:
            verify_inclusion(
                prev, first - 1, size, _proof(prev_line.get("proof"), lines.number), root
            )
        except ProofError as e:
            raise VerificationError(
                f"line {lines.number}: the leaf before entry {first} is not in the checkpoint",
                code="bad-proof",
            ) from e

    verifier = LogVerifier(
        catalog,
        start=first,
        left=left,
        prev=prev,
        registry=registry,
        key_seq=key_seq,
        threads=threads,
    )
    while verifier.size < stop:
        # Up to the next multiple of progress_every (when progress is reported) or the
        # range's end.
        want = min(stop, (verifier.size // progress_every + 1) * progress_every) - verifier.size
        before = verifier.size
        verifier.feed_all(lines.records(want))
        if verifier.size - before < want:
            verifier.finish()
            raise VerificationError(
                f"line {lines.number + 1}: entry {verifier.size} is missing",
                code="entry-missing",
                seq=verifier.size,
            )
        if progress is not None and verifier.size % progress_every == 0:
            progress(verifier.size - first)
    verifier.finish()
    # Key changes after the range, up to the checkpoint: who could sign at its size.
    last_key = _replay_key_entries(
        lines,
        "later",
        catalog,
        registry,
        low=stop,
        high=size,
        last=verifier.key_seq,
        size=size,
        root=root,
    )
    if _needs_tail(first, stop, size):
        _check_tail(lines, last_key, size, root)
    check_platform_key(registry, key)

    right_line = lines.take_object("right")
    hashes = [_unb64(h, "right hash", lines.number) for h in right_line.get("hashes", [])]
    nodes = aligned_nodes(stop, size)
    if set(right_line) != {"kind", "hashes"} or len(hashes) != len(nodes):
        raise VerificationError(f"line {lines.number}: malformed right edge", code="bad-bundle")
    for (level, _), value in zip(nodes, hashes, strict=True):
        verifier.left.push_node(level, value)
    if verifier.root() != root:
        raise VerificationError(
            "the entries and edges do not produce the checkpoint's root hash",
            code="root-mismatch",
        )
    end = lines.take_object("end")
    if (
        set(end) != {"kind", "count"}
        or type(end["count"]) is not int
        or (end["count"] != stop - first)
    ):
        raise VerificationError(f"line {lines.number}: wrong entry count", code="bad-bundle")
    if lines.peek() is not None:
        raise VerificationError(f"line {lines.number + 1}: data after the end", code="bad-bundle")
    return BundleReport(origin, first, stop, size, root, key, trusted_key is not None)


def _check_tail(lines: _Lines, last_key: int, size: int, root: bytes) -> None:
    """The log's last entry, proven in the tree: its ``keyprev`` (or itself, if it is a key
    entry) must be the last key entry the bundle showed."""
    value = lines.take_object("tail")
    n = lines.number
    raw_text = value.get("record")
    if set(value) != {"kind", "seq", "record", "proof"} or not isinstance(raw_text, str):
        raise VerificationError(f"line {n}: malformed tail line", code="bad-bundle")
    if _int(value.get("seq"), "seq", n) != size - 1:
        raise VerificationError(f"line {n}: the tail must be entry {size - 1}", code="bad-bundle")
    raw = raw_text.encode("utf-8")
    try:
        verify_inclusion(leaf_hash(raw), size - 1, size, _proof(value.get("proof"), n), root)
        record = decode_record(raw)
    except CardtraceError as e:
        raise VerificationError(f"line {n}: entry {size - 1}: {e}", code=e.code) from e
    if record.seq != size - 1:
        raise VerificationError(
            f"line {n}: the tail record is not entry {size - 1}", code="bad-bundle"
        )
    if record.statement.type in KEY_MANAGEMENT_TYPES:
        # A key change at the very end must itself have been shown.
        if last_key != size - 1:
            raise VerificationError(
                f"line {n}: the log's last entry is a change of keys the bundle does not show",
                code="key-chain-broken",
            )
    elif record.keyprev != last_key:
        raise VerificationError(
            f"line {n}: the log's key changes end at entry {record.keyprev}, but the bundle's "
            f"at {last_key} (a change of keys is missing)",
            code="key-chain-broken",
        )


def _replay_key_entries(
    lines: _Lines,
    kind: str,
    catalog: EntryCatalog,
    registry: KeyRegistry,
    *,
    low: int,
    high: int,
    last: int,
    size: int,
    root: bytes,
) -> int:
    """Check the key-management entries on ``kind`` lines, all with seq in [low, high).

    They must form the ``keyprev`` chain from ``last`` on, so none can be left out; each
    is proven in the checkpoint's tree, authorised, signature-checked and applied.

    Returns:
        The sequence number of the last key-management entry seen.
    """
    while lines.next_kind() == kind:
        value = lines.take_object(kind)
        n = lines.number
        seq = _int(value.get("seq"), "seq", n)
        raw_text = value.get("record")
        if set(value) != {"kind", "seq", "record", "proof"} or not isinstance(raw_text, str):
            raise VerificationError(f"line {n}: malformed {kind} line", code="bad-bundle")
        if not (low <= seq < high) or seq <= last:
            raise VerificationError(f"line {n}: {kind} entries out of order", code="bad-bundle")
        raw = raw_text.encode("utf-8")
        try:
            verify_inclusion(leaf_hash(raw), seq, size, _proof(value.get("proof"), n), root)
            record = decode_record(raw)
            if record.seq != seq:
                raise VerificationError(
                    f"entry {seq}: the record says {record.seq}", code="out-of-sequence"
                )
            statement = record.statement
            if statement.type not in KEY_MANAGEMENT_TYPES:
                raise VerificationError(
                    f"entry {seq}: not a key-management entry", code="bad-bundle"
                )
            if record.keyprev != last:
                raise VerificationError(
                    f"entry {seq}: keyprev is {record.keyprev}, but the previous key entry "
                    f"is {last} (a change of keys is missing)",
                    code="key-chain-broken",
                )
            entry_type = catalog.get(statement.type)
            body = entry_type.parse_body(statement)
            key = registry.authorize(statement, entry_type, body)
            record.signed.verify(key.public_key)
            registry.apply(body, statement.time)
        except VerificationError as e:
            raise VerificationError(f"line {n}: {e}", code=e.code, seq=seq) from e
        except CardtraceError as e:
            raise VerificationError(f"line {n}: entry {seq}: {e}", code=e.code, seq=seq) from e
        last = seq
    return last
