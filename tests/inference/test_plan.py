"""A served model's plan computes exactly what the module computes, or there is no plan."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inference.architectures import MLP, LogisticRegression
from inference.model import LoadedModel
from inference.plan import plan_for
from tests.inference.inference_factories import random_records, write_artifact


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return module.eval()


@settings(max_examples=60, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 48), min_size=0, max_size=3),
    dropout=st.sampled_from([0.0, 0.3]),
    rows=st.integers(1, 70),
    seed=st.integers(0, 2**16),
)
def test_an_mlp_plan_is_bitwise_its_module(
    hidden: list[int], dropout: float, rows: int, seed: int
) -> None:
    module = _randomised(MLP(11, 3, tuple(hidden), dropout), seed)
    plan = plan_for(module)
    assert plan is not None
    x = torch.randn(rows, 11, generator=torch.Generator().manual_seed(seed + 1))
    with torch.inference_mode():
        assert torch.equal(plan(x), module(x))


def test_a_logistic_regression_plan_is_bitwise_its_module() -> None:
    module = _randomised(LogisticRegression(9, 2), 5)
    plan = plan_for(module)
    assert plan is not None
    x = torch.randn(33, 9)
    assert torch.equal(plan(x), module(x))


def test_no_plan_where_it_would_compute_something_else() -> None:
    # Training mode (dropout is live), a hook a plan would skip, an architecture it does not
    # know, a layer it does not know.
    assert plan_for(MLP(4, 2, (8,), 0.5).train()) is None
    hooked = MLP(4, 2, (8,)).eval()
    hooked.net[1].register_forward_hook(lambda *_: None)
    assert plan_for(hooked) is None
    pre_hooked = MLP(4, 2, (8,)).eval()
    pre_hooked.register_forward_pre_hook(lambda *_: None)
    assert plan_for(pre_hooked) is None
    assert plan_for(nn.Sequential(nn.Linear(4, 2)).eval()) is None
    odd = MLP(4, 2, (8,)).eval()
    odd.net[2] = nn.GELU()
    assert plan_for(odd) is None


def test_a_loaded_model_serves_through_its_plan(tmp_path: Path) -> None:
    model = LoadedModel.load(write_artifact(tmp_path / "m", seed=3), torch.device("cpu"))
    assert model.plan is not None
    x = model.encode(random_records(torch.Generator().manual_seed(2), 17))
    with torch.inference_mode():
        expected = torch.softmax(model.module(x).float(), dim=-1)
    assert torch.equal(model.forward_probabilities(x), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_plan_on_cuda_is_bitwise_its_module() -> None:
    module = _randomised(MLP(11, 3, (64, 64)), 1).to("cuda")
    plan = plan_for(module)
    assert plan is not None
    x = torch.randn(40, 11, device="cuda")
    with torch.inference_mode():
        assert torch.equal(plan(x), module(x))
