"""The store-backed Merkle tree against a literal transcription of RFC 9162 §2.1."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.audit.errors import InvalidProofRequest, MissingNodeError
from governance.audit.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    append_keys,
    consistency_proof,
    consistency_proof_keys,
    getter_from_mapping,
    inclusion_proof,
    inclusion_proof_keys,
    leaf_hash,
    node_hash,
    nodes_to_store_on_append,
    nodes_to_store_on_batch_append,
    root_at,
    root_from_leaf_hashes,
    root_keys,
    verify_consistency,
    verify_inclusion,
)

# --- the reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1, recursion and all --------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d, True)


# ---------------------------------------------------------------------------------------------

EDGE_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65]
DATA = [f"entry {i}".encode() for i in range(70)]


@pytest.fixture(scope="module")
def store() -> MemoryNodeStore:
    tree = MemoryNodeStore()
    for data in DATA:
        tree.append(leaf_hash(data))
    return tree


def test_hash_domain_separation() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


@pytest.mark.parametrize("size", [0, *EDGE_SIZES, 70])
def test_roots_match_the_rfc(store: MemoryNodeStore, size: int) -> None:
    expected = mth(DATA[:size])
    assert root_at(size, store.get) == expected
    assert root_from_leaf_hashes([leaf_hash(d) for d in DATA[:size]]) == expected
    assert len(root_keys(size)) == bin(size).count("1")


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_every_inclusion_proof_matches_the_rfc_and_verifies(
    store: MemoryNodeStore, size: int
) -> None:
    root = mth(DATA[:size])
    for index in range(size):
        expected = path(index, DATA[:size])
        got = inclusion_proof(index, size, store.get)
        assert got == expected
        assert verify_inclusion(leaf_hash(DATA[index]), index, size, got, root)
        # The batched form: fetch the listed keys, then build from the dict alone.
        keys = inclusion_proof_keys(index, size)
        fetched = {key: store.get(*key) for key in keys}
        assert inclusion_proof(index, size, getter_from_mapping(fetched)) == expected
        assert len(keys) <= 2 * size.bit_length()


def test_every_consistency_proof_up_to_33_matches_the_rfc_and_verifies(
    store: MemoryNodeStore,
) -> None:
    for size2 in range(1, 34):
        root2 = mth(DATA[:size2])
        for size1 in range(1, size2 + 1):
            expected = proof(size1, DATA[:size2])
            got = consistency_proof(size1, size2, store.get)
            assert got == expected, (size1, size2)
            assert verify_consistency(size1, size2, got, mth(DATA[:size1]), root2)
            keys = consistency_proof_keys(size1, size2)
            fetched = getter_from_mapping({key: store.get(*key) for key in keys})
            assert consistency_proof(size1, size2, fetched) == expected


@pytest.mark.parametrize(("size1", "size2"), [(16, 17), (17, 32), (32, 33), (31, 65), (64, 65)])
def test_consistency_at_power_of_two_edges(store: MemoryNodeStore, size1: int, size2: int) -> None:
    got = consistency_proof(size1, size2, store.get)
    assert got == proof(size1, DATA[:size2])
    assert verify_consistency(size1, size2, got, mth(DATA[:size1]), mth(DATA[:size2]))


def test_appends_store_exactly_the_completed_subtrees() -> None:
    nodes: dict[tuple[int, int], bytes] = {}
    for n, data in enumerate(DATA[:40]):
        needed = append_keys(n)
        rows = nodes_to_store_on_append(
            n, leaf_hash(data), getter_from_mapping({key: nodes[key] for key in needed})
        )
        assert rows[0] == (0, n, leaf_hash(data))
        for level, index, value in rows:
            assert (level, index) not in nodes
            # Node (k, i) is the root of leaves [i * 2**k, (i + 1) * 2**k).
            assert value == mth(DATA[index << level : (index + 1) << level])
            nodes[(level, index)] = value
    # A tree of n leaves stores 2n - popcount(n) nodes: every perfect aligned subtree.
    assert len(nodes) == 2 * 40 - bin(40).count("1")


@pytest.mark.parametrize(("start", "count"), [(0, 1), (0, 7), (5, 11), (8, 8), (13, 20)])
def test_batch_append_equals_one_by_one(start: int, count: int) -> None:
    one = MemoryNodeStore()
    one.extend([leaf_hash(d) for d in DATA[:start]])
    batch = MemoryNodeStore()
    batch.extend([leaf_hash(d) for d in DATA[:start]])
    needed = set(append_keys(start, count))
    reads: list[tuple[int, int]] = []

    def counting_get(level: int, index: int) -> bytes:
        reads.append((level, index))
        return batch.get(level, index)

    rows = nodes_to_store_on_batch_append(
        start, [leaf_hash(d) for d in DATA[start : start + count]], counting_get
    )
    # The getter is asked for exactly the keys append_keys announced, so one query suffices.
    assert set(reads) == needed
    for data in DATA[start : start + count]:
        one.append(leaf_hash(data))
    for level, index, value in rows:
        assert one.get(level, index) == value


def test_missing_nodes_and_bad_requests_raise_domain_errors(store: MemoryNodeStore) -> None:
    with pytest.raises(MissingNodeError):
        root_at(71, store.get)
    with pytest.raises(MissingNodeError):
        inclusion_proof(0, 4, getter_from_mapping({}))
    for bad in [(5, 5), (-1, 3), (0, 0)]:
        with pytest.raises(InvalidProofRequest):
            inclusion_proof(*bad, store.get)
    with pytest.raises(InvalidProofRequest):
        consistency_proof(6, 5, store.get)
    with pytest.raises(InvalidProofRequest):
        nodes_to_store_on_append(0, b"short", store.get)
    assert consistency_proof(0, 9, store.get) == []
    assert consistency_proof(9, 9, store.get) == []


# --- RFC 9162 §2.1.3.2 / §2.1.4.2 verification edge cases -------------------------------------


@pytest.fixture(scope="module")
def seven(store: MemoryNodeStore) -> tuple[bytes, list[bytes]]:
    return mth(DATA[:7]), [leaf_hash(d) for d in DATA[:7]]


def test_inclusion_rejects_wrong_index_size_or_leaf(
    store: MemoryNodeStore, seven: tuple[bytes, list[bytes]]
) -> None:
    root, leaves = seven
    good = inclusion_proof(3, 7, store.get)
    assert verify_inclusion(leaves[3], 3, 7, good, root)
    assert not verify_inclusion(leaves[3], 2, 7, good, root)
    assert not verify_inclusion(leaves[3], 7, 7, good, root)  # index == size
    assert not verify_inclusion(leaves[3], 9, 7, good, root)  # index > size
    assert not verify_inclusion(leaves[3], -1, 7, good, root)
    # A leaf in the left perfect subtree has the same path in trees of 5..8 leaves (the RFC
    # does not bind those sizes); a leaf on the right edge does, so test the size there.
    edge = inclusion_proof(6, 7, store.get)
    assert verify_inclusion(leaves[6], 6, 7, edge, root)
    assert not verify_inclusion(leaves[6], 6, 8, edge, root)
    assert not verify_inclusion(leaves[6], 6, 6, edge, root)
    assert not verify_inclusion(leaves[6], 5, 7, edge, root)
    assert not verify_inclusion(leaves[2], 3, 7, good, root)
    assert not verify_inclusion(leaves[3], 3, 7, good, b"\x00" * 32)


def test_inclusion_rejects_extra_missing_or_altered_hashes(
    store: MemoryNodeStore, seven: tuple[bytes, list[bytes]]
) -> None:
    root, leaves = seven
    good = inclusion_proof(4, 7, store.get)
    assert not verify_inclusion(leaves[4], 4, 7, [*good, good[0]], root)
    assert not verify_inclusion(leaves[4], 4, 7, [*good, root], root)
    assert not verify_inclusion(leaves[4], 4, 7, good[:-1], root)
    assert not verify_inclusion(leaves[4], 4, 7, [], root)
    assert not verify_inclusion(leaves[4], 4, 7, [good[1], good[0], *good[2:]], root)
    assert not verify_inclusion(leaves[4], 4, 7, [good[0][:31], *good[1:]], root)


def test_inclusion_in_a_one_leaf_tree_needs_an_empty_proof() -> None:
    leaf = leaf_hash(b"only")
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 1, [leaf], leaf)
    assert not verify_inclusion(leaf, 0, 0, [], leaf)


def test_consistency_edge_cases(store: MemoryNodeStore) -> None:
    r = {n: mth(DATA[:n]) for n in (0, 1, 4, 5, 7, 8)}
    good = consistency_proof(5, 8, store.get)
    assert verify_consistency(5, 8, good, r[5], r[8])
    # Equal sizes: empty proof and equal roots only.
    assert verify_consistency(7, 7, [], r[7], r[7])
    assert not verify_consistency(7, 7, [], r[7], r[8])
    assert not verify_consistency(7, 7, [r[7]], r[7], r[7])
    # From the empty tree: empty proof, and size-0 root must be the empty hash.
    assert verify_consistency(0, 8, [], EMPTY_ROOT, r[8])
    assert not verify_consistency(0, 8, [], r[1], r[8])
    assert not verify_consistency(0, 8, [r[1]], EMPTY_ROOT, r[8])
    # Reversed, empty, long, short, altered.
    assert not verify_consistency(8, 5, good, r[8], r[5])
    assert not verify_consistency(5, 8, [], r[5], r[8])
    assert not verify_consistency(5, 8, [*good, good[0]], r[5], r[8])
    assert not verify_consistency(5, 8, good[:-1], r[5], r[8])
    assert not verify_consistency(5, 8, good[1:], r[5], r[8])
    assert not verify_consistency(5, 8, [good[0], b"\x00" * 32, *good[2:]], r[5], r[8])
    assert not verify_consistency(5, 7, good, r[5], r[7])
    assert not verify_consistency(4, 8, good, r[4], r[8])
    assert not verify_consistency(5, 8, good, r[4], r[8])
    # A power-of-two first size: the proof omits root1, the verifier prepends it.
    four = consistency_proof(4, 8, store.get)
    assert verify_consistency(4, 8, four, r[4], r[8])
    assert not verify_consistency(4, 8, [r[4], *four], r[4], r[8])


@given(st.integers(1, 70), st.data())
def test_random_inclusion_and_consistency_agree_with_the_reference(
    size2: int, data: st.DataObject
) -> None:
    tree = _STORE
    size1 = data.draw(st.integers(1, size2))
    index = data.draw(st.integers(0, size2 - 1))
    root2 = mth(DATA[:size2])
    assert verify_inclusion(
        leaf_hash(DATA[index]), index, size2, inclusion_proof(index, size2, tree.get), root2
    )
    assert verify_consistency(
        size1, size2, consistency_proof(size1, size2, tree.get), mth(DATA[:size1]), root2
    )


_STORE = MemoryNodeStore()
_STORE.extend([leaf_hash(d) for d in DATA])


@pytest.mark.slow
def test_large_tree_proofs_stay_logarithmic() -> None:
    tree = MemoryNodeStore()
    size = (1 << 16) + 3
    tree.extend([leaf_hash(i.to_bytes(4, "big")) for i in range(size)])
    root = tree.root()
    assert root == root_from_leaf_hashes([leaf_hash(i.to_bytes(4, "big")) for i in range(size)])
    for index in (0, 1, size // 2, size - 2, size - 1):
        leaf = leaf_hash(index.to_bytes(4, "big"))
        got = inclusion_proof(index, size, tree.get)
        assert len(got) <= size.bit_length()
        assert verify_inclusion(leaf, index, size, got, root)
    assert verify_consistency(
        1 << 16, size, consistency_proof(1 << 16, size, tree.get), tree.root(1 << 16), root
    )
