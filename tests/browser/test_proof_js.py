"""webapp/static/js/proof.js in a real browser, against the RFC 6962 reference vectors
(tests/vectors/rfc6962.json): every reference proof verifies, and every proof with a
flipped bit, a wrong index or size, or a missing or extra hash is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.browser.conftest import Browsing

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "rfc6962.json").read_text())

# Runs in the page: loads the module the pages use (same origin, so the CSP allows it) and
# answers, for each case, "ok" or the ProofError's message.
CHECK_VECTORS = """async (vectors) => {
    const proof = await import("/static/js/proof.js");
    const hex = proof.hexToBytes;
    const roots = vectors.roots.map(hex);
    const rootOf = (size) => (size === 0 ? hex(vectors.empty_root) : roots[size - 1]);
    const leaves = await Promise.all(vectors.leaves.map((l) => proof.leafHash(hex(l))));
    const flip = (bytes) => {
        const copy = Uint8Array.from(bytes);
        copy[copy.length - 1] ^= 1;
        return copy;
    };
    const outcome = async (check) => {
        try {
            await check();
            return "ok";
        } catch (error) {
            return error instanceof proof.ProofError ? "refused" : `error: ${error}`;
        }
    };
    const results = { inclusion: [], consistency: [] };
    for (const v of vectors.inclusion) {
        const path = v.proof.map(hex);
        const root = rootOf(v.size);
        const leaf = leaves[v.index];
        const cases = {
            good: () => proof.verifyInclusion(leaf, v.index, v.size, path, root),
            flippedLeaf: () => proof.verifyInclusion(flip(leaf), v.index, v.size, path, root),
            flippedRoot: () => proof.verifyInclusion(leaf, v.index, v.size, path, flip(root)),
            wrongIndex: () => proof.verifyInclusion(leaf, v.index + 1, v.size, path, root),
            wrongSize: () => proof.verifyInclusion(leaf, v.index, v.size + 1, path, root),
            extraHash: () => proof.verifyInclusion(leaf, v.index, v.size, [...path, leaf], root),
        };
        if (path.length) {
            const flipped = [flip(path[0]), ...path.slice(1)];
            cases.flippedPath = () => proof.verifyInclusion(leaf, v.index, v.size, flipped, root);
            const short = path.slice(1);
            cases.truncated = () => proof.verifyInclusion(leaf, v.index, v.size, short, root);
        }
        const answer = { index: v.index, size: v.size };
        for (const [name, check] of Object.entries(cases)) answer[name] = await outcome(check);
        results.inclusion.push(answer);
    }
    for (const v of vectors.consistency) {
        const path = v.proof.map(hex);
        const [oldRoot, newRoot] = [rootOf(v.old), rootOf(v.new)];
        const cases = {
            good: () => proof.verifyConsistency(v.old, v.new, oldRoot, newRoot, path),
            flippedOld: () => proof.verifyConsistency(v.old, v.new, flip(oldRoot), newRoot, path),
            flippedNew: () => proof.verifyConsistency(v.old, v.new, oldRoot, flip(newRoot), path),
            extraHash: () =>
                proof.verifyConsistency(v.old, v.new, oldRoot, newRoot, [...path, oldRoot]),
        };
        if (path.length) {
            const flipped = [flip(path[0]), ...path.slice(1)];
            cases.flippedPath = () =>
                proof.verifyConsistency(v.old, v.new, oldRoot, newRoot, flipped);
            cases.truncated = () =>
                proof.verifyConsistency(v.old, v.new, oldRoot, newRoot, path.slice(0, -1));
        }
        const answer = { old: v.old, new: v.new };
        for (const [name, check] of Object.entries(cases)) answer[name] = await outcome(check);
        results.consistency.push(answer);
    }
    results.leaves = leaves.map(proof.bytesToHex);
    return results;
}"""


def test_proof_js_verifies_the_rfc6962_reference_proofs_and_refuses_altered_ones(
    browse: Browsing,
) -> None:
    page = browse.new_page()
    page.goto("/sign-in")
    results: dict[str, Any] = page.evaluate(CHECK_VECTORS, VECTORS)
    assert len(results["inclusion"]) == len(VECTORS["inclusion"])
    assert len(results["consistency"]) == len(VECTORS["consistency"])
    for answer in results["inclusion"]:
        # One size more may still be a tree the same path leads through (leaf 1 of 5 and
        # of 6 share their path to the root): the JS answers as the Python reference does.
        index, size = answer["index"], answer["size"]
        assert answer.pop("wrongSize") == python_outcome(index, size, size + 1), answer
    for answer in results["inclusion"] + results["consistency"]:
        outcomes = {name: value for name, value in answer.items() if name not in KEYS}
        assert outcomes.pop("good") == "ok", answer
        assert outcomes and set(outcomes.values()) == {"refused"}, answer


def python_outcome(index: int, size: int, claimed: int) -> str:
    """What provenance.merkle says of the reference proof of leaf ``index`` in the tree of
    ``size``, when it is claimed for a tree of ``claimed`` leaves with the same root."""
    from provenance.merkle import ProofError, leaf_hash, verify_inclusion

    vector = next(v for v in VECTORS["inclusion"] if (v["index"], v["size"]) == (index, size))
    try:
        verify_inclusion(
            leaf_hash(bytes.fromhex(VECTORS["leaves"][index])),
            index,
            claimed,
            [bytes.fromhex(h) for h in vector["proof"]],
            bytes.fromhex(VECTORS["roots"][size - 1]),
        )
    except ProofError:
        return "refused"
    return "ok"


def test_proof_js_hashes_leaves_as_rfc6962_section_2_1_says(browse: Browsing) -> None:
    """The leaf hashes agree with the Python reference (provenance.merkle)."""
    from provenance.merkle import leaf_hash

    page = browse.new_page()
    page.goto("/sign-in")
    results: dict[str, Any] = page.evaluate(CHECK_VECTORS, VECTORS)
    expected = [leaf_hash(bytes.fromhex(leaf)).hex() for leaf in VECTORS["leaves"]]
    assert results["leaves"] == expected


KEYS = {"index", "size", "old", "new"}
