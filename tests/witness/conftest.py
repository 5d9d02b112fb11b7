"""Witness fixtures: a log key and an in-memory tree to sign checkpoints of, and witnesses."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.merkle import MemoryNodeStore, consistency_proof, leaf_hash
from governance.audit.note import make_checkpoint_body, sign_note, vkey_for
from governance.config import Settings
from governance.witness.identity import WitnessIdentity, init_witness
from tests.audit.conftest import FilledLog, empty_log

ORIGIN = "example.test/log"


@dataclass
class SampleLog:
    """A log outside any database: its key, its tree, and signed checkpoints of it."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tree: MemoryNodeStore = field(default_factory=MemoryNodeStore)
    # Entries differ between two logs of different histories.
    history: str = "main"

    @property
    def vkey(self) -> str:
        return vkey_for(ORIGIN, self.key.public_key())

    def grow(self, count: int) -> None:
        start = self.tree.size
        self.tree.extend([leaf_hash(f"{self.history} {start + i}".encode()) for i in range(count)])

    def note(self, size: int | None = None, root: bytes | None = None) -> str:
        size = self.tree.size if size is None else size
        root = self.tree.root(size) if root is None else root
        return sign_note(make_checkpoint_body(ORIGIN, size, root), ORIGIN, self.key)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.tree.size if new is None else new
        return consistency_proof(old, new, self.tree.get) if old not in (0, new) else []


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(p).decode() for p in proof)]
    return ("".join(line + "\n" for line in lines) + "\n" + note).encode()


def origin_hash(origin: str = ORIGIN) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()


@pytest.fixture
def test_log() -> SampleLog:
    log = SampleLog()
    log.grow(10)
    return log


@pytest.fixture
def witness_identity(tmp_path: Path) -> WitnessIdentity:
    return init_witness(tmp_path / "witness", "witness.test/w1")


@pytest.fixture
def audit_db(settings: Settings) -> Iterator[FilledLog]:
    """An empty, migrated log with its signing key (every backend in ``db_url``)."""
    yield from empty_log(settings)
