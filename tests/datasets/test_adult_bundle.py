"""The bundled Adult data: format traps, row counts, hashes, sensitive bins."""

from __future__ import annotations

import numpy as np
import pytest

from governance.datasets import ADULT_SCHEMA, content_hash, load_adult

README_SHA256 = {
    "adult.data.gz": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test.gz": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}


@pytest.fixture(scope="module")
def adult():  # type: ignore[no-untyped-def]
    return load_adult()


def test_unzipped_files_match_the_readme_hashes() -> None:
    folder = ADULT_SCHEMA.parent
    for name, expected in README_SHA256.items():
        assert content_hash(folder / name) == expected
    readme = (folder / "README.md").read_text()
    assert "10.24432/C5XW20" in readme and "CC BY 4.0" in readme


def test_row_counts_after_dropping_missing_values(adult) -> None:  # type: ignore[no-untyped-def]
    assert len(adult.train) == 30162
    assert len(adult.test) == 15060
    # 32,561 and 16,281 raw rows; the test file's first line is not a row.
    assert adult.rows_dropped == {"train": 32561 - 30162, "test": 16281 - 15060}
    assert adult.file_hashes == {
        "adult.data.gz": README_SHA256["adult.data.gz"],
        "adult.test.gz": README_SHA256["adult.test.gz"],
    }


def test_labels_parse_in_both_files(adult) -> None:  # type: ignore[no-untyped-def]
    for split in (adult.train, adult.test):
        assert set(np.unique(split.labels)) == {0, 1}
        assert split.labels.dtype == np.int64
    # The test labels carry a trailing "." that must not turn every row negative.
    assert 0.23 < adult.train.labels.mean() < 0.26
    assert 0.23 < adult.test.labels.mean() < 0.26


def test_fields_are_trimmed_and_typed(adult) -> None:  # type: ignore[no-untyped-def]
    feats = adult.test.features
    assert list(feats.columns) == list(adult.schema.feature_names)
    assert "fnlwgt" not in feats.columns
    assert set(feats["sex"]) == {"Female", "Male"}
    assert feats["age"].dtype == np.float64
    assert not feats.isna().any().any()
    assert (feats == "?").sum().sum() == 0


def test_sensitive_attributes_use_public_bins(adult) -> None:  # type: ignore[no-untyped-def]
    sens = adult.train.sensitive
    assert list(sens.columns) == ["sex", "race", "age_group"]
    assert set(sens["age_group"]) == {"17-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    young = adult.train.features["age"] < 25
    assert (sens.loc[young, "age_group"] == "17-24").all()
