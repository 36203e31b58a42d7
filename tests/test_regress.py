"""CI regression: a significant drop against the committed baselines fails."""

from __future__ import annotations

import json
import math

import pytest

import bench.reports.regress
from bench.cli import main
from bench.reports.regress import BASELINES, drop_test, load_baselines, load_suite, regress

SUITE = load_suite()


def test_drop_test_flags_a_significant_drop_and_tolerates_noise():
    baseline = [86.5, 87.0, 86.9]
    assert not drop_test([86.4, 86.9, 87.1], baseline).failed  # same level
    assert not drop_test([86.0, 85.6, 86.2], baseline).failed  # within the 1 pp tolerance
    dropped = drop_test([70.1, 71.0, 70.4], baseline)
    assert dropped.failed and dropped.p_value < 0.01
    assert not drop_test([95.0, 96.0, 95.5], baseline).failed  # improvements never fail
    # identical values on both sides (deterministic reruns): decided by the means
    same = drop_test([86.0, 86.0], [86.0, 86.0])
    assert math.isnan(same.p_value) and not same.failed
    assert drop_test([80.0, 80.0], [86.0, 86.0]).failed


def test_committed_baselines_cover_the_suite_with_provenance():
    baselines = load_baselines(BASELINES)
    assert {e.key for e in SUITE} <= set(baselines)
    for b in baselines.values():
        assert b.budget == "smoke" and b.seed == 0 and len(b.values) >= 2
        assert len(b.run_id) == 32 and b.git_commit and not b.git_commit.endswith("-dirty")
        assert b.hardware


@pytest.mark.slow
def test_regress_fails_when_the_baseline_is_higher_than_the_run(data_root, tmp_path, capsys):
    path = tmp_path / "baselines.json"
    high = {
        "recipe": "random-mnist-ipc1",
        "dataset": None,
        "budget": "smoke",
        "seed": 0,
        "model": "ConvNet",
        "values": [99.0, 99.2, 99.1],
        "run_id": "0" * 32,
        "git_commit": "test",
        "hardware": "test",
        "recorded": "2026-11-23",
    }
    path.write_text(json.dumps({"baselines": [high]}))
    args = ["regress", "--baselines", str(path), "--only", "random-mnist-ipc1"]
    code = main([*args, "--data-root", str(data_root), "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 1
    assert "REGRESSED" in out and "1 of 1 entr(ies) regressed" in out


def test_recording_one_entry_keeps_the_other_baselines(tmp_path, monkeypatch):
    path = tmp_path / "baselines.json"
    path.write_text(BASELINES.read_text())
    fake = ("f" * 32, [50.0, 51.0], {"git_commit": "abc", "hardware": "cpu: test"})
    monkeypatch.setattr(bench.reports.regress, "run_entry", lambda entry, options: fake)
    random_entry = next(e for e in SUITE if e.recipe == "random-mnist-ipc1")
    assert regress(None, (random_entry,), path, record=True) == 0
    after, before = load_baselines(path), load_baselines(BASELINES)
    assert set(after) == set(before)
    assert after[random_entry.key].values == [50.0, 51.0]
    assert after["gm-mnist-ipc1"] == before["gm-mnist-ipc1"]
    # and comparing against them: a mean 8 pp lower than recorded is a regression
    monkeypatch.setattr(
        bench.reports.regress, "run_entry", lambda e, o: ("0" * 32, [42.0, 43.0], {})
    )
    assert regress(None, (random_entry,), path, record=False) == 1


def test_mtt_entry_makes_exactly_the_experts_its_overridden_recipe_needs():
    from bench.core.config import parse_set_options
    from bench.spec.recipes import load_recipe, resolve

    entry = next(e for e in SUITE if e.recipe.startswith("mtt-"))
    sets = parse_set_options([o.replace("{work}", "/w") for o in entry.overrides])
    run = resolve(load_recipe(entry.recipe), "smoke", 0, sets, entry.dataset)
    needed = run.method_config.experts(entry.dataset)
    argv = [part.replace("{work}", "/w") for part in entry.setup]
    assert ["python", "-m", "bench", *argv] == needed.command("/w/experts").split()
    assert entry.tolerance > 1.0 and entry.tolerance_reason


def test_an_entrys_own_tolerance_decides_its_test():
    baseline, measured = [21.0, 21.0], [19.5, 19.5]  # 1.5 pp lower, no spread
    assert drop_test(measured, baseline).failed
    assert not drop_test(measured, baseline, tolerance=3.0).failed


def test_the_suite_file_is_validated(tmp_path):
    """The suite is data (leaderboards/regress-suite.toml): an unknown key or a wrong type is
    one line naming it, and every committed entry names a recipe that exists."""
    from bench.core.errors import ConfigError
    from bench.spec.recipes import recipe_names

    assert {e.recipe for e in SUITE} <= set(recipe_names())
    path = tmp_path / "suite.toml"
    path.write_text('[[entry]]\nrecipe = "gm-mnist-ipc1"\ntolerence = 2.0\n')
    with pytest.raises(ConfigError, match="tolerence"):
        load_suite(path)
    path.write_text('[[entry]]\nrecipe = "gm-mnist-ipc1"\ntolerance = "wide"\n')
    with pytest.raises(ConfigError, match="tolerance"):
        load_suite(path)
