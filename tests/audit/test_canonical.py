"""RFC 8785 canonical JSON: the published vectors, number formatting and rejections."""

from __future__ import annotations

import json
import math
import struct

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.audit.canonical import (
    MAX_SAFE_INTEGER,
    canonical_bytes,
    format_number,
    parse_canonical,
)
from governance.audit.errors import CanonicalizationError

_PLAIN_MIN, _PLAIN_MAX = 1e-4, 1e16  # the plain float range of governance.audit.canonical


def test_rfc8785_section_3_2_2_example() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        '"literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_bytes(json.loads(source)) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    # The RFC's example: U+1F600 (surrogates D83D DE00) sorts before U+FB33, unlike code points.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_bytes(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert sorted(value) != keys  # code-point order would differ: the test has teeth


# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, text: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert format_number(value) == text
    assert canonical_bytes(value) == text.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (0.1, "0.1"),
        (123e-20, "1.23e-18"),
        (333333333.3333333, "333333333.3333333"),
        (0, "0"),
        (-42, "-42"),
        (MAX_SAFE_INTEGER, "9007199254740991"),
        (-MAX_SAFE_INTEGER, "-9007199254740991"),
        (2.0**60, "1152921504606847000"),
    ],
)
def test_number_formatting(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**53, -(2**53), 10**30, 10**400])
def test_rejects_numbers_without_an_exact_encoding(value: float) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"x": [value]})


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: 1}, {("a",): 1}, b"bytes", {"a": {1, 2}}, object(), "\ud800", {"\udc00": 1}],
)
def test_rejects_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes(value)


def test_deep_nesting_is_a_clean_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CanonicalizationError):
        canonical_bytes(deep)


def test_integral_floats_beyond_the_exact_range_round_trip_as_doubles() -> None:
    data = canonical_bytes({"t": 1e16, "u": 2.0**60})
    assert data == b'{"t":10000000000000000,"u":1152921504606847000}'
    assert parse_canonical(data) == {"t": 1e16, "u": 2.0**60}


def test_strings_are_escaped_like_ecmascript() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028é😀'
    encoded = canonical_bytes(text).decode("utf-8")
    assert encoded.startswith('"\\u0000\\u0001')
    assert "\\b\\t\\n\\u000b\\f\\r" in encoded
    assert encoded.endswith('\\"\\\\/\x7f\u2028é😀"')


def test_bool_and_none_and_containers() -> None:
    assert canonical_bytes({"b": [True, False, None], "a": (1, 2.5)}) == (
        b'{"a":[1,2.5],"b":[true,false,null]}'
    )


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # unsorted
        b'{"a": 1}',  # whitespace
        b'{"a":1.0}',  # number form
        b'{"a":1,"a":1}',  # duplicate member
        b'{"a":NaN}',
        b'"\\u00e9"',  # escape that canonical form writes as is
        b"\xff",
        b"",
        b'{"a":1}\n',
    ],
)
def test_parse_canonical_rejects_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(CanonicalizationError):
        parse_canonical(data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_canonical_round_trip_is_a_fixed_point(value: object) -> None:
    data = canonical_bytes(value)
    parsed = parse_canonical(data)
    assert canonical_bytes(parsed) == data
    # The value survives, so the encoding is faithful, not merely stable.
    assert parsed == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_round_trips_to_the_same_double(value: float) -> None:
    assert float(format_number(value)) == value


_json_no_floats = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_json_no_floats | json_values)
def test_fast_path_writes_exactly_what_the_reference_encoder_writes(value: object) -> None:
    from governance.audit import canonical

    reference: list[str] = []
    try:
        canonical._encode(value, reference.append)
        expected = "".join(reference).encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_plain_floats_are_the_ones_python_already_writes_canonically(value: float) -> None:
    from governance.audit import canonical

    if canonical._plain(value):
        assert json.dumps(value) == format_number(value)
        assert orjson.dumps(value) == format_number(value).encode()


_plain_strings = st.text(st.characters(codec="utf-8")) | st.text(
    st.characters(max_codepoint=0x7F), max_size=8
)


@settings(max_examples=500)
@given(
    st.dictionaries(
        st.text(st.characters(max_codepoint=0x7F), max_size=6),
        st.lists(
            _plain_strings
            | st.floats(_PLAIN_MIN, _PLAIN_MAX, exclude_max=True).filter(
                lambda f: not f.is_integer()
            )
            | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
            max_size=4,
        ),
        max_size=4,
    )
)
def test_orjson_writes_plain_values_exactly_as_the_reference_encoder(value: object) -> None:
    # The domain canonical_bytes hands to orjson: every string (control characters, U+2028,
    # astral characters), plain-range floats of either sign, exact integers, ASCII keys.
    from governance.audit import canonical

    value = {
        k: [-x if isinstance(x, float) and len(k) % 2 else x for x in v] for k, v in value.items()
    }
    assert canonical._plain(value)
    reference: list[str] = []
    canonical._encode(value, reference.append)
    assert canonical_bytes(value) == "".join(reference).encode("utf-8")


def test_what_orjson_refuses_gets_the_documented_error() -> None:
    with pytest.raises(CanonicalizationError, match="surrogate"):
        canonical_bytes({"a": "\ud800"})
    nested: list[object] = []
    for _ in range(300):  # past orjson's depth limit, within Python's recursion limit
        nested = [nested]
    assert canonical_bytes(nested) == b"[" * 301 + b"]" * 301


@pytest.mark.parametrize("value", [1e-4, 0.25, 1 / 3, 0.1 + 0.2, -123.456, 4503599627370495.5])
def test_plain_float_examples_take_the_fast_path_and_match(value: float) -> None:
    from governance.audit import canonical

    assert canonical._plain(value)
    assert canonical_bytes({"p": [value]}) == ('{"p":[' + format_number(value) + "]}").encode()


@pytest.mark.parametrize("value", [1.0, -0.0, 9.99e-5, 1e16, 1e21, 5e-324])
def test_floats_python_writes_differently_take_the_reference_encoder(value: float) -> None:
    from governance.audit import canonical

    assert not canonical._plain(value)
