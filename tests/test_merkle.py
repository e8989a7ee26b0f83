"""RFC 6962 / 9162 tree hashing and proofs: published vectors, then properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    aligned_nodes,
    assemble,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    node_id,
    plan_node_ids,
    root_from_leaves,
    root_plan,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


class Store:
    """Every perfect subtree of a tree, as the ledger keeps them."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        frontier = CompactRange.empty()
        created: list[tuple[NodeId, bytes]] = []
        for leaf in leaves:
            frontier.push_leaf(leaf, created)
        self.nodes.update(created)
        self.frontier = frontier

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return assemble(inclusion_plan(index, size), self.nodes)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return assemble(consistency_plan(old, new), self.nodes)

    def root(self, size: int) -> bytes:
        return assemble(root_plan(size), self.nodes)[0] if size else EMPTY_ROOT


STORE = Store(LEAVES)


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert root_from_leaves([]).hex() == VECTORS["empty_root"]
    assert CompactRange.empty().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots_at_every_size(size: int) -> None:
    assert root_from_leaves(LEAVES[:size]) == ROOTS[size - 1]
    assert STORE.root(size) == ROOTS[size - 1]
    frontier = CompactRange.empty()
    for leaf in LEAVES[:size]:
        frontier.push_leaf(leaf)
    assert frontier.root() == ROOTS[size - 1]


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-{v['size']}")
def test_reference_inclusion_proofs(vector: dict[str, object]) -> None:
    index, size = int(vector["index"]), int(vector["size"])  # type: ignore[call-overload]
    proof = [bytes.fromhex(h) for h in vector["proof"]]  # type: ignore[attr-defined]
    assert STORE.inclusion(index, size) == proof
    verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize("vector", VECTORS["consistency"], ids=lambda v: f"{v['old']}-{v['new']}")
def test_reference_consistency_proofs(vector: dict[str, object]) -> None:
    old, new = int(vector["old"]), int(vector["new"])  # type: ignore[call-overload]
    proof = [bytes.fromhex(h) for h in vector["proof"]]  # type: ignore[attr-defined]
    assert STORE.consistency(old, new) == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def _inclusion_attacks(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):  # type: ignore[no-untyped-def]
    """The corruptions transparency-dev/merkle probes, each must fail."""
    yield "leaf index - 1", (leaf, index - 1, size, proof, root)
    yield "leaf index + 1", (leaf, index + 1, size, proof, root)
    yield "leaf index ^ 2", (leaf, index ^ 2, size, proof, root)
    yield "size * 2", (leaf, index, size * 2, proof, root)
    yield "size / 2", (leaf, index, size // 2, proof, root)
    yield "wrong leaf", (b"WrongLeaf", index, size, proof, root)
    yield "empty root", (leaf, index, size, proof, EMPTY_ROOT)
    yield "random root", (leaf, index, size, proof, SOME_HASH)
    yield "trailing garbage", (leaf, index, size, [*proof, b""], root)
    yield "trailing root", (leaf, index, size, [*proof, root], root)
    yield "preceding garbage", (leaf, index, size, [b"", *proof], root)
    yield "preceding root", (leaf, index, size, [root, *proof], root)
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        yield f"flipped bit in proof[{i}]", (leaf, index, size, flipped, root)
    if proof:
        yield "removed component", (leaf, index, size, proof[:-1], root)
    if len(proof) > 1:
        yield "inserted component", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)


@pytest.mark.parametrize(
    "vector", VECTORS["inclusion"][1:], ids=lambda v: f"{v['index']}-{v['size']}"
)
def test_corrupted_inclusion_proofs_fail(vector: dict[str, object]) -> None:
    index, size = int(vector["index"]), int(vector["size"])  # type: ignore[call-overload]
    proof = [bytes.fromhex(h) for h in vector["proof"]]  # type: ignore[attr-defined]
    for attack, args in _inclusion_attacks(index, size, proof, ROOTS[size - 1], LEAVES[index]):
        with pytest.raises(ProofError):
            verify_inclusion(*args)
            pytest.fail(f"accepted: {attack}")


@pytest.mark.parametrize(
    "vector", VECTORS["consistency"][1:], ids=lambda v: f"{v['old']}-{v['new']}"
)
def test_corrupted_consistency_proofs_fail(vector: dict[str, object]) -> None:
    old, new = int(vector["old"]), int(vector["new"])  # type: ignore[call-overload]
    proof = [bytes.fromhex(h) for h in vector["proof"]]  # type: ignore[attr-defined]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    attacks = {
        "old - 1": (old - 1, new, r1, r2, proof),
        "old + 1": (old + 1, new, r1, r2, proof),
        "old ^ 2": (old ^ 2, new, r1, r2, proof),
        "new * 2": (old, new * 2, r1, r2, proof),
        "new / 2": (old, new // 2, r1, r2, proof),
        "wrong old root": (old, new, SOME_HASH, r2, proof),
        "wrong new root": (old, new, r1, SOME_HASH, proof),
        "swapped roots": (old, new, r2, r1, proof),
        "empty proof": (old, new, r1, r2, []),
        "trailing old root": (old, new, r1, r2, [*proof, r1]),
        "trailing new root": (old, new, r1, r2, [*proof, r2]),
        "preceding old root": (old, new, r1, r2, [r1, *proof]),
        "preceding new root": (old, new, r1, r2, [r2, *proof]),
        "preceding proof[0]": (old, new, r1, r2, [proof[0], *proof]),
        "truncated": (old, new, r1, r2, proof[:-1]),
    }
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        attacks[f"flipped bit in proof[{i}]"] = (old, new, r1, r2, flipped)
    for attack, args in attacks.items():
        if args[0] < 0:
            continue
        with pytest.raises(ProofError):
            verify_consistency(*args)
            pytest.fail(f"accepted: {attack}")


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, SOME_HASH, [], True),
        (1, 1, SOME_HASH, SOME_HASH, [], True),
        (1, 0, SOME_HASH, EMPTY_ROOT, [], False),
        (2, 1, SOME_HASH, EMPTY_ROOT, [], False),
        (1, 2, SOME_HASH, EMPTY_ROOT, [], False),
        (1, 1, EMPTY_ROOT, SOME_HASH, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_trivial_consistency_cases(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool
) -> None:
    if ok:
        verify_consistency(old, new, r1, r2, proof)
    else:
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, r2, proof)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (-1, 4)])
def test_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        inclusion_plan(index, size)


def test_short_hash_is_refused() -> None:
    with pytest.raises(ProofError, match="bytes, not 32"):
        verify_inclusion(b"\x00" * 31, 0, 1, [], b"\x00" * 31)


def test_proof_plans_need_logarithmically_many_nodes() -> None:
    size = 1_000_000
    assert len(plan_node_ids(inclusion_plan(size - 1, size))) <= 2 * size.bit_length()
    assert len(plan_node_ids(consistency_plan(123_457, size))) <= 2 * size.bit_length()
    assert len(plan_node_ids(root_plan(size))) == bin(size).count("1")


def test_node_ids_are_unique_and_leaves_even() -> None:
    ids = {node_id(level, index) for level in range(8) for index in range(300)}
    assert len(ids) == 8 * 300
    assert all(node_id(0, i) == 2 * i for i in range(100))


def test_compact_range_serialises_and_reloads() -> None:
    frontier = CompactRange.empty()
    for leaf in LEAVES[:7]:
        frontier.push_leaf(leaf)
    reloaded = CompactRange.from_bytes(frontier.to_bytes())
    assert reloaded == frontier
    reloaded.push_leaf(LEAVES[7])
    assert reloaded.root() == ROOTS[7]


def test_compact_range_with_a_hash_missing_is_refused() -> None:
    frontier = CompactRange.empty()
    for leaf in LEAVES[:7]:
        frontier.push_leaf(leaf)
    with pytest.raises(ProofError):
        CompactRange.from_bytes(frontier.to_bytes()[:-32])


def test_misaligned_subtree_is_refused() -> None:
    frontier = CompactRange.empty(begin=1)
    with pytest.raises(ProofError, match="cannot start"):
        frontier.push_node(1, SOME_HASH)


leaves_strategy = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaves_strategy, st.data())
def test_every_inclusion_proof_verifies(entries: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(e) for e in entries]
    store = Store(hashes)
    size = data.draw(st.integers(1, len(hashes)))
    index = data.draw(st.integers(0, size - 1))
    root = root_from_leaves(hashes[:size])
    assert store.root(size) == root
    proof = store.inclusion(index, size)
    verify_inclusion(hashes[index], index, size, proof, root)
    # Every single-bit change to the entry, the proof or the root fails.
    bit = data.draw(st.integers(0, 8 * 32 - 1))
    flip = lambda b: bytes(x ^ (1 << (bit % 8)) if i == bit // 8 else x for i, x in enumerate(b))  # noqa: E731
    if entries[index]:
        changed = bytearray(entries[index])
        changed[0] ^= 1
        with pytest.raises(ProofError):
            verify_inclusion(leaf_hash(bytes(changed)), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(hashes[index], index, size, proof, flip(root))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[which] = flip(bad[which])
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, size, bad, root)


@settings(max_examples=150, deadline=None)
@given(leaves_strategy, st.data())
def test_every_consistency_proof_verifies(entries: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(e) for e in entries]
    store = Store(hashes)
    new = data.draw(st.integers(1, len(hashes)))
    old = data.draw(st.integers(1, new))
    r1, r2 = root_from_leaves(hashes[:old]), root_from_leaves(hashes[:new])
    proof = store.consistency(old, new)
    verify_consistency(old, new, r1, r2, proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[which] = bytes([bad[which][0] ^ 1]) + bad[which][1:]
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, r2, bad)
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, r2, proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, r2, [*proof, SOME_HASH])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200))
def test_aligned_nodes_cover_a_range_exactly(a: int, b: int) -> None:
    begin, end = min(a, b), max(a, b)
    covered = []
    for level, index in aligned_nodes(begin, end):
        covered.extend(range(index << level, (index + 1) << level))
    assert covered == list(range(begin, end))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=4), min_size=1, max_size=60), st.data())
def test_left_and_right_subtrees_rebuild_the_root(
    entries: list[bytes], data: st.DataObject
) -> None:
    """A verifier holding leaves [a, b) plus the subtrees around them gets the root."""
    hashes = [leaf_hash(e) for e in entries]
    store = Store(hashes)
    size = len(hashes)
    b = data.draw(st.integers(0, size))
    a = data.draw(st.integers(0, b))
    rebuilt = CompactRange.empty()
    for level, index in aligned_nodes(0, a):
        rebuilt.push_node(level, store.nodes[node_id(level, index)])
    for leaf in hashes[a:b]:
        rebuilt.push_leaf(leaf)
    for level, index in aligned_nodes(b, size):
        rebuilt.push_node(level, store.nodes[node_id(level, index)])
    assert rebuilt.root() == root_from_leaves(hashes)
