"""encode_records validates untrusted JSON precisely; it agrees with encode_columns."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from inference_factories import manifest_doc

from inference.errors import InputValidationError
from inference.manifest import Manifest, parse_manifest
from inference.preprocessing import encode_columns, encode_records

MANIFEST = parse_manifest(manifest_doc())
ZEROS_MANIFEST = parse_manifest(
    manifest_doc(
        preprocessing={
            "numeric": {
                "age": {"mean": 38.5, "std": 13.25},
                "hours": {"mean": 3.5, "std": 0.75, "transform": "log1p"},
            },
            "unknown_category": "zeros",
        }
    )
)


def _good(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"age": 40, "hours": 40.0, "sex": "Male", "workclass": "Gov"}
    record.update(changes)
    return record


def test_encoding_follows_the_manifest() -> None:
    x = encode_records(MANIFEST, [_good(), _good(age=51.5, sex="Female", workclass="Private")])
    assert x.dtype == torch.float32 and x.shape == (2, 7)
    expected = [
        [(40 - 38.5) / 13.25, (math.log1p(40.0) - 3.5) / 0.75, 0, 1, 0, 0, 1],
        [(51.5 - 38.5) / 13.25, (math.log1p(40.0) - 3.5) / 0.75, 1, 0, 1, 0, 0],
    ]
    assert torch.equal(x, torch.tensor(expected, dtype=torch.float32))


def test_empty_request_encodes_to_zero_rows() -> None:
    assert encode_records(MANIFEST, []).shape == (0, 7)


BAD_RECORDS: dict[str, tuple[Any, str | None]] = {
    "missing field": ({k: v for k, v in _good().items() if k != "hours"}, "hours"),
    "unknown field": (_good(salary=10), "salary"),
    "number as string": (_good(age="40"), "age"),
    "number as null": (_good(age=None), "age"),
    "number as list": (_good(age=[40]), "age"),
    "bool as number": (_good(age=True), "age"),
    "false as number": (_good(hours=False), "hours"),
    "nan": (_good(age=float("nan")), "age"),
    "inf": (_good(hours=float("inf")), "hours"),
    "minus inf": (_good(age=-float("inf")), "age"),
    "int too large for a float": (_good(age=10**400), "age"),
    "finite but beyond float32": (_good(age=1e300), "age"),
    "log1p domain": (_good(hours=-1), "hours"),
    "category as number": (_good(sex=1), "sex"),
    "category as bool": (_good(sex=True), "sex"),
    "category as null": (_good(workclass=None), "workclass"),
    "unknown category": (_good(workclass="Never-worked"), "workclass"),
    "category wrong case": (_good(sex="male"), "sex"),
    "record is a list": ([40, 40.0, "Male", "Gov"], None),
    "record is a string": ("age=40", None),
    "record is null": (None, None),
    "record is a number": (3, None),
}


@pytest.mark.parametrize("bad", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
@pytest.mark.parametrize("position", [0, 2])
def test_bad_record_names_index_and_field(bad: tuple[Any, str | None], position: int) -> None:
    record, field = bad
    records = [_good(), _good(), _good()]
    records[position] = record
    with pytest.raises(InputValidationError) as info:
        encode_records(MANIFEST, records)
    assert info.value.record == position
    assert info.value.field == field
    assert info.value.message


def test_message_never_echoes_the_value() -> None:
    with pytest.raises(InputValidationError) as info:
        encode_records(MANIFEST, [_good(sex="4111-1111-1111-1111")])
    assert "4111" not in str(info.value)


def test_first_bad_record_is_reported() -> None:
    with pytest.raises(InputValidationError) as info:
        encode_records(MANIFEST, [_good(), _good(age="x"), _good(sex=None)])
    assert (info.value.record, info.value.field) == (1, "age")


def test_unknown_category_encodes_as_zeros_when_configured() -> None:
    x = encode_records(ZEROS_MANIFEST, [_good(workclass="Never-worked")])
    assert x[0, 4:].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(InputValidationError):  # still a string check
        encode_records(ZEROS_MANIFEST, [_good(workclass=3)])


def test_encode_columns_reports_missing_and_ragged_columns() -> None:
    cols = {"age": [40], "hours": [1.0], "sex": ["Male"]}
    with pytest.raises(ValueError, match="workclass"):
        encode_columns(MANIFEST, cols)
    with pytest.raises(ValueError, match="length"):
        encode_columns(MANIFEST, {**cols, "workclass": ["Gov", "Gov"]})


_number = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-(10**6), 10**6)
_hours = st.floats(min_value=-0.999, max_value=1e6, allow_nan=False) | st.integers(0, 10**6)


def _records(manifest: Manifest) -> st.SearchStrategy[list[dict[str, Any]]]:
    sexes = list(manifest.features[2].categories)
    works = list(manifest.features[3].categories)
    if manifest.unknown_category == "zeros":
        sexes.append("Unknown")
        works.append("Never-worked")
    record = st.fixed_dictionaries(
        {
            "age": _number,
            "hours": _hours,
            "sex": st.sampled_from(sexes),
            "workclass": st.sampled_from(works),
        }
    )
    return st.lists(record, min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zeros=st.booleans())
def test_records_and_columns_agree(data: st.DataObject, zeros: bool) -> None:
    manifest = ZEROS_MANIFEST if zeros else MANIFEST
    records = data.draw(_records(manifest))
    columns = {
        name: (np.array if name in ("sex", "workclass") else list)([r[name] for r in records])
        for name in manifest.feature_names
    }
    from_records = encode_records(manifest, records)
    from_columns = encode_columns(manifest, columns)
    assert from_records.dtype == from_columns.dtype == torch.float32
    # Both compute in float64 then round once to float32: the results are identical.
    assert torch.equal(from_records, from_columns)
