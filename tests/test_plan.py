"""``python -m bench plan``: paper sets done and missing per published cell, and the compute the
rest needs from measured rates."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.reports.plan import Rates, measure, plan_rows, read_rates, record_rates
from bench.spec.recipes import load_recipe, resolve

CURRENT = str(load_recipe("gm-mnist-ipc1").version)


def _record(
    folder,
    run_id,
    indices,
    seed=0,
    budget="paper",
    sets=None,
    seconds=(600.0, 300.0),
    version=CURRENT,
):
    """A ledger record of a shard of gm-mnist-ipc1 as ``bench leaderboard --ingest`` writes it
    (its set files named, not written)."""
    sets = sets or [[91.0, 92.0] for _ in indices]
    record = {
        "run_id": run_id,
        "start_time_ms": len(list(folder.glob("*.json"))),
        "tags": {
            "recipe": "gm-mnist-ipc1",
            "recipe_version": version,
            "budget": budget,
            "dataset": "mnist",
            "dataset_name": "MNIST",
            "eval_models": "ConvNet",
            "comparable": "true",
            "seed": str(seed),
        },
        "params": {},
        "metrics": {"eval/ConvNet/acc": 91.5, "eval/ConvNet/n": 2 * len(indices)},
        "statistic": "final",
        "sets": sets,
        "final_sets": sets,
        "set_indices": indices,
        "design": {"protocol_hash": "p", "seed": seed, "num_exp": 5},
        "set_records": [
            {
                "index": i,
                "sha256": f"{i:064d}",
                "hardware": "cpu: 1 threads, Test CPU",
                "distill_s": seconds[0],
                "evaluate_s": seconds[1],
                "file": f"{run_id}/set{i}.safetensors",
            }
            for i in indices
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run_id}.json").write_text(json.dumps(record))


def test_rates_give_a_paper_set_by_hand():
    config = resolve(load_recipe("gm-mnist-ipc1"), "paper", 0)
    rates = Rates(
        per_iteration=10.0, distill_fixed=6.0, per_epoch=0.06, network_fixed=10.0, basis="x"
    )
    # 6 + 1000 x 10 + 20 networks x (10 + 1001 epochs x 0.06)
    assert rates.per_set(config) == pytest.approx(6 + 10_000 + 20 * (10 + 1001 * 0.06))


def test_plan_counts_the_sets_of_the_most_complete_paper_design(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    _record(runs, "a", [0])
    _record(runs, "b", [2, 3])
    _record(runs, "c", [0], seed=1)  # another design, less complete
    _record(runs, "d", [1, 4], budget="smoke")  # not the paper's protocol
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    (row,) = plan_rows(["gm-mnist-ipc1"], runs, tmp_path / "benchmarks", "Test CPU")
    assert row[:4] == ["gm-mnist-ipc1", "91.7", "3 of 5", "1, 4"]
    # 900 s per set from the ledger's records; 2 missing sets, one per core: 900 s
    assert row[4:7] == ["15 min", "15 min", "—"]
    assert row[7] == "4 paper set(s) of this recipe (ledger)"  # rates from every paper design


def test_plan_uses_measured_rates_where_the_ledger_has_no_paper_set(tmp_path, monkeypatch):
    rates = Rates(9.0, 6.0, 0.06, 10.0, "measured (by hand)")
    monkeypatch.setattr("bench.reports.plan.cpu_name", lambda: "Test CPU")
    record_rates(tmp_path / "benchmarks", "gm-mnist-ipc1", rates)
    assert read_rates(tmp_path / "benchmarks")["Test CPU"]["gm-mnist-ipc1"]["per_iteration"] == 9
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    (row,) = plan_rows(["gm-mnist-ipc1"], tmp_path / "runs", tmp_path / "benchmarks")
    per_set = 6 + 9_000 + 20 * (10 + 1001 * 0.06)  # 10,407 s
    assert row[2:5] == ["0 of 5", "0, 1, 2, 3, 4", f"{per_set / 3600:.1f} h"]
    assert row[5] == f"{3 * per_set / 3600:.1f} h"  # 5 sets, 2 at a time: 3 rounds
    assert row[7] == "measured (by hand)"


def test_plan_cli_lists_every_member_of_a_group(tmp_path, capsys):
    assert main(["plan", "gm-mnist", "--ledger", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("gm-mnist-ipc1", "gm-mnist-ipc10", "gm-mnist-ipc50"):
        assert f"| {name} " in out
    assert "not measured (plan --measure)" in out


@pytest.mark.slow
def test_measure_times_the_paper_configuration(data_root):
    rates = measure(load_recipe("random-mnist-ipc1"), data_root, epochs=5)
    assert rates.per_iteration == 0  # a coreset has no outer loop
    assert rates.per_epoch > 0 and rates.network_fixed > 0
    assert "real data; 1 thread" in rates.basis


def test_the_readmes_plan_is_current():
    """README.md's plan table is ``bench plan dc-table1`` from the committed ledger and rates
    (rewrite it with ``python scripts/readme_plan.py``)."""
    import runpy

    from bench.core.paths import REPO_ROOT

    script = runpy.run_path(str(REPO_ROOT / "scripts" / "readme_plan.py"))
    readme = (REPO_ROOT / "README.md").read_text()
    assert script["START"] + script["readme_plan"]() + script["END"] in readme


def test_missing_sets_feed_a_per_set_sweep(tmp_path, capsys):
    """``plan --missing`` names the sets a paper design lacks; ``sweep --per-set --sets`` makes
    one task for each of them alone (what scripts/paper_sets.sh chains)."""
    from bench.run.sweep import SweepOptions
    from bench.run.sweep import plan as sweep_plan

    _record(tmp_path / "runs", "a", [0])
    _record(tmp_path / "runs", "b", [2, 3])
    assert main(["plan", "gm-mnist-ipc1", "gm-mnist", "--missing", "--ledger", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "gm-mnist-ipc1 1,4"
    assert "gm-mnist-ipc10 0-4" in lines
    options = SweepOptions(recipes=("gm-mnist-ipc1",), budget="paper", per_set=True, sets="1,4")
    tasks = sweep_plan(options)
    assert [(t.sets, t.shard) for t in tasks] == [("1", True), ("4", True)]
    whole = sweep_plan(SweepOptions(recipes=("gm-mnist-ipc1",), budget="paper"))
    assert [(t.sets, t.shard) for t in whole] == [("0-4", False)]


def test_sets_an_older_version_kept_need_their_evaluation_only(tmp_path, capsys, monkeypatch):
    """gm-mnist-ipc1 v2 distils as v1 did (``distilled_since = 1``): v1's kept sets 0 and 2 are
    listed for evaluation only, costed at their evaluation seconds, and ``--missing kept``
    names them with their records for ``reproduce --distilled-from``."""
    recipe = load_recipe("gm-mnist-ipc1")
    assert recipe.distilled_since < recipe.version
    old = str(recipe.distilled_since)
    runs = tmp_path / "runs"
    _record(runs, "a", [0], version=old)
    _record(runs, "b", [2], version=old, seconds=(600.0, 200.0))
    _record(runs, "c", [1], version=CURRENT)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    (row,) = plan_rows(["gm-mnist-ipc1"], runs, tmp_path / "benchmarks", "Test CPU")
    assert row[2:4] == ["1 of 5", "3, 4; 0, 2 kept: evaluation only"]
    # median 900 s per set; sets 3 and 4 on two cores: 900 s; sets 0 and 2: 2 x median 300 s
    assert row[4:6] == ["15 min", "25 min"]
    assert main(["plan", "gm-mnist-ipc1", "--missing", "kept", "--ledger", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [
        "gm-mnist-ipc1",
        "0,2",
        str(runs / "a.json"),
        str(runs / "b.json"),
    ]
    assert main(["plan", "gm-mnist-ipc1", "--missing", "--ledger", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["gm-mnist-ipc1", "3-4"]
