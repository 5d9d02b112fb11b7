"""A served model's forward pass as a flat list of tensor operations.

A served tabular model is a handful of tiny operators, and for them ``nn.Module``'s call
machinery (hook checks, ``Sequential``'s loop, the functional wrappers' dispatch checks) costs
more than the arithmetic. For the architectures of :mod:`inference.architectures`,
:func:`plan_for` lists the operators the modules would call, on the same parameter tensors, in
the same order, so the output is bitwise the same (``tests/inference/test_plan.py``).

Anything else gets no plan and runs as a module: another architecture, a module in training
mode, or one with hooks (a plan would skip them). Global module hooks
(``torch.nn.modules.module.register_module_forward_hook``) are not run by a plan either: serving
registers none. Training never uses a plan: Opacus works through the modules' hooks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from inference.architectures import MLP, LogisticRegression

__all__ = ["Forward", "plan_for"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def plan_for(module: nn.Module) -> Forward | None:
    """The module's forward pass without module dispatch, or None when it cannot be listed.

    Args:
        module: a module on its device, in eval mode; its parameters must not change later.

    Returns:
        A function of the input batch giving the same logits as ``module(x)``, or None.
    """
    if module.training or any(_hooked(m) for m in module.modules()):
        return None
    if type(module) is LogisticRegression:
        layers: list[nn.Module] = [module.linear]
    elif type(module) is MLP:
        layers = list(module.net)
    else:
        return None
    steps: list[Forward] = []
    for layer in layers:
        if type(layer) is nn.Dropout:
            continue  # the identity in eval mode
        step = _step(layer)
        if step is None:
            return None
        steps.append(step)

    def forward(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return forward


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _step(layer: nn.Module) -> Forward | None:
    # What each layer's forward() calls, less the Python wrappers around the same operators.
    if type(layer) is nn.Linear:
        weight, bias = layer.weight, layer.bias
        return lambda x: torch._C._nn.linear(x, weight, bias)
    if type(layer) is nn.LayerNorm:
        shape, weight, bias, eps = layer.normalized_shape, layer.weight, layer.bias, layer.eps
        return lambda x: torch.layer_norm(x, shape, weight, bias, eps, torch.backends.cudnn.enabled)
    if type(layer) is nn.ReLU and not layer.inplace:
        return torch.relu
    return None
