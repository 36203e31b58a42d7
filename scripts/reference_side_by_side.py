"""This suite against the DC reference code, one after the other on one machine: seconds per
outer iteration of a DC-family method (MNIST, ipc 1, the paper's settings; DM: per update), and
the evaluation of one ConvNet-3 on a 10-image synthetic set with the method's evaluation
augmentation (DC's for DC, DSA for DSA and DM; training, then the pass over the 10,000 real
test images).

    python scripts/reference_side_by_side.py --reference DIR [--method gm|dsa|dm]
        [--suite DIR ...] [--rounds 2] [--iterations 4] [--epochs 300]
        [--data-root ../shared/datasets] [--out leaderboards/benchmarks]

``--reference`` is a checkout of VICO-UoE/DatasetCondensation@53f63a6 (not part of this project:
``git clone`` it, or ``git archive`` a fetched copy). Its own code is run, unchanged: its
``main.py`` loop (``main.py --method DSA`` for DSA, ``main_DM.py`` for DM; with ``--num_eval
1``; the evaluation ``main.py`` starts with is skipped by replacing ``utils.evaluate_synset``
for that run, and each outer iteration is timed from one ``get_network`` call of its training
loop to the next) and its ``utils.evaluate_synset`` and ``utils.epoch('test', ...)``. DSA and DM
at ipc 1 need the two PyTorch-2 shims of their differential checks (``bench.reports.fidelity``:
``ONE_IMAGE_SHIM``, ``RESHAPE_SHIM``), applied by wrapping ``utils.DiffAugment`` and
``utils.get_network``. Each suite checkout is measured twice: with its defaults, and with the
speed-only settings a paper run takes on a CPU (compiled matching and test pass; the compilation
is left out of the timings, as a paper run pays it once). Every side's figures are also
extrapolated to one paper set (DC and DSA: 1000 outer iterations, 20 networks of 1001 epochs;
DM: 20,000 updates, 5 networks as the README's command evaluates). ``--suite`` names checkouts
of this suite (default: this one; give a ``git worktree`` of an earlier commit to compare before
and after). The suite's side keeps freed memory as its CLI does (``bench.core.memory``, where
the checkout has it); the reference is measured as it is and, as a second side, with the same
allocator setting. Every measurement runs in a fresh process, rounds interleaved (reference,
reference with kept memory, suite 1, suite 2, reference, ...), on the CPU with the torch in this
environment. Writes ``<out>/reference-side-by-side[-dsa|-dm]-<commit>.json``
(``bench.speed.benchmark.write_record``) with every round's figures, the medians and the load
average before each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
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
get_network, diff_augment = utils.get_network, utils.DiffAugment
def stamped(*args, **kwargs):
    stamps.append(time.perf_counter())
    net = get_network(*args, **kwargs)
    if SHIMS:  # RESHAPE_SHIM
        from bench.reports.fidelity import reshaping
        net = reshaping(net)
    return net
def one_image(x, strategy="", seed=-1, param=None):  # ONE_IMAGE_SHIM
    if len(x) == 1 and seed != -1:
        return diff_augment(x.repeat(2, 1, 1, 1), strategy, seed=seed, param=param)[:1]
    return diff_augment(x, strategy, seed=seed, param=param)
def skipped(it_eval, net, images, labels, testloader, args):
    stamps.clear()  # the evaluation main.py starts with: not part of an outer iteration
    return net, 0.0, 0.0
utils.get_network, utils.evaluate_synset = stamped, skipped
if SHIMS:
    utils.DiffAugment = one_image
sys.argv = [SCRIPT, "--dataset", "MNIST", "--ipc", "1", "--Iteration", str(ITERATIONS),
            "--num_exp", "1", "--num_eval", "1", "--data_path", DATA, "--save_path", SAVE, *ARGV]
runpy.run_path(REFERENCE + "/" + SCRIPT, run_name="__main__")
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
args = argparse.Namespace(lr_net=0.01, epoch_eval_train=EPOCHS - 1, batch_train=256,
                          dsa=DSA_STRATEGY is not None, dsa_strategy=DSA_STRATEGY,
                          dsa_param=utils.ParamDiffAug(),
                          dc_aug_param=None if DSA_STRATEGY else
                          utils.get_daparam("MNIST", "ConvNet", "ConvNet", 1), device="cpu")
images = torch.randn(10, 1, 28, 28)
labels = torch.arange(10)
net = utils.get_network("ConvNet", 1, 10, im_size)
if DSA_STRATEGY:  # RESHAPE_SHIM
    from bench.reports.fidelity import reshaping
    net = reshaping(net)
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
import importlib
module = importlib.import_module(MODULE)
real = load_real(load_card("mnist"), Path(DATA), "train")
stamps = []
config = getattr(module, CONFIG)(iterations=ITERATIONS, **SETTINGS, **SPEED)
module.distill(real, 1, config, seed=0, device=torch.device("cpu"),
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
augmentation = {"augmentation": "dsa", "dsa_strategy": DSA_STRATEGY, "dsa_align_corners": False} \
    if DSA_STRATEGY else {"augmentation": "dc"}
protocol = EvalProtocol(epochs=EPOCHS - 1, **augmentation, **EVAL_SPEED)
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


DIGITS = "color_crop_cutout_scale_rotate"
"""the DSA strategy the reference README prescribes for MNIST"""


@dataclass(frozen=True)
class Family:
    """How one method of the DC family is run on each side and what one paper set of it is."""

    script: str
    """the reference's script"""
    argv: tuple[str, ...]
    """its options beyond dataset, ipc, iterations and evaluation counts (the README's command)"""
    module: str
    config: str
    """the suite's method module and config class"""
    settings: dict
    """the suite config's fields matching ``argv``"""
    paper_iterations: int
    paper_networks: int
    dsa_strategy: str | None = None
    """evaluation with DSA (and the PyTorch-2 shims on the reference side); None: DC's
    augmentation"""
    long_run_speed: dict = field(default_factory=dict)
    """the suite's speed-only settings of a paper run"""


FAMILIES = {
    "gm": Family(
        "main.py",
        (),
        "distillbench_methods.gm",
        "GMConfig",
        {},
        1000,
        20,
        long_run_speed={"compile": True},
    ),
    "dsa": Family(
        "main.py",
        ("--method", "DSA", "--init", "real", "--dsa_strategy", DIGITS),
        "distillbench_methods.gm",
        "DSAConfig",
        {"dsa_strategy": DIGITS},
        1000,
        20,
        DIGITS,
    ),
    "dm": Family(
        "main_DM.py",
        ("--init", "real", "--lr_img", "1", "--dsa_strategy", DIGITS),
        "distillbench_methods.dm",
        "DMConfig",
        {"dsa_strategy": DIGITS},
        20000,
        5,
        DIGITS,
    ),
}


def _medians(rounds: list[dict], epochs: int, family: Family) -> dict:
    """Median seconds per outer iteration (over every timed iteration of every round), training
    and test-pass seconds (over rounds), and one paper set extrapolated from them: the family's
    paper iterations and networks of 1001 epochs (``epochs`` were timed) with a test pass each."""
    medians = {
        "seconds_per_outer_iteration": statistics.median(
            s for r in rounds for s in r["loop"]["seconds_per_outer_iteration"]
        ),
        "eval_train_s": statistics.median(r["evaluation"]["train_s"] for r in rounds),
        "test_pass_s": statistics.median(r["evaluation"]["test_pass_s"] for r in rounds),
    }
    network = medians["eval_train_s"] * 1001 / epochs + medians["test_pass_s"]
    medians["paper_set_s"] = (
        family.paper_iterations * medians["seconds_per_outer_iteration"]
        + family.paper_networks * network
    )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--method", choices=sorted(FAMILIES), default="gm")
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
    family = FAMILIES[args.method]
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
                        "DSA_STRATEGY": family.dsa_strategy,
                    }
                    pythonpath = f"{path}{os.pathsep}{REPO_ROOT}"
                    loop = _measure(
                        REFERENCE_LOOP,
                        work,
                        pythonpath,
                        ITERATIONS=args.iterations,
                        SAVE=str(work / "save"),
                        SCRIPT=family.script,
                        ARGV=list(family.argv),
                        SHIMS=family.dsa_strategy is not None,
                        **common,
                    )
                    evaluation = _measure(
                        REFERENCE_EVALUATION, work, pythonpath, EPOCHS=args.epochs, **common
                    )
                else:
                    paper = name.endswith(PAPER_SPEED)
                    common = {
                        "DATA": str(data_root),
                        "KEEP": True,
                        "DSA_STRATEGY": family.dsa_strategy,
                    }
                    speed = family.long_run_speed if paper else {}
                    loop = _measure(
                        SUITE_LOOP,
                        path,
                        str(path),
                        ITERATIONS=args.iterations,
                        MODULE=family.module,
                        CONFIG=family.config,
                        SETTINGS=family.settings,
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
                figures = _medians(rounds[name][-1:], args.epochs, family)
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
        "reference-side-by-side" + ("" if args.method == "gm" else f"-{args.method}"),
        torch.device("cpu"),
        reference=f"VICO-UoE/DatasetCondensation@53f63a6 ({family.script} {' '.join(family.argv)} "
        "loop, utils.evaluate_synset)",
        suite_commits=commits,
        setting={
            "method": args.method,
            "dataset": "mnist",
            "ipc": 1,
            "batch_real": 256,
            "timed_outer_iterations_per_round": args.iterations,
            "eval_epochs": args.epochs,
            "eval_augmentation": f"dsa {family.dsa_strategy}" if family.dsa_strategy else "dc",
            "paper_set": {"iterations": family.paper_iterations, "networks": family.paper_networks},
            "torch_threads": torch.get_num_threads(),
        },
        medians={name: _medians(r, args.epochs, family) for name, r in rounds.items()},
        rounds=rounds,
    )


if __name__ == "__main__":
    main()
