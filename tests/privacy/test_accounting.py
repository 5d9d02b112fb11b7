"""Composition of mixed histories, the ε ≤ target guarantee, and edge cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from governance.privacy import (
    AccountingError,
    Mechanism,
    compose_epsilon,
    naive_sum_epsilon,
    noise_for_epsilon,
    plan_noise,
    tightest_epsilon,
)
from governance.privacy.accounting import NOISE_TOLERANCE, least_noise
from governance.privacy.gdp import estimate_noise

DELTA = 1e-5
A = Mechanism(noise_multiplier=1.1, sample_rate=0.01, steps=300)
B = Mechanism(noise_multiplier=0.8, sample_rate=0.05, steps=100)


def test_empty_history_spends_nothing() -> None:
    assert compose_epsilon([], DELTA) == 0.0
    assert compose_epsilon([Mechanism(1.0, 0.1, 0)], DELTA) == 0.0
    assert naive_sum_epsilon([]) == 0.0


def test_no_noise_means_infinite_epsilon() -> None:
    assert compose_epsilon([A, Mechanism(0.0, 0.1, 5)], DELTA) == math.inf


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_mixed_history_is_at_least_each_run_and_at_most_the_naive_sum(accountant: str) -> None:
    eps_a = compose_epsilon([A], DELTA, accountant)  # type: ignore[arg-type]
    eps_b = compose_epsilon([B], DELTA, accountant)  # type: ignore[arg-type]
    both = compose_epsilon([A, B], DELTA, accountant)  # type: ignore[arg-type]
    assert both >= max(eps_a, eps_b)
    assert both <= naive_sum_epsilon([eps_a, eps_b])
    # Composition does not depend on the order of runs.
    reverse = compose_epsilon([B, A], DELTA, accountant)  # type: ignore[arg-type]
    assert reverse == pytest.approx(both, rel=1e-6)


def test_prv_is_tighter_than_rdp() -> None:
    assert compose_epsilon([A, B], DELTA, "prv") < compose_epsilon([A, B], DELTA, "rdp")


def test_split_run_composes_like_one_run() -> None:
    whole = compose_epsilon([A], DELTA)
    halves = compose_epsilon([Mechanism(1.1, 0.01, 150), Mechanism(1.1, 0.01, 150)], DELTA)
    assert halves == pytest.approx(whole, abs=0.02)


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(AccountingError):
        Mechanism(noise_multiplier=-1.0, sample_rate=0.1, steps=1)
    with pytest.raises(AccountingError):
        Mechanism(noise_multiplier=1.0, sample_rate=1.5, steps=1)
    with pytest.raises(AccountingError):
        Mechanism(noise_multiplier=1.0, sample_rate=0.1, steps=-2)
    with pytest.raises(AccountingError):
        compose_epsilon([A], 1.5)
    with pytest.raises(AccountingError):
        compose_epsilon([A], DELTA, "gdp")  # type: ignore[arg-type]
    with pytest.raises(AccountingError):
        naive_sum_epsilon([1.0, -0.5])
    assert Mechanism.from_dict(A.to_dict()) == A


def test_plan_noise_fits_the_remaining_budget() -> None:
    cap = 3.0
    sigma = plan_noise(
        target_epsilon=cap,
        delta=DELTA,
        sample_rate=0.02,
        steps=200,
        prior_history=[A],
        tolerance=0.04,
    )
    total = compose_epsilon([A, Mechanism(sigma, 0.02, 200)], DELTA)
    assert total <= cap
    assert total > cap - 0.1  # not wastefully noisy
    with pytest.raises(AccountingError, match="already spend"):
        plan_noise(target_epsilon=0.5, delta=DELTA, sample_rate=0.02, steps=10, prior_history=[A])


@pytest.mark.parametrize(("target", "q", "steps"), [(1.0, 256 / 32561, 381), (4.0, 1 / 120, 360)])
def test_the_noise_search_lands_in_the_band_in_few_evaluations(
    target: float, q: float, steps: int
) -> None:
    evaluated: list[float] = []

    def spent(sigma: float) -> float:
        evaluated.append(sigma)
        return compose_epsilon([Mechanism(sigma, q, steps)], DELTA, "prv")

    start = estimate_noise(target, DELTA, q, steps)
    sigma = least_noise(spent, target, NOISE_TOLERANCE, start)
    assert target - NOISE_TOLERANCE <= spent(sigma) <= target
    # Halving [0, 20] as Opacus' get_noise_multiplier does took 13 and 16 evaluations here.
    assert len(evaluated) <= 8
    assert min(evaluated) > sigma / 2  # never down where PRV is slowest


def test_the_search_agrees_with_opacus_to_within_its_tolerance() -> None:
    from opacus.accountants.utils import get_noise_multiplier

    q, steps = 1 / 75, 225
    theirs = get_noise_multiplier(
        target_epsilon=1.0, target_delta=DELTA, sample_rate=q, steps=steps, accountant="prv"
    )
    ours = noise_for_epsilon(target_epsilon=1.0, delta=DELTA, sample_rate=q, steps=steps)
    eps_theirs = compose_epsilon([Mechanism(theirs, q, steps)], DELTA, "prv")
    eps_ours = compose_epsilon([Mechanism(ours, q, steps)], DELTA, "prv")
    assert 1.0 - NOISE_TOLERANCE <= eps_ours <= 1.0
    assert abs(eps_ours - eps_theirs) <= NOISE_TOLERANCE


def test_the_gaussian_dp_start_is_exact_for_one_release_and_close_for_sgd() -> None:
    # q = 1, one step: the Gaussian mechanism, whose (ε, δ) curve μ-GDP gives exactly.
    sigma = estimate_noise(0.5, DELTA, 1.0, 1)
    assert compose_epsilon([Mechanism(sigma, 1.0, 1)], DELTA, "prv") == pytest.approx(0.5, abs=0.02)
    # Subsampled, the central limit theorem underestimates the noise, by a few tens of percent.
    start = estimate_noise(1.0, DELTA, 1 / 75, 225)
    answer = noise_for_epsilon(target_epsilon=1.0, delta=DELTA, sample_rate=1 / 75, steps=225)
    assert 0.7 * answer <= start <= answer * 1.1
    # The prior runs' share is taken out of the room the target leaves.
    assert estimate_noise(1.0, DELTA, 1 / 75, 225, [(1.1, 0.01, 300)]) > start


@pytest.mark.parametrize("start", [0.05, 0.9, 40.0])
def test_the_search_brackets_from_either_side_and_past_an_unbounded_end(start: float) -> None:
    # A falling curve with no finite value below σ = 0.1, as an accountant can give.
    def spent(sigma: float) -> float:
        return math.inf if sigma < 0.1 else 2.0 / sigma**1.5

    sigma = least_noise(spent, 1.0, 0.01, start)
    assert 0.99 <= spent(sigma) <= 1.0


def test_a_target_no_noise_reaches_is_refused() -> None:
    with pytest.raises(AccountingError, match="no noise multiplier"):
        least_noise(lambda sigma: 5.0, 1.0, NOISE_TOLERANCE, 10.0)


def test_opacus_epoch_planning_can_miss_the_steps_that_run() -> None:
    # Why training plans noise for epochs * int(1/q) steps itself: make_private_with_epsilon
    # plans int(epochs / q), and float rounding makes these differ.
    q = 1 / 75
    assert int(3 / q) == 224
    assert 3 * int(1 / q) == 225


# The guarantee itself: for any target, sample rate and length, the noise training uses spends
# at most the target over exactly the steps the Poisson sampler runs.
@settings(max_examples=4, deadline=None, derandomize=True)
@given(
    target=st.floats(min_value=0.5, max_value=4.0),
    batches=st.integers(min_value=10, max_value=120),
    epochs=st.integers(min_value=1, max_value=3),
)
@example(target=1.0, batches=75, epochs=3)
@example(target=1.0, batches=93, epochs=2)
def test_spent_never_exceeds_target(target: float, batches: int, epochs: int) -> None:
    q = 1 / batches
    steps = epochs * int(1 / q)
    sigma = noise_for_epsilon(target_epsilon=target, delta=DELTA, sample_rate=q, steps=steps)
    spent = compose_epsilon([Mechanism(sigma, q, steps)], DELTA)
    assert 0 < spent <= target


def _independent_pld(history: list[Mechanism], delta: float) -> float:
    # dp_accounting's PLD accountant, driven directly, not through Warden.
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant

    acct = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    for m in history:
        gaussian = dp_event.GaussianDpEvent(m.noise_multiplier)
        event = (
            gaussian
            if m.sample_rate == 1.0
            else dp_event.PoissonSampledDpEvent(m.sample_rate, gaussian)
        )
        acct.compose(event, m.steps)
    return float(acct.get_epsilon(delta))


def test_demo_run_states_the_smaller_of_prv_and_pld() -> None:
    # The reference run: σ 3.28, q 1/15, 150 steps, δ 1e-5 (PRV 0.9985, PLD 0.9884).
    demo = [Mechanism(3.28, 1 / 15, 150)]
    stated = tightest_epsilon(demo, 1e-5)
    assert stated.prv == pytest.approx(compose_epsilon(demo, 1e-5, "prv"))
    assert stated.pld == pytest.approx(_independent_pld(demo, 1e-5), rel=1e-9)
    assert stated.prv == pytest.approx(0.9985, abs=2e-3)
    assert stated.pld == pytest.approx(0.9884, abs=2e-3)
    assert stated.epsilon == min(stated.prv, stated.pld) == stated.pld
    assert stated.accountant == "pld"
    assert compose_epsilon(demo, 1e-5) == stated.epsilon


def test_a_one_off_gaussian_release_composes_with_training() -> None:
    # A release charged as (σ, q = 1, 1 step), e.g. a noisy statistic, beside a training run.
    history = [Mechanism(3.28, 1 / 15, 150), Mechanism(20.0, 1.0, 1)]
    stated = tightest_epsilon(history, 1e-5)
    assert stated.pld == pytest.approx(_independent_pld(history, 1e-5), rel=1e-9)
    assert stated.epsilon == min(stated.prv, stated.pld)
    assert stated.epsilon > tightest_epsilon(history[:1], 1e-5).epsilon
    assert tightest_epsilon([Mechanism(0.0, 1.0, 1)], 1e-5).epsilon == math.inf
