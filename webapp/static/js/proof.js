// RFC 6962 / RFC 9162 Merkle proofs, checked in the browser with WebCrypto SHA-256.
//
// A standalone ES module with no dependencies; it mirrors provenance/merkle.py, which is
// the reference behaviour. Every check either resolves (the proof holds) or rejects with
// a ProofError. Indices and sizes are handled as BigInt: the log may grow past 2**32,
// where JavaScript's bitwise operators would silently wrap.

export const HASH_SIZE = 32;
export const MAX_PROOF_LENGTH = 64;

export class ProofError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofError";
  }
}

/** True when this page may use WebCrypto (a secure context: HTTPS or this computer). */
export function cryptoAvailable() {
  return Boolean(globalThis.crypto && globalThis.crypto.subtle);
}

export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function hexToBytes(text) {
  if (text.length % 2 !== 0 || /[^0-9a-fA-F]/.test(text)) {
    throw new ProofError("not a hex string");
  }
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(text.substr(i * 2, 2), 16);
  return bytes;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function sha256(...parts) {
  let length = 0;
  for (const part of parts) length += part.length;
  const message = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    message.set(part, offset);
    offset += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", message));
}

const LEAF_PREFIX = Uint8Array.of(0);
const NODE_PREFIX = Uint8Array.of(1);

/** RFC 9162 section 2.1.1: SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(LEAF_PREFIX, entry);
}

/** RFC 9162 section 2.1.1: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(NODE_PREFIX, left, right);
}

function checkHashes(hashes) {
  for (const value of hashes) {
    if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
      throw new ProofError(`a hash is not ${HASH_SIZE} bytes`);
    }
  }
}

function big(value, name) {
  const number = typeof value === "bigint" ? value : BigInt(value);
  if (number < 0n) throw new ProofError(`${name} is negative`);
  return number;
}

/**
 * RFC 9162 section 2.1.3.2: the root that `proof` implies for `leaf` at `index` in a tree
 * of `size` leaves. Rejects when index, size and proof length cannot belong together.
 */
export async function rootFromInclusionProof(leaf, index, size, proof) {
  const treeSize = big(size, "size");
  let fn = big(index, "index");
  // Step 1.
  if (fn >= treeSize) throw new ProofError(`leaf ${fn} is outside a tree of size ${treeSize}`);
  if (proof.length > MAX_PROOF_LENGTH) throw new ProofError("inclusion proof is too long");
  checkHashes([leaf, ...proof]);
  // Steps 2 and 3.
  let sn = treeSize - 1n;
  let r = leaf;
  // Step 4.
  for (const p of proof) {
    if (sn === 0n) throw new ProofError("inclusion proof is longer than the path to the root");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 5.
  if (sn !== 0n) throw new ProofError("inclusion proof is shorter than the path to the root");
  return r;
}

/** Resolves when `leaf` is leaf `index` of the tree of `size` leaves with `root`. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  checkHashes([root]);
  const computed = await rootFromInclusionProof(leaf, index, size, proof);
  if (!equalBytes(computed, root)) {
    throw new ProofError(`inclusion proof for leaf ${index} does not lead to the root`);
  }
}

/** RFC 9162 section 2.1.4.2: resolves when the tree `newRoot` extends `oldRoot`. */
export async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  checkHashes([oldRoot, newRoot, ...proof]);
  const first = big(oldSize, "old size");
  const second = big(newSize, "new size");
  if (first > second) throw new ProofError(`old size ${first} is larger than new size ${second}`);
  if (proof.length > MAX_PROOF_LENGTH) throw new ProofError("consistency proof is too long");
  if (first === second) {
    if (proof.length) throw new ProofError("a proof between equal sizes must be empty");
    if (!equalBytes(oldRoot, newRoot)) {
      throw new ProofError("two trees of the same size have different roots");
    }
    return;
  }
  if (first === 0n) {
    if (proof.length) throw new ProofError("a proof from the empty tree must be empty");
    return;
  }
  // Step 1.
  if (!proof.length) throw new ProofError("consistency proof is empty");
  // Step 2: a power-of-two old tree is itself the first node of the path.
  const path = [...proof];
  if ((first & (first - 1n)) === 0n) path.unshift(oldRoot);
  // Step 3.
  let fn = first - 1n;
  let sn = second - 1n;
  // Step 4.
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 5.
  let fr = path[0];
  let sr = path[0];
  // Step 6.
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError("consistency proof is longer than needed");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 7.
  if (sn !== 0n) throw new ProofError("consistency proof is shorter than needed");
  if (!equalBytes(fr, oldRoot)) throw new ProofError("consistency proof does not lead to the old root");
  if (!equalBytes(sr, newRoot)) throw new ProofError("consistency proof does not lead to the new root");
}

/**
 * Check one inclusion proof as the pages embed it (base64 hashes):
 * `{seq, size, leaf_hash, proof: [...], record?}` against `rootB64`. With `record` (the
 * entry's exact bytes, base64) the leaf hash is recomputed from the entry and must match
 * the stated one. Resolves to true, or rejects with a ProofError.
 */
export async function checkEmbeddedInclusion(item, rootB64) {
  let leaf = base64ToBytes(item.leaf_hash);
  if (item.record !== undefined && item.record !== null) {
    const computed = await leafHash(base64ToBytes(item.record));
    if (!equalBytes(computed, leaf)) throw new ProofError("the entry does not hash to its leaf");
    leaf = computed;
  }
  await verifyInclusion(
    leaf,
    BigInt(item.seq),
    BigInt(item.size),
    item.proof.map(base64ToBytes),
    base64ToBytes(rootB64),
  );
  return true;
}

/**
 * Check a consistency proof as the ledger page embeds it:
 * `{old: {size, root}, new: {size, root}, proof: [...]}` (base64 hashes).
 */
export async function checkEmbeddedConsistency(data) {
  await verifyConsistency(
    BigInt(data.old.size),
    BigInt(data.new.size),
    base64ToBytes(data.old.root),
    base64ToBytes(data.new.root),
    data.proof.map(base64ToBytes),
  );
  return true;
}

/** Read the JSON a page embeds in `<script type="application/json" id=...>`. */
export function embeddedJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : null;
}

/**
 * Wire a "verify in the browser" button to the inclusion proofs in the JSON block
 * `dataId`: each `.proof-status[data-seq]` cell and the `summaryId` element get
 * `data-result` "verified" or "failed" and the button's translated label.
 */
export function wireInclusionButton(buttonId, dataId, summaryId) {
  const button = document.getElementById(buttonId);
  const data = embeddedJson(dataId);
  if (!button || !data || !data.checkpoint) return;
  const summary = document.getElementById(summaryId);
  button.addEventListener("click", async () => {
    if (!cryptoAvailable()) {
      if (summary) {
        summary.textContent = button.dataset.unsupported;
        summary.dataset.result = "failed";
      }
      return;
    }
    button.disabled = true;
    let allGood = true;
    for (const item of data.inclusion) {
      const cell = document.querySelector(`.proof-status[data-seq="${item.seq}"]`);
      if (cell) {
        cell.textContent = button.dataset.checking;
        cell.dataset.result = "checking";
      }
      let ok = false;
      let why = "";
      try {
        ok = await checkEmbeddedInclusion(item, data.checkpoint.root);
      } catch (error) {
        why = error.message;
      }
      allGood = allGood && ok;
      if (cell) {
        cell.textContent = ok ? button.dataset.verified : button.dataset.failed;
        cell.dataset.result = ok ? "verified" : "failed";
        cell.title = why;
      }
    }
    if (summary) {
      summary.textContent = allGood ? button.dataset.allVerified : button.dataset.someFailed;
      summary.dataset.result = allGood ? "verified" : "failed";
    }
    button.disabled = false;
  });
}
