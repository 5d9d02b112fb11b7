"""The offline export bundle: a range of audit entries an outsider can check with no Warden code.

Layout of a bundle directory (docs/audit-bundle.md is the full specification)::

    bundle.json          {"checkpoints":[sizes],"format":"warden-audit-bundle","from_seq":a,
                          "hash":"sha256","origin":...,"to_seq":b,"tree_size":N,"version":1}
    entries.jsonl        one line per seq a..b:
                         {"canonical":<entry's canonical JSON as a string>,
                          "inclusion":[hex, ...],"leaf_hash":hex,"seq":n}
    checkpoints/<size>.note   a C2SP signed checkpoint per listed size; the largest is N
    consistency.json     {"proofs":[{"proof":[hex,...],"size1":s_i,"size2":s_i+1}, ...]}
    public_key.vkey      the log's verifier key, one line
    README.md            how to verify, for whoever receives the bundle

Each entry carries its own RFC 9162 inclusion proof against the largest checkpoint: the most
interoperable choice (any RFC 6962 library checks one entry without the others). Every JSON
file and line is RFC 8785 canonical JSON followed by a newline, and the verifier demands that
byte for byte, so any altered byte is caught, not only those that change a hash.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from governance.audit.canonical import canonical_bytes, parse_canonical
from governance.audit.errors import AuditError, AuditVerificationError, CanonicalizationError
from governance.audit.merkle import (
    NodeGetter,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from governance.audit.note import Checkpoint, VerifierKey, parse_vkey, verify_note

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "BundleReport",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "warden-audit-bundle"
BUNDLE_VERSION = 1
META_FILE = "bundle.json"
ENTRIES_FILE = "entries.jsonl"
CHECKPOINT_DIR = "checkpoints"
CONSISTENCY_FILE = "consistency.json"
VKEY_FILE = "public_key.vkey"
README_FILE = "README.md"

_META_KEYS = frozenset(
    {"checkpoints", "format", "from_seq", "hash", "origin", "to_seq", "tree_size", "version"}
)
_ENTRY_KEYS = frozenset({"canonical", "inclusion", "leaf_hash", "seq"})
_PROOF_KEYS = frozenset({"proof", "size1", "size2"})
# Small files are read whole; these bounds keep random input from exhausting memory.
_MAX_SMALL_FILE = 16 * 1024 * 1024
_MAX_NOTE_FILE = 64 * 1024

_README = """\
# Warden audit-log export bundle

This directory is a range of entries of a tamper-evident audit log, with the signed tree heads
(checkpoints) and proofs needed to check them offline, without trusting the operator.

- `bundle.json`: origin, seq range `from_seq..to_seq` (inclusive), `tree_size` (the largest
  checkpoint), the checkpoint sizes included, format version.
- `entries.jsonl`: one line per seq: `canonical` (the entry's RFC 8785 canonical JSON, whose
  UTF-8 bytes are the Merkle leaf), `leaf_hash` = hex SHA-256(0x00 || those bytes),
  `inclusion` = hex RFC 9162 inclusion proof of leaf `seq` in the tree of `tree_size`.
- `checkpoints/<size>.note`: C2SP signed checkpoints (c2sp.org/tlog-checkpoint), Ed25519.
- `consistency.json`: RFC 9162 consistency proofs between consecutive checkpoints.
- `public_key.vkey`: the log's verifier key `<name>+<key id>+<base64(0x01 || key)>`.
  Compare it with the key the operator publishes: the bundle cannot vouch for its own key.

To verify: check each note's signature with the key; check each consistency proof between the
roots of consecutive checkpoints; for each entry recompute the leaf hash from `canonical` and
check its inclusion proof against the root of the largest checkpoint. All JSON here is RFC 8785
canonical JSON followed by a newline. The full format: docs/audit-bundle.md in Warden.
"""


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What a verified bundle proves: entries from_seq..to_seq are in the log signed at
    ``tree_size``, and every included checkpoint is consistent with the next."""

    origin: str
    from_seq: int
    to_seq: int
    tree_size: int
    root: bytes
    checkpoint_sizes: tuple[int, ...]
    entries_checked: int
    vkey: str
    anchor_size: int | None = None


def _json_line(value: Any) -> bytes:
    return canonical_bytes(value) + b"\n"


def _entry_line(seq: int, leaf: bytes, canonical_text: str, proof: Sequence[bytes]) -> bytes:
    # The canonical encoding of the line's object, written directly because this runs once per
    # entry; a test pins it to canonical_bytes.
    inclusion = ",".join(f'"{node.hex()}"' for node in proof)
    return (
        f'{{"canonical":{encode_basestring(canonical_text)},"inclusion":[{inclusion}],'
        f'"leaf_hash":"{leaf.hex()}","seq":{seq}}}\n'
    ).encode()


def _checkpoints_by_size(
    notes: Sequence[str], key: VerifierKey, origin: str
) -> list[tuple[Checkpoint, str]]:
    checked: dict[int, tuple[Checkpoint, str]] = {}
    for note in notes:
        checkpoint = verify_note(note, key, origin=origin, allow_unknown_signatures=False)
        if checkpoint.size in checked:
            raise AuditError("two checkpoints share a tree size", status_code=422)
        checked[checkpoint.size] = (checkpoint, note)
    return [checked[size] for size in sorted(checked)]


def write_bundle(
    out_dir: str | os.PathLike[str],
    *,
    origin: str,
    vkey: str,
    entries: Iterable[tuple[int, bytes]],
    checkpoints: Sequence[str],
    get: NodeGetter,
) -> Path:
    """Write an export bundle of a contiguous range of entries.

    The bundle is built in a temporary sibling directory and renamed into place, so a failure
    leaves nothing behind that looks like a bundle.

    Args:
        out_dir: the bundle directory to create; it must not exist.
        origin: the log's origin, as in its checkpoints.
        vkey: the log's verifier key; every checkpoint must verify under it alone.
        entries: ``(seq, canonical bytes)`` in seq order, contiguous, at least one, all below
            the largest checkpoint's size.
        checkpoints: signed checkpoint notes to include; inclusion proofs are made against the
            largest and consistency proofs between consecutive sizes.
        get: fetches the stored tree node ``(level, index)``, as for ``merkle.root_at``.

    Returns:
        The bundle directory.

    Raises:
        AuditError: empty or non-contiguous entries, no checkpoints, a checkpoint whose root
            the node store does not reproduce, or an existing ``out_dir``.
        AuditVerificationError: a checkpoint that does not verify under ``vkey``.
    """
    target = Path(out_dir)
    if target.exists():
        raise AuditError("bundle directory already exists", status_code=409)
    key = parse_vkey(vkey)
    if not checkpoints:
        raise AuditError("a bundle needs at least one checkpoint", status_code=422)
    ordered = _checkpoints_by_size(checkpoints, key, origin)
    for checkpoint, _ in ordered:
        if root_at(checkpoint.size, get) != checkpoint.root:
            # The store and a signed head disagree: never export evidence we cannot back.
            raise AuditError("node store does not reproduce a signed checkpoint root")
    final = ordered[-1][0]

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        first_seq, last_seq = _write_entries(staging / ENTRIES_FILE, entries, final.size, get)
        (staging / CHECKPOINT_DIR).mkdir()
        for checkpoint, note in ordered:
            (staging / CHECKPOINT_DIR / f"{checkpoint.size}.note").write_bytes(note.encode("utf-8"))
        proofs = [
            {
                "proof": [node.hex() for node in consistency_proof(older.size, newer.size, get)],
                "size1": older.size,
                "size2": newer.size,
            }
            for (older, _), (newer, _) in itertools.pairwise(ordered)
        ]
        (staging / CONSISTENCY_FILE).write_bytes(_json_line({"proofs": proofs}))
        (staging / VKEY_FILE).write_bytes(key.text().encode("ascii") + b"\n")
        meta = {
            "checkpoints": [checkpoint.size for checkpoint, _ in ordered],
            "format": BUNDLE_FORMAT,
            "from_seq": first_seq,
            "hash": "sha256",
            "origin": origin,
            "to_seq": last_seq,
            "tree_size": final.size,
            "version": BUNDLE_VERSION,
        }
        (staging / META_FILE).write_bytes(_json_line(meta))
        (staging / README_FILE).write_text(_README, encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_entries(
    path: Path, entries: Iterable[tuple[int, bytes]], tree_size: int, get: NodeGetter
) -> tuple[int, int]:
    first_seq: int | None = None
    expected = 0
    with path.open("wb") as out:
        for seq, canonical in entries:
            if type(seq) is not int or not isinstance(canonical, bytes):
                raise AuditError("entries must be (seq, canonical bytes) pairs", status_code=422)
            if first_seq is None:
                first_seq = expected = seq
            if seq != expected or not 0 <= seq < tree_size:
                raise AuditError(
                    f"entries must be contiguous and below the tree size (at seq {seq})",
                    status_code=422,
                )
            try:
                text = canonical.decode("utf-8")
            except UnicodeDecodeError:
                raise AuditError(f"entry {seq} is not UTF-8", status_code=422) from None
            proof = inclusion_proof(seq, tree_size, get)
            out.write(_entry_line(seq, leaf_hash(canonical), text, proof))
            expected += 1
    if first_seq is None:
        raise AuditError("a bundle needs at least one entry", status_code=422)
    return first_seq, expected - 1


def _read_small(path: Path, limit: int, what: str, checkpoint_size: int | None = None) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        raise AuditVerificationError(
            f"cannot read {what}", checkpoint_size=checkpoint_size
        ) from None
    if len(data) > limit:
        raise AuditVerificationError(f"{what} is too large", checkpoint_size=checkpoint_size)
    return data


def _load_json_file(path: Path, limit: int, what: str) -> Any:
    data = _read_small(path, limit, what)
    if not data.endswith(b"\n"):
        raise AuditVerificationError(f"{what} does not end in a newline")
    try:
        return parse_canonical(data[:-1])
    except CanonicalizationError:
        raise AuditVerificationError(f"{what} is not canonical JSON") from None


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


@dataclass(frozen=True, slots=True)
class _Meta:
    origin: str
    from_seq: int
    to_seq: int
    tree_size: int
    sizes: tuple[int, ...]


def _read_meta(root_dir: Path) -> _Meta:
    meta = _load_json_file(root_dir / META_FILE, _MAX_SMALL_FILE, META_FILE)
    if type(meta) is not dict or set(meta) != _META_KEYS:
        raise AuditVerificationError(f"{META_FILE} does not have the expected members")
    if meta["format"] != BUNDLE_FORMAT or meta["version"] != BUNDLE_VERSION:
        raise AuditVerificationError("unknown bundle format or version")
    if meta["hash"] != "sha256" or type(meta["origin"]) is not str:
        raise AuditVerificationError(f"{META_FILE} has an unknown hash or a bad origin")
    from_seq, to_seq, tree_size, sizes = (
        meta["from_seq"],
        meta["to_seq"],
        meta["tree_size"],
        meta["checkpoints"],
    )
    if not (_is_count(from_seq) and _is_count(to_seq) and _is_count(tree_size)):
        raise AuditVerificationError(f"{META_FILE} sequence numbers must be integers >= 0")
    if not from_seq <= to_seq < tree_size:
        raise AuditVerificationError(f"{META_FILE} needs from_seq <= to_seq < tree_size")
    if (
        type(sizes) is not list
        or not sizes
        or not all(_is_count(size) for size in sizes)
        or any(a >= b for a, b in itertools.pairwise(sizes))
        or sizes[-1] != tree_size
    ):
        raise AuditVerificationError("checkpoint sizes must increase strictly and end at tree_size")
    return _Meta(meta["origin"], from_seq, to_seq, tree_size, tuple(sizes))


def _read_vkey(root_dir: Path, trusted_vkey: str | None) -> VerifierKey:
    data = _read_small(root_dir / VKEY_FILE, 4096, VKEY_FILE)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise AuditVerificationError(f"{VKEY_FILE} is not ASCII") from None
    if not text.endswith("\n") or "\n" in text[:-1]:
        raise AuditVerificationError(f"{VKEY_FILE} must be exactly one line")
    key = parse_vkey(text[:-1])
    if trusted_vkey is not None and key != parse_vkey(trusted_vkey):
        raise AuditVerificationError("bundle key is not the trusted key")
    return key


def _verify_checkpoints(root_dir: Path, meta: _Meta, key: VerifierKey) -> dict[int, Checkpoint]:
    try:
        present = {entry.name for entry in (root_dir / CHECKPOINT_DIR).iterdir()}
    except OSError:
        raise AuditVerificationError(f"cannot list {CHECKPOINT_DIR}/") from None
    listed = {f"{size}.note" for size in meta.sizes}
    unlisted = sorted(present - listed)
    if unlisted:
        raise AuditVerificationError(f"unlisted file in {CHECKPOINT_DIR}/: {unlisted[0]!r}")
    heads: dict[int, Checkpoint] = {}
    for size in meta.sizes:
        note = _read_small(
            root_dir / CHECKPOINT_DIR / f"{size}.note",
            _MAX_NOTE_FILE,
            "checkpoint",
            checkpoint_size=size,
        )
        try:
            checkpoint = verify_note(note, key, origin=meta.origin, allow_unknown_signatures=False)
        except AuditVerificationError as exc:
            raise AuditVerificationError(
                f"checkpoint {size}: {exc.message}", checkpoint_size=size
            ) from None
        if checkpoint.size != size:
            raise AuditVerificationError(
                "checkpoint tree size differs from its file name", checkpoint_size=size
            )
        heads[size] = checkpoint

    document = _load_json_file(root_dir / CONSISTENCY_FILE, _MAX_SMALL_FILE, CONSISTENCY_FILE)
    proofs = document.get("proofs") if type(document) is dict and len(document) == 1 else None
    if type(proofs) is not list or len(proofs) != len(meta.sizes) - 1:
        raise AuditVerificationError(f"{CONSISTENCY_FILE} needs one proof per checkpoint pair")
    for older, newer, item in zip(meta.sizes, meta.sizes[1:], proofs, strict=False):
        if (
            type(item) is not dict
            or set(item) != _PROOF_KEYS
            or type(item["size1"]) is not int
            or type(item["size2"]) is not int
            or item["size1"] != older
            or item["size2"] != newer
            or type(item["proof"]) is not list
        ):
            raise AuditVerificationError(
                f"consistency proof to {newer} is malformed", checkpoint_size=newer
            )
        try:
            path = [bytes.fromhex(node) for node in item["proof"]]
        except (TypeError, ValueError):
            raise AuditVerificationError(
                f"consistency proof to {newer} is not hex", checkpoint_size=newer
            ) from None
        if not verify_consistency(older, newer, path, heads[older].root, heads[newer].root):
            raise AuditVerificationError(
                f"checkpoint {newer} is not consistent with checkpoint {older}",
                checkpoint_size=newer,
            )
    return heads


class _BadEntry(Exception):
    """One entry line failed; carries only a safe reason."""


def _check_entry(raw: bytes, expected: int, tree_size: int, root: bytes) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadEntry("line is not valid UTF-8") from None
    if not text.endswith("\n"):
        raise _BadEntry("line does not end in a newline (file truncated?)")
    try:
        line = json.loads(text)
    except (ValueError, RecursionError):
        raise _BadEntry("line is not JSON") from None
    if type(line) is not dict or set(line) != _ENTRY_KEYS:
        raise _BadEntry("line does not have the expected members")
    seq, canonical_text, leaf_hex, inclusion = (
        line["seq"],
        line["canonical"],
        line["leaf_hash"],
        line["inclusion"],
    )
    if type(seq) is not int or seq != expected:
        raise _BadEntry("seq is not the next in the range (entry missing, added or moved)")
    if type(canonical_text) is not str or type(leaf_hex) is not str or type(inclusion) is not list:
        raise _BadEntry("line members have the wrong types")
    if not all(type(node) is str for node in inclusion):
        raise _BadEntry("inclusion proof must be hex strings")
    try:
        leaf = bytes.fromhex(leaf_hex)
        proof = [bytes.fromhex(node) for node in inclusion]
    except ValueError:
        raise _BadEntry("a hash is not hex") from None
    if _entry_line(seq, leaf, canonical_text, proof) != raw:
        raise _BadEntry("line is not in canonical form")
    try:
        canonical = canonical_text.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadEntry("entry holds a lone surrogate") from None
    try:
        entry = parse_canonical(canonical)
    except CanonicalizationError:
        raise _BadEntry("entry is not canonical JSON") from None
    if type(entry) is not dict or type(entry.get("seq")) is not int or entry["seq"] != seq:
        raise _BadEntry("entry's own seq field does not match")
    if leaf_hash(canonical) != leaf:
        raise _BadEntry("leaf hash does not match the entry")
    if not verify_inclusion(leaf, seq, tree_size, proof, root):
        raise _BadEntry("inclusion proof does not lead to the signed root")


def _verify_entries(root_dir: Path, meta: _Meta, root: bytes) -> int:
    expected = meta.from_seq
    try:
        with (root_dir / ENTRIES_FILE).open("rb") as handle:
            for raw in handle:
                if expected > meta.to_seq:
                    raise AuditVerificationError(
                        "more entries than bundle.json declares", first_bad_seq=expected
                    )
                try:
                    _check_entry(raw, expected, meta.tree_size, root)
                except _BadEntry as exc:
                    raise AuditVerificationError(
                        f"entry {expected}: {exc}", first_bad_seq=expected
                    ) from None
                expected += 1
    except OSError:
        raise AuditVerificationError(
            f"cannot read {ENTRIES_FILE}", first_bad_seq=expected
        ) from None
    if expected <= meta.to_seq:
        raise AuditVerificationError(
            f"entries end early: entry {expected} is missing", first_bad_seq=expected
        )
    return expected - meta.from_seq


def _check_trusted(trusted: str | bytes, key: VerifierKey, meta: _Meta,
                   heads: dict[int, Checkpoint]) -> int:  # fmt: skip
    """The trusted checkpoint's size, once the bundle proves its log extends it."""
    try:
        seen = verify_note(trusted, key, origin=meta.origin)
    except AuditVerificationError as exc:
        raise AuditVerificationError(
            f"the trusted checkpoint does not verify under the bundle's key: {exc.message}"
        ) from None
    if seen.size > meta.tree_size:
        raise AuditVerificationError(
            f"rollback: the bundle's tree has {meta.tree_size} entries, fewer than the trusted "
            f"checkpoint's {seen.size}",
            checkpoint_size=seen.size,
        )
    signed = heads.get(seen.size)
    if signed is None:
        raise AuditVerificationError(
            f"the bundle carries no consistency proof from the trusted checkpoint at tree size "
            f"{seen.size} (export it with --previous set to that checkpoint)",
            checkpoint_size=seen.size,
        )
    if signed.root != seen.root:
        raise AuditVerificationError(
            f"the bundle's checkpoint at tree size {seen.size} has another root than the "
            "trusted one: the log was forked",
            checkpoint_size=seen.size,
        )
    return seen.size


def verify_bundle(
    bundle_dir: str | os.PathLike[str],
    *,
    trusted_vkey: str | None = None,
    trusted_checkpoint: str | bytes | None = None,
) -> BundleReport:
    """Verify an export bundle using nothing but its directory.

    Checks, in order: ``bundle.json``; the key (against ``trusted_vkey`` when given); every
    checkpoint's signature, origin and size, smallest first; the consistency proof between
    each consecutive pair; then each entry in seq order: the line's canonical form, its seq,
    that its canonical JSON re-canonicalises to the same bytes and carries the same ``seq``,
    its leaf hash and its inclusion proof against the largest checkpoint.

    Args:
        bundle_dir: the bundle directory.
        trusted_vkey: the verifier key the operator publishes; without it the bundle's own key
            is used, which proves integrity but not who signed.
        trusted_checkpoint: a signed checkpoint note the auditor saw before (a previous
            bundle's latest): the bundle must include it, with the same root, and prove that
            its newest checkpoint extends it.

    Returns:
        What the bundle proves.

    Raises:
        AuditVerificationError: the first problem found, with ``first_bad_seq`` for an entry
            or ``checkpoint_size`` for a checkpoint. Malformed, truncated or random files raise
            this too, never another exception.
    """
    root_dir = Path(bundle_dir)
    if not root_dir.is_dir():
        raise AuditVerificationError("bundle directory does not exist")
    meta = _read_meta(root_dir)
    key = _read_vkey(root_dir, trusted_vkey)
    heads = _verify_checkpoints(root_dir, meta, key)
    anchor = (
        None if trusted_checkpoint is None else _check_trusted(trusted_checkpoint, key, meta, heads)
    )
    final = heads[meta.tree_size]
    checked = _verify_entries(root_dir, meta, final.root)
    return BundleReport(
        origin=meta.origin,
        from_seq=meta.from_seq,
        to_seq=meta.to_seq,
        tree_size=meta.tree_size,
        root=final.root,
        checkpoint_sizes=meta.sizes,
        entries_checked=checked,
        vkey=key.text(),
        anchor_size=anchor,
    )
