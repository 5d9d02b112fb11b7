"""The three verifiers an outsider feeds files to, fed random and truncated input.

The bundle verifier, the report verifier and the model-manifest loader must only ever answer
with their clean, documented errors: never a traceback, never an unrelated exception type.
Each starts from a real, valid artifact so that truncation and byte flips land in realistic
places, and random files cover the rest.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.audit.bundle import verify_bundle, write_bundle
from governance.audit.canonical import canonical_bytes
from governance.audit.errors import AuditVerificationError
from governance.audit.merkle import MemoryNodeStore, leaf_hash
from governance.audit.note import make_checkpoint_body, sign_note, vkey_for
from governance.reports.errors import ReportVerificationError
from governance.reports.manifest import build_manifest, verify_report_dir
from inference.artifact import read_manifest
from inference.errors import ManifestError
from tests.factories import build_artifact

pytestmark = pytest.mark.reliability
ORIGIN = "fuzz.example/log"
KEY = Ed25519PrivateKey.generate()
VKEY = vkey_for(ORIGIN, KEY.public_key())
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _bundle(root: Path) -> Path:
    store = MemoryNodeStore()
    entries = []
    for seq in range(9):
        data = canonical_bytes({"seq": seq, "event_type": "api.call", "decision": "allow"})
        store.append(leaf_hash(data))
        entries.append((seq, data))
    note = sign_note(make_checkpoint_body(ORIGIN, store.size, store.root()), ORIGIN, KEY)
    return write_bundle(
        root / "bundle",
        origin=ORIGIN,
        vkey=VKEY,
        entries=entries,
        checkpoints=[note],
        get=store.get,
    )


def _report(root: Path) -> Path:
    folder = root / "rpt-fuzz"
    folder.mkdir()
    files = {
        "report.json": b'{"id": "rpt-fuzz"}',
        "report.html": b"<html></html>",
        "report.pdf": b"%PDF-1.4 fuzz",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "manifest.json").write_bytes(
        build_manifest("rpt-fuzz", files, origin=ORIGIN, key=KEY)
    )
    return folder


def _mutate(folder: Path, data: st.DataObject) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    target = data.draw(st.sampled_from(files))
    blob = target.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "random", "empty", "delete"]))
    if how == "truncate" and blob:
        target.write_bytes(blob[: data.draw(st.integers(0, len(blob) - 1))])
    elif how == "flip" and blob:
        i = data.draw(st.integers(0, len(blob) - 1))
        target.write_bytes(
            blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1 :]
        )
    elif how == "random":
        target.write_bytes(data.draw(st.binary(max_size=4096)))
    elif how == "empty":
        target.write_bytes(b"")
    else:
        target.unlink()


def _check(
    make: Callable[[Path], Path],
    verify: Callable[[Path], object],
    clean: type[Exception],
    tmp_path: Path,
    data: st.DataObject,
) -> None:
    work = tmp_path / "case"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    folder = make(work)
    verify(folder)  # the untouched original verifies
    _mutate(folder, data)
    try:
        verify(folder)
    except clean:
        return
    # A mutation may be a no-op (a flip to the same byte cannot happen; an empty file that was
    # already empty can): then verification passing is right.


@FUZZ
@given(data=st.data())
def test_bundle_verifier_fails_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    _check(
        _bundle,
        lambda p: verify_bundle(p, trusted_vkey=VKEY),
        AuditVerificationError,
        tmp_path,
        data,
    )


@FUZZ
@given(data=st.data())
def test_report_verifier_fails_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    _check(_report, lambda p: verify_report_dir(p, VKEY), ReportVerificationError, tmp_path, data)


@FUZZ
@given(data=st.data())
def test_manifest_loader_fails_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    _check(
        lambda root: build_artifact(root / "artifact"), read_manifest, ManifestError, tmp_path, data
    )
