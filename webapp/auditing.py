"""`cardtrace ledger audit`: the live-database audit with the platform's own key."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.audit import AuditReport, audit
from provenance.checkpoint import CheckpointError, verify_checkpoint
from provenance.verify import VerificationError
from webapp.runtime import current_runtime, db_session


def run_audit(progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Audit the log against the platform's public key and every stored checkpoint.

    Raises:
        VerificationError: at the first problem.
    """
    ledger = current_runtime().ledger
    origin = ledger.platform.origin

    def check_checkpoint(note: str, size: int, root: bytes, public_key: bytes) -> None:
        public = Ed25519PublicKey.from_public_bytes(public_key)
        try:
            checkpoint = verify_checkpoint(note.encode("utf-8"), origin, origin, public)
        except CheckpointError as e:
            raise VerificationError(f"checkpoint of size {size}: {e}", code=e.code) from e
        if checkpoint.size != size or checkpoint.root != root:
            raise VerificationError(
                f"checkpoint of size {size}: the signed note says otherwise",
                code="checkpoint-mismatch",
            )

    return audit(
        db_session(),
        ledger.catalog,
        platform=ledger.platform.party,
        trusted_platform_key=ledger.platform.public_key,
        check_checkpoint=check_checkpoint,
        progress=progress,
    )
