"""``leaderboards/fidelity.md`` from the committed differential-check records
(``leaderboards/fidelity/*.json``, written by this folder's checks): per family and side, the
reference commit, how many outer iterations were compared and the worst per-step differences.
``tests/test_docs.py`` checks the committed table is current."""

from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from bench.api import write_atomic

INTRO = """# Fidelity: the suite against the reference code, step by step

Each row is a differential check (`scripts/reference_check/`): the reference's own functions,
imported from a checkout at the pinned commit, and the suite's faithful path, from the same
initial synthetic set, the same network weights and the same real batches. Differences are per
outer iteration: the matching loss (relative) and the synthetic images after the update
(largest absolute difference relative to the largest pixel), worst over the iterations
compared. 0 means bit-identical; the reported loss, summed over classes in another order,
differs in its last bits (1e-7) even where the images are bit-identical. Float32 summation
order alone (GM's compiled real gradients, a speed-only setting) gives about 5e-6 after the
first iteration, and the difference grows with every iteration as two float trajectories of a
chaotic optimisation part (about 3e-2 after 20): such a side is a different draw of the same
algorithm, not the same set. For scale, a 0.1 % change of GM's `lr_img` gives 9e-5 after the
first iteration. The shims each check needed are listed in its record.

Not yet compared: final accuracies over 10 seeds per side, the other method families, and the
evaluation's augmentation, which is not the reference's yet (rotation by bicubic `grid_sample`
instead of `scipy.ndimage.rotate`, scale placed about the centre instead of at whole-pixel
offsets; issue 35).
"""


def rows(folder: Path) -> list[list[str]]:
    """One row per side of every record in ``folder``, sorted by file name."""
    out = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        for side, steps in record["sides"].items():
            out.append(
                [
                    record["family"],
                    record["recipe"],
                    record["reference"],
                    side,
                    str(len(steps)),
                    f"{max(s['loss_rel_diff'] for s in steps):.1e}",
                    f"{max(s['images_rel_diff'] for s in steps):.1e}",
                    record["commit"][:7],
                    f"[record](fidelity/{path.name})",
                ]
            )
    return out


def render(folder: Path) -> str:
    headers = [
        "family",
        "recipe",
        "reference",
        "suite side",
        "outer iterations",
        "worst loss diff",
        "worst image diff",
        "suite commit",
        "",
    ]
    table = tabulate(rows(folder), headers, tablefmt="github", disable_numparse=True)
    return INTRO + "\n" + table + "\n"


def write(folder: Path) -> Path:
    """Rewrite ``<folder>/../fidelity.md`` atomically; returns its path."""
    target = folder.parent / "fidelity.md"
    write_atomic(target, render(folder))
    print(f"wrote {target}")
    return target
