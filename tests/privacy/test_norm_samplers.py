"""The LayerNorm ghost-clipping norm sampler: the norms of the true per-sample gradients, and
a DP run that trains exactly as it did with Opacus' fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from torch import nn

from governance.datasets import LoadedDataset
from governance.privacy import train
from governance.privacy.norm_samplers import layer_norm_norm_sample
from inference.artifact import load_weights


def _per_sample_norms(layer: nn.LayerNorm, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Each sample's weight and bias gradient norms, one backward pass per sample."""
    norms = []
    for i in range(len(x)):
        layer.zero_grad()
        (layer(x[i : i + 1]) * g[i : i + 1]).sum().backward()
        assert layer.weight.grad is not None and layer.bias.grad is not None
        norms.append([layer.weight.grad.norm(), layer.bias.grad.norm()])
    return torch.tensor(norms)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 6),
    steps=st.sampled_from([None, 1, 3]),  # None: (n, d) rows; else (n, T, d) sequences
    width=st.integers(2, 9),
    seed=st.integers(0, 2**16),
)
def test_norms_equal_those_of_the_per_sample_gradients(
    batch: int, steps: int | None, width: int, seed: int
) -> None:
    torch.manual_seed(seed)
    layer = nn.LayerNorm(width)
    with torch.no_grad():  # away from the initial ones and zeros
        layer.weight.uniform_(-2, 2)
        layer.bias.uniform_(-2, 2)
    shape = (batch, width) if steps is None else (batch, steps, width)
    x, g = torch.randn(shape), torch.randn(shape)
    got = layer_norm_norm_sample(layer, [x], g)
    want = _per_sample_norms(layer, x, g)
    torch.testing.assert_close(got[layer.weight], want[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[layer.bias], want[:, 1], rtol=1e-5, atol=1e-6)


def test_an_empty_poisson_batch_has_empty_norms() -> None:
    layer = nn.LayerNorm(4)
    got = layer_norm_norm_sample(layer, [torch.empty(0, 4)], torch.empty(0, 4))
    assert all(norms.shape == (0,) for norms in got.values())


def test_is_registered_for_ghost_clipping() -> None:
    assert GradSampleModuleFastGradientClipping.NORM_SAMPLERS[nn.LayerNorm] is (
        layer_norm_norm_sample
    )


def test_dp_training_is_unchanged_by_it(
    synthetic: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, same data: the weights match those of Opacus' per-sample-gradient fallback."""
    args = {"epochs": 2, "batch_size": 150, "lr": 0.02, "delta": 1e-4, "seed": 3}

    def weights(out: Path) -> dict[str, torch.Tensor]:
        result = train(
            dataset=synthetic,
            out_dir=out,
            name="m",
            version="v1",
            device="cpu",
            epsilon=2.0,
            **args,  # type: ignore[arg-type]
        )
        assert result.grad_sample_mode == "ghost"
        return load_weights(result.artifact_dir, result.manifest).state_dict()

    ours = weights(tmp_path / "ours")
    monkeypatch.delitem(GradSampleModuleFastGradientClipping.NORM_SAMPLERS, nn.LayerNorm)
    fallback = weights(tmp_path / "fallback")
    assert ours.keys() == fallback.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], fallback[name], rtol=1e-4, atol=1e-5)
