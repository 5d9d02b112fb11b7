"""Where a noise search starts: Gaussian differential privacy's estimate of the σ a target needs.

A run of ``steps`` Poisson-subsampled Gaussian steps is close to μ-GDP with
``μ = q √steps √(exp(1/σ²) - 1)`` (the central limit theorem of Bu et al. 2020; exactly
``√steps / σ`` when every record is in every step), μ's of runs compose as a root of the sum of
squares, and a μ-GDP mechanism is (ε, δ)-DP exactly when
``δ = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2)`` (Dong, Roth and Su 2019). Inverting these gives a σ
within a few percent of the one the PRV bound asks for, in microseconds. It is only a start:
:func:`~governance.privacy.accounting.least_noise` evaluates the rigorous accountant at every σ
it returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# A fallback start where the estimate has nothing to say (the prior runs alone exceed it).
DEFAULT_START = 10.0


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def mu_for(epsilon: float, delta: float) -> float:
    """The μ of the μ-GDP mechanism that is (ε, δ)-DP with nothing to spare."""

    def delta_of(mu: float) -> float:
        return _phi(-epsilon / mu + mu / 2) - math.exp(epsilon) * _phi(-epsilon / mu - mu / 2)

    low, high = 0.0, 1.0
    while delta_of(high) < delta:
        low, high = high, 2 * high
        if high > 1e4:
            return math.inf
    for _ in range(60):
        mid = (low + high) / 2
        if delta_of(mid) < delta:
            low = mid
        else:
            high = mid
    return low


def mu_of(sigma: float, sample_rate: float, steps: int) -> float:
    """The μ of one run, by the central limit theorem (exact for ``sample_rate`` 1)."""
    if sample_rate >= 1.0:
        return math.sqrt(steps) / sigma if sigma > 0 else math.inf
    try:
        return sample_rate * math.sqrt(steps) * math.sqrt(math.expm1(sigma**-2))
    except (OverflowError, ZeroDivisionError):
        return math.inf


def estimate_noise(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior: Iterable[tuple[float, float, int]] = (),
) -> float:
    """The σ that brings ``prior`` runs (σ, q, steps) and this one to about (ε, δ)."""
    room = mu_for(epsilon, delta) ** 2 - sum(mu_of(*run) ** 2 for run in prior)
    if not 0 < room < math.inf or steps <= 0:
        return DEFAULT_START
    if sample_rate >= 1.0:
        return math.sqrt(steps / room)
    return 1.0 / math.sqrt(math.log1p(room / (sample_rate**2 * steps)))
