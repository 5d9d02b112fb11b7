"""A record's plaintext, joined from two canonical parts, is the canonical whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from governance.audit.canonical import canonical_bytes
from governance.audit.errors import CanonicalizationError
from governance.records.recorder import record_plaintext

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)


@given(
    request=st.dictionaries(st.text(max_size=5), _values, max_size=3),
    response=st.dictionaries(st.text(max_size=5), _values, max_size=3),
)
def test_joined_parts_equal_the_canonical_document(request: dict, response: dict) -> None:  # type: ignore[type-arg]
    try:
        parts = canonical_bytes(request), canonical_bytes(response)
    except CanonicalizationError:  # a lone surrogate has no canonical form
        return
    whole = canonical_bytes({"request": request, "response": response})
    assert record_plaintext(*parts) == whole
