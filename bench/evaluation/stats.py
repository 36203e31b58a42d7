"""Verdicts: does a measured result reproduce a published mean +- std?

The test, stated in every verdict:

1. Equivalence by two one-sided Welch t-tests (TOST, Schuirmann 1987) with margin ``delta``
   (percentage points, from the recipe): H0 ``|mu_measured - mu_published| >= delta``. Its
   p-value is the larger of the two one-sided p-values.
2. Welch's two-sided t-test of ``mu_measured == mu_published``, from summary statistics
   (``scipy.stats.ttest_ind_from_stats``, ``equal_var=False``).

Verdict: ``reproduced`` if TOST rejects at ``alpha`` (the means are equivalent within the
margin); else ``not reproduced`` if Welch rejects (they differ, by more than the margin can
excuse); else ``inconclusive`` (too few or too noisy measurements to say).

A published number without a standard deviation is taken as a fixed value: both tests become
one-sample t-tests of the measured accuracies against it.

Only runs on the paper's protocol are compared (paper budget, no ``--set`` override, the
original dataset); any other run's verdict is ``not comparable (budget=..., ...)`` and no test
against the published number is run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Published:
    """A published result: mean and (sample) std in percent over ``n`` models, and its source."""

    mean: float
    std: float | None
    n: int | None
    source: str


@dataclass(frozen=True)
class Verdict:
    """Outcome of ``verdict``; ``as_dict`` is what ``verdict.json`` holds."""

    verdict: str
    comparable: bool
    reason: str
    test: str
    n: int
    mean: float
    std: float
    published_mean: float | None
    published_std: float | None
    published_n: int | None
    published_source: str
    margin: float
    alpha: float
    p_equivalence: float
    p_difference: float
    values: tuple[float, ...] = ()
    """the measured accuracies (percent) the verdict was computed from"""
    statistic: str = "final"
    """what ``values`` are: ``final`` (networks trained on the final synthetic set) or
    ``max_over_evaluations`` (the best evaluation during distillation, as the paper reports)"""

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """Multi-line human-readable statement of the verdict and the test."""
        pub_std = f" ± {self.published_std:.2f}" if self.published_std is not None else " (no std)"
        pub_n = f", n={self.published_n}" if self.published_n else ""
        published = (
            f"{self.published_mean:.2f}{pub_std}{pub_n} [{self.published_source}]"
            if self.published_mean is not None
            else "not found (see the recipe's note)"
        )
        return "\n".join(
            [
                f"verdict: {self.verdict}" + ("" if self.comparable else f" — {self.reason}"),
                f"  measured : {self.mean:.2f} ± {_fmt(self.std)} (n={self.n})"
                + ("" if self.statistic == "final" else f" [{self.statistic}]"),
                f"  published: {published}",
                f"  test     : {self.test}; margin ±{self.margin:.2f} pp, alpha {self.alpha}",
                f"  p-values : equivalence (TOST) {_fmt_p(self.p_equivalence)}, "
                f"difference {_fmt_p(self.p_difference)}"
                if self.comparable
                else "  p-values : not computed (runs off the paper's protocol are not tested)",
            ]
        )


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def tost_and_welch(
    values: Sequence[float], published: Published, margin: float
) -> tuple[float, float, str]:
    """p-values of the equivalence test (TOST) and of the difference test, and the test's name.

    ``values`` are the measured accuracies (percent), at least two of them, with a
    non-degenerate spread unless the published std is given.
    """
    x = np.asarray(values, dtype=float)
    n, mean, std = len(x), float(x.mean()), float(x.std(ddof=1))
    if published.std is not None and published.n:
        kwargs = dict(
            std1=std,
            nobs1=n,
            mean2=published.mean,
            std2=published.std,
            nobs2=published.n,
            equal_var=False,
        )
        p_low = stats.ttest_ind_from_stats(mean1=mean + margin, alternative="greater", **kwargs)
        p_high = stats.ttest_ind_from_stats(mean1=mean - margin, alternative="less", **kwargs)
        p_diff = stats.ttest_ind_from_stats(mean1=mean, **kwargs).pvalue
        name = "TOST equivalence + Welch's t-test (two-sample, from summary statistics)"
    else:
        p_low = stats.ttest_1samp(x, published.mean - margin, alternative="greater")
        p_high = stats.ttest_1samp(x, published.mean + margin, alternative="less")
        p_diff = stats.ttest_1samp(x, published.mean).pvalue
        name = "TOST equivalence + one-sample t-test (published number has no std)"
    return float(max(p_low.pvalue, p_high.pvalue)), float(p_diff), name


def verdict(
    values: Sequence[float],
    published: Published | None,
    margin: float,
    alpha: float = 0.05,
    off_protocol: Sequence[str] = (),
    statistic: str = "final",
) -> Verdict:
    """Judge measured accuracies against a published result.

    Args:
        values: measured test accuracies in percent, one per evaluated model.
        published: the recipe's published result; ``None`` (not found) is never compared.
        margin: equivalence margin in percentage points (> 0).
        alpha: significance level of both tests.
        off_protocol: why the run departs from the paper's protocol (``RunConfig.off_protocol``:
            a smaller budget, ``--set`` overrides, another copy of the dataset); any reason
            makes it not comparable and no test is run.
        statistic: what ``values`` are (``Verdict.statistic``); it must be what the published
            number measures.

    Raises:
        ValueError: ``margin <= 0``, ``alpha`` outside (0, 1) or no values.
    """
    if margin <= 0 or not 0 < alpha < 1:
        raise ValueError(f"need margin > 0 and 0 < alpha < 1, got {margin}, {alpha}")
    if len(values) == 0:
        raise ValueError("a verdict needs at least one measured value")
    x = np.asarray(values, dtype=float)
    n = len(x)
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    reasons = list(off_protocol)
    if published is None:
        reasons.append("no published number")
    comparable = not reasons

    p_eq, p_diff, test = float("nan"), float("nan"), "TOST equivalence + Welch's t-test"
    if comparable and n > 1 and (std > 0 or published.std):
        p_eq, p_diff, test = tost_and_welch(x, published, margin)
    if not comparable:
        outcome = f"not comparable ({'; '.join(reasons)})"
        why = "the run did not follow the paper's protocol"
        if published is None and not off_protocol:
            why = "there is no published number"
        reason = f"{why}; no test against the paper was run"
    elif math.isnan(p_eq):
        outcome, reason = INCONCLUSIVE, "fewer than two measurements, or no spread to test"
    elif p_eq < alpha:
        outcome, reason = REPRODUCED, f"equivalent within ±{margin} pp"
    elif p_diff < alpha:
        outcome, reason = NOT_REPRODUCED, "significantly different, not within the margin"
    else:
        outcome, reason = INCONCLUSIVE, "neither equivalence nor a difference is significant"
    return Verdict(
        verdict=outcome,
        comparable=comparable,
        reason=reason,
        test=test,
        n=n,
        mean=float(x.mean()),
        std=std,
        published_mean=published.mean if published else None,
        published_std=published.std if published else None,
        published_n=published.n if published else None,
        published_source=published.source if published else "",
        margin=margin,
        alpha=alpha,
        p_equivalence=p_eq,
        p_difference=p_diff,
        values=tuple(float(v) for v in x),
        statistic=statistic,
    )


def compare_with_baseline(
    values: Sequence[float], mean: float, std: float, n: int, alpha: float = 0.05
) -> dict:
    """Does a method beat a baseline measured under the same protocol? One-sided Welch t-test
    (``scipy.stats.ttest_ind_from_stats``, ``alternative="greater"``) of the measured
    accuracies ``values`` against the baseline's mean, std and number of models.

    Returns:
        ``{"difference": pp, "p_greater": p, "outcome": "better" | "not shown better"}``
        (``p_greater`` is NaN where either side has fewer than two models).
    """
    x = np.asarray(values, dtype=float)
    p = float("nan")
    if len(x) > 1 and n > 1 and (x.std(ddof=1) > 0 or std > 0):
        p = float(
            stats.ttest_ind_from_stats(
                float(x.mean()),
                float(x.std(ddof=1)),
                len(x),
                mean,
                std,
                n,
                equal_var=False,
                alternative="greater",
            ).pvalue
        )
    better = not math.isnan(p) and p < alpha
    return {
        "difference": float(x.mean()) - mean,
        "p_greater": p,
        "outcome": "better" if better else "not shown better",
    }
