"""The RFC 6962 / RFC 9162 Merkle tree over audit entries, backed by a store of subtree hashes.

The store keeps one hash per *perfect aligned subtree* ``(level, index)``: level 0 holds the
leaf hashes and node ``(k, i)`` covers leaves ``[i * 2**k, (i + 1) * 2**k)``. Every subtree the
RFC's recursion visits is either perfect (so stored) or ends at the tree's right edge; the
latter splits into at most ``log2(n)`` stored perfect subtrees, so a root or a proof reads
O(log n) stored hashes and hashes O(log n) times.

Each operation comes in two halves so a database can fetch in one query: ``*_keys`` lists the
``(level, index)`` pairs it needs, and the operation itself takes a getter, for which
``getter_from_mapping`` wraps the fetched dict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from governance.audit.errors import InvalidProofRequest, MissingNodeError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryNodeStore",
    "NodeGetter",
    "NodeKey",
    "append_keys",
    "consistency_proof",
    "consistency_proof_keys",
    "getter_from_mapping",
    "inclusion_proof",
    "inclusion_proof_keys",
    "leaf_hash",
    "node_hash",
    "nodes_to_store_on_append",
    "nodes_to_store_on_batch_append",
    "root_at",
    "root_from_leaf_hashes",
    "root_keys",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
NodeGetter = Callable[[int, int], bytes]
# (level, index, hash) rows for the store.
StoredNode = tuple[int, int, bytes]
# A subtree of the RFC recursion as (first leaf, number of leaves).
_Range = tuple[int, int]

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Hash one entry as an RFC 6962 leaf: SHA-256(0x00 || data).

    Args:
        data: the entry's canonical bytes.

    Returns:
        The 32-byte leaf hash.
    """
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children as an RFC 6962 interior node: SHA-256(0x01 || left || right).

    Args:
        left: the left child's hash.
        right: the right child's hash.

    Returns:
        The 32-byte node hash.
    """
    return _sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Compute the tree head of an in-memory list of leaf hashes.

    Pairs neighbours level by level and carries an odd last node up unchanged, which yields
    the same root as the RFC's split at the largest power of two, in O(n) hashes.

    Args:
        leaf_hashes: the leaf hashes in log order.

    Returns:
        The root hash; SHA-256 of the empty string for no leaves.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha = _sha256
    while len(level) > 1:
        pairs = zip(level[::2], level[1::2], strict=False)
        paired = [sha(b"\x01" + a + b).digest() for a, b in pairs]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def getter_from_mapping(nodes: Mapping[NodeKey, bytes]) -> NodeGetter:
    """Turn nodes fetched in bulk into the getter the tree functions take.

    Args:
        nodes: hashes keyed by ``(level, index)``.

    Returns:
        A getter that raises ``MissingNodeError`` for an absent key.
    """

    def get(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError:
            raise MissingNodeError(f"node store lacks node ({level}, {index})") from None

    return get


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_keys(start: int, size: int) -> list[NodeKey]:
    # Left to right, largest first: the binary expansion of size. The RFC recursion only asks
    # for ranges whose start is a multiple of their largest part, so each part is aligned.
    keys: list[NodeKey] = []
    position = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, position >> level))
            position += 1 << level
    return keys


def _range_hash(start: int, size: int, get: NodeGetter) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    parts = [get(level, index) for level, index in _perfect_keys(start, size)]
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = _sha256(b"\x01" + part + result).digest()
    return result


def _keys_of(ranges: list[_Range]) -> list[NodeKey]:
    keys: list[NodeKey] = []
    for start, size in ranges:
        keys.extend(_perfect_keys(start, size))
    return keys


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidProofRequest(f"{what} must be a non-negative integer")


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise InvalidProofRequest("leaf index must be below the tree size")
    # RFC 9162 §2.1.3.1 PATH(m, D[n]), unrolled top-down; the proof lists the deepest first.
    ranges: list[_Range] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _largest_power_of_two_below(n)
        if m < k:
            ranges.append((start + k, n - k))
            n = k
        else:
            ranges.append((start, k))
            start, m, n = start + k, m - k, n - k
    ranges.reverse()
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[_Range]:
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    if size1 > size2:
        raise InvalidProofRequest("first tree size must not exceed the second")
    if size1 == 0 or size1 == size2:
        return []
    # RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b), unrolled top-down.
    ranges: list[_Range] = []
    start, m, n, whole = 0, size1, size2, True
    while m != n:
        k = _largest_power_of_two_below(n)
        if m <= k:
            ranges.append((start + k, n - k))
            n = k
        else:
            ranges.append((start, k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        ranges.append((start, m))
    ranges.reverse()
    return ranges


def root_keys(size: int) -> list[NodeKey]:
    """List the stored nodes ``root_at(size, ...)`` reads.

    Args:
        size: the tree size.

    Returns:
        ``(level, index)`` keys, at most ``size.bit_length()`` of them.

    Raises:
        InvalidProofRequest: a negative size.
    """
    _check_size(size, "tree size")
    return _perfect_keys(0, size)


def root_at(size: int, get: NodeGetter) -> bytes:
    """Compute the tree head of the first ``size`` leaves from stored subtree hashes.

    Args:
        size: the tree size; 0 gives SHA-256 of the empty string.
        get: fetches the stored hash of ``(level, index)``.

    Returns:
        The 32-byte root hash.

    Raises:
        InvalidProofRequest: a negative size.
    """
    _check_size(size, "tree size")
    return _range_hash(0, size, get)


def inclusion_proof_keys(index: int, size: int) -> list[NodeKey]:
    """List the stored nodes ``inclusion_proof(index, size, ...)`` reads.

    Args:
        index: the leaf index.
        size: the tree size.

    Returns:
        ``(level, index)`` keys, O(log size) of them.

    Raises:
        InvalidProofRequest: ``index >= size`` or a negative value.
    """
    return _keys_of(_inclusion_ranges(index, size))


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """Build the RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``size``.

    Args:
        index: the leaf index, below ``size``.
        size: the tree size.
        get: fetches the stored hash of ``(level, index)``.

    Returns:
        The audit path, from the leaf's sibling up to the root's child.

    Raises:
        InvalidProofRequest: ``index >= size`` or a negative value.
    """
    return [_range_hash(start, n, get) for start, n in _inclusion_ranges(index, size)]


def consistency_proof_keys(size1: int, size2: int) -> list[NodeKey]:
    """List the stored nodes ``consistency_proof(size1, size2, ...)`` reads.

    Args:
        size1: the older tree size.
        size2: the newer tree size.

    Returns:
        ``(level, index)`` keys, O(log size2) of them.

    Raises:
        InvalidProofRequest: ``size1 > size2`` or a negative value.
    """
    return _keys_of(_consistency_ranges(size1, size2))


def consistency_proof(size1: int, size2: int, get: NodeGetter) -> list[bytes]:
    """Build the RFC 9162 §2.1.4.1 consistency proof between two tree sizes.

    The proof is empty when ``size1 == size2`` (as the RFC defines) and when ``size1 == 0``
    (the empty tree is a prefix of every tree).

    Args:
        size1: the older tree size.
        size2: the newer tree size, at least ``size1``.
        get: fetches the stored hash of ``(level, index)``.

    Returns:
        The consistency path.

    Raises:
        InvalidProofRequest: ``size1 > size2`` or a negative value.
    """
    return [_range_hash(start, n, get) for start, n in _consistency_ranges(size1, size2)]


def nodes_to_store_on_append(n: int, leaf: bytes, get: NodeGetter) -> list[StoredNode]:
    """List the nodes to store when leaf ``n`` is appended to a tree of ``n`` leaves.

    Args:
        n: the current tree size (the new leaf's index).
        leaf: the new entry's leaf hash (``leaf_hash(canonical)``), not the entry itself.
        get: fetches a stored hash; called only for the left siblings being completed, which
            are ``append_keys(n)``.

    Returns:
        ``(level, index, hash)``: the leaf at level 0, then each newly completed parent.

    Raises:
        InvalidProofRequest: a negative size or a leaf that is not 32 bytes.
    """
    return nodes_to_store_on_batch_append(n, [leaf], get)


def append_keys(n: int, count: int = 1) -> list[NodeKey]:
    """List the stored nodes that appending ``count`` leaves to a tree of ``n`` reads.

    Args:
        n: the current tree size.
        count: how many leaves the batch appends.

    Returns:
        ``(level, index)`` keys of existing nodes, at most ``n.bit_length()`` of them.

    Raises:
        InvalidProofRequest: a negative size or count.
    """
    _check_size(n, "tree size")
    _check_size(count, "leaf count")
    keys: list[NodeKey] = []
    for position in range(n, n + count):
        level = 0
        while position & 1:
            # The left sibling predates the batch when all the leaves it covers do.
            if position << level <= n:
                keys.append((level, position - 1))
            position >>= 1
            level += 1
    return list(dict.fromkeys(keys))


def nodes_to_store_on_batch_append(
    n: int, leaves: Sequence[bytes], get: NodeGetter
) -> list[StoredNode]:
    """List the nodes to store when a group commit appends several leaves at once.

    Args:
        n: the current tree size (the first new leaf's index).
        leaves: the new leaf hashes, in order.
        get: fetches a stored hash; called only for ``append_keys(n, len(leaves))``.

    Returns:
        ``(level, index, hash)`` rows, each leaf followed by the parents it completes.

    Raises:
        InvalidProofRequest: a negative size or a leaf that is not 32 bytes.
    """
    _check_size(n, "tree size")
    new: dict[NodeKey, bytes] = {}
    rows: list[StoredNode] = []
    for offset, leaf in enumerate(leaves):
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise InvalidProofRequest("a leaf must be a 32-byte leaf hash")
        position, level, current = n + offset, 0, leaf
        rows.append((0, position, current))
        new[(0, position)] = current
        while position & 1:
            sibling = new.get((level, position - 1))
            if sibling is None:
                sibling = get(level, position - 1)
            current = _sha256(b"\x01" + sibling + current).digest()
            position >>= 1
            level += 1
            rows.append((level, position, current))
            new[(level, position)] = current
    return rows


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof exactly as RFC 9162 §2.1.3.2 describes.

    Args:
        leaf_hash: the leaf hash of the entry.
        index: the entry's leaf index.
        tree_size: the size of the tree the root belongs to.
        proof: the audit path.
        root: the trusted root hash at ``tree_size``.

    Returns:
        True only if the proof shows the leaf at ``index`` in that tree; malformed input
        (a wrong-length hash, ``index >= tree_size``, a proof too long or too short) is False.
    """
    if not (_is_count(index) and _is_count(tree_size) and _is_hash(leaf_hash) and _is_hash(root)):
        return False
    if index >= tree_size or not all(_is_hash(p) for p in proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    sha = _sha256
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    """Check a consistency proof as RFC 9162 §2.1.4.2 describes, with its edge cases.

    ``size1 == size2`` needs an empty proof and equal roots. ``size1 == 0`` needs an empty
    proof and ``root1`` equal to the empty tree's hash. ``size1 > size2`` is False.

    Args:
        size1: the older tree size.
        size2: the newer tree size.
        proof: the consistency path.
        root1: the trusted root at ``size1``.
        root2: the trusted root at ``size2``.

    Returns:
        True only if the tree of ``size2`` extends the tree of ``size1``.
    """
    if not (_is_count(size1) and _is_count(size2) and _is_hash(root1) and _is_hash(root2)):
        return False
    if size1 > size2 or not all(_is_hash(p) for p in proof):
        return False
    if size1 == size2:
        return len(proof) == 0 and root1 == root2
    if size1 == 0:
        return len(proof) == 0 and root1 == EMPTY_ROOT
    if len(proof) == 0:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    sha = _sha256
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha(b"\x01" + c + fr).digest()
            sr = sha(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


class MemoryNodeStore:
    """A dict-backed node store: the reference the database store must agree with.

    Useful for tests, for building a bundle from an in-memory log, and for recomputing a tree.
    """

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self._size = 0

    @property
    def size(self) -> int:
        """The number of leaves appended."""
        return self._size

    def get(self, level: int, index: int) -> bytes:
        """Return the stored hash of ``(level, index)``; ``MissingNodeError`` if absent."""
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise MissingNodeError(f"node store lacks node ({level}, {index})") from None

    def append(self, leaf: bytes) -> int:
        """Append one leaf hash and return its index."""
        return self.extend([leaf])

    def extend(self, leaves: Sequence[bytes]) -> int:
        """Append leaf hashes as one batch and return the first new index."""
        first = self._size
        for level, index, value in nodes_to_store_on_batch_append(first, leaves, self.get):
            self._nodes[(level, index)] = value
        self._size += len(leaves)
        return first

    def root(self, size: int | None = None) -> bytes:
        """Return the root at ``size`` (default: the whole tree)."""
        return root_at(self._size if size is None else size, self.get)
