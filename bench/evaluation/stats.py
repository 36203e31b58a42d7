"""Verdicts: does a measured result reproduce a published mean +- std?

The model (stated in every verdict). A run trains ``num_eval`` networks on each of
``num_exp`` synthetic sets. Networks trained on one set share it, so accuracies follow a one-way
random-effects model, ``y_ij = mu + a_i + e_ij`` with set effects ``a_i ~ N(0, s_b^2)`` and
network effects ``e_ij ~ N(0, s_w^2)``: the **synthetic set is the unit of replication**.
``variance_split`` estimates ``s_b`` (between sets), ``s_w`` (within a set) and the intraclass
correlation ``icc = s_b^2 / (s_b^2 + s_w^2)`` by one-way ANOVA (Searle, Casella & McCulloch,
*Variance Components*, 1992, section 3.5). The run's mean is the mean of its set means; its
standard error is ``sd(set means) / sqrt(num_exp)`` but never less than what the within-set
spread alone implies, ``sqrt(MSW / N)`` (``Var(mean) = (s_b^2 + s_w^2 / m) / k >= s_w^2 / N``;
with the ANOVA estimate of ``s_b^2`` truncated at 0, Searle et al. 3.5, this is
``max(MSB, MSW) / N`` for a balanced design), on ``num_exp - 1`` degrees of freedom.

The published side. Its std is converted to a sample std where the reference printed the
population std (``std_ddof = 0``: DC's and MTT's ``np.std``). The standard error of its mean
depends on how its spread splits between and within sets, which the paper does not report and
which our own estimate (from a handful of sets) pins down poorly: plugging our estimated ICC in
as if it were known let ``reproduced`` through 7 % of the time at a true difference equal to the
margin. So the least favourable split is taken, all of the published spread between sets
(``icc = 1``): ``se = s * sqrt((n - 1) / (n (k - 1)))`` on ``k - 1`` degrees of freedom for a
``k x m`` design (``_pooled_design_se`` grows with the ICC). It makes both tests below
conservative: a larger standard error can only make an interval wider. Where the published
number comes from ONE synthetic set (MTT's tables, the point-cloud report) like is compared with
like: both sides use the spread between networks of a set only, the estimand is the difference
between the two sets' expected accuracies, and the verdict states that the between-set spread is
not covered (and how large ours is). A published number without a std (or without ``n``) is
taken as a fixed value (one-sample tests).

The decision (equivalence and minimal-effect testing, Lakens, Scheel & Isager 2018, *AMPPS*
1(2)), with ``d`` = measured - published, its standard error from both sides and
Welch-Satterthwaite degrees of freedom, and the ``1 - 2 alpha`` interval of ``d``:

- ``reproduced``: the interval lies inside ``+-margin`` (TOST, Schuirmann 1987, rejects
  ``|d| >= margin``), and the two-sided test of ``d = 0`` does not reject;
- ``reproduced, with a small difference``: the interval lies inside ``+-margin`` and the
  two-sided test of ``d = 0`` rejects at ``alpha``: the difference is real but smaller than the
  margin, and said so;
- ``not reproduced``: the interval lies wholly outside ``+-margin`` (the minimal-effect test
  rejects ``|d| <= margin``);
- ``inconclusive``: anything else; the verdict says which outcome more sets could reach (the
  side of the margin the observed difference lies on). A measurement without spread has no
  estimable standard error and is always inconclusive.

Published numbers are printed rounded (``0.5`` may be anything in ``[0.45, 0.55)``). The verdict
is also computed at the ends of the rounding intervals of the published mean and std; where they
give another outcome it says ``borderline under the published rounding`` and shows them.

Accuracies must be finite percentages in ``[0, 100]`` and every set must have a network;
anything else is a ``UserError`` before any statistic is computed.

Only runs on the paper's protocol are compared (paper budget, no ``--set`` override that changes
results, the original dataset); any other run's verdict is ``not comparable (budget=..., ...)``,
naming every reason, and no test against the published number is run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from bench.core.errors import UserError

REPRODUCED = "reproduced"
SMALL_DIFFERENCE = "reproduced, with a small difference"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
OUTCOMES = (REPRODUCED, SMALL_DIFFERENCE, NOT_REPRODUCED, INCONCLUSIVE)
BORDERLINE = "borderline under the published rounding"
ASSUMED_ICC = 0.5
"""the variance split ``power`` assumes where no measurement gives one (stated in its output)"""
POWER = 0.8
"""the probability at which ``power`` reports the differences a budget can resolve"""


@dataclass(frozen=True)
class Quote:
    """Another quote of the same published cell (a secondary source printing other digits)."""

    mean: float
    std: float | None
    source: str


@dataclass(frozen=True)
class Published:
    """A published result: mean and std in percent over ``n`` models, and its source.

    ``num_exp`` x ``num_eval`` is the design behind it (synthetic sets x networks per set;
    ``n`` equals their product where both are known); ``std_ddof`` is 0 where the reference
    printed the population std (``np.std``), 1 for a sample std. ``alternatives`` are other
    quotes of the same cell; the verdict uses this one and reports whether they change it.
    """

    mean: float
    std: float | None
    n: int | None
    source: str
    num_exp: int | None = None
    num_eval: int | None = None
    std_ddof: int = 1
    alternatives: tuple[Quote, ...] = ()

    @property
    def one_set(self) -> bool:
        """Whether the number comes from one synthetic set (MTT's tables, the point-cloud
        report): then the between-set spread is not in it."""
        return self.num_exp == 1

    def rounding(self) -> tuple[float, float]:
        """Half the last printed digit of the mean and of the std (``91.7`` -> 0.05): how far
        the unrounded numbers may lie from the quoted ones, read from the digits of the values
        (a quote printed with trailing zeros, ``0.50``, cannot be told from ``0.5``)."""

        def half_step(x: float | None) -> float:
            if x is None:
                return 0.0
            digits = repr(float(x)).split(".")[1] if "e" not in repr(float(x)) else ""
            return 0.5 * 10.0 ** -len(digits.rstrip("0") or "0") if digits else 0.0

        return half_step(self.mean), half_step(self.std)

    def sample_std(self) -> float | None:
        """The std with ddof 1 (``std * sqrt(n / (n - 1))`` for a population std)."""
        if self.std is None or self.std_ddof == 1 or not self.n or self.n < 2:
            return self.std
        return self.std * math.sqrt(self.n / (self.n - 1))


@dataclass(frozen=True)
class VarianceSplit:
    """One-way random-effects decomposition of accuracies grouped by synthetic set (percent).

    ``std_between`` and ``std_within`` are NaN where not estimable (one set; no set with two
    networks); ``se`` and ``df`` are the standard error of ``mean`` (the mean of the set means)
    with the set as the unit, never below ``sqrt(MSW / N)`` (module docstring), NaN below two
    sets.
    """

    sets: int
    n: int
    mean: float
    std_between: float
    std_within: float
    icc: float
    se: float
    df: float

    def summary(self) -> str:
        return (
            f"between sets {_fmt(self.std_between)}, within a set {_fmt(self.std_within)}, "
            f"ICC {_fmt(self.icc)} ({self.sets} set(s), {self.n} networks)"
        )


def _as_sets(values: Sequence) -> list[np.ndarray]:
    """Nested ``[[set 0 accuracies], ...]`` as arrays; a flat sequence is one set."""
    if len(values) and not isinstance(values[0], Sequence | np.ndarray):
        return [np.asarray(values, dtype=float)]
    return [np.asarray(s, dtype=float) for s in values if len(s)]


def checked_sets(values: Sequence) -> list[np.ndarray]:
    """``_as_sets`` of accuracies that a verdict can use.

    Raises:
        UserError: no accuracy, a set without networks, or an accuracy that is not a finite
            percentage in [0, 100] (naming the set and network).
    """
    if not len(values):
        raise UserError("no accuracies to judge: the run measured no network")
    nested = len(values) and isinstance(values[0], Sequence | np.ndarray)
    for i, group in enumerate(values if nested else [values]):
        if not len(group):
            raise UserError(f"set {i} has no evaluated network: nothing to judge it by")
        for j, value in enumerate(group):
            if not (isinstance(value, int | float | np.number) and math.isfinite(value)):
                raise UserError(f"set {i} network {j}: accuracy {value!r} is not a finite number")
            if not 0 <= value <= 100:
                raise UserError(
                    f"set {i} network {j}: accuracy {value} is not a percentage in [0, 100]"
                )
    return _as_sets(values)


def variance_split(sets: Sequence[Sequence[float]]) -> VarianceSplit:
    """Between-set and within-set spread of accuracies ``sets[i][j]`` (set i, network j).

    ANOVA estimators (Searle et al. 1992, eq. 3.52, unbalanced ``n0``): ``s_w^2 = MSW``,
    ``s_b^2 = max(0, (MSB - MSW) / n0)``. They equal REML for balanced designs when
    ``MSB >= MSW``.

    Raises:
        ValueError: no accuracies.
    """
    groups = _as_sets(sets)
    if not groups:
        raise ValueError("a variance split needs at least one accuracy")
    sizes = np.array([len(g) for g in groups], dtype=float)
    k, n = len(groups), int(sizes.sum())
    means = np.array([g.mean() for g in groups])
    within_df = n - k
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / within_df if within_df else math.nan
    grand = float(means.mean())
    nan = math.nan
    if k < 2:
        std_w = math.sqrt(msw) if within_df else nan
        return VarianceSplit(1, n, grand, nan, std_w, nan, nan, nan)
    weighted = float((sizes * means).sum() / n)
    msb = float((sizes * (means - weighted) ** 2).sum() / (k - 1))
    n0 = (n - (sizes**2).sum() / n) / (k - 1)
    var_b = max(0.0, (msb - msw) / n0) if within_df else nan
    total = var_b + msw
    icc = var_b / total if within_df and total > 0 else nan
    # never below what the within-set spread alone implies (module docstring)
    floor = msw / n if within_df else 0.0
    se = float(math.sqrt(max(means.var(ddof=1) / k, floor)))
    return VarianceSplit(
        k, n, grand, math.sqrt(var_b), math.sqrt(msw) if within_df else nan, icc, se, k - 1
    )


def welch_tests(
    difference: float, se1: float, df1: float, se2: float, df2: float, margin: float
) -> tuple[float, float, float, float]:
    """The p-values of the decision's three tests of ``difference`` (= mean1 - mean2) from two
    standard errors, with Welch-Satterthwaite degrees of freedom
    ``(v1+v2)^2 / (v1^2/df1 + v2^2/df2)`` (``se2 = 0``: a fixed published value, a one-sample
    test): equivalence (TOST, H0 ``|d| >= margin``), the two-sided test of ``d = 0`` and the
    minimal-effect test (H0 ``|d| <= margin``: one-sided at the margin on the observed side,
    Lakens et al. 2018).

    Returns:
        ``(p_equivalence, p_difference, p_minimal_effect, df)``.
    """
    v1, v2 = se1**2, se2**2
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / df1 + (v2**2 / df2 if v2 else 0.0))
    p_low = stats.t.sf((difference + margin) / se, df)  # H0: difference <= -margin
    p_high = stats.t.cdf((difference - margin) / se, df)  # H0: difference >= +margin
    p_diff = 2 * stats.t.sf(abs(difference) / se, df)
    p_beyond = stats.t.sf((abs(difference) - margin) / se, df)  # H0: |difference| <= margin
    return float(max(p_low, p_high)), float(p_diff), float(p_beyond), float(df)


def published_se(published: Published) -> tuple[float, float, str]:
    """Standard error of the published mean and its degrees of freedom, with the assumption
    made (see module docstring: the least favourable variance split for a design of several
    sets).

    Returns:
        ``(se, df, assumption)``; ``(0, inf, ...)`` for a number without std (fixed value).
    """
    s = published.sample_std()
    if s is None:
        return 0.0, math.inf, "published number has no std: taken as a fixed value"
    k, m = published.num_exp, published.num_eval
    if not published.n or published.n < 2:
        return (
            0.0,
            math.inf,
            "published std without n: its standard error is unknown, the mean is taken as a "
            "fixed value",
        )
    n = published.n
    if k is None or m is None:
        return (
            s / math.sqrt(n),
            n - 1,
            f"published design not recorded: its n={n} accuracies taken as independent",
        )
    if k == 1:
        return s / math.sqrt(n), n - 1, "published number from one synthetic set"
    se, df = _pooled_design_se(s, k, m, 1.0)
    return (
        float(se),
        float(df),
        f"published SE at the least favourable variance split (all of its spread between its "
        f"{k} sets): {float(se):.3f} on {float(df):.0f} df",
    )


def _pooled_design_se(s, k: int, m: int, icc):
    """SE of the mean of a balanced ``k x m`` design whose pooled sample std is ``s``, under
    intraclass correlation ``icc``, and the Satterthwaite df of that estimate (numpy arrays of
    ``s`` and ``icc`` broadcast).

    ``E[s^2] = s_w^2 + s_b^2 m (k-1) / (N-1)`` and ``Var(mean) = (s_b^2 + s_w^2 / m) / k``.
    """
    n = k * m
    total = np.square(s) / ((1 - icc) + icc * m * (k - 1) / (n - 1))
    var_b, var_w = icc * total, (1 - icc) * total
    se = np.sqrt((var_b + var_w / m) / k)
    # s^2 = [(k-1) MSB + k(m-1) MSW] / (N-1); E[MSB] = m s_b^2 + s_w^2, E[MSW] = s_w^2
    a = (k - 1) * (m * var_b + var_w) / (n - 1)
    b = k * (m - 1) * var_w / (n - 1)
    within = np.where(m > 1, np.square(b) / max(k * (m - 1), 1), 0.0)
    df = np.square(a + b) / (np.square(a) / (k - 1) + within)
    return se, df


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
    p_minimal_effect: float = math.nan
    """p-value of the minimal-effect test (H0 ``|d| <= margin``): ``not reproduced`` rests on it"""
    interval: tuple[float, float] = (math.nan, math.nan)
    """the ``1 - 2 alpha`` interval of measured - published (pp) the decision reads"""
    values: tuple[float, ...] = ()
    """the measured accuracies (percent) the verdict was computed from, flattened"""
    statistic: str = "final"
    """what ``values`` are: ``final`` (networks trained on the final synthetic set) or
    ``max_over_evaluations`` (the best evaluation during distillation, as the paper reports)"""
    sets: tuple[tuple[float, ...], ...] = ()
    """``values`` grouped by synthetic set"""
    num_sets: int = 0
    std_between_sets: float = math.nan
    std_within_set: float = math.nan
    icc: float = math.nan
    se: float = math.nan
    """standard error of the measured mean as the test used it"""
    published_se: float = math.nan
    df: float = math.nan
    """Welch-Satterthwaite degrees of freedom of the test"""
    assumptions: tuple[str, ...] = ()
    alternatives: tuple[dict, ...] = ()
    """``{"mean", "std", "source", "verdict"}`` under each other quote of the published cell"""
    rounding: tuple[dict, ...] = ()
    """``{"mean", "std", "verdict"}`` at the ends of the published numbers' rounding intervals
    where the outcome differs from the quoted numbers' (then ``verdict`` says ``BORDERLINE``)"""

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
        lines = [
            f"verdict: {self.verdict}" + ("" if self.comparable else f" — {self.reason}"),
            f"  measured : {self.mean:.2f} ± {_fmt(self.std)} (n={self.n})"
            + ("" if self.statistic == "final" else f" [{self.statistic}]"),
            f"  spread   : between sets {_fmt(self.std_between_sets)}, within a set "
            f"{_fmt(self.std_within_set)}, ICC {_fmt(self.icc)} ({self.num_sets} set(s))",
            f"  published: {published}",
            f"  test     : {self.test}; margin ±{self.margin:.2f} pp, alpha {self.alpha}",
        ]
        if self.comparable:
            lines.append(
                f"  decision : measured - published {self.mean - self.published_mean:+.2f} pp; "
                f"{self.reason}"
            )
            lines.append(
                f"  p-values : equivalence (TOST) {_fmt_p(self.p_equivalence)}, "
                f"difference {_fmt_p(self.p_difference)}, beyond the margin "
                f"{_fmt_p(self.p_minimal_effect)}; SE measured {_fmt(self.se, 3)}, "
                f"published {_fmt(self.published_se, 3)}, df {_fmt(self.df, 1)}"
            )
            lines += [f"  assumes  : {a}" for a in self.assumptions]
            for other in self.rounding:
                lines.append(
                    f"  rounding : at published {other['mean']} ± {other['std']} -> "
                    f"{other['verdict']}"
                )
        else:
            lines.append("  p-values : not computed (runs off the paper's protocol are not tested)")
        for alt in self.alternatives:
            same = "same verdict" if alt["verdict"] == self.verdict else "CHANGES the verdict"
            std = f" ± {alt['std']}" if alt["std"] is not None else ""
            lines.append(
                f"  also quoted: {alt['mean']}{std} [{alt['source']}] -> {alt['verdict']} ({same})"
            )
        return "\n".join(lines)


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


_UNTESTED = {
    "p_equivalence": math.nan,
    "p_difference": math.nan,
    "p_minimal_effect": math.nan,
    "difference": math.nan,
    "se": math.nan,
    "published_se": math.nan,
    "df": math.nan,
    "test": "",
    "assumptions": (),
    "why": "",
}


def set_level_test(sets: Sequence[Sequence[float]], published: Published, margin: float) -> dict:
    """The tests of the module docstring on accuracies grouped by synthetic set.

    Returns:
        ``{"p_equivalence", "p_difference", "p_minimal_effect", "difference", "se",
        "published_se", "df", "test", "assumptions", "why"}``; the p-values are NaN (and
        ``why`` says why) where the measured standard error is zero or cannot be estimated.
    """
    split = variance_split(sets)
    groups = _as_sets(sets)
    assumptions: list[str] = []
    nan = math.nan
    if published.one_set:
        # like with like: networks of one set on both sides
        se1 = split.std_within / math.sqrt(split.n) if split.n > split.sets else nan
        df1 = split.n - split.sets
        name = "one-set comparison (network spread only)"
        assumptions.append(
            "the published number comes from one synthetic set: the between-set spread is not "
            "covered"
            + (
                f" (ours: {split.std_between:.2f} pp between sets, so one set can move the "
                "mean by about that much)"
                if split.sets > 1
                else " (this run has one set and cannot say how large it is)"
            )
        )
    elif split.sets >= 2:
        se1, df1 = split.se, split.df
        name = "set-level (synthetic set as the unit)"
    elif published.num_exp is None and split.n > 1:
        se1, df1 = split.std_within / math.sqrt(split.n), split.n - 1
        name = "one set, networks taken as independent (published design unknown)"
        assumptions.append("one synthetic set and the published design is not recorded")
    else:
        return {
            **_UNTESTED,
            "test": "set-level (synthetic set as the unit)",
            "assumptions": (),
            "why": "one synthetic set cannot estimate the between-set spread the published "
            "number includes",
        }
    se2, df2, assumption = published_se(published)
    assumptions.append(assumption)
    kind = (
        "Welch TOST + t-test + minimal-effect test"
        if se2 > 0
        else "TOST + one-sample t-test + minimal-effect test"
    )
    test = f"{kind}, {name}"
    if not se1 > 0 or sum(len(g) for g in groups) < 2:
        return {
            **_UNTESTED,
            "se": se1,
            "published_se": se2,
            "test": test,
            "assumptions": tuple(assumptions),
            "why": "no spread in the measurement: its standard error cannot be estimated",
        }
    difference = split.mean - published.mean
    return _tested(difference, se1, df1, se2, df2, margin, test, tuple(assumptions))


def _tested(difference, se1, df1, se2, df2, margin, test, assumptions) -> dict:
    """``set_level_test``'s dict of ``welch_tests`` on ``difference``."""
    p_eq, p_diff, p_beyond, df = welch_tests(difference, se1, df1, se2, df2, margin)
    return {
        "p_equivalence": p_eq,
        "p_difference": p_diff,
        "p_minimal_effect": p_beyond,
        "difference": difference,
        "se": se1,
        "published_se": se2,
        "df": df,
        "test": test,
        "assumptions": assumptions,
        "why": "",
    }


def two_sample_set_test(
    sets: Sequence[Sequence[float]], other: Sequence[Sequence[float]], margin: float
) -> dict:
    """The tests of the module docstring between two measured sides (e.g. the suite against a
    reference implementation, each with its own synthetic sets): ``d`` = mean of ``sets`` -
    mean of ``other``, each side's standard error and degrees of freedom from
    ``variance_split`` (the synthetic set as the unit), Welch-Satterthwaite for the pair.

    Returns:
        ``set_level_test``'s dict (``published_se`` is ``other``'s standard error), so that
        ``interval`` and ``decide`` apply; NaN p-values (``why`` says why) where a side has
        fewer than two sets or no spread.
    """
    sides = [variance_split(sets), variance_split(other)]
    test = "Welch TOST + t-test + minimal-effect test, set-level on both sides"
    se1, se2 = sides[0].se, sides[1].se
    if min(side.sets for side in sides) < 2 or not (se1 > 0 or se2 > 0):
        why = "each side needs at least two synthetic sets and some spread"
        return {**_UNTESTED, "se": se1, "published_se": se2, "test": test, "why": why}
    difference = sides[0].mean - sides[1].mean
    return _tested(difference, se1, sides[0].df, se2, sides[1].df, margin, test, ())


def interval(result: dict, alpha: float) -> tuple[float, float]:
    """The ``1 - 2 alpha`` interval of measured - published from ``set_level_test``'s result
    (NaN where it has no standard error)."""
    if math.isnan(result["p_equivalence"]):
        return math.nan, math.nan
    half = stats.t.ppf(1 - alpha, result["df"]) * math.hypot(result["se"], result["published_se"])
    return result["difference"] - half, result["difference"] + half


def decide(result: dict, alpha: float, margin: float) -> tuple[str, str]:
    """The outcome (``OUTCOMES``) of ``set_level_test``'s result and the reason, in words (see
    the module docstring)."""
    if math.isnan(result["p_equivalence"]):
        return INCONCLUSIVE, result["why"] or "fewer than two measurements"
    low, high = interval(result, alpha)
    span = f"the {1 - 2 * alpha:.0%} interval [{low:.2f}, {high:.2f}]"
    if result["p_equivalence"] < alpha:
        if result["p_difference"] < alpha:
            return SMALL_DIFFERENCE, f"{span} lies inside ±{margin} and excludes 0"
        return REPRODUCED, f"{span} lies inside ±{margin}"
    if result["p_minimal_effect"] < alpha:
        return NOT_REPRODUCED, f"{span} lies beyond ±{margin}"
    more = "reproduced" if abs(result["difference"]) < margin else "not reproduced"
    return INCONCLUSIVE, (
        f"{span} overlaps the margin ±{margin}; the observed difference "
        f"({result['difference']:+.2f}) lies {'inside' if more == 'reproduced' else 'beyond'} "
        f"it, so more sets could show {more}"
    )


def verdict(
    values: Sequence,
    published: Published | None,
    margin: float,
    alpha: float = 0.05,
    off_protocol: Sequence[str] = (),
    statistic: str = "final",
) -> Verdict:
    """Judge measured accuracies against a published result.

    Args:
        values: measured test accuracies in percent grouped by synthetic set,
            ``[[set 0, networks 0..m-1], [set 1, ...], ...]``; a flat list is one set.
        published: the recipe's published result; ``None`` (not found) is never compared.
        margin: equivalence margin in percentage points (> 0).
        alpha: significance level of both tests.
        off_protocol: why the run departs from the paper's protocol (``RunConfig.off_protocol``:
            a smaller budget, ``--set`` overrides, another copy of the dataset); any reason
            makes it not comparable and no test is run.
        statistic: what ``values`` are (``Verdict.statistic``); it must be what the published
            number measures.

    Raises:
        ValueError: ``margin <= 0`` or ``alpha`` outside (0, 1).
        UserError: no accuracies, a set without networks, or an accuracy that is not a finite
            percentage in [0, 100] (``checked_sets``).
    """
    if margin <= 0 or not 0 < alpha < 1:
        raise ValueError(f"need margin > 0 and 0 < alpha < 1, got {margin}, {alpha}")
    groups = checked_sets(values)
    x = np.concatenate(groups)
    n = len(x)
    split = variance_split(groups)
    reasons = list(off_protocol)
    if published is None:
        reasons.append("no published number")
    comparable = not reasons
    result = {
        **_UNTESTED,
        "se": split.se,
        "test": "TOST + t-test + minimal-effect test, set-level (synthetic set as the unit)",
    }
    alternatives: list[dict] = []
    rounding: list[dict] = []
    if not comparable:
        outcome = f"not comparable ({'; '.join(reasons)})"
        why = "the run did not follow the paper's protocol"
        if published is None and not off_protocol:
            why = "there is no published number"
        reason = f"{why}; no test against the paper was run"
    else:
        result = set_level_test(groups, published, margin)
        outcome, reason = decide(result, alpha, margin)
        for quote in published.alternatives:
            other = dataclasses.replace(
                published, mean=quote.mean, std=quote.std, source=quote.source, alternatives=()
            )
            alt, _ = decide(set_level_test(groups, other, margin), alpha, margin)
            alternatives.append(
                {"mean": quote.mean, "std": quote.std, "source": quote.source, "verdict": alt}
            )
        rounding = _at_rounding_ends(groups, published, margin, alpha, outcome)
        if rounding:
            outcome = (
                f"{outcome} ({BORDERLINE}: "
                + "; ".join(f"{r['verdict']} at {r['mean']} ± {r['std']}" for r in rounding)
                + ")"
            )
    return Verdict(
        verdict=outcome,
        comparable=comparable,
        reason=reason,
        test=result["test"],
        n=n,
        mean=split.mean,
        std=float(x.std(ddof=1)) if n > 1 else math.nan,
        published_mean=published.mean if published else None,
        published_std=published.std if published else None,
        published_n=published.n if published else None,
        published_source=published.source if published else "",
        margin=margin,
        alpha=alpha,
        p_equivalence=result["p_equivalence"],
        p_difference=result["p_difference"],
        p_minimal_effect=result["p_minimal_effect"],
        interval=interval(result, alpha) if comparable else (math.nan, math.nan),
        values=tuple(float(v) for v in x),
        statistic=statistic,
        sets=tuple(tuple(float(v) for v in g) for g in groups),
        num_sets=split.sets,
        std_between_sets=split.std_between,
        std_within_set=split.std_within,
        icc=split.icc,
        se=result["se"],
        published_se=result["published_se"],
        df=result["df"],
        assumptions=tuple(result["assumptions"]),
        alternatives=tuple(alternatives),
        rounding=tuple(rounding),
    )


def _at_rounding_ends(
    groups: list[np.ndarray], published: Published, margin: float, alpha: float, outcome: str
) -> list[dict]:
    """The outcomes at the ends of the published mean's and std's rounding intervals
    (``Published.rounding``) that differ from ``outcome``, each once."""
    half_mean, half_std = published.rounding()
    found: dict[str, dict] = {}
    for dm in (-half_mean, 0.0, half_mean):
        for ds in (-half_std, 0.0, half_std) if published.std is not None else (0.0,):
            if not (dm or ds):
                continue
            std = None if published.std is None else round(published.std + ds, 6)
            other = dataclasses.replace(published, mean=round(published.mean + dm, 6), std=std)
            alt, _ = decide(set_level_test(groups, other, margin), alpha, margin)
            if alt != outcome and alt not in found:
                found[alt] = {"mean": other.mean, "std": other.std, "verdict": alt}
    return list(found.values())


@dataclass(frozen=True)
class Power:
    """What a design can resolve against a published number (``power``).

    ``reproduced_up_to``: the largest true ``|measured - published|`` (pp) at which the verdict
    is ``reproduced`` (with or without a small difference) with probability ``POWER``, ``None``
    if not even at 0 (the budget can never declare ``reproduced``); ``not_reproduced_from``: the
    smallest true difference at which it is ``not reproduced`` with probability ``POWER``
    (``None``: never). ``why`` says why nothing can be computed.
    """

    reproduced_up_to: float | None
    not_reproduced_from: float | None
    se: float
    assumption: str
    why: str = ""

    def summary(self) -> str:
        if self.why:
            return f"no power figure: {self.why}"
        rep = (
            f"reproduced if |Δ| ≤ {self.reproduced_up_to:.2f} pp"
            if self.reproduced_up_to is not None
            else "can never be declared reproduced"
        )
        miss = (
            f"not reproduced if |Δ| ≥ {self.not_reproduced_from:.2f} pp"
            if self.not_reproduced_from is not None
            else "can never call not reproduced"
        )
        return f"{rep}; {miss} (each at {POWER:.0%} probability; {self.assumption})"


@dataclass(frozen=True)
class _Draws:
    """Seeded draws of one design for ``outcome_probabilities``: the standardised error of the
    observed difference and the variance estimates the verdict would make."""

    z: np.ndarray
    se_hat: np.ndarray
    df: np.ndarray
    se_true: float
    assumption: str


def _draw(
    published: Published, num_exp: int, num_eval: int, icc: float, draws: int, seed: int
) -> _Draws | str:
    """Simulate ``draws`` runs of ``num_exp x num_eval`` against ``published`` (its std given,
    its mean drawn) under a true variance split ``icc`` shared by both sides, through the
    sufficient statistics the verdict reads (the between- and within-set mean squares, exact
    scaled chi-squares), with ``set_level_test``'s standard errors; or why no verdict is
    possible."""
    s = published.sample_std()
    if s is None:
        return "the published number has no std"
    k, m, n = num_exp, num_eval, num_exp * num_eval
    rng = np.random.default_rng(seed)
    kp, mp = published.num_exp, published.num_eval
    if published.one_set or (kp is None and k < 2):
        if n - k < 1:
            return "one network per set: no spread within a set to test"
        n_pub = published.n or 0
        var_w = s**2  # one set: all of the published spread is within it
        msw = var_w * rng.chisquare(n - k, draws) / (n - k)
        se1, df1 = np.sqrt(msw / n), np.full(draws, float(n - k))
        var_pub = s**2 / n_pub if n_pub > 1 else 0.0
        se_true = math.sqrt(var_w / n + var_pub)
        assumption = (
            "published number from one set: network spread only"
            if published.one_set
            else "one set; the published design is not recorded: networks taken as independent"
        )
    elif k < 2:
        return "one synthetic set cannot estimate the between-set spread"
    else:
        if kp and mp and kp >= 2:
            total = s**2 / ((1 - icc) + icc * mp * (kp - 1) / (kp * mp - 1))
            var_pub = float(_pooled_design_se(s, kp, mp, icc)[0]) ** 2
        else:
            total = s**2
            var_pub = s**2 / published.n if published.n and published.n > 1 else 0.0
        var_b, var_w = icc * total, (1 - icc) * total
        msb = (m * var_b + var_w) * rng.chisquare(k - 1, draws) / (k - 1)
        msw = var_w * rng.chisquare(k * (m - 1), draws) / (k * (m - 1)) if m > 1 else msb * 0
        se1, df1 = np.sqrt(np.maximum(msb, msw) / n), np.full(draws, float(k - 1))
        se_true = math.sqrt((var_b + var_w / m) / k + var_pub)
        assumption = f"ICC {icc:.2f} assumed on both sides"
    se2, df2, _ = published_se(published)
    v1, v2 = np.square(se1), se2**2
    df = np.square(v1 + v2) / (np.square(v1) / df1 + (v2**2 / df2 if v2 else 0.0))
    return _Draws(rng.standard_normal(draws), np.sqrt(v1 + v2), df, se_true, assumption)


def outcome_probabilities(
    difference: float, draws: _Draws, margin: float, alpha: float
) -> tuple[float, float]:
    """``P(reproduced)`` (with or without a small difference) and ``P(not reproduced)`` of the
    decision (module docstring) at a true ``|measured - published|`` of ``difference``, over
    the simulated runs ``draws``."""
    observed = difference + draws.z * draws.se_true
    half = stats.t.ppf(1 - alpha, draws.df) * draws.se_hat
    reproduced = np.abs(observed) + half < margin
    beyond = np.abs(observed) - half > margin
    return float(reproduced.mean()), float(beyond.mean())


def power(
    published: Published | None,
    margin: float,
    alpha: float,
    num_exp: int,
    num_eval: int,
    icc: float = ASSUMED_ICC,
    draws: int = 4000,
    seed: int = 0,
) -> Power:
    """The differences a run of ``num_exp`` sets x ``num_eval`` networks can resolve against
    ``published`` at the recipe's ``margin`` and ``alpha`` (see ``Power``), by a seeded Monte
    Carlo of the verdict's decision (``outcome_probabilities``; the same draws for both
    thresholds) under an assumed variance split ``icc`` (stated in ``Power.assumption``).
    """
    if published is None:
        return Power(None, None, math.nan, "", "no published number")
    design = _draw(published, num_exp, num_eval, icc, draws, seed)
    if isinstance(design, str):
        return Power(None, None, math.nan, "", design)

    def p_rep(d: float) -> float:
        return outcome_probabilities(d, design, margin, alpha)[0] - POWER

    def p_not(d: float) -> float:
        return outcome_probabilities(d, design, margin, alpha)[1] - POWER

    rep = optimize.brentq(p_rep, 0.0, margin, xtol=1e-3) if p_rep(0.0) > 0 else None
    top = margin + 50 * design.se_true
    beyond = optimize.brentq(p_not, margin, top, xtol=1e-3) if p_not(top) > 0 else None
    return Power(rep, beyond, design.se_true, design.assumption)


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
