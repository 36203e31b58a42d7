"""Verdict statistics against hand-computed cases."""

import math

import pytest
from scipy import stats as sps

from bench.evaluation.stats import Published, tost_and_welch, verdict


def test_one_sample_case_with_one_degree_of_freedom_matches_the_cauchy_closed_form():
    # n=2 -> df=1, where Student's t is the Cauchy distribution: P(T > t) = 1/2 - atan(t)/pi.
    values = [91.0, 93.0]  # mean 92, sd sqrt(2), standard error 1
    published = Published(mean=91.0, std=None, n=None, source="hand")
    p_eq, p_diff, test = tost_and_welch(values, published, margin=1.0)
    assert "one-sample" in test
    assert p_diff == pytest.approx(1 - 2 * math.atan(1.0) / math.pi)  # t = 1 -> 0.5
    # TOST: H0 mu <= 90 gives t = 2; H0 mu >= 92 gives t = 0 (p = 1/2); p = max
    p_low = 0.5 - math.atan(2.0) / math.pi
    assert p_low < 0.5
    assert p_eq == pytest.approx(0.5)


def test_two_sample_welch_from_summary_statistics_by_hand():
    values = [90.0, 91.0, 92.0, 93.0]  # mean 91.5, sd sqrt(5/3)
    published = Published(mean=91.7, std=0.5, n=100, source="hand")
    v1, v2 = (5 / 3) / 4, 0.25 / 100
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 3 + v2**2 / 99)
    t = (91.5 - 91.7) / se
    p_eq, p_diff, test = tost_and_welch(values, published, margin=1.0)
    assert "Welch" in test
    assert p_diff == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    p_low = sps.t.sf((91.5 + 1.0 - 91.7) / se, df)  # H0: diff <= -1
    p_high = sps.t.cdf((91.5 - 1.0 - 91.7) / se, df)  # H0: diff >= +1
    assert p_eq == pytest.approx(max(p_low, p_high), rel=1e-9)


PUB = Published(mean=91.7, std=0.5, n=100, source="DC Table 1")


def test_close_and_tight_measurements_are_reproduced():
    v = verdict([91.5, 91.6, 91.7, 91.8, 91.9, 91.6, 91.7, 91.8], PUB, margin=1.0)
    assert v.verdict == "reproduced" and v.comparable


def test_far_measurements_are_not_reproduced():
    v = verdict([85.0, 85.5, 84.8, 85.2, 85.1], PUB, margin=1.0)
    assert v.verdict == "not reproduced"
    assert v.p_difference < 0.05 < v.p_equivalence


def test_few_noisy_measurements_are_inconclusive():
    assert verdict([88.0, 95.0], PUB, margin=1.0).verdict == "inconclusive"
    single = verdict([91.7], PUB, margin=1.0)
    assert single.verdict == "inconclusive" and "91.70 ± n/a (n=1)" in single.summary()


def test_reduced_budgets_and_overrides_are_never_compared():
    good = [91.5, 91.6, 91.7, 91.8, 91.9, 91.6, 91.7, 91.8]
    v = verdict(good, PUB, margin=1.0, off_protocol=["budget=smoke"])
    assert v.verdict == "not comparable (budget=smoke)" and not v.comparable
    v = verdict(good, PUB, margin=1.0, off_protocol=["overrides: method.lr_img=1"])
    assert v.verdict.startswith("not comparable (overrides: method.lr_img=1")
    assert math.isnan(v.p_equivalence) and math.isnan(v.p_difference)
    assert "not computed" in v.summary() and "n=8" in v.summary()


def test_bad_margin_is_refused():
    with pytest.raises(ValueError):
        verdict([1.0, 2.0], PUB, margin=0.0)
