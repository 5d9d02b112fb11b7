"""The export bundle: a round trip, an outsider's check, and tampering of every kind caught."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.audit.bundle import _entry_line, verify_bundle, write_bundle
from governance.audit.canonical import canonical_bytes
from governance.audit.errors import AuditError, AuditVerificationError
from governance.audit.merkle import MemoryNodeStore, leaf_hash, root_at
from governance.audit.note import make_checkpoint_body, sign_note, vkey_for

ORIGIN = "warden.example/audit"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
VKEY = vkey_for(ORIGIN, KEY.public_key())
LOG_SIZE = 20
CHECKPOINT_SIZES = (5, 9, 20)
FROM_SEQ, TO_SEQ = 3, 14


def _entry(seq: int) -> bytes:
    return canonical_bytes(
        {
            "seq": seq,
            "actor": "alice" if seq % 2 else "bøb ✓",
            "action": "predict",
            "decision": "allow" if seq % 3 else "deny",
            "score": seq / 7,
            "reason": 'line\nbreak "quoted" \\ and \U0001f600',
        }
    )


ENTRIES = [_entry(seq) for seq in range(LOG_SIZE)]


def _store() -> MemoryNodeStore:
    tree = MemoryNodeStore()
    tree.extend([leaf_hash(data) for data in ENTRIES])
    return tree


def _checkpoint(tree: MemoryNodeStore, size: int, key: Ed25519PrivateKey = KEY) -> str:
    return sign_note(make_checkpoint_body(ORIGIN, size, tree.root(size)), ORIGIN, key)


def _write(out: Path, first: int = FROM_SEQ, last: int = TO_SEQ) -> Path:
    tree = _store()
    return write_bundle(
        out,
        origin=ORIGIN,
        vkey=VKEY,
        entries=[(seq, ENTRIES[seq]) for seq in range(first, last + 1)],
        checkpoints=[_checkpoint(tree, size) for size in reversed(CHECKPOINT_SIZES)],
        get=tree.get,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture
def copy(pristine: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as scratch:
        yield Path(shutil.copytree(pristine, Path(scratch) / "b"))


def test_round_trip_report(pristine: Path) -> None:
    report = verify_bundle(pristine, trusted_vkey=VKEY)
    assert (report.origin, report.from_seq, report.to_seq) == (ORIGIN, FROM_SEQ, TO_SEQ)
    assert report.tree_size == LOG_SIZE and report.checkpoint_sizes == CHECKPOINT_SIZES
    assert report.entries_checked == TO_SEQ - FROM_SEQ + 1
    assert report.root == _store().root() and report.vkey == VKEY
    assert sorted(p.name for p in pristine.iterdir()) == [
        "README.md",
        "bundle.json",
        "checkpoints",
        "consistency.json",
        "entries.jsonl",
        "public_key.vkey",
    ]


def test_whole_log_and_single_entry_bundles(tmp_path: Path) -> None:
    assert verify_bundle(_write(tmp_path / "all", 0, LOG_SIZE - 1)).entries_checked == LOG_SIZE
    assert verify_bundle(_write(tmp_path / "one", LOG_SIZE - 1, LOG_SIZE - 1)).to_seq == 19


def test_entry_lines_are_canonical_json() -> None:
    proof = [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()]
    text = ENTRIES[7].decode()
    line = {"seq": 7, "leaf_hash": leaf_hash(ENTRIES[7]).hex(), "canonical": text}
    line["inclusion"] = [node.hex() for node in proof]  # type: ignore[assignment]
    assert _entry_line(7, leaf_hash(ENTRIES[7]), text, proof) == canonical_bytes(line) + b"\n"


def _outsider_check(bundle: Path) -> int:
    """A third party's verifier: hashlib, json, base64 and cryptography only, from the docs."""

    def hash_children(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    def verify_inclusion(
        leaf: bytes, index: int, size: int, path: list[bytes], root: bytes
    ) -> bool:
        if index >= size:
            return False
        fn, sn, r = index, size - 1, leaf
        for p in path:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = hash_children(p, r)
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
            else:
                r = hash_children(r, p)
            fn, sn = fn >> 1, sn >> 1
        return sn == 0 and r == root

    meta = json.loads((bundle / "bundle.json").read_text())
    name, key_id, key_b64 = (bundle / "public_key.vkey").read_text().strip().split("+", 2)
    public = base64.b64decode(key_b64)[1:]
    note = (bundle / "checkpoints" / f"{meta['tree_size']}.note").read_text()
    text, signatures = note.rsplit("\n\n", 1)
    dash, signer, encoded = signatures.strip().split(" ")
    assert (dash, signer) == ("\u2014", name)
    signature = base64.b64decode(encoded)
    assert signature[:4].hex() == key_id
    Ed25519PublicKey.from_public_bytes(public).verify(signature[4:], (text + "\n").encode())
    root = base64.b64decode(text.split("\n")[2])
    checked = 0
    for line in (bundle / "entries.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        leaf = hashlib.sha256(b"\x00" + item["canonical"].encode("utf-8")).digest()
        assert leaf.hex() == item["leaf_hash"]
        path = [bytes.fromhex(h) for h in item["inclusion"]]
        assert verify_inclusion(leaf, item["seq"], meta["tree_size"], path, root)
        checked += 1
    return checked


def test_an_outsider_can_check_the_bundle_without_warden(pristine: Path) -> None:
    assert _outsider_check(pristine) == TO_SEQ - FROM_SEQ + 1


def test_trusted_key_must_match(pristine: Path) -> None:
    other = vkey_for(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key())
    with pytest.raises(AuditVerificationError, match="trusted key"):
        verify_bundle(pristine, trusted_vkey=other)


def test_a_bundle_signed_by_another_key_throughout_is_caught_by_the_trusted_key(
    tmp_path: Path,
) -> None:
    # An attacker re-signs everything with their own key and ships that key: self-consistent,
    # so only the operator's published key exposes it.
    rogue = Ed25519PrivateKey.from_private_bytes(bytes([9] * 32))
    tree = _store()
    bundle = write_bundle(
        tmp_path / "rogue",
        origin=ORIGIN,
        vkey=vkey_for(ORIGIN, rogue.public_key()),
        entries=[(0, ENTRIES[0])],
        checkpoints=[_checkpoint(tree, LOG_SIZE, rogue)],
        get=tree.get,
    )
    assert verify_bundle(bundle).tree_size == LOG_SIZE
    with pytest.raises(AuditVerificationError):
        verify_bundle(bundle, trusted_vkey=VKEY)


# --- writer refusals ----------------------------------------------------------------------------


def test_writer_refuses_bad_input(tmp_path: Path, pristine: Path) -> None:
    tree = _store()
    notes = [_checkpoint(tree, LOG_SIZE)]

    def attempt(entries: list[tuple[int, bytes]], checkpoints: list[str], name: str) -> None:
        write_bundle(
            tmp_path / name,
            origin=ORIGIN,
            vkey=VKEY,
            entries=entries,
            checkpoints=checkpoints,
            get=tree.get,
        )

    with pytest.raises(AuditError, match="exists"):
        write_bundle(
            pristine, origin=ORIGIN, vkey=VKEY, entries=[], checkpoints=notes, get=tree.get
        )
    with pytest.raises(AuditError, match="contiguous"):
        attempt([(1, ENTRIES[1]), (3, ENTRIES[3])], notes, "gap")
    with pytest.raises(AuditError, match="contiguous"):
        attempt([(LOG_SIZE, b"{}")], notes, "beyond")
    with pytest.raises(AuditError, match="at least one entry"):
        attempt([], notes, "empty")
    with pytest.raises(AuditError, match="checkpoint"):
        attempt([(0, ENTRIES[0])], [], "nocheckpoint")
    with pytest.raises(AuditError, match="share a tree size"):
        attempt([(0, ENTRIES[0])], notes * 2, "dup")
    forged = sign_note(make_checkpoint_body(ORIGIN, LOG_SIZE, bytes(32)), ORIGIN, KEY)
    with pytest.raises(AuditError, match="does not reproduce"):
        attempt([(0, ENTRIES[0])], [forged], "forged")
    with pytest.raises(AuditVerificationError):
        attempt([(0, ENTRIES[0])], [_checkpoint(tree, LOG_SIZE, Ed25519PrivateKey.generate())], "k")
    # Nothing half-written is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- tampering: every single change to entries or checkpoints is caught, and located ------------


def _lines(data: bytes) -> list[bytes]:
    # Split on b"\n" only and keep it, as a reader iterating the file in binary mode does.
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def _expected_first_bad(old: list[bytes], new: list[bytes]) -> int:
    for position, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return FROM_SEQ + position
    return FROM_SEQ + min(len(old), len(new))


N_LINES = TO_SEQ - FROM_SEQ + 1


@st.composite
def entry_tampering(draw: st.DrawFn, data: bytes) -> bytes:
    lines = _lines(data)
    kind = draw(st.sampled_from(["modify", "delete", "insert", "swap", "truncate", "move"]))
    if kind == "modify":
        position = draw(st.integers(0, len(data) - 1))
        byte = draw(st.integers(0, 255).filter(lambda b: b != data[position]))
        return data[:position] + bytes([byte]) + data[position + 1 :]
    if kind == "delete":
        del lines[draw(st.integers(0, len(lines) - 1))]
    elif kind == "insert":
        extra = draw(st.sampled_from(lines) | st.binary(min_size=1).map(lambda b: b + b"\n"))
        lines.insert(draw(st.integers(0, len(lines))), extra)
    elif kind == "swap":
        i, j = draw(st.lists(st.integers(0, len(lines) - 1), min_size=2, max_size=2, unique=True))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "move":
        line = lines.pop(draw(st.integers(0, len(lines) - 1)))
        lines.insert(draw(st.integers(0, len(lines))), line)
        if b"".join(lines) == data:
            lines.pop()  # a move onto itself is no change: make it a truncation instead
    else:
        return data[: draw(st.integers(0, len(data) - 1))]
    return b"".join(lines)


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.data())
def test_any_single_entries_change_reports_the_first_bad_seq(
    pristine: Path, data: st.DataObject
) -> None:
    original = (pristine / "entries.jsonl").read_bytes()
    tampered = data.draw(entry_tampering(original))
    assert tampered != original
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(shutil.copytree(pristine, Path(scratch) / "b"))
        (bundle / "entries.jsonl").write_bytes(tampered)
        with pytest.raises(AuditVerificationError) as caught:
            verify_bundle(bundle)
    assert caught.value.first_bad_seq == _expected_first_bad(_lines(original), _lines(tampered))
    assert caught.value.checkpoint_size is None


@SETTINGS
@given(st.data())
def test_any_single_checkpoint_change_reports_the_checkpoint(
    pristine: Path, data: st.DataObject
) -> None:
    size = data.draw(st.sampled_from(CHECKPOINT_SIZES))
    name = f"checkpoints/{size}.note"
    original = (pristine / name).read_bytes()
    kind = data.draw(st.sampled_from(["modify", "truncate", "delete", "swap", "append"]))
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(shutil.copytree(pristine, Path(scratch) / "b"))
        expected = size
        if kind == "modify":
            position = data.draw(st.integers(0, len(original) - 1))
            byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
            tampered = original[:position] + bytes([byte]) + original[position + 1 :]
            (bundle / name).write_bytes(tampered)
        elif kind == "truncate":
            (bundle / name).write_bytes(original[: data.draw(st.integers(0, len(original) - 1))])
        elif kind == "delete":
            (bundle / name).unlink()
        elif kind == "append":
            (bundle / name).write_bytes(original + data.draw(st.binary(min_size=1)))
        else:
            other = data.draw(st.sampled_from([s for s in CHECKPOINT_SIZES if s != size]))
            other_name = f"checkpoints/{other}.note"
            (bundle / name).write_bytes((pristine / other_name).read_bytes())
            (bundle / other_name).write_bytes(original)
            expected = min(size, other)
        with pytest.raises(AuditVerificationError) as caught:
            verify_bundle(bundle)
    assert caught.value.checkpoint_size == expected
    assert caught.value.first_bad_seq is None


def test_an_extra_or_missing_checkpoint_file_is_caught(copy: Path) -> None:
    shutil.copy(copy / "checkpoints" / "9.note", copy / "checkpoints" / "10.note")
    with pytest.raises(AuditVerificationError, match="unlisted"):
        verify_bundle(copy)


def test_a_checkpoint_from_a_forked_log_breaks_consistency(copy: Path) -> None:
    # Correctly signed, but of a different history: only the consistency proof can tell.
    forked = MemoryNodeStore()
    forked.extend([leaf_hash(b"other " + data) for data in ENTRIES[:9]])
    (copy / "checkpoints" / "9.note").write_text(_checkpoint(forked, 9))
    with pytest.raises(AuditVerificationError, match="not consistent") as caught:
        verify_bundle(copy)
    assert caught.value.checkpoint_size == 9


def test_a_resigned_altered_entry_still_fails_its_proof(copy: Path) -> None:
    # An insider with the signing key rewrites entry 6 and its leaf hash, but the old proof
    # and the signed root still describe the original tree.
    path = copy / "entries.jsonl"
    lines = path.read_bytes().split(b"\n")
    item = json.loads(lines[6 - FROM_SEQ])
    altered = canonical_bytes({**json.loads(item["canonical"]), "decision": "allow"})
    proof = [bytes.fromhex(h) for h in item["inclusion"]]
    lines[6 - FROM_SEQ] = _entry_line(6, leaf_hash(altered), altered.decode(), proof)[:-1]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditVerificationError, match="inclusion proof") as caught:
        verify_bundle(copy)
    assert caught.value.first_bad_seq == 6


def test_an_entry_whose_own_seq_disagrees_is_caught(copy: Path) -> None:
    path = copy / "entries.jsonl"
    lines = path.read_bytes().split(b"\n")
    wrong = canonical_bytes({**json.loads(ENTRIES[4]), "seq": 5})
    lines[4 - FROM_SEQ] = _entry_line(4, leaf_hash(wrong), wrong.decode(), [])[:-1]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditVerificationError, match="own seq") as caught:
        verify_bundle(copy)
    assert caught.value.first_bad_seq == 4


BUNDLE_FILES = [
    "bundle.json",
    "entries.jsonl",
    "consistency.json",
    "public_key.vkey",
    "checkpoints/5.note",
    "checkpoints/20.note",
]


@SETTINGS
@given(st.sampled_from(BUNDLE_FILES), st.data())
def test_random_bytes_and_truncation_give_only_the_domain_error(
    pristine: Path, name: str, data: st.DataObject
) -> None:
    original = (pristine / name).read_bytes()
    junk = data.draw(
        st.binary(max_size=300)
        | st.integers(0, len(original) - 1).map(lambda n: original[:n])
        | st.integers(0, len(original) - 1).map(
            lambda n: original[:n] + b"\xff\xfe\x00" + original[n:]
        )
    )
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(shutil.copytree(pristine, Path(scratch) / "b"))
        (bundle / name).write_bytes(junk)
        with pytest.raises(AuditVerificationError):
            verify_bundle(bundle)


@pytest.mark.parametrize("name", [*BUNDLE_FILES, "checkpoints"])
def test_missing_or_misplaced_files(copy: Path, name: str) -> None:
    target = copy / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
        target.mkdir()  # a directory where a file belongs
    with pytest.raises(AuditVerificationError):
        verify_bundle(copy)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(AuditVerificationError):
        verify_bundle(tmp_path / "nothing")
    (tmp_path / "file").write_bytes(b"\x00" * 10)
    with pytest.raises(AuditVerificationError):
        verify_bundle(tmp_path / "file")
    with pytest.raises(AuditVerificationError):
        verify_bundle(tmp_path)  # an empty directory


@pytest.mark.parametrize(
    "meta",
    [
        {"from_seq": 5, "to_seq": 4},
        {"to_seq": 20},
        {"from_seq": -1},
        {"from_seq": True},
        {"checkpoints": []},
        {"checkpoints": [9, 5, 20]},
        {"checkpoints": [5, 9]},
        {"version": 2},
        {"hash": "sha512"},
        {"origin": 7},
    ],
)
def test_inconsistent_metadata_is_refused(copy: Path, meta: dict[str, object]) -> None:
    current = json.loads((copy / "bundle.json").read_bytes())
    (copy / "bundle.json").write_bytes(canonical_bytes({**current, **meta}) + b"\n")
    with pytest.raises(AuditVerificationError):
        verify_bundle(copy)


@pytest.mark.slow
def test_a_20k_entry_bundle_round_trips(tmp_path: Path) -> None:
    entries = [canonical_bytes({"seq": seq, "who": "u", "n": seq * 3}) for seq in range(20_000)]
    tree = MemoryNodeStore()
    tree.extend([leaf_hash(data) for data in entries])
    bundle = write_bundle(
        tmp_path / "big",
        origin=ORIGIN,
        vkey=VKEY,
        entries=list(enumerate(entries)),
        checkpoints=[_checkpoint(tree, 20_000), _checkpoint(tree, 12_345)],
        get=tree.get,
    )
    assert root_at(20_000, tree.get) == verify_bundle(bundle, trusted_vkey=VKEY).root


def test_the_documented_worked_example_runs_and_matches_warden(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit-bundle.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(snippet, "audit-bundle.md", "exec"), {})  # noqa: S102 - our own document
    assert capsys.readouterr().out == "True\n"
    tree = MemoryNodeStore()
    for seq in range(3):
        decision = "deny" if seq == 1 else "allow"
        entry = canonical_bytes({"seq": seq, "action": "predict", "decision": decision})
        assert entry.decode() in doc
        tree.append(leaf_hash(entry))
    assert tree.root().hex() in doc and base64.b64encode(tree.root()).decode() in doc
