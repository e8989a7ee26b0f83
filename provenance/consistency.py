"""Does a later checkpoint extend an earlier one? (split views, rewritten history)

An auditor who kept an old signed checkpoint asks the log for a consistency proof to a
newer one. If the proof verifies, every entry the old checkpoint committed to is still
in the log, unchanged and in place; if not, the log has rewritten its history or shows
different views to different people, and both signed checkpoints are the evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from provenance.merkle import ProofError, verify_consistency
from provenance.verify import VerificationError

ProofSource = Callable[[int, int], list[bytes]]


@dataclass(frozen=True, slots=True)
class ConsistencyResult:
    origin: str
    old: Checkpoint
    new: Checkpoint

    def __str__(self) -> str:
        return (
            f"OK: the checkpoint of size {self.new.size} extends the checkpoint of size "
            f"{self.old.size} of {self.origin}"
        )


def _open(note: bytes, public_key: Ed25519PublicKey, which: str) -> Checkpoint:
    first_line = note.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        return verify_checkpoint(note, first_line, first_line, public_key)
    except CheckpointError as e:
        raise VerificationError(f"{which} checkpoint: {e}", code=e.code) from e


def check_extends(
    old_note: bytes, new_note: bytes, public_key: bytes, proof_source: ProofSource
) -> ConsistencyResult:
    """Verify both signed checkpoints with the log's key, then the consistency proof.

    Args:
        proof_source: returns the RFC 9162 consistency proof between two sizes.

    Raises:
        VerificationError: a checkpoint is not signed by the key, they are of different
            logs, the new one is smaller, or the proof fails (``history-rewritten``).
    """
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as e:
        raise VerificationError("the platform key is not an Ed25519 key", code="bad-key") from e
    old = _open(old_note, key, "old")
    new = _open(new_note, key, "new")
    if old.origin != new.origin:
        raise VerificationError(
            f"the checkpoints are of two logs: {old.origin!r} and {new.origin!r}",
            code="origin-mismatch",
        )
    if old.size > new.size:
        raise VerificationError(
            f"the 'new' checkpoint ({new.size} entries) is smaller than the old one "
            f"({old.size}); swap them, or the log has shrunk",
            code="log-shrank",
        )
    proof = proof_source(old.size, new.size)
    try:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except ProofError as e:
        raise VerificationError(
            f"the log of size {new.size} does not extend the log of size {old.size}: {e}. "
            "Keep both signed checkpoints: together they prove the history was rewritten "
            "or that different views were shown",
            code="history-rewritten",
        ) from e
    return ConsistencyResult(old.origin, old, new)
