"""Shards of a design (``reproduce --sets``): a shard computes some of a run's synthetic sets with
exactly the seeds the full run gives them, and the ledger pools shards into the design."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from bench.cli import main
from bench.core.errors import UserError
from bench.reports.leaderboard import HEADERS
from bench.run.options import format_sets, parse_sets
from bench.run.tracking import Tracker

# 3 sets of 3 outer iterations on 8 real images per class, 2 networks of 2 epochs each
TINY = [
    *("--set", "method.iterations=3", "--set", "method.batch_real=8"),
    *("--set", "eval.num_exp=3", "--set", "eval.num_eval=2", "--set", "eval.epochs=2"),
    *("--device", "cpu"),
]


@pytest.mark.parametrize(
    ("spec", "indices"),
    [("2", (2,)), ("0-1", (0, 1)), ("0,3", (0, 3)), ("3,0-1,1", (0, 1, 3)), (" 0 - 2 ", (0, 1, 2))],
)
def test_parse_sets(spec, indices):
    assert parse_sets(spec) == indices


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a", "give set indices and ranges"),
        ("-1", "give set indices and ranges"),
        ("1,", "give set indices and ranges"),
        ("3-1", "runs backwards; write 1-3"),
        ("5", "this design has 5 synthetic set(s), numbered 0-4"),
    ],
)
def test_bad_sets_are_one_line_errors(spec, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sets(spec, 5)


@pytest.mark.parametrize(
    ("indices", "spec"), [((0,), "0"), ((0, 1, 2, 4), "0-2,4"), ((1, 3, 4, 5, 9), "1,3-5,9")]
)
def test_format_sets(indices, spec):
    assert format_sets(indices) == spec
    assert parse_sets(spec) == indices


def test_sets_outside_the_design_are_refused_before_any_run(tmp_path, data_root, capsys):
    argv = ["reproduce", "gm-mnist-ipc1", "--data-root", str(data_root), "--out", str(tmp_path)]
    assert main([*argv, *TINY, "--sets", "3"]) == 2
    assert "this design has 3 synthetic set(s), numbered 0-2" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


def _reproduce(data_root, out, *extra):
    argv = ["reproduce", "gm-mnist-ipc1", "--data-root", str(data_root), "--out", str(out)]
    assert main([*argv, *TINY, *extra]) == 0
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    parents = [
        r
        for r in tracker.client.search_runs([tracker.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    return tracker, parents


def _set_files(out, parents) -> dict[int, str]:
    digests = {}
    for parent in parents:
        for folder in (out / "sets" / parent.info.run_id).glob("set*"):
            data = (folder / "synthetic_set.safetensors").read_bytes()
            digests[int(folder.name.removeprefix("set"))] = hashlib.sha256(data).hexdigest()
    return digests


def _accuracies(out, parents) -> dict[int, list[float]]:
    found = {}
    for parent in parents:
        folder = out / "sets" / parent.info.run_id
        by_set = json.loads((folder / "accuracies.json").read_text())["ConvNet"]
        tag = parent.data.tags["sets"]
        found.update(zip(parse_sets(tag), by_set, strict=True))
    return found


@pytest.fixture(scope="module")
def design(tmp_path_factory, data_root):
    """One design of 3 sets computed twice: in one go, and as the shards {0} and {1, 2}."""
    root = tmp_path_factory.mktemp("design")
    full_out, shard_out = root / "full", root / "shards"
    full_tracker, full = _reproduce(data_root, full_out)
    _reproduce(data_root, shard_out, "--sets", "0")
    shard_tracker, shards = _reproduce(data_root, shard_out, "--sets", "1-2")
    return root, (full_tracker, full_out, full), (shard_tracker, shard_out, shards)


@pytest.mark.slow
def test_shards_give_the_full_runs_sets_and_accuracies(design):
    _, (_, full_out, full), (_, shard_out, shards) = design
    assert [r.data.tags["sets"] for r in full] == ["0-2"]
    assert sorted(r.data.tags["sets"] for r in shards) == ["0", "1-2"]
    assert {r.data.tags["protocol_hash"] for r in full + shards} == {
        full[0].data.tags["protocol_hash"]
    }
    files = _set_files(full_out, full)
    assert sorted(files) == [0, 1, 2]
    assert _set_files(shard_out, shards) == files  # byte-identical set files
    assert _accuracies(shard_out, shards) == _accuracies(full_out, full)
    for shard in shards:  # no verdict from a shard; its record for the ledger instead
        assert "verdict" not in shard.data.tags
        record = json.loads((shard_out / "sets" / shard.info.run_id / "shard.json").read_text())
        assert record["set_indices"] == list(parse_sets(shard.data.tags["sets"]))
        assert record["design_sets"] == 3


def _cell(boards) -> list[str]:
    """The cells of gm-mnist-ipc1's one row in the generated dc-table1.md."""
    (line,) = [
        line
        for line in (boards / "dc-table1.md").read_text().splitlines()
        if line.startswith("| gm-mnist-ipc1 ")
    ]
    return [cell.strip() for cell in line.strip("|").split("|")]


def _board(ledger_from, trackers, out):
    """Leaderboards in ``out`` from the records of ``ledger_from`` (a folder or None) plus
    the finished runs of ``trackers``."""
    from bench.reports.leaderboard import write_leaderboards

    (out / "runs").mkdir(parents=True)
    if ledger_from is not None:
        for record in ledger_from.glob("*.json"):
            shutil.copy(record, out / "runs")
    for tracker in trackers:
        write_leaderboards(tracker, out)
    if not trackers:
        write_leaderboards(None, out)
    return _cell(out)


@pytest.mark.slow
def test_the_ledger_pools_shards_into_the_design_and_judges_it_only_when_complete(design, tmp_path):
    _, (full_tracker, _, full), (shard_tracker, _, shards) = design
    whole = _board(None, [full_tracker], tmp_path / "full")
    pooled = _board(None, [shard_tracker], tmp_path / "shards")
    for header in ("reproduced (%)", "spread between sets / within a set (ICC)", "verdict"):
        assert pooled[HEADERS.index(header)] == whole[HEADERS.index(header)], header
    assert "3 set(s)" in pooled[HEADERS.index("spread between sets / within a set (ICC)")]

    # the shard {0} alone: progress, no verdict
    first = next(r for r in shards if r.data.tags["sets"] == "0").info.run_id
    partial = tmp_path / "partial"
    (partial / "runs").mkdir(parents=True)
    shutil.copy(tmp_path / "shards" / "runs" / f"{first}.json", partial / "runs")
    cell = _board(partial / "runs", [], tmp_path / "partial-board")
    assert cell[HEADERS.index("verdict")] == (
        "in progress: 1 of 3 sets, smoke budget (seed 0); judged when complete"
    )
    assert cell[HEADERS.index("reproduced (%)")].endswith("(n=2) so far")

    # the same design measured twice (in one go and as shards): each set counted once
    both = _board(tmp_path / "shards" / "runs", [full_tracker], tmp_path / "both")
    assert both[HEADERS.index("reproduced (%)")] == whole[HEADERS.index("reproduced (%)")]
    assert both[HEADERS.index("runs")].count(",") == 2  # three runs, one design


@pytest.mark.slow
def test_a_conflicting_duplicate_set_is_reported_and_not_pooled(design, tmp_path):
    _, (full_tracker, _, full), (shard_tracker, _, shards) = design
    _board(None, [shard_tracker], tmp_path / "shards")
    second = next(r for r in shards if r.data.tags["sets"] == "1-2").info.run_id
    path = tmp_path / "shards" / "runs" / f"{second}.json"
    record = json.loads(path.read_text())
    record["set_records"][0]["sha256"] = "0" * 64  # set 1 made again, differently
    path.write_text(json.dumps(record))
    cell = _board(tmp_path / "shards" / "runs", [full_tracker], tmp_path / "conflict")
    verdict = cell[HEADERS.index("verdict")]
    assert verdict.startswith("in progress: 2 of 3 sets, smoke budget (seed 0)")
    assert (
        f"conflict: set 1 (seed 0) measured with different files by {full[0].info.run_id}, "
        f"{second}; not pooled" in verdict
    )


PAPER_SHARD = [
    *("--budget", "paper", "--sets", "1"),
    *("--set", "method.compile=false", "--set", "eval.compile_test=false"),
]


@pytest.fixture(scope="module")
def paper_shard(tmp_path_factory, data_root):
    """Set 1 of a (tiny) paper-budget design, its store and its ledger."""
    from bench.reports.leaderboard import write_leaderboards

    root = tmp_path_factory.mktemp("paper")
    out, boards = root / "store", root / "boards"
    tracker, (run,) = _reproduce(data_root, out, *PAPER_SHARD)
    write_leaderboards(tracker, boards)
    return out, boards, tracker, run


@pytest.mark.slow
def test_a_paper_shards_set_file_is_committed_beside_its_record(paper_shard):
    """At the paper budget the ledger keeps every set's file (``runs/<id>/set<i>.safetensors``)
    with its hash, machine and seconds, and ``bench evaluate`` reads it back."""
    from bench.core.hashing import sha256_file
    from bench.data.formats import read_set_file
    from bench.data.real import load_card

    out, boards, tracker, run = paper_shard
    record = json.loads((boards / "runs" / f"{run.info.run_id}.json").read_text())
    assert record["set_indices"] == [1] and record["design"]["num_exp"] == 3
    (entry,) = record["set_records"]
    assert entry["file"] == f"{run.info.run_id}/set1.safetensors"
    assert entry["distill_s"] > 0 and entry["evaluate_s"] > 0
    assert entry["hardware"].startswith("cpu: ") and entry["commit"]
    committed = boards / "runs" / entry["file"]
    assert sha256_file(committed) == entry["sha256"] == _set_files(out, [run])[1]
    (found,) = read_set_file(committed, load_card("mnist"))
    assert found.synset.images.shape == (10, 1, 28, 28)
    cell = _cell(boards)
    assert cell[HEADERS.index("verdict")].startswith("in progress: 1 of 3 sets, paper protocol")


@pytest.mark.slow
def test_a_kept_set_is_evaluated_again_instead_of_distilled(
    paper_shard, tmp_path, data_root, capsys
):
    """``--distilled-from RECORD``: the kept file of set 1 is evaluated under the current
    protocol without distilling it again (same images, so with the same evaluation seeds the
    same per-network accuracies), and the new record names the run that distilled it; a record
    of another design, or one that keeps no file of a set asked for, is refused before any
    run is created."""
    from bench.core.hashing import sha256_file
    from bench.data.synthetic import SyntheticSet
    from bench.reports.leaderboard import write_leaderboards

    _, boards, _, run = paper_shard
    record = boards / "runs" / f"{run.info.run_id}.json"
    old = json.loads(record.read_text())
    argv = ["reproduce", "gm-mnist-ipc1", "--data-root", str(data_root), *TINY, *PAPER_SHARD]
    for extra, message in [
        (["--seed", "1"], "its seed is '0', this run's '1'"),
        (["--sets", "0-1"], "no record given keeps a file of set(s) 0"),
    ]:
        out = tmp_path / "refused"
        assert main([*argv, "--out", str(out), "--distilled-from", str(record), *extra]) == 2
        assert message in capsys.readouterr().err
        assert not (out / "mlflow.db").exists()

    out = tmp_path / "again"
    tracker, (again,) = _reproduce(data_root, out, *PAPER_SHARD, "--distilled-from", str(record))
    printed = capsys.readouterr()
    assert "distill:" not in printed.err  # no distillation progress bar
    assert f"kept     : set(s) 1 as run {run.info.run_id} distilled them" in printed.out
    assert _accuracies(out, [again]) == {1: old["sets"][0]}
    new_boards = tmp_path / "boards"
    write_leaderboards(tracker, new_boards)
    (entry,) = json.loads((new_boards / "runs" / f"{again.info.run_id}.json").read_text())[
        "set_records"
    ]
    (kept,) = old["set_records"]
    assert entry["distilled_in"] == run.info.run_id
    assert (entry["commit"], entry["hardware"], entry["distill_s"]) == (
        kept["commit"],
        kept["hardware"],
        kept["distill_s"],
    )
    images = [
        SyntheticSet.load(folder / "runs" / e["file"]).images
        for folder, e in ((boards, kept), (new_boards, entry))
    ]
    assert torch.equal(*images)
    assert sha256_file(new_boards / "runs" / entry["file"]) == entry["sha256"]
