"""The README's commands are the ones CI and users run."""

import re

from bench.core.paths import REPO_ROOT


def _code_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```\n(.*?)```", text, flags=re.S)]


def test_ci_runs_exactly_the_readme_test_command():
    blocks = _code_blocks((REPO_ROOT / "README.md").read_text())
    setup_and_smoke, test_command = blocks[0], blocks[1]
    assert "reproduce gm-mnist-ipc1 --budget smoke" in setup_and_smoke
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == test_command
