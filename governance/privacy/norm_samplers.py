"""Ghost-clipping norm samplers, registered through Opacus' own registry.

Ghost clipping needs only each sample's gradient norm, per layer. Two samplers here:

- **LayerNorm**, which Opacus lacks. Without one, every LayerNorm falls back to materialising
  its per-sample gradients in an accumulation buffer (a zeroed batch-sized tensor per
  parameter, an add, a promotion) and only then taking their norms; our MLPs have a LayerNorm
  per block. This one takes the norms straight from Opacus' own per-sample LayerNorm
  gradients, with no buffer.
- **Linear on rows** (2-D inputs, our tabular models). A sample's weight gradient is the outer
  product g a^T, whose norm is ||g|| ||a||, and its bias gradient is g. Opacus computes the
  squared norms with generic ``einsum`` contractions, twice for g; two ``vector_norm`` calls
  cost about a third. Sequences (3-D) go to Opacus' sampler unchanged.

The clipping is the same: the same norms up to float rounding
(``tests/privacy/test_norm_samplers.py`` checks them against per-sample gradients, and a DP run
against one with Opacus' samplers); only the cost differs (``bench/dp``).
"""

from __future__ import annotations

from typing import cast

import torch
from opacus.grad_sample.layer_norm import compute_layer_norm_grad_sample
from opacus.grad_sample.linear import compute_linear_norm_sample
from opacus.grad_sample.utils import register_norm_sampler
from torch import nn

__all__ = ["layer_norm_norm_sample", "linear_norm_sample"]


@register_norm_sampler(nn.LayerNorm)
def layer_norm_norm_sample(
    layer: nn.LayerNorm, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    """Per-sample gradient norms of a LayerNorm's weight and bias.

    Args:
        layer: the LayerNorm.
        activations: its captured inputs.
        backprops: the gradients of the loss with respect to its output.

    Returns:
        ``{parameter: norms}``, one norm per sample (an empty batch gives empty norms).
    """
    grads = compute_layer_norm_grad_sample(layer, activations, backprops)
    # flatten(1), not reshape(n, -1): it also takes an empty Poisson batch.
    return {param: grad.flatten(1).norm(2, dim=1) for param, grad in grads.items()}


@register_norm_sampler(nn.Linear)
def linear_norm_sample(
    layer: nn.Linear, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    """Per-sample gradient norms of a Linear layer's weight and bias.

    Args:
        layer: the Linear layer.
        activations: its captured inputs.
        backprops: the gradients of the loss with respect to its output.

    Returns:
        ``{parameter: norms}`` for its trainable parameters, one norm per sample.
    """
    if backprops.dim() != 2:
        return compute_linear_norm_sample(layer, activations, backprops)
    g = torch.linalg.vector_norm(backprops, dim=1)
    norms: dict[nn.Parameter, torch.Tensor] = {}
    weight, bias = cast(nn.Parameter, layer.weight), cast(nn.Parameter | None, layer.bias)
    if weight.requires_grad:
        a = torch.linalg.vector_norm(activations[0].to(backprops.dtype), dim=1)
        norms[weight] = g * a
    if bias is not None and bias.requires_grad:
        norms[bias] = g
    return norms
