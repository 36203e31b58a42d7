"""Rewrite the plan table in README.md (between its ``<!-- plan: ... -->`` and
``<!-- end of plan -->`` lines) from the committed ledger and the rates measured on the 2-core
AMD EPYC: ``python scripts/readme_plan.py`` after committing new paper sets or rates.
``tests/test_plan.py`` checks that the README's table is current."""

from __future__ import annotations

import re

from bench.core.paths import LEADERBOARDS_DIR, REPO_ROOT
from bench.reports.plan import plan_rows, render_plan

MACHINE = "AMD EPYC"
"""the CPU model whose measured rates the README quotes"""
START, END = "<!-- plan: python -m bench plan dc-table1 -->\n", "\n<!-- end of plan -->"


def readme_plan() -> str:
    """The README's table: ``bench plan dc-table1`` on ``MACHINE``'s rates, without the basis."""
    rows = plan_rows(
        ["dc-table1"], LEADERBOARDS_DIR / "runs", LEADERBOARDS_DIR / "benchmarks", MACHINE
    )
    return render_plan(rows, basis=False)


def main() -> None:
    readme = REPO_ROOT / "README.md"
    pattern = re.escape(START) + ".*?" + re.escape(END)
    text = re.sub(pattern, lambda _: START + readme_plan() + END, readme.read_text(), flags=re.S)
    readme.write_text(text)


if __name__ == "__main__":
    main()
