"""The README and the guides under docs/: a short README, links that resolve, and benchmark
figures that equal the committed files they quote."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").rglob("*.md"))]
BENCHMARKS = ROOT / "leaderboards" / "benchmarks"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The file's text without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)


def _links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(path)) if not re.match(r"[a-z]+://", t)]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", _prose(path), flags=re.M)}


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) < 250


def test_the_readme_links_every_guide():
    linked = {(README.parent / t.split("#")[0]).resolve() for t in _links(README)}
    assert set(DOCS[1:]) <= linked


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    checked = 0
    for target in _links(doc):
        file, _, fragment = target.partition("#")
        if not file:  # a pure #anchor
            continue
        assert (doc.parent / file).exists(), (doc.name, target)
        checked += 1
    assert checked or doc != README


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_anchor_names_a_heading(doc):
    for target in _links(doc):
        file, _, fragment = target.partition("#")
        path = (doc.parent / file) if file else doc
        if fragment and path.suffix == ".md":
            assert fragment in _anchors(path), (doc.name, target)


class Fig(NamedTuple):
    """One figure of a benchmark file as a doc prints it."""

    path: str
    """keys joined by " > "; a key may be a glob (``gm-*``) or alternatives (``0|1|2``)"""
    fmt: str = ".1f"
    scale: float = 1.0
    """the printed unit per the file's: 1 / 3600 for seconds printed as hours"""
    agg: str = ""
    """``min``, ``max`` or ``sum`` of the values the path matches"""
    over: str = ""
    """a second path: the figure is the ratio path / over"""


class Quote(NamedTuple):
    doc: str
    """the file that quotes, relative to the repository"""
    text: str
    """the quoted text, ``{}`` where each figure stands (white space need not match)"""
    source: str
    """the benchmark file under leaderboards/benchmarks/"""
    figures: tuple[Fig, ...]


def _walk(data, path: str) -> list:
    values = [data]
    for key in path.split(" > "):
        found = []
        for value in values:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            found += [
                v for k, v in items if any(fnmatch.fnmatchcase(str(k), p) for p in key.split("|"))
            ]
        assert found, f"nothing at {key!r} of {path!r}"
        values = found
    return values


def _value(data, fig: Fig) -> float:
    values = _walk(data, fig.path)
    if fig.agg:
        value = {"min": min, "max": max, "sum": sum}[fig.agg](values)
    else:
        (value,) = values
    if fig.over:
        (over,) = _walk(data, fig.over)
        value /= over
    return value * fig.scale


def _printed(value: float, fmt: str) -> str:
    """``format`` with exponents as the docs print them: 1.8e-4, not 1.8e-04."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", format(value, fmt))


def _same_space(text: str) -> str:
    return re.sub(r"\s+", " ", text)


H, MIN = 1 / 3600, 1 / 60
PLAN = "AMD EPYC > "
TEST_PASS = "gm-mnist-ipc1|gm-fashionmnist-ipc1|gm-cifar10-ipc1|random-cifar10-*"
REF = "reference-side-by-side-"
SPEED, RECIPES, GTN = "docs/speed.md", "docs/recipes-and-budgets.md", "docs/methods/gtn.md"
DC_FAMILY_SIDES = (
    "reference",
    "reference, freed memory kept",
    "/work/main",
    "/work/main paper settings",
)
"""the sides of scripts/reference_side_by_side.py (run from /work/main), docs/speed.md's columns"""
KEPT_SIDE = DC_FAMILY_SIDES[1]
R, KEPT, PAPER = (*(f"medians > {side} > " for side in DC_FAMILY_SIDES[:2]), "paper_set_s")


def _set_ratio(side: str, over: str) -> Fig:
    """One paper set's extrapolated time on ``side`` over that on ``over``."""
    return Fig(f"medians > {side} > {PAPER}", ".2f", over=f"medians > {over} > {PAPER}")


def _side_by_side(suite: str) -> tuple[Fig, ...]:
    return tuple(
        Fig(f"medians > {suite} > {key}")
        for key in ("seconds_per_outer_iteration", "eval_train_s", "test_pass_s")
    )


def _variant(name: str) -> tuple[Fig, ...]:
    at = f"results > 0 > distillation_variants > {name} > "
    return (
        Fig(at + "seconds_per_outer_iteration"),
        Fig(at + "seconds_spread > min"),
        Fig(at + "seconds_spread > max"),
        Fig(at + "speedup", ".2f"),
        Fig(at + "relative_set_difference", ".1e"),
    )


def _test_pass(name: str) -> tuple[Fig, ...]:
    at = "results > 0 > test_pass_"
    return (
        Fig(f"{at}s > {name}"),
        Fig(f"{at}spread > {name} > min"),
        Fig(f"{at}spread > {name} > max"),
        Fig(f"{at}fraction_of_gemm_peak > {name}", ".0%"),
        Fig(f"{at}fraction_of_torch_matmul_rate > {name}", ".0%"),
    )


def _gtn_row(first: int) -> tuple[Fig, ...]:
    rows = range(first, first + 3)  # GM, IFT, unrolled
    return (
        *(Fig(f"results > {i} > seconds_per_generator_update") for i in rows),
        *(Fig(f"results > {i} > peak_memory_mb", ".0f") for i in rows),
        *(Fig(f"results > {i} > peak_autograd_mb", ".0f") for i in rows),
    )


QUOTES = [
    Quote(
        "README.md",
        "{}–{} s per outer iteration for DC at ipc 1 and {}–{} s for DSA, {} s per DM update "
        "(of 20,000: on a CPU a DM set costs several DC sets at ipc 1), {}–{} s per training "
        "epoch on 10 images and {}–{} s per test pass ({} s for SVHN's",
        "plan-rates.json",
        (
            Fig(PLAN + "gm-* > per_iteration", agg="min"),
            Fig(PLAN + "gm-* > per_iteration", agg="max"),
            Fig(PLAN + "dsa-* > per_iteration", agg="min"),
            Fig(PLAN + "dsa-* > per_iteration", agg="max"),
            Fig(PLAN + "dm-* > per_iteration"),
            Fig(PLAN + "*-ipc1 > per_epoch", ".3f", agg="min"),
            Fig(PLAN + "*-ipc1 > per_epoch", ".3f", agg="max"),
            Fig(PLAN + TEST_PASS + " > network_fixed", agg="min"),
            Fig(PLAN + TEST_PASS + " > network_fixed", agg="max"),
            Fig(PLAN + "gm-svhn-ipc1 > network_fixed", ".0f"),
        ),
    ),
    # the main job end to end
    Quote(
        SPEED,
        "took {} s end to end, against {} s at cab4fc5",
        "smoke-before-after-2517762b8152.json",
        (Fig("median_seconds > this", ".0f"), Fig("median_seconds > base", ".0f")),
    ),
    Quote(
        SPEED,
        "two rounds each: {} and {} s against {} and {} s",
        "smoke-before-after-a2230d4f65d6.json",
        tuple(Fig(f"runs > {i} > seconds") for i in (1, 3, 0, 2)),
    ),
    Quote(
        SPEED,
        "the main job: {} and {} s against {} and {} s at 287206a",
        "smoke-before-after-854ebb582e98.json",
        tuple(Fig(f"runs > {i} > seconds", ".0f") for i in (1, 3, 0, 2)),
    ),
    # against the reference code
    Quote(
        SPEED,
        "| reference (53f63a6), as it is | {} | {} s | {} s",
        REF + "854ebb582e98.json",
        _side_by_side("reference"),
    ),
    Quote(
        SPEED,
        "| reference, freed memory kept (the setting below) | {} | {} s | {} s |",
        REF + "854ebb582e98.json",
        _side_by_side("reference, freed memory kept"),
    ),
    Quote(
        SPEED,
        "| this suite at cab4fc5 | {} | {} s | {} s",
        REF + "854ebb582e98.json",
        _side_by_side("/tmp/wt_base"),
    ),
    Quote(
        SPEED,
        "| this suite at 287206a (memory setting, channels_last test pass) | {} | {} s | {} s",
        REF + "854ebb582e98.json",
        _side_by_side("/tmp/wt_prev"),
    ),
    Quote(
        SPEED,
        "| this suite now (854ebb5) | {} | {} s | {} s",
        REF + "854ebb582e98.json",
        _side_by_side("/tmp/wt"),
    ),
    *(
        Quote(
            SPEED,
            f"| {label} | {{}} | {{}} | {{}} | {{}} |",
            REF + f"{method}-467c12563583.json",
            tuple(Fig(f"medians > {side} > {key}", fmt, scale) for side in DC_FAMILY_SIDES),
        )
        for method, label, key, fmt, scale in (
            ("dsa", "DSA: s per outer iteration", "seconds_per_outer_iteration", ".1f", 1.0),
            ("dsa", "DSA: one paper set, h", "paper_set_s", ".1f", H),
            ("dm", "DM: s per update", "seconds_per_outer_iteration", ".2f", 1.0),
            ("dm", "DM: one paper set, h", "paper_set_s", ".1f", H),
        )
    ),
    Quote(
        SPEED,
        "the suite takes {} of its time per DSA set",
        REF + "dsa-467c12563583.json",
        (_set_ratio("/work/main", "reference"),),
    ),
    Quote(
        SPEED,
        "and {} of it per DM set ({} with a paper run's settings)",
        REF + "dm-467c12563583.json",
        tuple(_set_ratio(side, "reference") for side in DC_FAMILY_SIDES[2:]),
    ),
    Quote(
        SPEED,
        "the two are level (DSA {},",
        REF + "dsa-467c12563583.json",
        (_set_ratio("/work/main", KEPT_SIDE),),
    ),
    Quote(
        SPEED,
        "DM {} and {})",
        REF + "dm-467c12563583.json",
        tuple(_set_ratio(side, KEPT_SIDE) for side in DC_FAMILY_SIDES[2:]),
    ),
    Quote(
        SPEED,
        "(the reference's iteration {}-{} s)",
        REF + "854ebb582e98.json",
        (
            Fig("rounds > reference > * > loop > seconds_per_outer_iteration > *", agg="min"),
            Fig("rounds > reference > * > loop > seconds_per_outer_iteration > *", agg="max"),
        ),
    ),
    Quote(
        SPEED,
        "the suite's loop ran at {}×",
        REF + "854ebb582e98.json",
        (
            Fig(
                "medians > /tmp/wt_base > seconds_per_outer_iteration",
                over="medians > /tmp/wt > seconds_per_outer_iteration",
            ),
        ),
    ),
    Quote(
        SPEED,
        "and {}× its earlier speed in the two files",
        REF + "2517762b8152.json",
        (
            Fig(
                "medians > /tmp/m20/base > seconds_per_outer_iteration",
                over="medians > /work/main > seconds_per_outer_iteration",
            ),
        ),
    ),
    Quote(
        SPEED,
        "under the same setting ({} against {} s,",
        REF + "854ebb582e98.json",
        (
            Fig("medians > /tmp/wt > seconds_per_outer_iteration"),
            Fig(KEPT + "seconds_per_outer_iteration"),
        ),
    ),
    Quote(
        SPEED,
        ", {} against {} s); the reference as it is",
        REF + "2517762b8152.json",
        (
            Fig("medians > /work/main > seconds_per_outer_iteration"),
            Fig(KEPT + "seconds_per_outer_iteration"),
        ),
    ),
    Quote(
        SPEED,
        "the reference as it is ran {}×",
        REF + "854ebb582e98.json",
        (Fig(R + "seconds_per_outer_iteration", over=KEPT + "seconds_per_outer_iteration"),),
    ),
    Quote(
        SPEED,
        "and {}× slower than with it",
        REF + "2517762b8152.json",
        (Fig(R + "seconds_per_outer_iteration", over=KEPT + "seconds_per_outer_iteration"),),
    ),
    Quote(
        SPEED,
        "measured {} / {} / {} / {} s per iteration for the reference",
        REF + "2517762b8152.json",
        tuple(
            Fig(f"medians > {side} > seconds_per_outer_iteration")
            for side in ("reference", "reference, freed memory kept", "/tmp/m20/base", "/work/main")
        ),
    ),
    Quote(
        SPEED,
        "the same suite code took {} and {} s per iteration there",
        REF + "a2230d4f65d6.json",
        (
            Fig("medians > /tmp/m20/base > seconds_per_outer_iteration"),
            Fig("medians > /work/main > seconds_per_outer_iteration"),
        ),
    ),
    # one paper set against the reference code
    Quote(
        SPEED,
        "as it is {} s per outer iteration and {} h per set",
        REF + "43a457f7e85e.json",
        (Fig(R + "seconds_per_outer_iteration"), Fig(R + PAPER, scale=H)),
    ),
    Quote(
        SPEED,
        "with the same allocator setting as the suite {} s and {} h",
        REF + "43a457f7e85e.json",
        (Fig(KEPT + "seconds_per_outer_iteration"), Fig(KEPT + PAPER, scale=H)),
    ),
    Quote(
        SPEED,
        "the suite with its defaults {} s and {} h",
        REF + "43a457f7e85e.json",
        (
            Fig("medians > /work/main > seconds_per_outer_iteration"),
            Fig("medians > /work/main > " + PAPER, ".2f", scale=H),
        ),
    ),
    Quote(
        SPEED,
        "with a paper run's speed settings {} s and {} h",
        REF + "43a457f7e85e.json",
        (
            Fig("medians > /work/main paper settings > seconds_per_outer_iteration"),
            Fig("medians > /work/main paper settings > " + PAPER, ".2f", scale=H),
        ),
    ),
    Quote(
        SPEED,
        "That is {} of the reference's time as it is and {} of the reference's under "
        "the same allocator",
        REF + "43a457f7e85e.json",
        (
            Fig("medians > /work/main paper settings > " + PAPER, ".2f", over=R + PAPER),
            Fig("medians > /work/main paper settings > " + PAPER, ".2f", over=KEPT + PAPER),
        ),
    ),
    # speed switches
    Quote(
        SPEED,
        "MKL's matmul ran at {} GFLOP/s and oneDNN's convolution, the library the "
        "networks' convolutions use, at {},",
        "gm-2517762b8152.json",
        (Fig("torch_matmul_gflops", ".0f"), Fig("matmul_peak_gflops", ".0f")),
    ),
    Quote(
        SPEED,
        "GEMM peak {} GFLOP/s; ipc 1, paper settings, {} GFLOP per outer iteration",
        "gm-854ebb582e98.json",
        (Fig("gemm_peak_gflops", ".0f"), Fig("results > 0 > gflop_per_outer_iteration", ".0f")),
    ),
    Quote(
        SPEED,
        "| plain (defaults) | {} ({}-{}; {} of GEMM peak) |",
        "gm-854ebb582e98.json",
        (
            Fig("results > 0 > seconds_per_outer_iteration"),
            Fig("results > 0 > seconds_spread > min"),
            Fig("results > 0 > seconds_spread > max"),
            Fig("results > 0 > distillation_fraction_of_gemm_peak", ".0%"),
        ),
    ),
    Quote(
        SPEED, "| `compile` | {} ({}-{}) | {}× | {} |", "gm-854ebb582e98.json", _variant("compile")
    ),
    Quote(
        SPEED,
        "| `channels_last` | {} ({}-{}) | {}× | {} |",
        "gm-854ebb582e98.json",
        _variant("channels_last"),
    ),
    Quote(
        SPEED,
        "| `matching=batched` | {} ({}-{}) | {}× | {} |",
        "gm-854ebb582e98.json",
        _variant("batched"),
    ),
    Quote(
        SPEED,
        "| `precision=bf16` | {} ({}-{}) | {}× | {} (not the same maths) |",
        "gm-854ebb582e98.json",
        _variant("bf16"),
    ),
    Quote(
        SPEED,
        "timed the plain loop at {} s and `compile` at {}×",
        "gm-2517762b8152.json",
        (
            Fig("results > 0 > seconds_per_outer_iteration"),
            Fig("results > 0 > distillation_variants > compile > speedup", ".2f"),
        ),
    ),
    Quote(
        SPEED,
        "one ConvNet-3 trains {} epochs/s",
        "gm-854ebb582e98.json",
        (Fig("results > 0 > eval_epochs_per_s"),),
    ),
    Quote(
        SPEED,
        "20 networks trained together ran at {}× the rate",
        "gm-854ebb582e98.json",
        (Fig("results > 0 > batched_speedup", ".2f"),),
    ),
    Quote(
        SPEED,
        "({} TFLOP of convolutions and matrix products)",
        "gm-854ebb582e98.json",
        (Fig("results > 0 > test_pass_gflop", ".2f", scale=1 / 1000),),
    ),
    Quote(
        SPEED,
        "(the suite's default before a2230d4) | {} ({}-{}) | {} | {} |",
        "gm-854ebb582e98.json",
        _test_pass("plain"),
    ),
    Quote(
        SPEED,
        "(the default from a2230d4 to 287206a) | {} ({}-{}) | {} | {} |",
        "gm-854ebb582e98.json",
        _test_pass("channels_last"),
    ),
    Quote(
        SPEED,
        "cpu_test_copy`, 32 images per pass | {} ({}-{}) | {} | {} |",
        "gm-854ebb582e98.json",
        _test_pass("default"),
    ),
    Quote(
        SPEED,
        "channels_last copy, 32 images per pass | {} ({}-{}) | {} | {} |",
        "gm-854ebb582e98.json",
        _test_pass("compiled"),
    ),
    Quote(
        SPEED,
        "make the default pass {}× the plain one",
        "gm-854ebb582e98.json",
        (Fig("results > 0 > test_pass_s > plain", over="results > 0 > test_pass_s > default"),),
    ),
    Quote(
        SPEED,
        "a slower hour: {} s against {} s in all",
        "test-pass-layers-8da827d7f45f.json",
        (
            Fig("median_seconds > cpu_test_copy > *", agg="sum"),
            Fig("median_seconds > torch GroupNorm > *", agg="sum"),
        ),
    ),
    Quote(
        SPEED,
        "instance norm took {} s with torch's kernel, half of its convolution's {} s, "
        "and {} s on the contiguous",
        "test-pass-layers-8da827d7f45f.json",
        (
            Fig("median_seconds > torch GroupNorm > 5", ".2f"),
            Fig("median_seconds > torch GroupNorm > 4", ".2f"),
            Fig("median_seconds > cpu_test_copy > 5", ".2f"),
        ),
    ),
    Quote(
        SPEED,
        "convolutions run at {} and {} GFLOP/s, about the GEMM peak ({} GFLOP/s in that run)",
        "test-pass-layers-8da827d7f45f.json",
        (
            Fig("conv_gflop > 4 Conv2d", ".0f", over="median_seconds > cpu_test_copy > 4"),
            Fig("conv_gflop > 8 Conv2d", ".0f", over="median_seconds > cpu_test_copy > 8"),
            Fig("gemm_peak_gflops", ".0f"),
        ),
    ),
    Quote(
        SPEED,
        "{} s for its convolution, instance norm, ReLU and pooling",
        "test-pass-layers-8da827d7f45f.json",
        (Fig("median_seconds > cpu_test_copy > 0|1|2|3", agg="sum"),),
    ),
    # several synthetic sets at once
    Quote(
        SPEED,
        "took {} s one set after another (2 threads) and {} s with `--parallel-sets 2` "
        "(one thread per process): {}×",
        "parallel-sets-7ebef8797b89.json",
        (
            Fig("rounds > 0 > sequential > seconds", ".0f"),
            Fig("rounds > 0 > parallel > seconds", ".0f"),
            Fig("rounds > 0 > speedup", ".2f"),
        ),
    ),
    # budgets
    Quote(
        RECIPES,
        "| `gm-mnist-ipc1` | 2 min | {} min |",
        "smoke-durations-581a4efc54ce.json",
        (Fig("runs > 4 > seconds", ".0f", scale=MIN),),
    ),
    Quote(
        RECIPES,
        "| `gm-mnist-ipc10` | {} min |",
        "smoke-durations-581a4efc54ce.json",
        (Fig("runs > 0 > seconds", scale=MIN),),
    ),
    Quote(
        RECIPES,
        "| `gm-mnist-ipc50` | {} min |",
        "smoke-durations-581a4efc54ce.json",
        (Fig("runs > 1 > seconds", scale=MIN),),
    ),
    Quote(
        RECIPES,
        "with the main job at {} s in the same series",
        "smoke-durations-23f1e5debc8a.json",
        (Fig("runs > 0 > seconds", ".0f"),),
    ),
    Quote(
        RECIPES,
        "`gm-fashionmnist-ipc1` {} s, `gm-cifar10-ipc1 --dataset cifar10-jpeg` {} s, "
        "`random-mnist-ipc1` {} s, `herding-mnist-ipc1` {} min",
        "smoke-durations-23f1e5debc8a.json",
        (
            *(Fig(f"runs > {i} > seconds", ".0f") for i in (1, 2, 3)),
            Fig("runs > 4 > seconds", scale=MIN),
        ),
    ),
    Quote(
        RECIPES,
        "`whole-mnist` {} s (one pass)",
        "smoke-durations-23f1e5debc8a.json",
        (Fig("runs > 5 > seconds", ".0f"),),
    ),
    # methods
    Quote(
        "docs/methods/mtt.md",
        "(about {} and {} minutes on a 2-core AMD EPYC",
        "smoke-durations-581a4efc54ce.json",
        (Fig("runs > 2 > seconds", scale=MIN), Fig("runs > 3 > seconds", scale=MIN)),
    ),
    Quote(
        GTN,
        "| 5 | {} | {} | {} | {} / {} / {} | {} / {} / {} |",
        "gtn-af762060a6b6.json",
        _gtn_row(0),
    ),
    Quote(
        GTN,
        "| 10 (paper) | {} | {} | {} | {} / {} / {} | {} / {} / {} |",
        "gtn-af762060a6b6.json",
        _gtn_row(3),
    ),
    Quote(
        GTN,
        "| 20 | {} | {} | {} | {} / {} / {} | {} / {} / {} |",
        "gtn-af762060a6b6.json",
        _gtn_row(6),
    ),
    # tracking
    Quote(
        "docs/tracking-and-reliability.md",
        "opening a new store took {} s that way and {} s as a copy",
        "new-store-2517762b8152.json",
        (Fig("median_seconds > mlflow", ".2f"), Fig("median_seconds > template", ".2f")),
    ),
]


@pytest.mark.parametrize("quote", QUOTES, ids=lambda q: f"{q.doc}: {q.text[:40]}")
def test_a_quoted_benchmark_figure_equals_its_file(quote):
    data = json.loads((BENCHMARKS / quote.source).read_text())
    printed = quote.text.format(*(_printed(_value(data, f), f.fmt) for f in quote.figures))
    assert _same_space(printed) in _same_space((ROOT / quote.doc).read_text())


def test_every_benchmark_file_a_doc_links_is_checked():
    """A doc that links a committed benchmark file quotes figures of it: each such pair has a
    row in QUOTES."""
    checked = {(q.doc, q.source) for q in QUOTES}
    for doc in DOCS:
        for target in _links(doc):
            if "leaderboards/benchmarks/" in target and target.endswith(".json"):
                pair = (str(doc.relative_to(ROOT)), target.rsplit("/", 1)[1])
                assert pair in checked, pair


def test_the_fidelity_table_is_current():
    """leaderboards/fidelity.md is ``bench.reports.fidelity.render_table`` of the committed check
    records (every check and ``bench leaderboard`` rewrite it)."""
    from bench.reports.fidelity import FOLDER, render_table, rows

    assert rows(FOLDER), "no committed differential-check record"
    assert (ROOT / "leaderboards" / "fidelity.md").read_text() == render_table(FOLDER)


def test_list_shows_a_faithful_recipes_last_check(capsys):
    """``bench list``: a faithful recipe of a checked family says what its check found; a
    labelled variant and an unchecked family say nothing of it."""
    from bench.cli import main

    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "faithful; checked: bit-identical over 20 outer iterations" in lines["gm-mnist-ipc1"]
    assert "checked: bit-identical over 2 outer iterations" in lines["gm-mnist-ipc10"]
    assert "outer iterations of gm-mnist-ipc" in lines["gm-cifar10-ipc1"]  # the family's check
    # the EuroSAT work's check differs by rounding alone: its shim side agrees bit for bit
    assert "(bit-identical with shim: the reference's ratio unscaled)" in lines["mtt-eurosat-ipc1"]
    assert "checked" not in lines["mtt-eurosat-ipc1-cifar-protocol"]  # a variant of mtt
    assert "checked: bit-identical over 5 outer iterations" in lines["gtn-ift-mnist"]
    # another recipe of the family: the check of the closest name (the same network)
    assert "over 10 iterations of pc-gm-mnist-pytorch-2layer" in lines["pc-gm-mnist-pytorch-3layer"]
    same_ipc = "checked: bit-identical over 20 outer iterations of gm-mnist-ipc1"
    assert same_ipc in lines["gm-svhn-ipc1"]
    assert "checked" not in lines["herding-mnist-ipc1"]  # no check of the family yet
