"""Verdict statistics against statsmodels, hand-computed cases and simulation."""

import math

import numpy as np
import pytest
from statsmodels.stats.weightstats import DescrStatsW, ttest_ind, ttost_ind

from bench.evaluation.stats import (
    OUTCOMES,
    Published,
    Quote,
    decide,
    power,
    two_sample_set_test,
    variance_split,
    verdict,
    welch_tests,
)

CASES = [  # (x1, x2, margin)
    ([90.0, 91.0, 92.0, 93.0], [91.2, 91.9, 92.4, 90.8, 91.1], 1.0),
    ([50.1, 49.3, 51.2], [47.0, 48.5, 46.9, 47.7, 48.8, 47.2], 0.5),
    ([28.0, 28.4, 27.1, 29.3, 28.8], [28.3, 28.1, 28.6], 2.0),
    ([10.0, 12.0, 14.0, 13.0, 9.0, 11.0, 15.0], [11.5, 11.4], 3.0),
]


@pytest.mark.parametrize("x1, x2, margin", CASES)
def test_two_sample_tests_agree_with_statsmodels(x1, x2, margin):
    a, b = np.array(x1), np.array(x2)
    se1, se2 = a.std(ddof=1) / math.sqrt(len(a)), b.std(ddof=1) / math.sqrt(len(b))
    d = a.mean() - b.mean()
    p_eq, p_diff, p_beyond, df = welch_tests(d, se1, len(a) - 1, se2, len(b) - 1, margin)
    p_tost = ttost_ind(a, b, -margin, margin, usevar="unequal")[0]
    _, p_t, df_t = ttest_ind(a, b, usevar="unequal")
    assert p_eq == pytest.approx(p_tost, rel=1e-9)
    assert p_diff == pytest.approx(p_t, rel=1e-9) and df == pytest.approx(df_t, rel=1e-9)
    # minimal-effect test: one-sided beyond the margin on the observed side
    side, value = ("larger", margin) if d > 0 else ("smaller", -margin)
    p_me = ttest_ind(a, b, usevar="unequal", alternative=side, value=value)[1]
    assert p_beyond == pytest.approx(p_me, rel=1e-9)


@pytest.mark.parametrize("x1, x2, margin", CASES)
def test_two_sides_of_sets_are_welch_tests_of_their_set_means(x1, x2, margin):
    # two networks per set, close together: the set means carry the spread (MSB > MSW), so
    # each side's standard error is sd(set means) / sqrt(sets), as statsmodels computes it
    a, b = ([[x - 0.05, x + 0.05] for x in side] for side in (x1, x2))
    result = two_sample_set_test(a, b, margin)
    p_tost = ttost_ind(np.array(x1), np.array(x2), -margin, margin, usevar="unequal")[0]
    _, p_t, df_t = ttest_ind(np.array(x1), np.array(x2), usevar="unequal")
    assert result["difference"] == pytest.approx(np.mean(x1) - np.mean(x2), rel=1e-12)
    assert result["p_equivalence"] == pytest.approx(p_tost, rel=1e-9)
    assert result["p_difference"] == pytest.approx(p_t, rel=1e-9)
    assert result["df"] == pytest.approx(df_t, rel=1e-9)
    assert decide(result, 0.05, margin)[0] in OUTCOMES


def test_two_sides_need_two_sets_each():
    result = two_sample_set_test([[90.0, 91.0]], [[90.0], [91.0]], 1.0)
    assert math.isnan(result["p_equivalence"]) and "two synthetic sets" in result["why"]
    assert decide(result, 0.05, 1.0)[0] == "inconclusive"


@pytest.mark.parametrize("x1, x2, margin", CASES)
def test_one_sample_tests_agree_with_statsmodels(x1, x2, margin):
    a, fixed = np.array(x1), float(np.mean(x2))
    se = a.std(ddof=1) / math.sqrt(len(a))
    p_eq, p_diff, _, _ = welch_tests(a.mean() - fixed, se, len(a) - 1, 0.0, math.inf, margin)
    d = DescrStatsW(a)
    assert p_eq == pytest.approx(d.ttost_mean(fixed - margin, fixed + margin)[0], rel=1e-9)
    assert p_diff == pytest.approx(d.ttest_mean(fixed)[1], rel=1e-9)
    # the verdict on one set against a fixed number with unknown design is this test
    v = verdict(list(x1), Published(fixed, None, None, "hand"), margin)
    assert v.p_equivalence == pytest.approx(p_eq, rel=1e-9)


def _simulate(rng, k=5, m=20, mean=50.0, sd_b=2.0, sd_w=1.0):
    return mean + rng.normal(0, sd_b, (k, 1)) + rng.normal(0, sd_w, (k, m))


def test_set_level_verdict_is_the_one_sample_test_of_the_set_means():
    sets = _simulate(np.random.default_rng(3))
    fixed = 50.5
    v = verdict(sets.tolist(), Published(fixed, None, None, "hand"), margin=2.0)
    means = DescrStatsW(sets.mean(axis=1))  # 5 units, not 100
    assert v.p_equivalence == pytest.approx(means.ttost_mean(fixed - 2, fixed + 2)[0], rel=1e-9)
    assert v.p_difference == pytest.approx(means.ttest_mean(fixed)[1], rel=1e-9)
    assert v.df == 4 and v.num_sets == 5 and v.n == 100


def test_variance_split_matches_reml_and_recovers_known_components():
    import pandas as pd
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(0)
    sets = _simulate(rng)
    split = variance_split(sets.tolist())
    frame = pd.DataFrame({"y": sets.ravel(), "g": np.repeat(np.arange(5), 20)})
    fit = smf.mixedlm("y ~ 1", frame, groups=frame["g"]).fit(reml=True)
    assert split.std_between**2 == pytest.approx(float(fit.cov_re.iloc[0, 0]), rel=1e-3)
    assert split.std_within**2 == pytest.approx(fit.scale, rel=1e-3)
    # over many seeded runs the estimates centre on the true components (sd_b 2, sd_w 1)
    runs = [variance_split(_simulate(rng).tolist()) for _ in range(400)]
    var_b = np.array([r.std_between**2 for r in runs])
    var_w = np.array([r.std_within**2 for r in runs])
    assert var_b.mean() == pytest.approx(4.0, abs=4 * var_b.std() / 20)
    assert var_w.mean() == pytest.approx(1.0, abs=4 * var_w.std() / 20)
    icc = np.array([r.icc for r in runs])
    assert np.median(icc) == pytest.approx(0.8, abs=0.08)


def test_zero_spread_measurements_are_inconclusive():
    no_n = Published(mean=14.4, std=2.0, n=None, source="hand")
    with_n = Published(mean=14.4, std=2.0, n=100, source="hand", num_exp=5, num_eval=20)
    for pub in (no_n, with_n, Published(14.4, None, None, "hand")):
        for value in (14.0, 20.0):
            v = verdict([value] * 3, pub, margin=1.0)
            assert v.verdict == "inconclusive" and math.isnan(v.p_difference)
            v = verdict([[value] * 3] * 5, pub, margin=1.0)  # five identical sets
            assert v.verdict == "inconclusive"


PUB = Published(mean=91.7, std=0.5, n=100, source="DC Table 1", num_exp=5, num_eval=20, std_ddof=0)


def test_population_std_is_converted_to_a_sample_std():
    assert PUB.sample_std() == pytest.approx(0.5 * math.sqrt(100 / 99))
    assert Published(1.0, 0.5, 100, "x").sample_std() == 0.5


def test_close_and_tight_sets_are_reproduced_far_ones_not():
    rng = np.random.default_rng(1)
    close = _simulate(rng, mean=91.7, sd_b=0.2, sd_w=0.4)
    v = verdict(close.tolist(), PUB, margin=1.0)
    assert v.verdict == "reproduced" and v.comparable and "ICC" in v.summary()
    assert "least favourable variance split" in " ".join(v.assumptions)
    far = _simulate(rng, mean=85.0, sd_b=0.2, sd_w=0.4)
    v = verdict(far.tolist(), PUB, margin=1.0)
    assert v.verdict == "not reproduced" and v.p_minimal_effect < 0.05 < v.p_equivalence
    assert v.interval[1] < -1.0  # the whole interval beyond the margin


def test_between_set_spread_is_what_the_test_sees():
    # 100 networks look precise, but 5 sets that disagree by 2 pp cannot show equivalence
    rng = np.random.default_rng(2)
    sets = _simulate(rng, mean=91.7, sd_b=1.0, sd_w=0.3)
    naive = DescrStatsW(sets.ravel()).ttost_mean(91.7 - 1.0, 91.7 + 1.0)[0]
    assert naive < 0.05  # 100 networks taken as independent: "equivalent"
    v = verdict(sets.tolist(), PUB, margin=1.0)
    assert v.verdict == "inconclusive" and v.p_equivalence > 0.05


def test_one_set_published_number_is_compared_like_with_like():
    pub = Published(46.3, 0.8, 5, "MTT", num_exp=1, num_eval=5, std_ddof=0)
    v = verdict([[46.0, 46.5, 45.8, 46.9, 46.2], [44.0, 44.4, 44.1, 43.9, 44.6]], pub, 2.0)
    assert "between-set spread is not covered" in " ".join(v.assumptions)
    assert v.std_between_sets > 1.0 and v.df == pytest.approx(v.df)


def test_one_measured_set_against_several_published_sets_is_inconclusive():
    v = verdict([91.5, 91.7, 91.9], PUB, margin=1.0)
    assert v.verdict == "inconclusive" and "between-set" in v.reason


def test_alternative_quotes_are_reported():
    pub = Published(98.8, 0.1, 100, "KIP", 5, 20, 0, alternatives=(Quote(93.0, 0.2, "other"),))
    sets = _simulate(np.random.default_rng(4), mean=98.8, sd_b=0.05, sd_w=0.1)
    v = verdict(sets.tolist(), pub, margin=0.5)
    assert v.verdict == "reproduced"
    assert v.alternatives[0]["verdict"] == "not reproduced"
    assert "CHANGES the verdict" in v.summary()


def test_reduced_budgets_and_overrides_are_never_compared():
    good = [[91.5, 91.6, 91.7, 91.8], [91.9, 91.6, 91.7, 91.8]]
    v = verdict(good, PUB, margin=1.0, off_protocol=["budget=smoke"])
    assert v.verdict == "not comparable (budget=smoke)" and not v.comparable
    v = verdict(good, PUB, margin=1.0, off_protocol=["overrides: method.lr_img=1"])
    assert v.verdict.startswith("not comparable (overrides: method.lr_img=1")
    assert math.isnan(v.p_equivalence) and math.isnan(v.p_difference)
    assert "not computed" in v.summary() and "n=8" in v.summary()


def test_bad_margin_is_refused():
    with pytest.raises(ValueError):
        verdict([1.0, 2.0], PUB, margin=0.0)


def _monte_carlo(difference, icc, s, runs, seed, k=5, m=20):
    """Runs of ``k x m`` against a published ``k x m`` run whose sample std is ``s`` (its
    mean drawn with it), judged by ``verdict``."""
    rng = np.random.default_rng(seed)
    total = s**2 / ((1 - icc) + icc * m * (k - 1) / (k * m - 1))
    sd_b, sd_w = math.sqrt(icc * total), math.sqrt((1 - icc) * total)
    outcomes = []
    for _ in range(runs):
        theirs_mean = 50.0 + rng.normal(0, math.sqrt((sd_b**2 + sd_w**2 / m) / k))
        pub = Published(float(theirs_mean), s, k * m, "mc", k, m)
        ours = _simulate(rng, k, m, 50.0 + difference, sd_b, sd_w)
        outcomes.append(verdict(ours.tolist(), pub, margin=1.0).verdict.split(" (")[0])
    return np.array(outcomes)


@pytest.mark.slow
def test_power_figures_match_a_monte_carlo_of_the_same_design():
    """``power``'s thresholds (its own vectorised simulation of the sufficient statistics) hit
    80 % in whole runs judged by ``verdict``."""
    icc, s, runs = 0.2, 0.3, 1500
    figure = power(Published(50.0, s, 100, "mc", 5, 20), 1.0, 0.05, 5, 20, icc)
    tolerance = 3.5 * math.sqrt(0.8 * 0.2 / runs) + 0.01  # simulation error of both sides
    at_rep = _monte_carlo(figure.reproduced_up_to, icc, s, runs, seed=10)
    assert np.isin(at_rep, ["reproduced", "reproduced, with a small difference"]).mean() == (
        pytest.approx(0.8, abs=tolerance)
    )
    at_beyond = _monte_carlo(figure.not_reproduced_from, icc, s, runs, seed=11)
    assert np.mean(at_beyond == "not reproduced") == pytest.approx(0.8, abs=tolerance)


def test_power_says_when_a_budget_can_never_reach_a_verdict():
    assert "one synthetic set" in power(PUB, 1.0, 0.05, 1, 3).summary()
    tiny = power(PUB, 0.05, 0.05, 2, 2)
    assert tiny.reproduced_up_to is None and "never be declared reproduced" in tiny.summary()
    assert "no std" in power(Published(1.0, None, None, "x"), 1.0, 0.05, 5, 20).summary()


ISSUE_EXAMPLE = [
    [90.6, 90.7, 90.5, 90.6],
    [91.2, 91.3, 91.1, 91.2],
    [90.8, 90.9, 90.7, 90.8],
    [91.0, 90.9, 91.1, 91.0],
    [90.9, 91.0, 90.8, 90.9],
]


def test_a_difference_inside_the_margin_is_never_not_reproduced():
    """-0.80 against a margin of 1.0 whose interval crosses -1: inconclusive, and the verdict
    says that more sets could show it reproduced."""
    v = verdict(ISSUE_EXAMPLE, PUB, 1.0)
    assert v.verdict == "inconclusive"
    low, high = v.interval
    assert low < -1.0 < high < 0
    assert "more sets could show reproduced" in v.reason


def test_the_four_outcomes():
    fixed = Published(50.0, None, None, "a fixed value")
    tight = [[50.5 + 0.01 * j for j in range(5)] for _ in range(3)]
    tight = [[a + 0.02 * i for a in row] for i, row in enumerate(tight)]
    assert verdict(tight, fixed, 1.0).verdict == "reproduced, with a small difference"
    centred = [[49.9, 50.1, 50.0], [50.05, 49.95, 50.0], [50.1, 49.9, 50.0]]
    assert verdict(centred, fixed, 1.0).verdict == "reproduced"
    assert verdict([[a + 5 for a in row] for row in centred], fixed, 1.0).verdict == (
        "not reproduced"
    )
    wide = [[48.0, 52.0, 50.5], [51.0, 49.0, 53.0], [47.5, 52.5, 50.0]]
    assert verdict(wide, fixed, 1.0).verdict == "inconclusive"


def test_the_standard_error_never_falls_below_the_within_set_spread():
    # identical set means, sizes 2, 4, 3: squares 2 + 5 + 4.5 = 11.5 on 6 df, MSW / N by hand
    sets = [[49.0, 51.0], [48.5, 51.5, 49.5, 50.5], [48.5, 50.0, 51.5]]
    split = variance_split(sets)
    assert split.se == pytest.approx(math.sqrt(11.5 / 6 / 9))  # 0.4615, not 0
    # set means that agree by chance more than their networks allow: the floor, not 0.03
    rng = np.random.default_rng(5)
    noisy = 70.0 + rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 1.0, (5, 20))
    split = variance_split(noisy.tolist())
    assert split.se >= split.std_within / 10 - 1e-12


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([[91.0, float("nan")]], "set 0 network 1: accuracy nan is not a finite number"),
        ([[91.0], [float("inf")]], "set 1 network 0: accuracy inf is not a finite number"),
        ([[91.0, 101.0]], "set 0 network 1: accuracy 101.0 is not a percentage in [0, 100]"),
        ([[-1.0, 50.0]], "set 0 network 0: accuracy -1.0 is not a percentage in [0, 100]"),
        ([[91.0], []], "set 1 has no evaluated network"),
        ([], "no accuracies to judge"),
    ],
)
def test_bad_accuracies_are_one_line_errors(values, message):
    from bench.core.errors import UserError

    with pytest.raises(UserError) as caught:
        verdict(values, PUB, 1.0)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_published_rounding_is_read_from_the_printed_digits():
    assert Published(91.7, 0.5, 100, "x").rounding() == (0.05, 0.05)
    assert Published(98.8, 0.13, 100, "x").rounding() == (0.05, 0.005)
    assert Published(28.0, None, None, "x").rounding() == (0.05, 0.0)


def test_a_verdict_that_the_rounding_can_flip_says_so():
    fixed = Published(50.0, None, None, "printed to one decimal")
    # the upper end of the interval sits between 0.95 and 1.0 from the printed mean
    sets = [[50.51, 50.49, 50.5], [50.53, 50.47, 50.5], [50.55, 50.45, 50.5]]
    v = verdict([[a + 0.42 for a in row] for row in sets], fixed, 1.0)
    assert "borderline under the published rounding" in v.verdict
    assert v.rounding and all(r["verdict"] != v.verdict.split(" (")[0] for r in v.rounding)
    assert "rounding :" in v.summary()
