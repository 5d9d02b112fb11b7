// Checks in the browser, without trusting the server's word, that an audit entry is in the
// log and that the log only grew between two checkpoints. SHA-256 and Ed25519 come from
// WebCrypto; the server supplies data, never verdicts. Byte formats (docs/audit-bundle.md):
//
//   leaf      = SHA-256(0x00 || UTF-8 bytes of the entry's canonical JSON, RFC 8785)
//   node      = SHA-256(0x01 || left || right)                       (RFC 6962 / RFC 9162)
//   index     = the entry's "seq" member; inclusion as RFC 9162 §2.1.3.2, consistency §2.1.4.2
//   checkpoint note (C2SP tlog-checkpoint in a C2SP signed note):
//     "<origin>\n<tree size, decimal>\n<base64 root>\n" + "\n" + "— <name> <base64(keyid||sig)>\n"
//     Ed25519 signs the UTF-8 bytes of the text up to and including the root line's "\n".
//   vkey      = "<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>",
//     key id  = SHA-256(name || 0x0A || 0x01 || public key)[:4]; name is the log's origin.
//   Hashes and proofs in the payload are lowercase hex (the API's shape, /v1/audit/...).
//
// Every exported check resolves to {ok, reason} and never throws: malformed input fails.

const encoder = new TextEncoder();
const SIGNATURE_PREFIX = "\u2014 ";
const ED25519_TYPE = 0x01;
const HASH_SIZE = 32;
const MAX_NOTE_CHARS = 64 * 1024;
const MAX_SIGNATURES = 64;
const MAX_PROOF_LENGTH = 128;
const UINT64_LIMIT = 1n << 64n;

class Malformed extends Error {}

const pass = (reason, extra = {}) => ({ ok: true, reason, ...extra });
const fail = (reason) => ({ ok: false, reason });

function subtle() {
  const api = globalThis.crypto && globalThis.crypto.subtle;
  if (!api) {
    // WebCrypto exists only in secure contexts (https or localhost).
    throw new Malformed("this page has no WebCrypto (it must be served over HTTPS)");
  }
  return api;
}

async function sha256(...parts) {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return new Uint8Array(await subtle().digest("SHA-256", joined));
}

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);
const nodeHash = (left, right) => sha256(NODE_PREFIX, left, right);

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function fromHex(text, what) {
  if (typeof text !== "string" || text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) {
    throw new Malformed(`${what} is not lowercase hex`);
  }
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function hash(value, what) {
  const bytes = value instanceof Uint8Array ? value : fromHex(value, what);
  if (bytes.length !== HASH_SIZE) throw new Malformed(`${what} is not a 32-byte hash`);
  return bytes;
}

function proofHashes(proof, what) {
  if (!Array.isArray(proof)) throw new Malformed(`${what} is not a list of hashes`);
  if (proof.length > MAX_PROOF_LENGTH) throw new Malformed(`${what} is too long`);
  return proof.map((item, i) => hash(item, `${what} hash ${i}`));
}

// Strict base64 (RFC 4648 §4, padded): one accepted encoding per byte string, as note.py.
function fromBase64(text, what) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new Malformed(`${what} is not valid base64`);
  }
  const binary = atob(text);
  if (btoa(binary) !== text) throw new Malformed(`${what} is not canonical base64`);
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

// Sizes and indices are uint64: BigInt keeps the bit arithmetic exact past 2**31.
function count(value, what) {
  let big;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
  else if (typeof value === "string" && /^(0|[1-9][0-9]{0,19})$/.test(value)) big = BigInt(value);
  else throw new Malformed(`${what} is not a non-negative integer`);
  if (big < 0n || big >= UINT64_LIMIT) throw new Malformed(`${what} is out of range`);
  return big;
}

// The signed-note spec forbids control characters other than newline; a lone surrogate has no
// UTF-8 encoding (TextEncoder would silently replace it and hash other bytes).
function checkText(text, what) {
  if (typeof text !== "string") throw new Malformed(`${what} is not text`);
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text) || /\p{Cs}/u.test(text)) {
    throw new Malformed(`${what} holds control characters or invalid Unicode`);
  }
  return text;
}

function validName(name) {
  return name !== "" && !name.includes("+") && !/[\s\u0000-\u001f\u007f]/.test(name);
}

async function guard(check) {
  try {
    return await check();
  } catch (error) {
    if (error instanceof Malformed) return fail(error.message);
    return fail(`verification could not run: ${error && error.message ? error.message : error}`);
  }
}

/** SHA-256(0x00 || UTF-8 canonical text): the leaf hash of an entry. */
export async function leafHash(canonical) {
  const text = checkText(canonical, "entry text");
  return sha256(LEAF_PREFIX, encoder.encode(text));
}

async function parseVkey(vkey) {
  if (typeof vkey !== "string") throw new Malformed("the log's public key is missing");
  // Base64 may itself hold "+": only the first two separate fields.
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new Malformed("the log's public key must have three '+'-separated parts");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  if (!validName(name) || !/^[0-9a-fA-F]{8}$/.test(hexId)) {
    throw new Malformed("the log's public key has an invalid name or key ID");
  }
  const raw = fromBase64(vkey.slice(second + 1), "the log's public key");
  if (raw.length !== 33 || raw[0] !== ED25519_TYPE) {
    throw new Malformed("the log's public key is not an Ed25519 note key");
  }
  const publicKey = raw.slice(1);
  const keyId = (await sha256(encoder.encode(name), Uint8Array.of(0x0a, ED25519_TYPE), publicKey))
    .slice(0, 4);
  if (toHex(keyId) !== hexId.toLowerCase()) {
    throw new Malformed("the log's public key ID does not match its name and key");
  }
  return { name, keyId, publicKey };
}

function openNote(note) {
  checkText(note, "the checkpoint note");
  if (note.length > MAX_NOTE_CHARS) throw new Malformed("the checkpoint note is too large");
  if (!note.endsWith("\n")) throw new Malformed("the checkpoint note does not end in a newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Malformed("the checkpoint note has no blank line before its signatures");
  const body = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block === "") throw new Malformed("the checkpoint note has no signatures");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new Malformed("the checkpoint note has too many signatures");
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw new Malformed("malformed signature line");
    const parts = line.slice(SIGNATURE_PREFIX.length).split(" ");
    if (parts.length !== 2 || !validName(parts[0])) throw new Malformed("malformed signature line");
    const raw = fromBase64(parts[1], "a signature");
    if (raw.length < 5) throw new Malformed("a signature is too short");
    return { name: parts[0], keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { body, signatures };
}

function parseCheckpoint(body) {
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3 || lines.some((line) => line === "")) {
    throw new Malformed("the checkpoint needs at least three non-empty lines");
  }
  const [origin, sizeText, rootText] = lines;
  if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText) || BigInt(sizeText) >= UINT64_LIMIT) {
    throw new Malformed("the checkpoint's tree size is not a decimal uint64");
  }
  const root = fromBase64(rootText, "the checkpoint's root hash");
  if (root.length !== HASH_SIZE) throw new Malformed("the checkpoint's root hash is not 32 bytes");
  return { origin, size: BigInt(sizeText), root };
}

/**
 * Verify a signed checkpoint note against the log's verifier key.
 *
 * @param {{note: string, vkey: string, origin?: string}} input  origin defaults to the key's
 *   name (Warden signs under its origin).
 * @returns {Promise<{ok: boolean, reason: string, checkpoint?: {origin: string, size: bigint,
 *   root: Uint8Array, rootHex: string, signer: string}}>}
 */
export async function verifyCheckpointSignature({ note, vkey, origin } = {}) {
  return guard(async () => {
    const key = await parseVkey(vkey);
    const { body, signatures } = openNote(note);
    let publicKey;
    try {
      publicKey = await subtle().importKey("raw", key.publicKey, { name: "Ed25519" }, false, [
        "verify",
      ]);
    } catch {
      return fail("this browser cannot verify Ed25519 signatures");
    }
    const message = encoder.encode(body);
    let verified = false;
    for (const signature of signatures) {
      // Other keys' lines (witness cosignatures) are ignored, as the signed-note spec says.
      if (signature.name !== key.name || !sameBytes(signature.keyId, key.keyId)) continue;
      const good =
        signature.signature.length === 64 &&
        (await subtle().verify({ name: "Ed25519" }, publicKey, signature.signature, message));
      if (!good) return fail("the checkpoint's signature does not verify with the log's key");
      verified = true;
    }
    if (!verified) return fail("the checkpoint carries no signature from the log's key");
    const checkpoint = parseCheckpoint(body);
    const expected = origin === undefined ? key.name : origin;
    if (checkpoint.origin !== expected) return fail("the checkpoint is not of the expected log");
    const signer = `${key.name}+${toHex(key.keyId)}`;
    return pass(`checkpoint of size ${checkpoint.size} signed by ${signer}`, {
      checkpoint: { ...checkpoint, rootHex: toHex(checkpoint.root), signer },
    });
  });
}

async function rootFromInclusion(leaf, index, size, proof) {
  // RFC 9162 §2.1.3.2, as merkle.verify_inclusion.
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Malformed("the inclusion proof is longer than the tree needs");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      if (!(fn & 1n)) {
        while (fn && !(fn & 1n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Malformed("the inclusion proof is shorter than the tree needs");
  return r;
}

/**
 * Verify that a leaf is at `index` in the tree of `treeSize` leaves whose root is `root`.
 *
 * @param {{canonical?: string, leafHash?: string|Uint8Array, index: number|string|bigint,
 *   treeSize: number|string|bigint, proof: string[], root: string|Uint8Array}} input
 *   the entry's canonical text (its leaf hash is computed here), or its leaf hash.
 * @returns {Promise<{ok: boolean, reason: string, leafHash?: string}>}
 */
export async function verifyInclusion({ canonical, leafHash: given, index, treeSize, proof, root } = {}) {
  return guard(async () => {
    const i = count(index, "the leaf index");
    const size = count(treeSize, "the tree size");
    const path = proofHashes(proof, "the inclusion proof");
    const expected = hash(root, "the root hash");
    const leaf = canonical !== undefined ? await leafHash(canonical) : hash(given, "the leaf hash");
    if (i >= size) return fail(`leaf ${i} is not below the tree size ${size}`);
    const computed = await rootFromInclusion(leaf, i, size, path);
    if (!sameBytes(computed, expected)) {
      return fail(`the root computed from the proof does not match the root of tree size ${size}`);
    }
    return pass(`leaf ${i} is in the tree of size ${size}`, { leafHash: toHex(leaf) });
  });
}

/**
 * Verify that the tree of `size2` leaves (root2) extends the tree of `size1` leaves (root1).
 *
 * @param {{size1: number|string|bigint, size2: number|string|bigint, proof: string[],
 *   root1: string|Uint8Array, root2: string|Uint8Array}} input
 * @returns {Promise<{ok: boolean, reason: string}>}
 */
export async function verifyConsistency({ size1, size2, proof, root1, root2 } = {}) {
  return guard(async () => {
    const m = count(size1, "the first tree size");
    const n = count(size2, "the second tree size");
    const path = proofHashes(proof, "the consistency proof");
    const first = hash(root1, "the first root hash");
    const second = hash(root2, "the second root hash");
    if (m > n) return fail(`the first tree (${m}) is larger than the second (${n})`);
    if (m === n) {
      if (path.length !== 0) return fail("trees of equal size need an empty proof");
      if (!sameBytes(first, second)) return fail(`two different roots for tree size ${m}`);
      return pass(`both checkpoints sign the same tree of size ${m}`);
    }
    if (m === 0n) {
      const empty = await sha256(new Uint8Array(0));
      if (path.length !== 0 || !sameBytes(first, empty)) {
        return fail("the empty tree needs an empty proof and the empty root");
      }
      return pass("every tree extends the empty tree");
    }
    if (path.length === 0) return fail("the consistency proof is empty");
    // RFC 9162 §2.1.4.2, as merkle.verify_consistency.
    if ((m & (m - 1n)) === 0n) path.unshift(first);
    let fn = m - 1n;
    let sn = n - 1n;
    while (fn & 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) return fail("the consistency proof is longer than the trees need");
      if (fn & 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if (!(fn & 1n)) {
          while (fn && !(fn & 1n)) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) return fail("the consistency proof is shorter than the trees need");
    if (!sameBytes(fr, first)) return fail(`the proof does not lead to the root of tree size ${m}`);
    if (!sameBytes(sr, second)) return fail(`the proof does not lead to the root of tree size ${n}`);
    return pass(`the tree of size ${n} extends the tree of size ${m}`);
  });
}

// The payload's checkpoint fields must be what its note signs: the note alone is trusted.
async function signedCheckpoint(checkpoint, vkey, what) {
  if (!checkpoint || typeof checkpoint !== "object") throw new Malformed(`${what} is missing`);
  const signed = await verifyCheckpointSignature({ note: checkpoint.note, vkey });
  if (!signed.ok) return signed;
  const { size, rootHex } = signed.checkpoint;
  if (count(checkpoint.tree_size, `${what}'s tree size`) !== size) {
    return fail(`${what}'s tree size is not the one its note signs`);
  }
  if (checkpoint.root_hash !== undefined && checkpoint.root_hash !== rootHex) {
    return fail(`${what}'s root hash is not the one its note signs`);
  }
  return signed;
}

/**
 * Verify the payload of one entry: the checkpoint's signature, then the entry's inclusion
 * under the signed root (shape: governance/audit/browser_proof.py, like GET
 * /v1/audit/entries/{seq} plus the key).
 */
export async function verifyEntryProof(payload) {
  return guard(async () => {
    if (!payload || typeof payload !== "object") throw new Malformed("the proof data is missing");
    const seq = count(payload.seq ?? (payload.entry && payload.entry.seq), "the entry's seq");
    const inclusion = payload.inclusion;
    if (!inclusion) return fail(`no signed checkpoint covers entry ${seq} yet`);
    const signed = await signedCheckpoint(inclusion.checkpoint, payload.vkey, "the checkpoint");
    if (!signed.ok) return signed;
    const { size, root, signer } = signed.checkpoint;
    if (count(inclusion.tree_size, "the proof's tree size") !== size) {
      return fail(`the proof is for tree size ${inclusion.tree_size}, the checkpoint signs ${size}`);
    }
    let entry;
    try {
      entry = JSON.parse(checkText(payload.canonical, "the entry text"));
    } catch (error) {
      if (error instanceof Malformed) throw error;
      return fail("the entry text is not JSON");
    }
    if (!entry || typeof entry !== "object" || entry.seq !== Number(seq)) {
      return fail(`the entry's own seq is not ${seq}`);
    }
    const included = await verifyInclusion({
      canonical: payload.canonical,
      index: seq,
      treeSize: size,
      proof: inclusion.proof,
      root,
    });
    if (!included.ok) return included;
    if (payload.leaf_hash !== undefined && payload.leaf_hash !== included.leafHash) {
      return fail("the server's leaf hash is not the hash of the entry's text");
    }
    return pass(`entry ${seq} is in the log at tree size ${size}, checkpoint signed by ${signer}`);
  });
}

/**
 * Verify the payload of two checkpoints: both signatures, then the consistency proof between
 * the signed roots (shape: like GET /v1/audit/consistency plus the key).
 */
export async function verifyCheckpointConsistency(payload) {
  return guard(async () => {
    if (!payload || typeof payload !== "object") throw new Malformed("the proof data is missing");
    const older = await signedCheckpoint(payload.checkpoint1, payload.vkey, "the older checkpoint");
    if (!older.ok) return older;
    const newer = await signedCheckpoint(payload.checkpoint2, payload.vkey, "the newer checkpoint");
    if (!newer.ok) return newer;
    const m = older.checkpoint.size;
    const n = newer.checkpoint.size;
    if (count(payload.size1, "the first size") !== m || count(payload.size2, "the second size") !== n) {
      return fail("the proof's tree sizes are not the ones the checkpoints sign");
    }
    const roots = [
      [payload.root1, older.checkpoint.rootHex],
      [payload.root2, newer.checkpoint.rootHex],
    ];
    if (roots.some(([given, signed]) => given !== undefined && given !== signed)) {
      return fail("the proof's roots are not the ones the checkpoints sign");
    }
    const consistent = await verifyConsistency({
      size1: m,
      size2: n,
      proof: payload.proof,
      root1: older.checkpoint.root,
      root2: newer.checkpoint.root,
    });
    if (!consistent.ok) return consistent;
    return pass(`${consistent.reason}; both checkpoints signed by ${newer.checkpoint.signer}`);
  });
}

/** Verify a payload of either kind ("inclusion" or "consistency"). */
export async function verifyPayload(payload) {
  const kind = payload && typeof payload === "object" ? payload.kind : undefined;
  if (kind === "inclusion") return verifyEntryProof(payload);
  if (kind === "consistency") return verifyCheckpointConsistency(payload);
  return fail("unknown kind of proof data");
}

async function showProof(holder) {
  const status = holder.matches('[role="status"]') ? holder : holder.querySelector('[role="status"]');
  if (!status) return;
  holder.dataset.proofState = "checking";
  status.classList.remove("ok", "failed");
  status.textContent = "Checking the proof…";
  const source = holder.ownerDocument.getElementById(holder.dataset.proof);
  let outcome;
  if (!source || source.getAttribute("type") !== "application/json") {
    outcome = fail("the proof data is missing");
  } else {
    let payload;
    try {
      payload = JSON.parse(source.textContent);
    } catch {
      payload = undefined;
    }
    outcome =
      payload === undefined ? fail("the proof data is not valid JSON") : await verifyPayload(payload);
  }
  // textContent only: entry text and reasons are data, never markup.
  status.textContent = outcome.ok ? `Verified: ${outcome.reason}.` : `Not verified: ${outcome.reason}.`;
  status.classList.add(outcome.ok ? "ok" : "failed");
  holder.dataset.proofState = outcome.ok ? "ok" : "failed";
}

/**
 * Verify every `[data-proof]` element under `root`: its value is the id of a
 * `<script type="application/json">` holding the payload; the verdict goes into the element's
 * `[role="status"]` (or the element itself) as text with the class `ok` or `failed`.
 */
export async function wireProofPage(root = globalThis.document) {
  if (!root || typeof root.querySelectorAll !== "function") return;
  const holders = Array.from(root.querySelectorAll("[data-proof]"));
  if (typeof root.matches === "function" && root.matches("[data-proof]")) holders.unshift(root);
  await Promise.all(holders.filter((holder) => !holder.dataset.proofState).map(showProof));
}

if (typeof document !== "undefined") {
  // Module scripts run after parsing; htmx:load covers fragments swapped in later.
  wireProofPage(document);
  document.addEventListener("htmx:load", (event) => wireProofPage(event.target));
}
