"""Verdicts: does a measured result reproduce a published mean +- std?

The model (stated in every verdict). A run trains ``num_eval`` networks on each of
``num_exp`` synthetic sets. Networks trained on one set share it, so accuracies follow a one-way
random-effects model, ``y_ij = mu + a_i + e_ij`` with set effects ``a_i ~ N(0, s_b^2)`` and
network effects ``e_ij ~ N(0, s_w^2)``: the **synthetic set is the unit of replication**.
``variance_split`` estimates ``s_b`` (between sets), ``s_w`` (within a set) and the intraclass
correlation ``icc = s_b^2 / (s_b^2 + s_w^2)`` by one-way ANOVA (Searle, Casella & McCulloch,
*Variance Components*, 1992, section 3.5); the run's mean is the mean of its set means, with
standard error ``sd(set means) / sqrt(num_exp)`` on ``num_exp - 1`` degrees of freedom (exact
for a balanced design).

The published side. Its std is converted to a sample std where the reference printed the
population std (``std_ddof = 0``: DC's and MTT's ``np.std``). Its mean's standard error under its
own design (``num_exp x num_eval``, recorded in the recipe) assumes the published run had the
same variance split as ours (our estimated icc), with Satterthwaite degrees of freedom for the
pooled std; where our run cannot estimate the split (one set), conservatively
``std / sqrt(num_exp)`` on ``num_exp - 1`` degrees of freedom. Where the published number
comes from ONE synthetic set (MTT's tables, the point-cloud report) like is compared with like:
both sides use the spread between networks of a set only, and the verdict states that the
between-set spread is not covered (and how large ours is). A published number without a std is
taken as a fixed value (one-sample tests).

The tests, from those standard errors, with Welch-Satterthwaite degrees of freedom:

1. Equivalence by two one-sided t-tests (TOST, Schuirmann 1987) with margin ``delta``
   (percentage points, from the recipe): H0 ``|mu_measured - mu_published| >= delta``; its
   p-value is the larger of the two one-sided p-values.
2. The two-sided t-test of ``mu_measured == mu_published``.

Verdict: ``reproduced`` if TOST rejects at ``alpha``; else ``not reproduced`` if the difference
test rejects; else ``inconclusive``. A measurement without spread (all set means equal, or one
set of identical networks) has no estimable standard error and is always ``inconclusive``.

Only runs on the paper's protocol are compared (paper budget, no ``--set`` override, the
original dataset); any other run's verdict is ``not comparable (budget=..., ...)`` and no test
against the published number is run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
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
    with the set as the unit, NaN below two sets.
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
    se = float(means.std(ddof=1) / math.sqrt(k))
    return VarianceSplit(
        k, n, grand, math.sqrt(var_b), math.sqrt(msw) if within_df else nan, icc, se, k - 1
    )


def welch_tests(
    difference: float, se1: float, df1: float, se2: float, df2: float, margin: float
) -> tuple[float, float, float]:
    """TOST and two-sided p-values of ``difference`` (= mean1 - mean2) from two standard
    errors, with Welch-Satterthwaite degrees of freedom ``(v1+v2)^2 / (v1^2/df1 + v2^2/df2)``
    (``se2 = 0``: a fixed published value, a one-sample test).

    Returns:
        ``(p_equivalence, p_difference, df)``.
    """
    v1, v2 = se1**2, se2**2
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / df1 + (v2**2 / df2 if v2 else 0.0))
    p_low = stats.t.sf((difference + margin) / se, df)  # H0: difference <= -margin
    p_high = stats.t.cdf((difference - margin) / se, df)  # H0: difference >= +margin
    p_diff = 2 * stats.t.sf(abs(difference) / se, df)
    return float(max(p_low, p_high)), float(p_diff), float(df)


def published_se(published: Published, icc: float | None) -> tuple[float, float, str]:
    """Standard error of the published mean and its degrees of freedom, with the assumption
    made (see module docstring). ``icc`` is the variance split assumed for the published run
    (ours), ``None`` where it cannot be estimated.

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
    if icc is None or math.isnan(icc):
        return (
            s / math.sqrt(k),
            k - 1,
            f"published SE conservatively std/sqrt(num_exp={k}) (our run cannot estimate the "
            "variance split)",
        )
    se, df = _pooled_design_se(s, k, m, icc)
    return float(se), float(df), f"published run assumed to have our variance split (ICC {icc:.2f})"


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
    df = (a + b) ** 2 / (a**2 / (k - 1) + (b**2 / (k * (m - 1)) if m > 1 else 0.0))
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
                f"  p-values : equivalence (TOST) {_fmt_p(self.p_equivalence)}, "
                f"difference {_fmt_p(self.p_difference)}; SE measured {_fmt(self.se, 3)}, "
                f"published {_fmt(self.published_se, 3)}, df {_fmt(self.df, 1)}"
                + ("" if self.verdict in (REPRODUCED, NOT_REPRODUCED) else f" ({self.reason})")
            )
            lines += [f"  assumes  : {a}" for a in self.assumptions]
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


def set_level_test(sets: Sequence[Sequence[float]], published: Published, margin: float) -> dict:
    """The tests of the module docstring on accuracies grouped by synthetic set.

    Returns:
        ``{"p_equivalence", "p_difference", "se", "published_se", "df", "test",
        "assumptions", "why"}``; the p-values are NaN (and ``why`` says why) where the
        measured standard error is zero or cannot be estimated.
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
            "p_equivalence": nan,
            "p_difference": nan,
            "se": nan,
            "published_se": nan,
            "df": nan,
            "test": "set-level (synthetic set as the unit)",
            "assumptions": (),
            "why": "one synthetic set cannot estimate the between-set spread the published "
            "number includes",
        }
    icc = split.icc if split.sets >= 2 else None
    se2, df2, assumption = published_se(published, icc)
    assumptions.append(assumption)
    kind = "Welch TOST + Welch t-test" if se2 > 0 else "TOST + one-sample t-test"
    test = f"{kind}, {name}"
    if not se1 > 0 or sum(len(g) for g in groups) < 2:
        return {
            "p_equivalence": nan,
            "p_difference": nan,
            "se": se1,
            "published_se": se2,
            "df": nan,
            "test": test,
            "assumptions": tuple(assumptions),
            "why": "no spread in the measurement: its standard error cannot be estimated",
        }
    p_eq, p_diff, df = welch_tests(split.mean - published.mean, se1, df1, se2, df2, margin)
    return {
        "p_equivalence": p_eq,
        "p_difference": p_diff,
        "se": se1,
        "published_se": se2,
        "df": df,
        "test": test,
        "assumptions": tuple(assumptions),
        "why": "",
    }


def _decide(result: dict, alpha: float, margin: float) -> tuple[str, str]:
    if math.isnan(result["p_equivalence"]):
        return INCONCLUSIVE, result["why"] or "fewer than two measurements"
    if result["p_equivalence"] < alpha:
        return REPRODUCED, f"equivalent within ±{margin} pp"
    if result["p_difference"] < alpha:
        return NOT_REPRODUCED, "significantly different, not within the margin"
    return INCONCLUSIVE, "neither equivalence nor a difference is significant"


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
        ValueError: ``margin <= 0``, ``alpha`` outside (0, 1) or no values.
    """
    if margin <= 0 or not 0 < alpha < 1:
        raise ValueError(f"need margin > 0 and 0 < alpha < 1, got {margin}, {alpha}")
    groups = _as_sets(values)
    if not groups:
        raise ValueError("a verdict needs at least one measured value")
    x = np.concatenate(groups)
    n = len(x)
    split = variance_split(groups)
    reasons = list(off_protocol)
    if published is None:
        reasons.append("no published number")
    comparable = not reasons
    result = {
        "p_equivalence": math.nan,
        "p_difference": math.nan,
        "se": split.se,
        "published_se": math.nan,
        "df": math.nan,
        "test": "TOST equivalence + Welch t-test, set-level (synthetic set as the unit)",
        "assumptions": (),
        "why": "",
    }
    alternatives: list[dict] = []
    if not comparable:
        outcome = f"not comparable ({'; '.join(reasons)})"
        why = "the run did not follow the paper's protocol"
        if published is None and not off_protocol:
            why = "there is no published number"
        reason = f"{why}; no test against the paper was run"
    else:
        result = set_level_test(groups, published, margin)
        outcome, reason = _decide(result, alpha, margin)
        for quote in published.alternatives:
            other = dataclasses.replace(
                published, mean=quote.mean, std=quote.std, source=quote.source, alternatives=()
            )
            alt, _ = _decide(set_level_test(groups, other, margin), alpha, margin)
            alternatives.append(
                {"mean": quote.mean, "std": quote.std, "source": quote.source, "verdict": alt}
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
    )


@dataclass(frozen=True)
class Power:
    """What a design can resolve against a published number (``power``).

    ``reproduced_up_to``: the largest true ``|measured - published|`` (pp) at which the verdict
    is ``reproduced`` with probability ``POWER``, ``None`` if not even at 0 (the budget can
    never declare ``reproduced``); ``missed_up_to``: the largest true difference whose
    ``not reproduced`` verdict still has probability below ``POWER`` (``None``: the budget
    can never reach a verdict). ``why`` says why nothing can be computed.
    """

    reproduced_up_to: float | None
    missed_up_to: float | None
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
            f"a difference up to {self.missed_up_to:.2f} pp can go uncalled"
            if self.missed_up_to is not None
            else "can never call not reproduced"
        )
        return f"{rep}; {miss} (at {POWER:.0%} probability; {self.assumption})"


def _quantiles(df: float, nodes: int) -> np.ndarray:
    """``nodes`` equal-probability quantiles of ``chi2(df) / df`` (mean 1)."""
    return stats.chi2.ppf((np.arange(nodes) + 0.5) / nodes, df) / df


def _welch_df(v1, df1, v2, df2):
    return (v1 + v2) ** 2 / (v1**2 / df1 + np.where(v2 > 0, v2**2 / df2, 0.0))


def _design_nodes(
    published: Published, num_exp: int, num_eval: int, icc: float, nodes: int
) -> tuple[float, np.ndarray, np.ndarray, str] | str:
    """The true standard error of ``measured - published`` under the assumed split, and the
    standard error and Welch df the verdict would estimate (``set_level_test``) at
    equal-probability nodes of the sampling distributions of the variance estimates: our
    between- and within-set mean squares (exact scaled chi-squares) and the published pooled
    variance (scaled chi-square on its Satterthwaite df). Or why none can be computed."""
    s = published.sample_std()
    if s is None:
        return "the published number has no std"
    n_meas = num_exp * num_eval
    k, m = published.num_exp, published.num_eval
    if published.one_set or (num_exp < 2 and k is None):
        # like with like: networks of one set on both sides (verdict's set_level_test)
        if n_meas - num_exp < 1:
            return "one network per set: no spread within a set to test"
        n_pub = published.n or 0
        df1, df2 = n_meas - num_exp, (n_pub - 1 if n_pub > 1 else math.inf)
        var2 = s**2 / n_pub if n_pub > 1 else 0.0
        v1 = s**2 / n_meas * _quantiles(df1, nodes)[:, None]
        v2 = var2 * (_quantiles(df2, nodes)[None, :] if var2 else np.ones((1, 1)))
        se = math.sqrt(s**2 / n_meas + var2)
        assumption = (
            "published number from one set: network spread only"
            if published.one_set
            else "one set; the published design is not recorded: networks taken as independent"
        )
        return se, np.sqrt(v1 + v2), _welch_df(v1, df1, v2, df2), assumption
    if num_exp < 2:
        return "one synthetic set cannot estimate the between-set spread"
    if k is None or m is None:
        total, n = s**2, published.n or 0
        se2, df2 = (s / math.sqrt(n), n - 1) if n > 1 else (0.0, math.inf)
        var_b, var_w = icc * total, (1 - icc) * total
        msb = (num_eval * var_b + var_w) * _quantiles(num_exp - 1, nodes)[:, None]
        v1 = msb / n_meas
        v2 = se2**2 * (_quantiles(df2, nodes)[None, :] if se2 else np.zeros((1, 1)))
        se = math.sqrt((var_b + var_w / num_eval) / num_exp + se2**2)
        assumption = f"assumed ICC {icc:.2f}; " + (
            "published accuracies taken as independent" if n > 1 else "published mean fixed (no n)"
        )
        return se, np.sqrt(v1 + v2), _welch_df(v1, num_exp - 1, v2, df2), assumption
    pooled = (1 - icc) + icc * m * (k - 1) / (k * m - 1)
    total = s**2 / pooled
    var_b, var_w = icc * total, (1 - icc) * total
    se2_true, df_p = _pooled_design_se(s, k, m, icc)
    msb = (num_eval * var_b + var_w) * _quantiles(num_exp - 1, nodes)[:, None, None]
    msw = var_w * _quantiles(num_exp * (num_eval - 1), max(8, nodes // 4))[None, :, None]
    s_pub = s * np.sqrt(_quantiles(float(df_p), nodes))[None, None, :]
    # the verdict's estimates: our split (ANOVA), then the published SE under it
    var_b_hat = np.maximum(0.0, (msb - msw) / num_eval)
    icc_hat = var_b_hat / (var_b_hat + msw)
    se2, df2 = _pooled_design_se(s_pub, k, m, icc_hat)
    v1, v2 = msb / n_meas, np.square(se2)
    se = math.sqrt((var_b + var_w / num_eval) / num_exp + float(se2_true) ** 2)
    assumption = f"assumed ICC {icc:.2f} on both sides"
    return se, np.sqrt(v1 + v2), _welch_df(v1, num_exp - 1, v2, df2), assumption


def verdict_probabilities(
    difference: float, se: float, se_hat: np.ndarray, df: np.ndarray, margin: float, alpha: float
) -> tuple[float, float]:
    """``P(reproduced)`` and ``P(not reproduced)`` of the verdict's tests when the true
    difference is ``difference`` with true standard error ``se``, and the verdict's estimated
    standard error and df take the equally likely values ``se_hat``, ``df`` (arrays of one
    shape). The observed difference is normal and independent of the estimated errors."""
    lim_eq = margin - stats.t.ppf(1 - alpha, df) * se_hat
    lim_diff = np.maximum(stats.t.ppf(1 - alpha / 2, df) * se_hat, lim_eq)
    norm = stats.norm
    inside = norm.cdf((lim_eq - difference) / se) - norm.cdf((-lim_eq - difference) / se)
    p_rep = np.where(lim_eq > 0, inside, 0.0)
    outside = norm.sf((lim_diff - difference) / se) + norm.cdf((-lim_diff - difference) / se)
    return float(p_rep.mean()), float(outside.mean())


def power(
    published: Published | None,
    margin: float,
    alpha: float,
    num_exp: int,
    num_eval: int,
    icc: float = ASSUMED_ICC,
    nodes: int = 40,
) -> Power:
    """The differences a run of ``num_exp`` sets x ``num_eval`` networks can resolve against
    ``published`` at the recipe's ``margin`` and ``alpha`` (see ``Power``), from the published
    std and an assumed variance split ``icc`` (stated in ``Power.assumption``), for the tests
    ``verdict`` runs (``verdict_probabilities``; the variance estimates are integrated over on
    ``nodes`` quantiles each).
    """
    if published is None:
        return Power(None, None, math.nan, "", "no published number")
    design = _design_nodes(published, num_exp, num_eval, icc, nodes)
    if isinstance(design, str):
        return Power(None, None, math.nan, "", design)
    se, se_hat, df, assumption = design

    def p_rep(d: float) -> float:
        return verdict_probabilities(d, se, se_hat, df, margin, alpha)[0] - POWER

    def p_not(d: float) -> float:
        return verdict_probabilities(d, se, se_hat, df, margin, alpha)[1] - POWER

    rep = optimize.brentq(p_rep, 0.0, margin, xtol=1e-3) if p_rep(0.0) > 0 else None
    top = margin + 50 * se
    missed = optimize.brentq(p_not, 0.0, top, xtol=1e-3) if p_not(top) > 0 else None
    return Power(rep, missed, se, assumption)


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
