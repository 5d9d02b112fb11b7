"""Model architectures for tabular data.

Only layers that Opacus can train with per-sample gradients, and with ghost clipping, are used:
Linear and LayerNorm, never BatchNorm (which mixes samples and breaks the DP guarantee).
"""

from __future__ import annotations

import torch
from torch import nn

from inference.manifest import Architecture


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one linear layer producing logits."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """Linear → LayerNorm → ReLU blocks, then a linear head producing logits."""

    def __init__(
        self, input_dim: int, output_dim: int, hidden: tuple[int, ...], dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LayerNorm(size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, output_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(arch: Architecture) -> nn.Module:
    """Build an untrained module for an architecture.

    Args:
        arch: the manifest's architecture section.

    Returns:
        A module mapping ``[batch, input_dim]`` float32 to ``[batch, output_dim]`` logits.

    Raises:
        ValueError: for an unknown kind (the manifest parser refuses those first).
    """
    if arch.kind == "logreg":
        return LogisticRegression(arch.input_dim, arch.output_dim)
    if arch.kind == "mlp":
        return MLP(arch.input_dim, arch.output_dim, arch.hidden or (64,), arch.dropout)
    raise ValueError(f"unknown architecture {arch.kind!r}")
