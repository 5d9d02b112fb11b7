"""Our ghost-clipping norm samplers: the norms of the true per-sample gradients, and a DP run
that trains as it does with Opacus' own samplers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.grad_sample.linear import compute_linear_norm_sample
from torch import nn

from governance.datasets import LoadedDataset
from governance.privacy import train
from governance.privacy.norm_samplers import layer_norm_norm_sample, linear_norm_sample
from inference.artifact import load_weights


def _per_sample_norms(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
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


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 6),
    inputs=st.integers(1, 9),
    outputs=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_linear_norms_equal_those_of_the_per_sample_gradients(
    batch: int, inputs: int, outputs: int, seed: int
) -> None:
    torch.manual_seed(seed)
    layer = nn.Linear(inputs, outputs)
    x, g = torch.randn(batch, inputs), torch.randn(batch, outputs)
    got = linear_norm_sample(layer, [x], g)
    want = _per_sample_norms(layer, x, g)
    torch.testing.assert_close(got[layer.weight], want[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[layer.bias], want[:, 1], rtol=1e-5, atol=1e-6)


def test_linear_sequences_go_to_opacus_sampler() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    x, g = torch.randn(5, 2, 4), torch.randn(5, 2, 3)
    got = linear_norm_sample(layer, [x], g)
    want = compute_linear_norm_sample(layer, [x], g)
    for param in (layer.weight, layer.bias):
        torch.testing.assert_close(got[param], want[param])


def test_an_empty_poisson_batch_has_empty_norms() -> None:
    layer = nn.LayerNorm(4)
    got = layer_norm_norm_sample(layer, [torch.empty(0, 4)], torch.empty(0, 4))
    assert all(norms.shape == (0,) for norms in got.values())


def test_they_are_registered_for_ghost_clipping() -> None:
    samplers = GradSampleModuleFastGradientClipping.NORM_SAMPLERS
    assert samplers[nn.LayerNorm] is layer_norm_norm_sample
    assert samplers[nn.Linear] is linear_norm_sample


def test_dp_training_is_unchanged_by_them(
    synthetic: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, same data: the weights match those trained with Opacus' own samplers."""
    args = {"epochs": 2, "batch_size": 150, "lr": 0.02, "delta": 1e-4, "seed": 3}
    # The mechanism's randomness is secret per run; fixing it here isolates the samplers.
    monkeypatch.setattr("governance.privacy.training.mechanism_seed", lambda: 12345)

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
    samplers = GradSampleModuleFastGradientClipping.NORM_SAMPLERS
    monkeypatch.delitem(samplers, nn.LayerNorm)
    monkeypatch.setitem(samplers, nn.Linear, compute_linear_norm_sample)
    opacus_own = weights(tmp_path / "opacus")
    assert ours.keys() == opacus_own.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], opacus_own[name], rtol=1e-4, atol=1e-5)
