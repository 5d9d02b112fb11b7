"""Adult, end to end: DP at ε = 1 costs little accuracy against the same non-private code."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from governance.datasets import load_adult
from governance.privacy import compose_epsilon, train


@pytest.mark.slow
def test_dp_epsilon_one_is_within_one_and_a_half_points_of_non_private(tmp_path: Path) -> None:
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is steadier and faster
    adult = load_adult()
    common = {
        "dataset": adult,
        "model_kind": "mlp",
        "hidden": (64, 64),
        "delta": 1e-5,
        "seed": 0,
        "device": "cpu",
        "version": "v1",
    }
    baseline = train(
        **common,
        epsilon=None,
        epochs=5,
        batch_size=512,
        lr=3e-3,
        out_dir=tmp_path / "np",
        name="adult-np",
    )
    private = train(
        **common,
        epsilon=1.0,
        epochs=10,
        batch_size=2048,
        lr=5e-3,
        out_dir=tmp_path / "dp",
        name="adult-dp",
    )
    print(
        f"non-private {baseline.test_accuracy:.4f}, DP(eps={private.epsilon:.4f}) "
        f"{private.test_accuracy:.4f}"
    )
    assert baseline.test_accuracy > 0.83
    assert private.epsilon is not None and private.epsilon <= 1.0
    assert private.mechanism is not None
    assert compose_epsilon([private.mechanism], 1e-5) == pytest.approx(private.epsilon)
    assert baseline.test_accuracy - private.test_accuracy <= 0.015
    assert private.manifest.training["dataset"]["content_hash"] == adult.content_hash
