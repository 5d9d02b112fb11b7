"""Privacy accounting over a dataset's whole history of training runs.

Every DP-SGD run is a Poisson-subsampled Gaussian mechanism repeated ``steps`` times with noise
multiplier ``σ`` and sample rate ``q`` (a one-off Gaussian release is ``q = 1, steps = 1``).
The ledger keeps each run's :class:`Mechanism`; the cumulative ε of a dataset is recomposed
over all of them at once, which is much tighter than adding the runs' ε
(:func:`naive_sum_epsilon`, basic composition).

Two rigorous accountants compose a mixed history: Opacus' PRV accountant (Gopi et al. 2021)
and the privacy-loss-distribution (PLD) accountant of Google's ``dp_accounting``. Both return
upper bounds on ε, so the smaller is an upper bound too; Warden states that one and names it
(:func:`tightest_epsilon`). The RDP accountant stays available for comparison.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from governance.privacy.errors import AccountingError
from governance.privacy.gdp import estimate_noise

AccountantName = Literal["tightest", "prv", "pld", "rdp"]
ACCOUNTANTS = ("tightest", "prv", "pld", "rdp")
MAX_NOISE = 1e6
# How far under its target a planned run's ε may stay (Opacus' epsilon_tolerance default).
NOISE_TOLERANCE = 0.01
# The PLD grid step in ε units: its bound is pessimistic (a valid upper bound) for any step;
# 1e-4 keeps it within 1e-3 of the exact ε at about 0.1 s for the demo's run.
PLD_VALUE_INTERVAL = 1e-4


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


@dataclass(frozen=True)
class Tightest:
    """The smaller of two rigorous bounds on ε, and which accountant gave it.

    Attributes:
        epsilon: ``min(prv, pld)``.
        accountant: ``"prv"`` or ``"pld"``, whichever gave ``epsilon``.
        prv: Opacus' PRV bound.
        pld: dp_accounting's PLD bound.
    """

    epsilon: float
    accountant: Literal["prv", "pld"]
    prv: float
    pld: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (an unbounded ε is ``None``)."""
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in asdict(self).items()
        }


def _prv(entries: tuple[tuple[float, float, int], ...], delta: float) -> float:
    # Imported when first needed: importing Opacus (and the torch.distributed and scipy.stats
    # it pulls in) costs about 1.6 s, on every server start and CLI command otherwise.
    from opacus.accountants import PRVAccountant

    acct = PRVAccountant()
    acct.history = list(entries)
    with warnings.catch_warnings():
        # q = 1 (a one-off release) takes log(0) in a branch numpy evaluates and discards.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        return float(acct.get_epsilon(delta=delta))


def _rdp(entries: tuple[tuple[float, float, int], ...], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acct = RDPAccountant()
    acct.history = list(entries)
    return float(acct.get_epsilon(delta=delta))


def _pld(entries: tuple[tuple[float, float, int], ...], delta: float) -> float:
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant

    acct = pld_privacy_accountant.PLDAccountant(value_discretization_interval=PLD_VALUE_INTERVAL)
    for sigma, q, steps in entries:
        gaussian = dp_event.GaussianDpEvent(sigma)
        event = gaussian if q >= 1.0 else dp_event.PoissonSampledDpEvent(q, gaussian)
        acct.compose(event, steps)
    return float(acct.get_epsilon(delta))


_BY_NAME = {"prv": _prv, "pld": _pld, "rdp": _rdp}


# A history's ε is a pure function of it and costs up to seconds (PRV); ledger summaries,
# admissions and reports recompute the same histories again and again.
@functools.lru_cache(maxsize=1024)
def _cached_epsilon(
    entries: tuple[tuple[float, float, int], ...], delta: float, accountant: str
) -> float:
    try:
        eps = _BY_NAME[accountant](entries, delta)
    except (ValueError, ArithmeticError, RuntimeError, OverflowError) as exc:
        raise AccountingError(f"the {accountant} accountant failed on this history") from exc
    if math.isnan(eps):
        raise AccountingError(f"the {accountant} accountant returned NaN for this history")
    return max(eps, 0.0)


def _entries(history: Iterable[Mechanism]) -> tuple[tuple[float, float, int], ...]:
    # Sorted: composition does not depend on order, and one key serves every order.
    return tuple(sorted(_history(history)))


def tightest_epsilon(history: Sequence[Mechanism], delta: float) -> Tightest:
    """ε of the composition of ``history`` by PRV and by PLD, and the smaller of the two.

    Args:
        history: the runs, in any order and with any mix of (σ, q, steps).
        delta: the target δ.

    Returns:
        Both bounds and the smaller, named (0.0 by PRV for an empty history, ``inf`` when a
        run added no noise).

    Raises:
        AccountingError: bad δ, or a numerical failure of an accountant.
    """
    _check_delta(delta)
    entries = _entries(history)
    if not entries:
        return Tightest(0.0, "prv", 0.0, 0.0)
    if any(sigma == 0.0 for sigma, _, _ in entries):
        return Tightest(math.inf, "prv", math.inf, math.inf)
    prv = _cached_epsilon(entries, delta, "prv")
    pld = _cached_epsilon(entries, delta, "pld")
    return Tightest(min(prv, pld), "pld" if pld < prv else "prv", prv, pld)


def compose_epsilon(
    history: Sequence[Mechanism], delta: float, accountant: AccountantName = "tightest"
) -> float:
    """ε of the composition of every mechanism in ``history``, at ``delta``.

    Args:
        history: the runs, in any order and with any mix of (σ, q, steps).
        delta: the target δ.
        accountant: ``"tightest"`` (the smaller of PRV and PLD, the default), ``"prv"``,
            ``"pld"`` or ``"rdp"``.

    Returns:
        The accountant's upper bound on ε; 0.0 for an empty history (or only zero-step runs),
        ``inf`` when a run added no noise.

    Raises:
        AccountingError: bad δ or accountant name, or a numerical failure of the accountant.
    """
    _check_delta(delta)
    if accountant not in ACCOUNTANTS:
        raise AccountingError("accountant must be one of " + ", ".join(ACCOUNTANTS))
    if accountant == "tightest":
        return tightest_epsilon(history, delta).epsilon
    entries = _entries(history)
    if not entries:
        return 0.0
    if any(sigma == 0.0 for sigma, _, _ in entries):
        return math.inf
    return _cached_epsilon(entries, delta, accountant)


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

    Opacus' PRV bound and the stopping rule of its ``get_noise_multiplier`` (see
    :func:`least_noise`), given the exact number of steps the Poisson sampler will run.
    ``make_private_with_epsilon`` instead plans ``int(epochs / q)`` steps, which float
    rounding can make differ from the ``epochs * int(1 / q)`` steps that actually run, and
    then the final ε can exceed the target.

    Raises:
        AccountingError: when the target cannot be met.
    """
    _check_delta(delta)
    if not target_epsilon > 0 or not math.isfinite(target_epsilon):
        raise AccountingError("target_epsilon must be a positive finite number")
    return _cached_noise(target_epsilon, delta, sample_rate, steps)


# The search is a pure function of its arguments and costs a fraction of a second (three to
# six PRV evaluations); a retrained or retried configuration reuses it.
@functools.lru_cache(maxsize=256)
def _cached_noise(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    def spent(sigma: float) -> float:
        return _cached_epsilon(((sigma, sample_rate, steps),), delta, "prv")

    start = estimate_noise(target_epsilon - NOISE_TOLERANCE / 2, delta, sample_rate, steps)
    return least_noise(spent, target_epsilon, NOISE_TOLERANCE, start)


def plan_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior_history: Sequence[Mechanism] = (),
    accountant: AccountantName = "tightest",
    tolerance: float = 0.01,
) -> float:
    """The smallest σ (to within ``tolerance`` in ε) so that the prior runs plus this one fit.

    Args:
        target_epsilon: the cap on the composed ε (prior runs plus the new one).
        delta: the δ of the cap.
        sample_rate: the new run's q.
        steps: the new run's number of steps.
        prior_history: runs already charged to the dataset.
        accountant: any of :data:`ACCOUNTANTS`.
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

    start = estimate_noise(
        target_epsilon - tolerance / 2, delta, sample_rate, steps, _history(prior)
    )
    return least_noise(spent, target_epsilon, tolerance, start)


def least_noise(
    spent: Callable[[float], float], target: float, tolerance: float, start: float
) -> float:
    """A σ with ``target - tolerance <= spent(σ) <= target``, for ``spent`` falling in σ.

    The stopping rule of Opacus' ``get_noise_multiplier``, from a start near the answer
    (:func:`~governance.privacy.gdp.estimate_noise`) instead of halving [0, 20]: steps that
    grow geometrically find a bracket, then regula falsi on log ε against log σ (Illinois
    variant) closes it. Three to six evaluations of the accountant where halving took twelve
    to sixteen, and none at the tiny σ where PRV is slowest. Every σ returned was evaluated,
    so the bound holds exactly, whatever the start.

    Raises:
        AccountingError: no σ up to :data:`MAX_NOISE` brings ``spent`` down to ``target``.
    """
    sigma, eps = start, spent(start)
    if target - tolerance <= eps <= target:
        return sigma
    low, eps_low, high, eps_high = 0.0, math.inf, math.inf, 0.0
    if eps <= target:
        high, eps_high = sigma, eps
    else:
        low, eps_low = sigma, eps
    factor = 1.05
    while low == 0.0 or high == math.inf:
        sigma = high / factor if high < math.inf else low * factor
        if sigma > MAX_NOISE:
            raise AccountingError("no noise multiplier reaches this target epsilon")
        eps, factor = spent(sigma), factor * factor
        if target - tolerance <= eps <= target:
            return sigma
        if eps <= target:
            high, eps_high = sigma, eps
        else:
            low, eps_low = sigma, eps
    return _close(spent, target, tolerance, (low, eps_low), (high, eps_high))


def _close(
    spent: Callable[[float], float],
    target: float,
    tolerance: float,
    low_end: tuple[float, float],
    high_end: tuple[float, float],
) -> float:
    """Regula falsi on a bracket: ``low`` spends more than ``target``, ``high`` at most it."""
    (low, eps_low), (high, eps_high) = low_end, high_end
    aim = target - tolerance / 2
    # Illinois: an end kept twice in a row has its residual halved, so it cannot stall. The low
    # end needs only its residual; the high end's ε is the stopping rule's.
    res_low, res_high = _residual(eps_low, aim), _residual(eps_high, aim)
    kept = ""
    while target - eps_high > tolerance and high - low > 1e-6:
        if math.isfinite(res_low):
            x_low, x_high = math.log(low), math.log(high)
            guess = math.exp(x_high - res_high * (x_high - x_low) / (res_high - res_low))
            margin = (high - low) / 100
            sigma = min(max(guess, low + margin), high - margin)
        else:  # an unbounded ε at the low end gives no slope to follow
            sigma = (low + high) / 2
        eps = spent(sigma)
        if eps <= target:
            high, eps_high, res_high = sigma, eps, _residual(eps, aim)
            res_low = res_low / 2 if kept == "low" else res_low
            kept = "low"
        else:
            low, res_low = sigma, _residual(eps, aim)
            res_high = res_high / 2 if kept == "high" else res_high
            kept = "high"
    return high


def _residual(eps: float, aim: float) -> float:
    # log(ε / aim), finite for an ε the accountant rounded to 0 (a σ far above the answer).
    return math.log(max(eps, 1e-12) / aim)
