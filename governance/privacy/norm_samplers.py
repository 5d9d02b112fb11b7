"""Ghost-clipping norm samplers that Opacus lacks, registered through its own registry.

Ghost clipping needs only each sample's gradient norm, per layer. Opacus registers norm
samplers for Linear, Conv and Embedding; every other layer falls back to materialising its
per-sample gradients in an accumulation buffer (a zeroed batch-sized tensor per parameter, an
add, a promotion) and only then taking their norms. Our MLPs have a LayerNorm per block, so
that fallback ran twice a step.

The LayerNorm sampler here takes the norms straight from Opacus' own per-sample LayerNorm
gradients, with no buffer. The clipping is identical: the same gradients, the same norms
(``tests/privacy/test_norm_samplers.py`` checks them against the hooks mode's per-sample
gradients). Measured in ``bench/dp``, alternating runs on the 2-core machine: DP with ghost
clipping over non-private 2.485x and 2.505x with it, 2.597x and 2.725x without.
"""

from __future__ import annotations

import torch
from opacus.grad_sample.layer_norm import compute_layer_norm_grad_sample
from opacus.grad_sample.utils import register_norm_sampler
from torch import nn

__all__ = ["layer_norm_norm_sample"]


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
