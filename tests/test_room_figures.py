"""The waiting-room bench's fairness figures must tell a fair shuffle from a biased one
(issue 13: places dropped in the generator's order biased the 100,000-patient sample), and
count later arrivals served out of order."""

from __future__ import annotations

import random

from bench.room_figures import CHI2_P01, fairness_figures

EARLY = 4000


def crowd(admission_order: list[int]) -> tuple[list[str], dict[str, int], set[str]]:
    """Early arrivals numbered 1..EARLY by arrival, admitted in `admission_order`."""
    log = [f"p{arrival}" for arrival in admission_order]
    return log, {f"p{n}": n for n in range(1, EARLY + 1)}, set(log)


def shuffled(seed: int) -> list[int]:
    order = list(range(1, EARLY + 1))
    random.Random(seed).shuffle(order)
    return order


def test_a_uniform_shuffle_stays_below_the_bound() -> None:
    log, arrivals, early = crowd(shuffled(13))
    figures = fairness_figures(log, arrivals, early, set())
    assert figures["early_admitted"] == EARLY
    assert figures["early_quarters_chi2"] < CHI2_P01
    assert abs(figures["early_spearman_rho"]) < 0.05


def test_a_sample_biased_by_arrival_order_is_caught() -> None:
    # The issue 13 kind of bias, as mild as its figures (chi2 39, rho 0.06): of a fair
    # shuffle, one in ten of the first half of the arrivals (5% of all) went last.
    order = shuffled(13)
    delayed = {a for a in order if a <= EARLY // 2 and a % 10 == 0}
    log, arrivals, early = crowd([a for a in order if a not in delayed] + sorted(delayed))
    figures = fairness_figures(log, arrivals, early, set())
    assert figures["early_quarters_chi2"] > CHI2_P01
    assert figures["early_spearman_rho"] < -0.05


def test_later_arrivals_out_of_order_or_before_an_early_one_are_counted() -> None:
    log, arrivals, early = crowd(shuffled(13))
    late = [f"q{n}" for n in range(1, 6)]
    arrivals |= {patient: EARLY + n for n, patient in enumerate(late, 1)}
    # q2 and q1 swapped; q1 admitted before the last early arrival.
    served = [*log[:-1], "q2", "q1", log[-1], "q3", "q4", "q5"]
    figures = fairness_figures(served, arrivals, early, set(late))
    assert figures["late_out_of_order"] == 1
    assert figures["late_admitted_before_an_early"] == 2
    assert figures["late_admitted"] == 5
