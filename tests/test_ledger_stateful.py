"""A state machine appends to, checkpoints, proves and tampers with a real ledger."""

from __future__ import annotations

import itertools
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from provenance.audit import audit
from provenance.merkle import root_from_leaves, verify_consistency, verify_inclusion
from provenance.verify import VerificationError
from tests.ledger_support import NOW, make_ledger, register_party, signed_by, test_catalog
from webapp.database import make_engine, upgrade


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.tmp = TemporaryDirectory()
        self.engine = make_engine(make_url(f"sqlite:///{Path(self.tmp.name) / 'l.db'}"))
        upgrade(self.engine)
        self.session = Session(self.engine)
        self.ledger = make_ledger(verify_threads=1)
        self.ledger.ensure_genesis(self.session, name="machine", now=NOW)
        self.key = register_party(self.session, self.ledger, "acme")
        self.session.commit()
        self.leaves = [self.ledger.record(self.session, s).leaf_hash for s in range(2)]
        self.checkpoints: list[tuple[int, bytes]] = []
        # Per run, not per process: an entry's text (and so its record's length, which
        # bounds what `tamper` draws) must come out the same when Hypothesis replays a case.
        self.counter = itertools.count()

    def teardown(self) -> None:
        if hasattr(self, "session"):
            self.session.close()
            self.ledger.close()
            self.engine.dispose()
            self.tmp.cleanup()

    @rule(n=st.integers(1, 40))
    def append(self, n: int) -> None:
        batch = [
            signed_by(self.key, "acme", body={"text": f"e{next(self.counter)}", "n": i})
            for i in range(n)
        ]
        appended = self.ledger.append(self.session, batch, now=NOW)
        self.session.commit()
        assert [a.seq for a in appended] == list(range(len(self.leaves), len(self.leaves) + n))
        self.leaves.extend(a.leaf_hash for a in appended)

    @rule()
    def checkpoint(self) -> None:
        row = self.ledger.issue_checkpoint(self.session, now=NOW)
        self.session.commit()
        assert row.size == len(self.leaves)
        if not self.checkpoints or self.checkpoints[-1][0] != row.size:
            self.checkpoints.append((row.size, row.root))

    @precondition(lambda self: bool(self.checkpoints))
    @rule(data=st.data())
    def prove(self, data: st.DataObject) -> None:
        size, root = data.draw(st.sampled_from(self.checkpoints))
        seq = data.draw(st.integers(0, size - 1))
        proof = self.ledger.inclusion_proof(self.session, seq, size)
        verify_inclusion(self.leaves[seq], seq, size, proof, root)
        old_size, old_root = data.draw(st.sampled_from(self.checkpoints))
        if old_size <= size:
            proof = self.ledger.consistency_proof(self.session, old_size, size)
            verify_consistency(old_size, size, old_root, root, proof)

    @rule(data=st.data())
    def tamper(self, data: st.DataObject) -> None:
        """Change one stored byte; the audit must notice. Then undo it."""
        seq = data.draw(st.integers(0, len(self.leaves) - 1))
        raw = self.session.execute(
            text("SELECT record FROM ledger_entry WHERE seq = :s"), {"s": seq}
        ).scalar_one()
        position = data.draw(st.integers(0, len(raw) - 1))
        changed = bytes(raw[:position]) + bytes([raw[position] ^ 0x01]) + bytes(raw[position + 1 :])
        self.session.execute(
            text("UPDATE ledger_entry SET record = :r WHERE seq = :s"), {"r": changed, "s": seq}
        )
        try:
            audit(self.session, test_catalog())
        except VerificationError as e:
            assert e.seq == seq, str(e)
        else:
            raise AssertionError(f"audit missed a changed byte in entry {seq}")
        finally:
            self.session.rollback()

    @invariant()
    def tree_matches_the_model(self) -> None:
        if hasattr(self, "session"):
            head = self.ledger.tree_head(self.session)
            assert head.size == len(self.leaves)
            assert head.root == root_from_leaves(self.leaves)


LedgerMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=12, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase


def test_audit_passes_on_an_untouched_machine_log() -> None:
    machine = LedgerMachine()
    machine.start()
    try:
        machine.append(10)
        machine.checkpoint()
        assert audit(machine.session, test_catalog()).size == 12
    finally:
        machine.teardown()
