"""This suite against the DC reference code, one after the other on one machine: seconds per
outer iteration of gradient matching (MNIST, ipc 1, the paper's settings), and the evaluation of
one ConvNet-3 on a 10-image synthetic set with DC augmentation (training, then the pass over the
10,000 real test images).

    python scripts/reference_side_by_side.py --reference DIR [--suite DIR ...] [--rounds 2]
        [--iterations 4] [--epochs 300] [--data-root ../shared/datasets]
        [--out leaderboards/benchmarks]

``--reference`` is a checkout of VICO-UoE/DatasetCondensation@53f63a6 (not part of this
project: ``git clone`` it, or ``git archive`` a fetched copy). Its own code is run, unchanged:
its ``main.py`` loop (with ``--num_eval 1``; the evaluation ``main.py`` starts with is skipped by
replacing ``utils.evaluate_synset`` for that run, and each outer iteration is timed from one
``get_network`` call of its training loop to the next) and its ``utils.evaluate_synset`` and
``utils.epoch('test', ...)``. Each suite checkout is measured twice: with its defaults, and
with the speed-only settings a paper run takes on a CPU (compiled matching and test pass; the
compilation is left out of the timings, as a paper run pays it once). Every side's figures are
also extrapolated to one paper set (1000 outer iterations, 20 networks of 1001 epochs).
``--suite`` names checkouts of this suite (default: this one; give a
``git worktree`` of an earlier commit to compare before and after). The suite's side keeps
freed memory as its CLI does (``bench.core.memory``, where the checkout has it); the reference
is measured as it is and, as a second side, with the same allocator setting. Every measurement
runs in a fresh process, rounds interleaved (reference, reference with kept memory, suite 1,
suite 2, reference, ...), on the CPU with the torch in this environment. Writes
``<out>/reference-side-by-side-<commit>.json`` (``bench.speed.benchmark.write_record``) with
every round's figures, the medians and the load average before each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench.core.paths import REPO_ROOT
from bench.speed.benchmark import write_record

REFERENCE_LOOP = """
import importlib.util
if KEEP and importlib.util.find_spec("bench.core.memory"):  # the suite's CLI does this first
    from bench.core.memory import keep_freed_memory
    keep_freed_memory()
import json, runpy, sys, time
sys.path.insert(0, REFERENCE)
import utils
stamps = []
get_network = utils.get_network
def stamped(*args, **kwargs):
    stamps.append(time.perf_counter())
    return get_network(*args, **kwargs)
def skipped(it_eval, net, images, labels, testloader, args):
    stamps.clear()  # the evaluation main.py starts with: not part of an outer iteration
    return net, 0.0, 0.0
utils.get_network, utils.evaluate_synset = stamped, skipped
sys.argv = ["main.py", "--dataset", "MNIST", "--ipc", "1", "--Iteration", str(ITERATIONS),
            "--num_exp", "1", "--num_eval", "1", "--data_path", DATA, "--save_path", SAVE]
runpy.run_path(REFERENCE + "/main.py", run_name="__main__")
gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
print("RESULT", json.dumps({"seconds_per_outer_iteration": gaps}))
"""

REFERENCE_EVALUATION = """
import importlib.util
if KEEP and importlib.util.find_spec("bench.core.memory"):  # the suite's CLI does this first
    from bench.core.memory import keep_freed_memory
    keep_freed_memory()
import argparse, json, sys, time
import torch
sys.path.insert(0, REFERENCE)
import utils
torch.manual_seed(0)
_, im_size, _, _, _, _, _, _, testloader = utils.get_dataset("MNIST", DATA)
args = argparse.Namespace(lr_net=0.01, epoch_eval_train=EPOCHS - 1, batch_train=256, dsa=False,
                          dc_aug_param=utils.get_daparam("MNIST", "ConvNet", "ConvNet", 1),
                          device="cpu")
images = torch.randn(10, 1, 28, 28)
labels = torch.arange(10)
net = utils.get_network("ConvNet", 1, 10, im_size)
start = time.perf_counter()
net, _, accuracy = utils.evaluate_synset(0, net, images, labels, testloader, args)
total = time.perf_counter() - start
start = time.perf_counter()
utils.epoch("test", testloader, net, None, torch.nn.CrossEntropyLoss(), args, aug=False)
test_s = time.perf_counter() - start
print("RESULT", json.dumps({"train_s": total - test_s, "test_pass_s": test_s}))
"""

SUITE_LOOP = """
import importlib.util
if KEEP and importlib.util.find_spec("bench.core.memory"):  # the suite's CLI does this first
    from bench.core.memory import keep_freed_memory
    keep_freed_memory()
import json, time
from pathlib import Path
import torch
from bench.data.real import load_card, load_real
from distillbench_methods.gm import GMConfig, distill
real = load_real(load_card("mnist"), Path(DATA), "train")
stamps = []
distill(real, 1, GMConfig(iterations=ITERATIONS, **SPEED), seed=0, device=torch.device("cpu"),
        after_iteration=lambda *_: stamps.append(time.perf_counter()))
gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
print("RESULT", json.dumps({"seconds_per_outer_iteration": gaps}))
"""

SUITE_EVALUATION = """
import importlib.util
if KEEP and importlib.util.find_spec("bench.core.memory"):  # the suite's CLI does this first
    from bench.core.memory import keep_freed_memory
    keep_freed_memory()
import json, time
from pathlib import Path
import torch
from bench.data.real import load_card, load_real
from bench.data.synthetic import SyntheticSet
from bench.evaluation.evaluate import EvalProtocol, test_accuracy, train_on_synthetic
card = load_card("mnist")
test = load_real(card, Path(DATA), "test")
cpu = torch.device("cpu")
synset = SyntheticSet(images=torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
                      labels=torch.arange(10), method="noise", dataset="mnist", ipc=1, seed=0)
protocol = EvalProtocol(augmentation="dc", epochs=EPOCHS - 1, **EVAL_SPEED)
fast = protocol.compile_test
if fast:  # compiled once per process: a paper run's 20 networks pay it once, not 20 times
    test_accuracy(train_on_synthetic("ConvNet", synset, card, protocol, 1, cpu), test,
                  protocol.batch_test, cpu, fast=True)
start = time.perf_counter()
net = train_on_synthetic("ConvNet", synset, card, protocol, 0, cpu)
train_s = time.perf_counter() - start
start = time.perf_counter()
test_accuracy(net, test, protocol.batch_test, cpu, fast=fast)  # the suite's test pass
test_s = time.perf_counter() - start
print("RESULT", json.dumps({"train_s": train_s, "test_pass_s": test_s}))
"""


def _measure(code: str, cwd: Path, pythonpath: str, **constants) -> dict:
    """Run ``code`` with ``constants`` defined in a fresh process; its ``RESULT`` JSON line and
    the 1-minute load average before it."""
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    env = {**os.environ, "PYTHONPATH": pythonpath, "MLFLOW_TRACKING_URI": ""}
    load = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-c", header + code], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"measurement failed in {cwd}:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "load_average_1min": load}


PAPER_SPEED = " paper settings"
"""suffix of a suite side run with the speed-only settings of a paper run on a CPU
(``bench.spec.recipes.with_long_run_speed``: DC's compiled matching, the compiled test pass)"""


def _medians(rounds: list[dict], epochs: int) -> dict:
    """Median seconds per outer iteration (over every timed iteration of every round), training
    and test-pass seconds (over rounds), and one paper set extrapolated from them: 1000 outer
    iterations and 20 networks of 1001 epochs (``epochs`` were timed) with a test pass each."""
    medians = {
        "seconds_per_outer_iteration": statistics.median(
            s for r in rounds for s in r["loop"]["seconds_per_outer_iteration"]
        ),
        "eval_train_s": statistics.median(r["evaluation"]["train_s"] for r in rounds),
        "test_pass_s": statistics.median(r["evaluation"]["test_pass_s"] for r in rounds),
    }
    network = medians["eval_train_s"] * 1001 / epochs + medians["test_pass_s"]
    medians["paper_set_s"] = 1000 * medians["seconds_per_outer_iteration"] + 20 * network
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--suite", type=Path, nargs="+", default=[REPO_ROOT])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=4, help="outer iterations per round")
    parser.add_argument("--epochs", type=int, default=300, help="evaluation training epochs")
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "leaderboards" / "benchmarks")
    args = parser.parse_args()
    reference = args.reference.resolve()
    if not (reference / "main.py").exists() or not (reference / "utils.py").exists():
        sys.exit(f"--reference {reference}: no main.py/utils.py of DatasetCondensation there")
    data_root = args.data_root.resolve()
    sides = {
        "reference": reference,
        "reference, freed memory kept": reference,
        **{str(p.resolve()): p.resolve() for p in args.suite},
        **{str(p.resolve()) + PAPER_SPEED: p.resolve() for p in args.suite},
    }
    rounds: dict[str, list[dict]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "data").mkdir()
        (work / "data" / "MNIST").symlink_to(data_root / "MNIST")  # read only, never written
        (work / "save").mkdir()
        for r in range(args.rounds):
            for name, path in sides.items():
                if name.startswith("reference"):
                    common = {
                        "REFERENCE": str(path),
                        "DATA": str(work / "data"),
                        "KEEP": name != "reference",
                    }
                    pythonpath = f"{path}{os.pathsep}{REPO_ROOT}"
                    loop = _measure(
                        REFERENCE_LOOP,
                        work,
                        pythonpath,
                        ITERATIONS=args.iterations,
                        SAVE=str(work / "save"),
                        **common,
                    )
                    evaluation = _measure(
                        REFERENCE_EVALUATION, work, pythonpath, EPOCHS=args.epochs, **common
                    )
                else:
                    paper = name.endswith(PAPER_SPEED)
                    common = {"DATA": str(data_root), "KEEP": True}
                    speed = {"compile": True} if paper else {}
                    loop = _measure(
                        SUITE_LOOP,
                        path,
                        str(path),
                        ITERATIONS=args.iterations,
                        SPEED=speed,
                        **common,
                    )
                    evaluation = _measure(
                        SUITE_EVALUATION,
                        path,
                        str(path),
                        EPOCHS=args.epochs,
                        EVAL_SPEED={"compile_test": True} if paper else {},
                        **common,
                    )
                rounds[name].append({"loop": loop, "evaluation": evaluation})
                figures = _medians(rounds[name][-1:], args.epochs)
                print(f"round {r + 1} {name}: {json.dumps(figures)}")
    commits = {
        name: subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for name, path in sides.items()
        if not name.startswith("reference")
    }
    write_record(
        args.out,
        "reference-side-by-side",
        torch.device("cpu"),
        reference="VICO-UoE/DatasetCondensation@53f63a6 (main.py loop, utils.evaluate_synset)",
        suite_commits=commits,
        setting={
            "dataset": "mnist",
            "ipc": 1,
            "batch_real": 256,
            "timed_outer_iterations_per_round": args.iterations,
            "eval_epochs": args.epochs,
            "eval_augmentation": "dc",
            "torch_threads": torch.get_num_threads(),
        },
        medians={name: _medians(r, args.epochs) for name, r in rounds.items()},
        rounds=rounds,
    )


if __name__ == "__main__":
    main()
