"""Checking a stream of records: the rules an auditor applies, with no database.

:class:`LogVerifier` takes records in log order and checks each one: canonical bytes,
sequence, hash chain, the signing key's right to sign it (replaying key registrations,
rotations and revocations as the log went), the signature, and the Merkle tree. The
offline bundle verifier and the live-database audit both use it, so they apply the
same rules as the append path (which shares :class:`~provenance.parties.KeyRegistry`).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.catalog import EntryCatalog
from provenance.entries import (
    GENESIS_PREV,
    SIGNATURE_CONTEXT,
    EntryFormatError,
    Record,
    decode_record,
    key_id_for,
    load_public_key,
)
from provenance.errors import CardtraceError, ProvenanceError
from provenance.merkle import CompactRange, NodeId, ProofError, RootHash
from provenance.parties import KEY_MANAGEMENT_TYPES, KeyRegistry

CHUNK = 1024
# Chunks handed to the checking threads and not yet waited for: enough to keep them busy
# while the next chunk is read, few enough that memory stays bounded.
IN_FLIGHT = 2


class VerificationError(ProvenanceError):
    """The log (or a bundle of it) is not what it claims to be."""

    code = "verification-failed"
    title = "Verification failed"

    def __init__(self, message: str, *, code: str | None = None, seq: int | None = None) -> None:
        super().__init__(message, code=code)
        self.seq = seq


@dataclass(slots=True)
class LogVerifier:
    """Verifies records fed in log order; see the module docstring.

    Args:
        catalog: the entry types (their bodies and signing rules).
        start: the sequence number of the first record to be fed.
        left: the tree's right edge before ``start`` (empty when ``start`` is 0).
        prev: the leaf hash before ``start`` if known (the chain link is then checked).
        registry: who may sign, as of ``start`` (empty when ``start`` is 0).
        key_seq: the last key-management entry before ``start`` (-1 if none).
        trusted_platform_key: if given, it must be a registered, unrevoked key of the
            platform once every record is fed (checked by :meth:`finish`).
        on_nodes: receives the perfect subtrees each record completes (for audits).
        threads: signature-checking threads, which work while this thread reads on (at
            most ``IN_FLIGHT`` chunks ahead); 0 checks them on this thread.
        chunk: how many records' signatures are handed over at once.
    """

    catalog: EntryCatalog
    start: int = 0
    left: CompactRange = field(default_factory=CompactRange.empty)
    prev: bytes | None = bytes.fromhex(GENESIS_PREV)
    registry: KeyRegistry = field(default_factory=KeyRegistry)
    key_seq: int = -1
    trusted_platform_key: bytes | None = None
    on_nodes: Callable[[list[tuple[NodeId, bytes]]], None] | None = None
    threads: int = 2
    chunk: int = CHUNK
    _next: int = 0
    # (seq, key, signature, signed bytes) of each record whose signature is unchecked:
    # plain bytes, so the records themselves are dropped as soon as they are read.
    _pending: list[tuple[int, Ed25519PublicKey, bytes, bytes]] = field(default_factory=list)
    _in_flight: deque[list[Future[int | None]]] = field(default_factory=deque)
    _pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self._next = self.start
        if self.left.end != self.start:
            raise VerificationError("the left edge does not end where the records start")

    @property
    def size(self) -> int:
        """How many leaves the tree has once every fed record is counted."""
        return self._next

    def feed(self, raw: bytes, stored_leaf: bytes | None = None) -> Record:
        """Check one record; signatures are checked in chunks (call :meth:`finish`).

        Raises:
            VerificationError: naming the first bad record's sequence number and what is
                wrong with it (an earlier record's bad signature wins over a later fault).
        """
        try:
            return self._feed(raw, stored_leaf)
        except VerificationError:
            # Every signature still unchecked belongs to an earlier record.
            self._flush()
            self._wait(0)
            raise

    def feed_all(self, raws: Iterable[bytes]) -> None:
        """:meth:`feed` for each record in turn (the same checks, one call)."""
        try:
            for raw in raws:
                self._feed(raw, None)
        except VerificationError:
            self._flush()
            self._wait(0)
            raise

    def _feed(self, raw: bytes, stored_leaf: bytes | None) -> Record:
        seq = self._next
        try:
            record = decode_record(raw)
        except EntryFormatError as e:
            raise VerificationError(f"entry {seq}: {e}", code="bad-entry", seq=seq) from e
        if record.seq != seq:
            raise VerificationError(
                f"entry {seq}: the record says it is entry {record.seq} (reordered, inserted "
                "or deleted entries)",
                code="out-of-sequence",
                seq=seq,
            )
        if record.keyprev != self.key_seq:
            raise VerificationError(
                f"entry {seq}: keyprev is {record.keyprev} but the last key-management entry "
                f"before it is {self.key_seq} (a change of keys was hidden or invented)",
                code="key-chain-broken",
                seq=seq,
            )
        if self.prev is not None and record.prev != self.prev:
            raise VerificationError(
                f"entry {seq}: prev does not match the hash of entry {seq - 1}",
                code="chain-broken",
                seq=seq,
            )
        leaf = hashlib.sha256(b"\x00" + raw).digest()  # RFC 9162 leaf hash
        if stored_leaf is not None and stored_leaf != leaf:
            raise VerificationError(
                f"entry {seq}: the stored leaf hash does not match the record",
                code="leaf-mismatch",
                seq=seq,
            )
        statement = record.statement
        try:
            entry_type = self.catalog.get(statement.type)
            body = entry_type.parse_body(statement)
            key = self.registry.authorize(statement, entry_type, body)
            if statement.type in KEY_MANAGEMENT_TYPES:
                self.registry.apply(body, statement.time)
        except CardtraceError as e:
            raise VerificationError(f"entry {seq}: {e}", code=e.code, seq=seq) from e
        signed = record.signed
        try:
            public = load_public_key(key.public_key)
        except ValueError as e:
            raise VerificationError(
                f"entry {seq}: the signer's key is not an Ed25519 key",
                code="bad-signature",
                seq=seq,
            ) from e
        self._pending.append((seq, public, signed.signature, SIGNATURE_CONTEXT + signed.payload))
        if self.on_nodes is None:
            self.left.push_leaf(leaf)
        else:
            created: list[tuple[NodeId, bytes]] = []
            self.left.push_leaf(leaf, created)
            if created:
                self.on_nodes(created)
        self.prev = leaf
        if statement.type in KEY_MANAGEMENT_TYPES:
            self.key_seq = seq
        self._next += 1
        if len(self._pending) >= self.chunk:
            self._flush()
        return record

    def _flush(self) -> None:
        """Hand the pending records' signatures to the checking threads (or check them)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self.threads < 1:
            self._raise_first([_check(pending)])
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, "cardtrace-audit")
        step = -(-len(pending) // self.threads) if len(pending) >= 64 else len(pending)
        parts = [pending[i : i + step] for i in range(0, len(pending), step)]
        self._in_flight.append([self._pool.submit(_check, part) for part in parts])
        self._wait(IN_FLIGHT)

    def _wait(self, keep: int) -> None:
        """Wait until at most ``keep`` chunks are being checked, oldest first."""
        while len(self._in_flight) > keep:
            chunk = self._in_flight.popleft()
            self._raise_first([future.result() for future in chunk])

    def _raise_first(self, failures: list[int | None]) -> None:
        bad = [seq for seq in failures if seq is not None]
        if bad:
            self._cancel()
            seq = min(bad)
            raise VerificationError(
                f"entry {seq}: the signature does not verify with the signer's key",
                code="bad-signature",
                seq=seq,
            )

    def _cancel(self) -> None:
        for chunk in self._in_flight:
            for future in chunk:
                future.cancel()
        self._in_flight.clear()

    def finish(self) -> None:
        """Check the signatures still pending.

        Raises:
            VerificationError: a signature does not verify.
        """
        try:
            self._flush()
            self._wait(0)
        finally:
            self._cancel()
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
        if self.trusted_platform_key is not None:
            check_platform_key(self.registry, self.trusted_platform_key)

    def root(self) -> RootHash:
        """The root of the tree of every leaf before and including the records fed.

        Raises:
            VerificationError: the verifier started after leaf 0 without a left edge.
        """
        try:
            return self.left.root()
        except ProofError as e:
            raise VerificationError(str(e), code=e.code) from e


def _check(part: list[tuple[int, Ed25519PublicKey, bytes, bytes]]) -> int | None:
    """The sequence number of the first record whose signature fails, if any.

    :meth:`SignedStatement.verify` written out: this loop runs once per entry, and a
    whole chunk of verifications in a row keeps the curve code's tables in cache.
    """
    for seq, public, signature, message in part:
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return seq
    return None


def check_platform_key(registry: KeyRegistry, public_key: bytes) -> None:
    """Raises VerificationError unless ``public_key`` is a current key of the platform."""
    key = registry.keys.get(key_id_for(public_key))
    if key is None or key.party != registry.platform or key.public_key != public_key:
        raise VerificationError(
            "the trusted key is not a key the log registers for the platform",
            code="untrusted-key",
        )
    if key.revoked_at is not None:
        raise VerificationError("the trusted platform key has been revoked", code="untrusted-key")
