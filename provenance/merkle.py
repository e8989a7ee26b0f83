"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

Pure functions over bytes. A tree of ``size`` leaves is never recomputed in full: every
*perfect* subtree (2**level leaves starting at a multiple of 2**level) is hashed once,
when its last leaf arrives, and is then immutable. Any tree size's root, inclusion proof
or consistency proof is a fold of O(log n) such subtree hashes, which the storage layer
fetches by their :func:`node_id` in one query.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NewType

from provenance.errors import ProvenanceError

LeafHash = NewType("LeafHash", bytes)
RootHash = NewType("RootHash", bytes)
NodeId = NewType("NodeId", int)

HASH_SIZE = 32
# RFC 9162 section 2.1.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = RootHash(hashlib.sha256(b"").digest())
MAX_PROOF_LENGTH = 64


class ProofError(ProvenanceError):
    """A proof does not prove what it claims."""

    code = "bad-proof"
    title = "Proof does not verify"


def leaf_hash(entry: bytes) -> LeafHash:
    """RFC 9162 section 2.1.1: ``SHA-256(0x00 || entry)``."""
    return LeafHash(hashlib.sha256(b"\x00" + entry).digest())


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 section 2.1.1: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def node_id(level: int, index: int) -> NodeId:
    """In-order position of the perfect subtree ``(level, index)``; leaves are even ids."""
    return NodeId((index << (level + 1)) + (1 << level) - 1)


def _largest_power_of_two_below(n: int) -> int:
    """RFC 9162 section 2.1.1: k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _left_aligned_nodes(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose an RFC subtree range ``[start, end)`` into perfect subtrees, largest first.

    Every range the RFC 9162 recursion produces starts at a multiple of the smallest power
    of two not below its size, so taking the largest power of two that fits, repeatedly,
    yields aligned perfect subtrees whose right fold is ``MTH(D[start:end])``.
    """
    nodes: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


Plan = list[list[NodeId]]
"""For each element of a proof (or a root), the perfect subtrees whose right fold it is."""


def _plan_for(ranges: Iterable[tuple[int, int]]) -> Plan:
    return [
        [node_id(level, index) for level, index in _left_aligned_nodes(a, b)] for a, b in ranges
    ]


def root_plan(size: int) -> Plan:
    """The subtrees whose fold is the root of a tree of ``size`` leaves (empty for 0)."""
    return _plan_for([(0, size)]) if size else []


def inclusion_plan(index: int, size: int) -> Plan:
    """RFC 9162 section 2.1.3.1, PATH(m, D[n]): which subtrees make the audit path.

    Raises:
        ProofError: ``index`` is not a leaf of a tree of ``size``.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    return _inclusion_plan(index, size)


# Plans are pure and small; verify-before-sale asks for the same few (a batch's issue
# entry, its chunks) again and again.
@lru_cache(maxsize=1 << 16)
def _inclusion_plan(index: int, size: int) -> Plan:
    top_down: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo += k
    return _plan_for(reversed(top_down))


def consistency_plan(old_size: int, new_size: int) -> Plan:
    """RFC 9162 section 2.1.4.1, PROOF(m, D[n]) = SUBPROOF(m, D[n], true).

    Raises:
        ProofError: ``old_size`` is larger than ``new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    top_down: list[tuple[int, int]] = []
    lo, size, m, whole = 0, new_size, old_size, True
    while m != size:
        k = _largest_power_of_two_below(size)
        if m <= k:
            top_down.append((lo + k, lo + size))
            size = k
        else:
            top_down.append((lo, lo + k))
            lo, size, m, whole = lo + k, size - k, m - k, False
    head = [] if whole else [(lo, lo + size)]
    return _plan_for([*head, *reversed(top_down)])


def plan_node_ids(plan: Plan) -> set[NodeId]:
    return {nid for element in plan for nid in element}


def assemble(plan: Plan, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Fold fetched subtree hashes into the proof (or root) the plan describes.

    Raises:
        ProofError: a subtree the plan needs is missing from ``nodes``.
    """
    try:
        return [_fold([nodes[nid] for nid in element]) for element in plan]
    except KeyError as e:
        raise ProofError(f"the tree store has no node {e.args[0]}") from e


def root_from_leaves(leaves: Sequence[bytes]) -> RootHash:
    """MTH(D[n]) by the RFC 9162 section 2.1.1 recursion, from leaf hashes (reference)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return RootHash(leaves[0])
    k = _largest_power_of_two_below(len(leaves))
    return RootHash(node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:])))


def _check_hashes(*hashes: bytes) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofError(f"a hash is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> RootHash:
    """RFC 9162 section 2.1.3.2: the root that ``proof`` implies for ``leaf`` at ``index``.

    Raises:
        ProofError: the index, size or proof length cannot belong together.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(proof) > MAX_PROOF_LENGTH:
        raise ProofError("inclusion proof is too long")
    _check_hashes(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return RootHash(r)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises:
        ProofError: it is not.
    """
    _check_hashes(root)
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if not hmac.compare_digest(computed, root):
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: check that the tree ``new_root`` extends ``old_root``.

    Raises:
        ProofError: it does not, or the proof is malformed.
    """
    _check_hashes(old_root, new_root, *proof)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if len(proof) > MAX_PROOF_LENGTH:
        raise ProofError("consistency proof is too long")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofError("two trees of the same size have different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    # Step 1: a power-of-two old tree is itself the first node of the path.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Step 2.
    fn, sn = old_size - 1, new_size - 1
    # Step 3.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 4.
    fr = sr = path[0]
    # Step 5.
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 6.
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError("consistency proof does not lead to the old root")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError("consistency proof does not lead to the new root")


@dataclass(slots=True)
class CompactRange:
    """The perfect subtrees covering leaves ``[begin, end)``, merged as leaves arrive.

    With ``begin == 0`` this is the tree's right edge (the "frontier"): enough to append
    more leaves and to compute the root, in O(log n) space. Each push reports every
    perfect subtree it completes, so the store can keep them for proofs.
    """

    begin: int
    end: int
    nodes: list[tuple[int, bytes]]  # (level, hash), left to right

    @classmethod
    def empty(cls, begin: int = 0) -> CompactRange:
        return cls(begin, begin, [])

    def push_leaf(self, leaf: bytes, created: list[tuple[NodeId, bytes]] | None = None) -> None:
        """Append one leaf hash; record each completed subtree in ``created``.

        :meth:`push_node` at level 0, written out: verifiers call it once per entry.
        """
        if created is not None:
            self.push_node(0, leaf, created)
            return
        index = self.end
        self.end = index + 1
        nodes = self.nodes
        nodes.append((0, leaf))
        level = 0
        while index & 1 and len(nodes) >= 2 and nodes[-2][0] == level:
            leaf = hashlib.sha256(b"\x01" + nodes[-2][1] + leaf).digest()
            level += 1
            index >>= 1
            nodes[-2:] = [(level, leaf)]

    def push_node(
        self, level: int, value: bytes, created: list[tuple[NodeId, bytes]] | None = None
    ) -> None:
        """Append a perfect subtree of ``2**level`` leaves starting at ``end``.

        Raises:
            ProofError: the subtree is not aligned at ``end``.
        """
        if self.end % (1 << level):
            raise ProofError(f"a subtree of level {level} cannot start at leaf {self.end}")
        index = self.end >> level
        if created is not None:
            created.append((node_id(level, index), value))
        self.end += 1 << level
        nodes = self.nodes
        nodes.append((level, value))
        # Merge while the last two are siblings: same level, the new one at an odd index
        # (a range that began mid-subtree has no left sibling to merge with).
        while len(nodes) >= 2 and index & 1 and nodes[-2][0] == level:
            value = node_hash(nodes[-2][1], value)
            level += 1
            index >>= 1
            nodes[-2:] = [(level, value)]
            if created is not None:
                created.append((node_id(level, index), value))

    def root(self) -> RootHash:
        """MTH of ``[begin, end)``; only meaningful when ``begin`` is 0.

        Raises:
            ProofError: the range does not start at leaf 0.
        """
        if self.begin != 0:
            raise ProofError("only a range starting at leaf 0 has a root")
        if not self.nodes:
            return EMPTY_ROOT
        return RootHash(_fold([value for _, value in self.nodes]))

    def to_bytes(self) -> bytes:
        """``begin``, ``end`` (8 bytes each, big-endian), then the hashes left to right.

        The levels follow from ``begin`` and ``end``, so they are not stored.
        """
        return (
            self.begin.to_bytes(8, "big")
            + self.end.to_bytes(8, "big")
            + b"".join(v for _, v in self.nodes)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CompactRange:
        """Inverse of :meth:`to_bytes`.

        Raises:
            ProofError: the bytes do not describe a compact range.
        """
        if len(raw) < 16 or (len(raw) - 16) % HASH_SIZE:
            raise ProofError("malformed compact range")
        begin = int.from_bytes(raw[:8], "big")
        end = int.from_bytes(raw[8:16], "big")
        levels = aligned_levels(begin, end)
        hashes = [raw[i : i + HASH_SIZE] for i in range(16, len(raw), HASH_SIZE)]
        if len(levels) != len(hashes):
            raise ProofError("compact range has the wrong number of hashes for its bounds")
        return cls(begin, end, list(zip(levels, hashes, strict=True)))


def aligned_levels(begin: int, end: int) -> list[int]:
    """Levels of the maximal aligned perfect subtrees covering ``[begin, end)``, in order."""
    if begin > end:
        raise ProofError(f"range [{begin}, {end}) is inverted")
    return [level for level, _ in aligned_nodes(begin, end)]


def aligned_nodes(begin: int, end: int) -> list[tuple[int, int]]:
    """The maximal aligned perfect subtrees ``(level, index)`` covering ``[begin, end)``."""
    nodes: list[tuple[int, int]] = []
    left: list[tuple[int, int]] = []
    right: list[tuple[int, int]] = []
    level = 0
    while begin < end:
        # Grow from both ends towards the middle, as compact ranges do.
        if begin & (1 << level):
            left.append((level, begin >> level))
            begin += 1 << level
        if begin < end and end & (1 << level):
            end -= 1 << level
            right.append((level, end >> level))
        level += 1
    nodes.extend(left)
    nodes.extend(reversed(right))
    return nodes
