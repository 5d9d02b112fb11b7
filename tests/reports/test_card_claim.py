"""The report never repeats a model card's DP statement that the ledger does not cover."""

from __future__ import annotations

from typing import Any

from governance.reports.sections import _card_with_claim

UPLOADED: dict[str, Any] = {
    "format": "warden-model-card/1",
    "model_details": {"name": "m", "differential_privacy": "(0.1, 1e-05)-differential privacy"},
}


def test_an_uncovered_statement_is_replaced_and_kept_labelled() -> None:
    shown = _card_with_claim(UPLOADED, "none", "no DP guarantee: no ledger run made it")
    details = shown["model_details"]
    assert details["differential_privacy"] == "no DP guarantee: no ledger run made it"
    assert details["differential_privacy_in_artifact"] == "(0.1, 1e-05)-differential privacy"
    assert UPLOADED["model_details"]["differential_privacy"].startswith("(0.1")  # not mutated


def test_a_void_claim_is_stated_as_void() -> None:
    shown = _card_with_claim(UPLOADED, "void", "void DP claim until retrained")
    assert shown["model_details"]["differential_privacy"] == "void DP claim until retrained"


def test_a_covered_card_and_a_missing_card_are_left_alone() -> None:
    assert _card_with_claim(UPLOADED, "ledger", "(0.99, 1e-05)-DP") is UPLOADED
    assert _card_with_claim(None, "none", "no DP guarantee") is None
