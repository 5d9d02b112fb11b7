"""Privacy accounting over a dataset's whole history of training runs.

Every DP-SGD run is a Poisson-subsampled Gaussian mechanism repeated ``steps`` times with noise
multiplier ``σ`` and sample rate ``q``. The ledger keeps each run's :class:`Mechanism`; the
cumulative ε of a dataset is recomposed over all of them at once with Opacus' accountants,
which is much tighter than adding the runs' ε (:func:`naive_sum_epsilon`, basic composition).

Opacus accountants keep ``history`` as a list of ``(noise_multiplier, sample_rate, steps)``
tuples and compose all entries on ``get_epsilon``: the PRV accountant convolves the
discretised privacy-loss distributions of the heterogeneous entries (Gopi et al. 2021), the RDP
accountant adds their Rényi curves. We feed them a mixed history directly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from governance.privacy.errors import AccountingError

AccountantName = Literal["prv", "rdp"]
MAX_NOISE = 1e6


@dataclass(frozen=True)
class Mechanism:
    """One run of DP-SGD: ``steps`` Poisson-subsampled Gaussian steps.

    Attributes:
        noise_multiplier: σ, noise std over the clipping norm (0 means no noise: ε is infinite).
        sample_rate: q, the probability that a record is in a step's batch.
        steps: how many steps ran (an aborted run records the steps it completed).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.noise_multiplier) or self.noise_multiplier < 0:
            raise AccountingError("noise_multiplier must be a finite number >= 0")
        if not math.isfinite(self.sample_rate) or not 0.0 < self.sample_rate <= 1.0:
            raise AccountingError("sample_rate must be in (0, 1]")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise AccountingError("steps must be a non-negative integer")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in the ledger and the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Mechanism:
        """Inverse of :meth:`to_dict`.

        Raises:
            AccountingError: when a field is missing or invalid.
        """
        try:
            return cls(
                noise_multiplier=float(doc["noise_multiplier"]),
                sample_rate=float(doc["sample_rate"]),
                steps=doc["steps"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AccountingError(
                "mechanism needs noise_multiplier, sample_rate and steps"
            ) from exc


def _check_delta(delta: float) -> None:
    if not math.isfinite(delta) or not 0.0 < delta < 1.0:
        raise AccountingError("delta must be strictly between 0 and 1")


def _history(history: Iterable[Mechanism]) -> list[tuple[float, float, int]]:
    return [(m.noise_multiplier, m.sample_rate, m.steps) for m in history if m.steps > 0]


def compose_epsilon(
    history: Sequence[Mechanism], delta: float, accountant: AccountantName = "prv"
) -> float:
    """ε of the composition of every mechanism in ``history``, at ``delta``.

    Args:
        history: the runs, in any order and with any mix of (σ, q, steps).
        delta: the target δ.
        accountant: ``"prv"`` (tightest, the default) or ``"rdp"``.

    Returns:
        The accountant's upper bound on ε; 0.0 for an empty history (or only zero-step runs),
        ``inf`` when a run added no noise.

    Raises:
        AccountingError: bad δ or accountant name, or a numerical failure of the accountant.
    """
    _check_delta(delta)
    if accountant not in ("prv", "rdp"):
        raise AccountingError("accountant must be 'prv' or 'rdp'")
    entries = _history(history)
    if not entries:
        return 0.0
    if any(sigma == 0.0 for sigma, _, _ in entries):
        return math.inf
    # Opacus (and the torch.distributed and scipy.stats it pulls in) is imported when first
    # needed: importing it costs about 1.6 s, on every server start and CLI command otherwise.
    from opacus.accountants import PRVAccountant, RDPAccountant

    acct = PRVAccountant() if accountant == "prv" else RDPAccountant()
    acct.history = entries
    try:
        eps = float(acct.get_epsilon(delta=delta))
    except (ValueError, ArithmeticError, RuntimeError) as exc:
        raise AccountingError(f"the {accountant} accountant failed on this history") from exc
    if math.isnan(eps):
        raise AccountingError(f"the {accountant} accountant returned NaN for this history")
    return max(eps, 0.0)


def naive_sum_epsilon(per_run_epsilons: Iterable[float]) -> float:
    """Basic composition: the sum of each run's ε (a valid but loose upper bound).

    The δ of such a composition is the sum of the runs' δ as well.

    Args:
        per_run_epsilons: each run's ε.

    Returns:
        Their sum (0.0 when empty).

    Raises:
        AccountingError: when an ε is negative or NaN.
    """
    total = 0.0
    for eps in per_run_epsilons:
        if math.isnan(eps) or eps < 0:
            raise AccountingError("epsilons must be non-negative numbers")
        total += eps
    return total


def noise_for_epsilon(
    *, target_epsilon: float, delta: float, sample_rate: float, steps: int
) -> float:
    """σ for one fresh run of exactly ``steps`` steps to spend at most ``target_epsilon`` (PRV).

    This is Opacus' own search (``get_noise_multiplier``), given the exact number of steps the
    Poisson sampler will run. ``make_private_with_epsilon`` instead plans ``int(epochs / q)``
    steps, which float rounding can make differ from the ``epochs * int(1 / q)`` steps that
    actually run, and then the final ε can exceed the target.

    Raises:
        AccountingError: when the target cannot be met.
    """
    _check_delta(delta)
    if not target_epsilon > 0 or not math.isfinite(target_epsilon):
        raise AccountingError("target_epsilon must be a positive finite number")
    return _cached_noise(target_epsilon, delta, sample_rate, steps)


# The search is a pure function of its arguments and costs seconds (tens of PRV evaluations);
# a retrained or retried configuration reuses it.
@functools.lru_cache(maxsize=256)
def _cached_noise(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    try:
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant="prv",
            )
        )
    except ValueError as exc:
        raise AccountingError("no noise multiplier reaches this target epsilon") from exc


def plan_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior_history: Sequence[Mechanism] = (),
    accountant: AccountantName = "prv",
    tolerance: float = 0.01,
) -> float:
    """The smallest σ (to within ``tolerance`` in ε) so that the prior runs plus this one fit.

    Args:
        target_epsilon: the cap on the composed ε (prior runs plus the new one).
        delta: the δ of the cap.
        sample_rate: the new run's q.
        steps: the new run's number of steps.
        prior_history: runs already charged to the dataset.
        accountant: ``"prv"`` or ``"rdp"``.
        tolerance: how far below the cap the composed ε may stay.

    Returns:
        σ such that ``compose_epsilon(prior_history + [Mechanism(σ, q, steps)]) <= target``.

    Raises:
        AccountingError: when the prior runs already exhaust the cap, or no σ up to 1e6 fits.
    """
    prior = list(prior_history)
    if compose_epsilon(prior, delta, accountant) >= target_epsilon:
        raise AccountingError("the prior runs already spend the whole budget")

    def spent(sigma: float) -> float:
        return compose_epsilon([*prior, Mechanism(sigma, sample_rate, steps)], delta, accountant)

    low, high = 0.0, 10.0
    eps_high = spent(high)
    while eps_high > target_epsilon:
        low, high = high, 2 * high
        if high > MAX_NOISE:
            raise AccountingError("no noise multiplier reaches this target epsilon")
        eps_high = spent(high)
    while target_epsilon - eps_high > tolerance and high - low > 1e-6:
        mid = (low + high) / 2
        eps_mid = spent(mid)
        if eps_mid <= target_epsilon:
            high, eps_high = mid, eps_mid
        else:
            low = mid
    return high
