"""The model card of a mitigated version: the base's card, with its own claim and its data.

A mitigated version shares the base's weights but not its privacy claim: the card's DP
statements are replaced with the composed claim (or "no DP guarantee"), and a ``mitigation``
section says exactly which data fitted the thresholds and how they were released.
"""

from __future__ import annotations

import json
from typing import Any

from governance.privacy.model_card import CARD_FORMAT, render_model_card


def mitigated_card(
    base_card: bytes | None,
    *,
    name: str,
    version: str,
    claim: dict[str, Any],
    mitigation: dict[str, Any],
) -> bytes:
    """The new version's ``model_card.json`` bytes.

    Args:
        base_card: the base artifact's card (None: the base has none; a minimal card is made).
        name: the model's name.
        version: the mitigated version.
        claim: the version's DP claim (:meth:`MitigationBudget.claim`), with its ``statement``.
        mitigation: what fitted the thresholds: method, data, release.
    """
    card: dict[str, Any] = json.loads(base_card) if base_card else {"format": CARD_FORMAT}
    details = dict(card.get("model_details") or {})
    old_statement = details.get("differential_privacy")
    details.update(
        name=name,
        version=version,
        differential_privacy=claim["statement"],
        postprocessing=(
            f"{mitigation['method']} group thresholds on {mitigation['input_field']!r}, "
            f"fitted on {mitigation['fit_data']['dataset']!r} ({mitigation['fit_data']['split']} "
            "split)"
        ),
    )
    card["model_details"] = details
    ethics = [s for s in card.get("ethical_considerations") or [] if s != old_statement]
    card["ethical_considerations"] = [claim["statement"], *ethics]
    caveats = [
        c
        for c in card.get("caveats_and_recommendations") or []
        if not c.startswith("The privacy guarantee covers this run only")
    ]
    caveats.append(
        "The privacy claim covers every access that produced this version (training and "
        "mitigation); the dataset's cumulative budget is kept by the privacy ledger."
    )
    fit = mitigation["fit_data"]
    if not fit["covered_by_ledger"]:
        caveats.append(
            f"The thresholds were fitted, without noise, on the {fit['split']} split of "
            f"{fit['dataset']!r}, whose schema declares its rows public: they are outside any "
            "DP guarantee, and the private training data was not read again."
        )
    card["caveats_and_recommendations"] = caveats
    card["privacy_claim"] = claim
    card["mitigation"] = mitigation
    return render_model_card(card)
