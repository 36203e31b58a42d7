"""The differential checks against the reference code: ``leaderboards/fidelity.md`` from the
committed records (``leaderboards/fidelity/*.json``, written by ``scripts/reference_check/``):
per family and side, the reference commit, how many steps were compared (outer iterations, or
the record's ``unit``) and the worst per-step differences; and each faithful recipe's last
check for ``bench list``. ``bench leaderboard`` rewrites the table; ``tests/test_docs.py``
checks the committed one is current."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import types
from pathlib import Path

from tabulate import tabulate

from bench.core.hashing import write_atomic
from bench.core.paths import LEADERBOARDS_DIR

FOLDER = LEADERBOARDS_DIR / "fidelity"
"""the committed check records"""

INTRO = """# Fidelity: the suite against the reference code, step by step

Each row is a differential check (`scripts/reference_check/`): the reference's own functions,
imported from a checkout at the pinned commit, and the suite's faithful path, from the same
initial synthetic set, the same network weights and the same real batches. Differences are per
outer iteration (or the record's unit): the matching loss (relative) and the synthetic images
after the update (largest absolute difference relative to the largest pixel), worst over the
steps compared. 0 means bit-identical; a loss summed over classes in another order differs in its
last bits (1e-7) even where the images are bit-identical. Where a check also compared outcomes,
the column "outcome, suite - reference" gives the difference of final accuracies in percentage
points with its 90 % interval, the synthetic sets per side and the verdict machinery's outcome
at the stated margin (set-level, `bench.evaluation.stats.two_sample_set_test`). The shims each
check needed are listed in its record; what the records do not say, family by family, follows
the table (`fidelity/notes.md`).
"""


def _worst(steps: list[dict], key: str) -> str:
    """The largest ``key`` over the steps, or "—" where the check has no such measure."""
    values = [s[key] for s in steps if key in s]
    return f"{max(values):.1e}" if values else "—"


def _records(folder: Path) -> list[tuple[Path, dict]]:
    return [(path, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


def _outcome(record: dict, side: str) -> str:
    """The record's outcome comparison (suite - reference, set-level) on its faithful side's
    row, or "—" where it has none."""
    found = record.get("outcome")
    if not found or side != "faithful":
        return "—"
    low, high = found["interval"]
    return (
        f"{found['difference']:+.2f} pp [{low:+.2f}, {high:+.2f}], "
        f"{found['sets_per_side']} + {found['sets_per_side']} sets: {found['outcome']} "
        f"(±{found['margin']})"
    )


def rows(folder: Path) -> list[list[str]]:
    """One row per side of every record in ``folder``, sorted by file name."""
    out = []
    for path, record in _records(folder):
        for side, steps in record["sides"].items():
            out.append(
                [
                    record["family"],
                    record["recipe"],
                    record["reference"],
                    side,
                    f"{len(steps)} {record.get('unit', 'outer iterations')}",
                    _worst(steps, "loss_rel_diff"),
                    _worst(steps, "images_rel_diff"),
                    _outcome(record, side),
                    record["commit"][:7],
                    f"[record](fidelity/{path.name})",
                ]
            )
    return out


NOTES = "notes.md"
"""the hand-written notes on the checks in the records' folder, placed after the table"""


def render_table(folder: Path = FOLDER) -> str:
    """``fidelity.md``: the introduction, one row per side of every record in ``folder`` and
    the folder's ``notes.md`` (if any)."""
    headers = [
        "family",
        "recipe",
        "reference",
        "suite side",
        "steps compared",
        "worst loss diff",
        "worst image diff",
        "outcome, suite - reference",
        "suite commit",
        "",
    ]
    table = tabulate(rows(folder), headers, tablefmt="github", disable_numparse=True)
    notes = folder / NOTES
    return INTRO + "\n" + table + "\n" + ("\n" + notes.read_text() if notes.is_file() else "")


def write_table(folder: Path = FOLDER) -> Path:
    """Rewrite ``<folder>/../fidelity.md`` atomically; returns its path."""
    target = folder.parent / "fidelity.md"
    write_atomic(target, render_table(folder))
    return target


def _overlap(a: str, b: str) -> int:
    """Characters ``a`` and ``b`` share at the start plus at the end."""
    return len(os.path.commonprefix([a, b])) + len(os.path.commonprefix([a[::-1], b[::-1]]))


def last_check(recipe: str, method: str, folder: Path = FOLDER) -> str:
    """What the per-step check of ``method``'s faithful path found, for ``bench list``: the
    record of ``recipe`` itself where there is one, else the family's record whose recipe name
    shares the most with ``recipe`` at both ends (same network, dataset or ipc; the last by file
    name among equals); empty where the family has no check. Where the faithful side differs
    and a side ``"faithful; <shim>"`` (the reference given one more shim) agrees bit for bit,
    the shim is named: it is all that differs."""
    mine = [r for _, r in _records(folder) if r["family"] == method and "faithful" in r["sides"]]
    if not mine:
        return ""
    # the closest name: the latest record among those sharing the most prefix and suffix
    ranked = enumerate(mine)
    closest = max(ranked, key=lambda pair: (_overlap(pair[1]["recipe"], recipe), pair[0]))[1]
    record = next((r for r in mine if r["recipe"] == recipe), closest)
    worst = {
        side: max(s["images_rel_diff"] for s in steps) for side, steps in record["sides"].items()
    }
    found = "bit-identical" if worst["faithful"] == 0 else f"differs by {worst['faithful']:.1e}"
    # a side "faithful; <shim>" gives the reference one more shim: where that one agrees, the
    # shim names all that differs
    shims = [s.split("; ", 1)[1] for s, w in worst.items() if s.startswith("faithful; ") and w == 0]
    if worst["faithful"] and shims:
        found += f" (bit-identical with {shims[0]})"
    where = "" if record["recipe"] == recipe else f" of {record['recipe']}"
    unit = record.get("unit", "outer iterations")
    steps = len(record["sides"]["faithful"])
    return f"checked: {found} over {steps} {unit}{where}"


def step_difference(iteration: int, reference: tuple, suite: tuple) -> dict[str, float]:
    """One row of a check's record: ``reference`` and ``suite`` are ``(loss, images)`` after
    an update (images: any shape, the same on both sides). The losses' relative difference and
    the images' largest absolute difference, also relative to the reference's largest pixel."""
    (loss_r, images_r), (loss_s, images_s) = reference[:2], suite[:2]
    diff = (images_s - images_r).abs().max()
    return {
        "iteration": iteration,
        "loss_reference": loss_r,
        "loss_suite": loss_s,
        "loss_rel_diff": abs(loss_s - loss_r) / max(abs(loss_r), 1e-12),
        "images_max_abs_diff": float(diff),
        "images_rel_diff": float(diff / images_r.abs().max().clamp(min=1e-12)),
    }


ONE_IMAGE_SHIM = (
    "a siamese batch of one image (ipc 1) goes into the reference's DiffAugment twice and the "
    "first comes back: its x[:] = x[0] on one image is refused by PyTorch 2 (overlapping "
    "memory; the reference pinned PyTorch 1.2); the transform is shared, so the result is the same"
)
RESHAPE_SHIM = (
    "the reference ConvNet's view before the classifier replaced by reshape: one-channel images "
    "whose DSA crop left channels-last strides carry them through the convolutions on PyTorch 2, "
    "and view fails (the same values)"
)


def dc_siamese(utils: types.ModuleType, images, strategy: str, seed: int):
    """The DC reference's ``utils.DiffAugment(images, strategy, seed=seed)`` (siamese mode),
    with ``ONE_IMAGE_SHIM`` for a batch of one image."""
    if len(images) > 1:
        return utils.DiffAugment(images, strategy, seed=seed, param=utils.ParamDiffAug())
    twice = images.repeat(2, *([1] * (images.dim() - 1)))
    return utils.DiffAugment(twice, strategy, seed=seed, param=utils.ParamDiffAug())[:1]


def reshaping(convnet):
    """The DC reference's ConvNet with ``RESHAPE_SHIM``: ``forward`` and ``embed`` flatten the
    features with ``reshape`` (the module and its parameters are the same object)."""

    def embed(x):
        out = convnet.features(x)
        return out.reshape(out.size(0), -1)

    convnet.embed = embed
    convnet.forward = lambda x: convnet.classifier(embed(x))
    return convnet


def check_parser(doc: str) -> argparse.ArgumentParser:
    """The command line every check shares (its description the first paragraph of ``doc``):
    ``--reference`` (a checkout of the reference at its pinned commit), ``--seed``,
    ``--data-root`` and ``--out`` (the records' folder); a check adds its own options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=FOLDER)
    return parser


def import_reference(checkout: Path, **modules: str) -> types.SimpleNamespace:
    """The reference's ``modules`` (attribute name -> dotted module name), imported unchanged
    from ``checkout``, which goes first on ``sys.path``; the checks' own folder leaves it, as
    its ``gm.py`` would shadow a reference's ``gm`` package."""
    checks = Path(sys.argv[0]).resolve().parent
    sys.path[:] = [str(checkout.resolve())] + [
        p for p in sys.path if Path(p or ".").resolve() != checks
    ]
    return types.SimpleNamespace(
        **{name: importlib.import_module(module) for name, module in modules.items()}
    )
