"""Per-group score histograms released with the Gaussian mechanism, for a private mitigation.

Group thresholds fitted on private rows are a new access to them, so a mitigation never sees
the rows' scores and labels directly: it sees one noisy histogram per (group, label) over
public score bins, and fits ThresholdOptimizer on the rows those counts describe.

The cells (group x label x bin) are fixed in advance from public facts: the groups are the
sensitive feature's declared categories, the labels are 0/1 and the bins split [0, 1] evenly.
Each row falls in exactly one cell, so adding or removing one row changes the count vector by
1 in one cell: L2 sensitivity 1. Adding N(0, σ²) to every cell is the Gaussian mechanism, which
the ledger accounts as ``Mechanism(noise_multiplier=σ, sample_rate=1.0, steps=1)``.

The noise comes from a generator seeded with 256 bits of OS entropy per release and never
recorded. Each noisy count is rounded to an integer and clamped at 0 before anything reads it,
so only coarse integers leave this module (the low-order bits of floating-point noise, which
naive samplers leak, are discarded with the fraction).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from governance.fairness.errors import MitigationError
from governance.privacy.accounting import Mechanism, noise_for_epsilon

BINS: Final[int] = 20


@dataclass(frozen=True)
class NoisyHistograms:
    """The released counts: ``counts[g, label, b]`` rows of group ``g``, label, score bin ``b``.

    Attributes:
        groups: the public group names, in ``counts`` order.
        counts: non-negative integer counts, shape ``[groups, 2, bins]``.
        mechanism: what the release spent (charged to the ledger).
    """

    groups: tuple[str, ...]
    counts: NDArray[np.int64]
    mechanism: Mechanism

    @property
    def bins(self) -> int:
        return int(self.counts.shape[2])

    def synthetic_rows(self) -> tuple[NDArray[np.float64], NDArray[np.int8], NDArray[np.object_]]:
        """The rows the counts describe: ``(score, label, group)``, each score its bin's middle.

        Post-processing of the release: fitting on these rows spends nothing more. A group
        whose released counts lack a label is left out (serving gives it the default rule).
        """
        centres = (np.arange(self.bins) + 0.5) / self.bins
        scores: list[NDArray[np.float64]] = []
        labels: list[NDArray[np.int8]] = []
        groups: list[NDArray[np.object_]] = []
        for g, group in enumerate(self.groups):
            if not (self.counts[g, 0].sum() > 0 and self.counts[g, 1].sum() > 0):
                continue
            for label in (0, 1):
                repeated = np.repeat(centres, self.counts[g, label])
                scores.append(repeated)
                labels.append(np.full(repeated.shape, label, dtype=np.int8))
                groups.append(np.full(repeated.shape, group, dtype=object))
        if not scores:
            raise MitigationError("the noisy histograms hold no group with both labels")
        return np.concatenate(scores), np.concatenate(labels), np.concatenate(groups)


def gaussian_mechanism(*, epsilon: float, delta: float) -> Mechanism:
    """The one-shot Gaussian release that spends ``epsilon`` at ``delta`` (same accountant).

    Raises:
        AccountingError: no noise multiplier reaches the target.
    """
    sigma = noise_for_epsilon(target_epsilon=epsilon, delta=delta, sample_rate=1.0, steps=1)
    return Mechanism(noise_multiplier=sigma, sample_rate=1.0, steps=1)


def release_histograms(
    *,
    scores: Any,
    labels: Any,
    groups: Any,
    categories: Sequence[str],
    mechanism: Mechanism,
    bins: int = BINS,
) -> NoisyHistograms:
    """Count the rows per (group, label, score bin) and release the counts with noise.

    Args:
        scores: each row's P(positive), in [0, 1].
        labels: each row's 0/1 label.
        groups: each row's sensitive value; every value must be one of ``categories``.
        categories: the public group names (the feature's declared categories).
        mechanism: the Gaussian mechanism to run (``sample_rate`` 1, one step).
        bins: how many equal score bins over [0, 1].

    Returns:
        The rounded, clamped noisy counts.

    Raises:
        MitigationError: inputs of different lengths, a score outside [0, 1], a label not 0/1,
            or a group that is not a declared category (its cell would not be public).
    """
    if mechanism.sample_rate != 1.0 or mechanism.steps != 1 or mechanism.noise_multiplier <= 0:
        raise MitigationError("the histogram release is one noisy step over every row")
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    label = np.asarray(labels).reshape(-1)
    group = np.asarray(groups, dtype=object).reshape(-1).astype(str)
    if not score.shape == label.shape == group.shape:
        raise MitigationError("scores, labels and groups must have the same length")
    if not np.all(np.isfinite(score)) or np.any((score < 0.0) | (score > 1.0)):
        raise MitigationError("scores must be probabilities in [0, 1]")
    if not np.all((label == 0) | (label == 1)):
        raise MitigationError("labels must be 0 or 1")
    names = tuple(str(c) for c in categories)
    index = {name: i for i, name in enumerate(names)}
    unknown = set(np.unique(group)) - set(names)
    if unknown:
        raise MitigationError(
            f"{len(unknown)} group value(s) are not declared categories of the feature"
        )
    rows = np.fromiter((index[g] for g in group), dtype=np.int64, count=group.shape[0])
    cell = np.minimum((score * bins).astype(np.int64), bins - 1)
    exact = np.zeros((len(names), 2, bins), dtype=np.float64)
    np.add.at(exact, (rows, label.astype(np.int64), cell), 1.0)
    rng = np.random.default_rng(secrets.randbits(256))
    noisy = exact + rng.normal(0.0, mechanism.noise_multiplier, size=exact.shape)
    del exact, rng
    counts = np.maximum(np.rint(noisy), 0.0).astype(np.int64)
    return NoisyHistograms(groups=names, counts=counts, mechanism=mechanism)
