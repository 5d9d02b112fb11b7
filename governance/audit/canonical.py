"""Canonical JSON as RFC 8785 (JSON Canonicalization Scheme, JCS) defines it.

One value has exactly one encoding, so an entry's hash does not depend on who serialised it:

- object members sorted by their names compared as UTF-16 code units (RFC 8785 §3.2.3), which
  differs from code-point order only for characters above U+FFFF;
- no insignificant whitespace; UTF-8 output;
- strings escaped as ECMAScript ``JSON.stringify`` does (``\\b \\t \\n \\f \\r``, other control
  characters as lowercase ``\\u00xx``, ``"`` and ``\\``; everything else as is);
- numbers as ECMAScript ``Number.prototype.toString`` formats an IEEE 754 double, so ``1.0``
  becomes ``1``, ``-0.0`` becomes ``0`` and ``1e21`` becomes ``1e+21``.

Python integers are accepted only within the IEEE 754 exact range (|n| <= 2**53 - 1, as I-JSON,
RFC 7493, requires): beyond it another JCS implementation would round them, so the same entry
would hash differently. Encode larger numbers (nanosecond timestamps, ids) as strings. Floats
are always doubles: ``1e16`` encodes as ``10000000000000000``, which ``parse_canonical`` reads
back as a float because JCS numbers are doubles, whatever their text looks like.
NaN, infinities, non-string keys, lone surrogates and any type other than dict, list, tuple,
str, int, float, bool and None are rejected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

import orjson

from governance.audit.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "canonical_bytes", "format_number", "parse_canonical"]

MAX_SAFE_INTEGER = 2**53 - 1
_INF = float("inf")
# Where Python's float repr and ECMAScript's Number::toString write the same text (see _plain).
_PLAIN_FLOAT_MIN = 1e-4
_PLAIN_FLOAT_MAX = 1e16


def _utf16_order(item: tuple[str, Any]) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the code units do. surrogatepass keeps a lone
    # surrogate sortable here; the final UTF-8 encoding rejects it.
    return item[0].encode("utf-16-be", "surrogatepass")


def format_number(value: int | float) -> str:
    """Format a number as ECMAScript's Number.prototype.toString does (RFC 8785 §3.2.2.3).

    Args:
        value: an int within ±(2**53 - 1) or a finite float.

    Returns:
        The canonical text of the number.

    Raises:
        CanonicalizationError: NaN, an infinity, or an integer outside the exact double range.
    """
    if isinstance(value, bool):
        raise CanonicalizationError("a boolean is not a number")
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(int(value))
        raise CanonicalizationError(
            "integer outside ±(2**53 - 1) cannot be canonicalised exactly; encode it as a string"
        )
    if value != value or value in (_INF, -_INF):
        raise CanonicalizationError("NaN and infinities have no JSON encoding")
    if value == 0:
        return "0"  # also -0.0, as ECMAScript prints it
    sign = "-" if value < 0 else ""
    # repr gives the shortest digit string that round-trips, the same digits ECMAScript picks.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    digits = all_digits.lstrip("0")
    # value = 0.<digits> x 10**point, the form ECMA-262 Number::toString reasons in.
    point = len(int_part) + (int(exp_text) if exp_text else 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * (-point) + digits
    exponent = point - 1
    exp_sign = "+" if exponent >= 0 else "-"
    head = digits[0] if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{head}e{exp_sign}{abs(exponent)}"


def _encode(value: Any, out: Callable[[str], None]) -> None:
    # Exact type checks first: they are the common case and cheaper than isinstance chains.
    kind = type(value)
    if kind is str:
        out(encode_basestring(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif kind is int or kind is float:
        out(format_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(
                    f"object keys must be strings, not {type(key).__name__}"
                )
        out("{")
        first = True
        for key, item in sorted(value.items(), key=_utf16_order):
            if not first:
                out(",")
            first = False
            out(encode_basestring(key))
            out(":")
            _encode(item, out)
        out("}")
    elif isinstance(value, list | tuple):
        out("[")
        for position, item in enumerate(value):
            if position:
                out(",")
            _encode(item, out)
        out("]")
    elif isinstance(value, str):
        out(encode_basestring(str(value)))
    elif isinstance(value, bool):
        out("true" if value else "false")
    elif isinstance(value, int | float):
        out(format_number(value))
    else:
        raise CanonicalizationError(f"type {type(value).__name__} has no canonical JSON encoding")


def _plain(value: Any) -> bool:
    """Whether orjson (and ``json.dumps``) already write ``value`` canonically.

    They do for strings (escaped as ECMAScript does: ``\\b \\t \\n \\f \\r``, other
    control characters as lowercase ``\\u00xx``), None, booleans, integers in the exact range,
    and objects whose keys are ASCII (code-point order then equals RFC 8785's UTF-16 order).
    Floats only in part: all print the shortest digits that round-trip, and for a non-integral
    magnitude in [1e-4, 1e16) all print them in plain decimal notation (``0.25``), so those
    agree; integral floats (``1.0`` against ``1``) and the exponent forms (``1e-05`` against
    ``0.00001``) do not, and take the reference encoder. tests/audit/test_canonical.py checks
    both encoders against the reference on this domain.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is float:
        # NaN fails the comparison and infinity the bound; both go to the reference encoder,
        # which rejects them.
        return _PLAIN_FLOAT_MIN <= abs(value) < _PLAIN_FLOAT_MAX and not value.is_integer()
    if kind is dict:
        # Plain loops, strings settled inline: this runs on every entry the log appends.
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and item is not None and not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            if type(item) is not str and item is not None and not _plain(item):
                return False
        return True
    return False


def canonical_bytes(obj: Any) -> bytes:
    """Encode a JSON-like value as RFC 8785 canonical JSON.

    Args:
        obj: dicts with str keys, lists, tuples, str, int, float, bool and None, nested.

    Returns:
        The canonical UTF-8 bytes.

    Raises:
        CanonicalizationError: an unsupported type, a non-string key, NaN or an infinity, an
            integer outside ±(2**53 - 1), a lone surrogate, or nesting too deep to encode.
    """
    parts: list[str] = []
    try:
        if _plain(obj):
            # orjson writes such a value exactly as the reference encoder below does (the
            # strings' escapes, the shortest round-trip digits of a plain-range float, keys
            # sorted by code point), at about a tenth of the cost of even the json module's C
            # encoder. Whatever it refuses (a lone surrogate, nesting past its depth limit)
            # goes to the reference encoder, which raises the error this function documents.
            try:
                return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:
                pass
        _encode(obj, parts.append)
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalizationError("a string contains a lone surrogate") from None
    except RecursionError:
        raise CanonicalizationError("value is nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise CanonicalizationError(f"{name} is not valid JSON")


def _parse_int(text: str) -> int | float:
    # Integral text beyond the exact range is a double in JCS (what 1e16 encodes to).
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(text)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise CanonicalizationError("an object has a duplicate member name")
    return members


def parse_canonical(data: bytes) -> Any:
    """Parse JSON bytes and check that they are exactly the canonical encoding of their value.

    Args:
        data: the bytes to check.

    Returns:
        The parsed value (dicts, lists, str, int, float, bool, None).

    Raises:
        CanonicalizationError: invalid UTF-8 or JSON, duplicate member names, NaN/Infinity, or
            any byte that differs from the canonical encoding.
    """
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except CanonicalizationError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CanonicalizationError("not valid UTF-8 JSON") from None
    if canonical_bytes(value) != data:
        raise CanonicalizationError("bytes are valid JSON but not its canonical encoding")
    return value
