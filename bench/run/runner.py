"""The one path every result takes (``python -m bench reproduce``).

recipe + budget + ``--set`` -> resolved ``RunConfig`` (logged whole)
  -> for each of ``num_exp`` synthetic sets (seed_i derived from the base seed):
       method.distill(real train set, config, seed_i)   [checkpointed, resumable]
       bench.evaluation.evaluate(synthetic set, real test set, protocol)  [per-network results]
  -> bench.evaluation.stats.verdict(accuracies, published, test, RunConfig.off_protocol())
  -> MLflow: parent run (config, provenance, summary metrics, verdict.json), one nested child
     run per synthetic set (``distill/loss`` per outer iteration, per-network accuracies,
     the synthetic set and its picture).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench.core.config import as_flat_dict, parse_set_options, speed_only_fields
from bench.core.device import pick_device
from bench.core.errors import DivergedError, Terminated, TrackingError, UserError
from bench.core.hashing import write_atomic
from bench.core.paths import require_writable_folder
from bench.core.provenance import hardware, provenance_tags
from bench.core.seeds import RUNNER_STREAMS, derive_seed
from bench.data.formats import ReadSet
from bench.data.real import DatasetCard, RealSet, load_card, load_real, smallest_class
from bench.data.synthetic import GRID, SyntheticSet, save_grid
from bench.evaluation.evaluate import evaluate_synthetic_set
from bench.evaluation.stats import (
    Verdict,
    compare_with_baseline,
    power,
    variance_split,
    verdict,
)
from bench.run.checkpoint import CheckpointStore
from bench.run.kept import KeptSet, kept_sets
from bench.run.lock import RunLock, holder
from bench.run.options import RunOptions, format_sets, parse_sets, reproduce_argv
from bench.run.parallel_sets import run_sets_in_processes
from bench.run.tracking import Tracker, resolve_tracking_uri
from bench.spec.method import Kind, Method, load_method
from bench.spec.recipes import (
    Recipe,
    RecipeGroup,
    RunConfig,
    format_published,
    format_source,
    ipc_label,
    load_recipe,
    resolve,
    with_long_run_speed,
)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


@contextlib.contextmanager
def signals_as_interrupt():
    """Within this block SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) in the main
    thread, so a scheduler or sweep stopping the task gets what Ctrl-C gets: runs marked
    FAILED, artifacts kept, the resume command printed. After the first SIGINT or SIGTERM both
    stay ignored, also after the block, so that a second Ctrl-C (or a scheduler's repeated
    SIGTERM) cannot cut the clean-up or the exit after it short and leave the run RUNNING or
    the process killed by the signal. The handlers are restored when the block ends without an
    interrupt. A no-op outside the main thread (Python delivers signals there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if signum == signal.SIGTERM:
            raise Terminated("SIGTERM")
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True  # both signals stay ignored: the process is on its way out
        raise
    finally:
        if not interrupted:
            for number, handler in previous.items():
                signal.signal(number, handler)


def reproduce(name: str, options: RunOptions) -> list[Verdict]:
    """Run a recipe, or each member of a group recipe; returns the verdict(s). SIGTERM is
    handled as Ctrl-C (``signals_as_interrupt``).

    Raises:
        UserError: unknown recipe or key, missing data, unusable ``--resume``, NaN loss, ...
        Terminated, KeyboardInterrupt: after marking the runs FAILED.
    """
    with signals_as_interrupt():
        return _reproduce(name, options)


def _reproduce(name: str, options: RunOptions) -> list[Verdict]:
    recipe = load_recipe(name)
    if isinstance(recipe, RecipeGroup):
        if options.resume:
            members = ", ".join(recipe.members)
            raise UserError(
                f"{name} is a group; --resume takes the run id of one member ({members})"
            )
        print(f"{recipe.name}: {recipe.title} — runs {', '.join(recipe.members)}")
        return [Reproduction.start(load_recipe(m), options).run() for m in recipe.members]
    return [Reproduction.start(recipe, options).run()]


@dataclass
class Reproduction:
    """One recipe's run: its resolved config, data, tracking and checkpoints."""

    recipe: Recipe
    config: RunConfig
    method: Method
    train: RealSet
    test: RealSet
    device: torch.device
    tracker: Tracker
    parent: str
    checkpoints: CheckpointStore
    folder: Path
    """local copies of the artifacts: ``<out>/sets/<run id>``"""
    checkpoint_every: int
    resume_command: str
    """the command that continues this run after a failure"""
    given: list[ReadSet] | None = None
    """synthetic sets made elsewhere (``python -m bench evaluate``), evaluated and judged in
    place of distilled ones; None: distil them"""
    stream_accuracies: dict[str, list[list[float]]] = field(default_factory=dict)
    """``eval.stream``: ``[model][set][network]`` accuracies of every set's stream evaluation"""
    parallel_sets: int = 1
    """synthetic sets computed at once, each in its own process (speed only)"""
    set_indices: tuple[int, ...] = ()
    """the synthetic sets of the design this run computes: all ``eval.num_exp`` of them, or a
    shard (``--sets``) whose sets get exactly the seeds of the full run"""
    lock: RunLock | None = None
    """held while this process writes the run (``bench.run.lock``); released when it ends"""
    kept: dict[int, KeptSet] = field(default_factory=dict)
    """sets distilled by an earlier run of the design, evaluated again instead of distilled
    (``--distilled-from``, ``bench.run.kept``)"""

    @property
    def is_shard(self) -> bool:
        """Whether this run computes only some of the design's synthetic sets (no verdict)."""
        return len(self.set_indices) < self.config.eval.num_exp

    @classmethod
    def start(
        cls,
        recipe: Recipe,
        options: RunOptions,
        given: Callable[[RunConfig, RealSet], list[ReadSet]] | None = None,
    ) -> Reproduction:
        """Resolve the config, check what the run needs, load the data and open (or re-open,
        with ``--resume``) the run.

        Everything that can be checked without computing is checked before the data is loaded
        and before any run is created, each failure one ``UserError`` line: the config, the
        device, the method's ``preflight`` (optional dependencies), a writable ``--out`` and a
        working tracking store (``bench.run.tracking.check_store``).

        ``given(config, train)``: the sets to evaluate instead of distilling, read and checked
        against the prepared data before any run is opened (``eval.num_exp`` becomes their
        number); it raises ``UserError`` on bad input, so nothing is written to the store."""
        config = resolve(
            recipe,
            options.budget,
            options.seed,
            parse_set_options(list(options.set_items)),
            options.dataset,
            options.eval_models,
        )
        device = pick_device(options.device)
        card = load_card(config.dataset)
        method = load_method(config.method)
        if config.budget == "paper" and device.type == "cpu":
            config = with_long_run_speed(config, method.long_run_speed)
        if config.eval.stream and method.stream is None:
            raise UserError(
                f"eval.stream: method {config.method} draws no stream of batches from its set; "
                "set eval.stream=false"
            )
        if recipe.statistic == "stream" and not config.eval.stream:
            raise UserError(
                f"{recipe.name} is judged on the stream statistic; keep eval.stream=true"
            )
        if method.preflight is not None:
            method.preflight(config.method_config)
        train = load_real(card, options.data_root, "train", options.download)
        test = load_real(card, options.data_root, "test", options.download)
        if method.prepare_real is not None:  # the method's view of the data (both splits)
            train, test = method.prepare_real(train, test, config.method_config)
        smallest = smallest_class(train)
        if config.ipc is not None and config.ipc > smallest:
            raise UserError(
                f"{recipe.name}: ipc {config.ipc} is more than the smallest class of "
                f"{card.display_name}'s training split holds ({smallest} images)"
            )
        if method.check_data is not None:
            method.check_data(train, config.ipc, config.method_config)
        sets = given(config, train) if given is not None else None
        if sets is not None:
            config = dataclasses.replace(
                config, eval=dataclasses.replace(config.eval, num_exp=len(sets))
            )
        count = config.eval.num_exp
        indices = parse_sets(options.sets, count) if options.sets else tuple(range(count))
        if sets is not None and options.distilled_from:
            raise UserError("--distilled-from is for reproduce; evaluate takes the files")
        kept = kept_sets(options.distilled_from, recipe, config, indices)
        # only once the inputs are known good is anything written (the store, --out)
        out = require_writable_folder(Path(options.out), "--out")
        tracker = Tracker(resolve_tracking_uri(options.tracking_uri, out), out)
        if options.resume:
            lock = RunLock(out / "checkpoints" / options.resume, options.resume)
            parent = _reopen_parent_run(tracker, options.resume, config, device, indices, lock)
        else:
            parent = _new_parent_run(tracker, recipe, config, card, device, indices)
            lock = RunLock(out / "checkpoints" / parent, parent)
            lock.acquire()
        writer = holder()
        tracker.set_tags(parent, {"writer": f"pid {writer['pid']} on {writer['host']}"})
        resume_argv = reproduce_argv(recipe.name, dataclasses.replace(options, resume=parent))
        resume_command = shlex.join(["python", *resume_argv])
        run = cls(
            recipe,
            config,
            method,
            train,
            test,
            device,
            tracker,
            parent,
            CheckpointStore(out / "checkpoints" / parent, config.config_hash()),
            out / "sets" / parent,
            options.checkpoint_every,
            resume_command,
            sets,
            parallel_sets=options.parallel_sets,
            set_indices=indices,
            lock=lock,
            kept=kept,
        )
        if not options.resume:
            run.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(run.folder / "config.json", json.dumps(config.as_dict(), indent=2))
            tracker.log_artifact(parent, run.folder / "config.json")
        return run

    def run(self) -> Verdict | None:
        """Distil and evaluate the run's synthetic sets (``parallel_sets`` at a time, each in
        its own process, ``bench.run.parallel_sets``), then judge (a shard is not judged: it
        returns None; the ledger pools it with the design's other sets); marks the runs FAILED
        (keeping checkpoints and artifacts) on any exception, Ctrl-C or SIGTERM, says how to
        continue (the resume command; after a divergence, what to change instead), and re-raises
        it."""
        self.print_header()
        unfinished: list[str] = []
        try:
            # per synthetic set: the set, not the network, is the unit of replication
            accuracies: dict[str, list[list[float]]] = {m: [] for m in self.config.eval.models}
            best_evaluations: list[list[float]] = []
            indices = self.set_indices
            if self.parallel_sets > 1 and len(indices) > 1:
                unfinished = [self.child_run(index) for index in indices]
                pairs = list(zip(indices, unfinished, strict=True))
                workers = min(self.parallel_sets, len(indices))
                per_set = run_sets_in_processes(self, pairs, workers)
                unfinished = []
                for result, best, stream in per_set:
                    for model, values in result.items():
                        accuracies[model].append(values)
                    best_evaluations.append(best)
                    for model, values in stream.items():
                        self.stream_accuracies.setdefault(model, []).extend(values)
            else:
                for index in indices:
                    unfinished = [self.child_run(index)]
                    result, best = self.one_synthetic_set(index, unfinished[0])
                    for model, values in result.items():
                        accuracies[model].append(values)
                    best_evaluations.append(best)
                    self.tracker.set_status(unfinished.pop(), "FINISHED")
            if self.is_shard:
                self.log_shard(accuracies, best_evaluations)
                self.tracker.set_status(self.parent, "FINISHED")
                return None
            outcome = self.judge_and_log(accuracies, best_evaluations)
            self.tracker.set_status(self.parent, "FINISHED")
            return outcome
        except BaseException as exc:
            self._fail(exc, unfinished)
            raise
        finally:
            if self.lock is not None:
                self.lock.release()

    def _fail(self, exc: BaseException, children: list[str]) -> None:
        """Keep what ``exc`` left (the last good set of a divergence, in the set's run
        ``exc.child`` when a worker process names it), mark the unfinished set runs and the
        parent FAILED where the store still answers, and print one line saying how to
        continue."""
        kept = f"its checkpoints ({self.checkpoints.folder}) and artifacts ({self.folder}) are kept"
        try:
            diverged = getattr(exc, "child", None) or (children[-1] if children else None)
            if isinstance(exc, DivergedError) and diverged is not None:
                self.log_synthetic_set(exc.last_good, diverged, self.folder / "last_good")
            if not isinstance(exc, TrackingError):
                for run_id in [*children, self.parent]:
                    if self.tracker.get_run(run_id).info.status != "FINISHED":
                        self.tracker.set_status(run_id, "FAILED")
        except TrackingError:
            exc = TrackingError("")
        if isinstance(exc, TrackingError):
            tqdm.write(
                f"run {self.parent}: the tracking store {self.tracker.uri} stopped answering; "
                f"{kept}, nothing computed is lost. Once the store answers again, continue "
                f"(and log what is missing) with: {self.resume_command}"
            )
        elif isinstance(exc, DivergedError):
            tqdm.write(
                f"run {self.parent} marked FAILED; {kept}. Resuming it would replay the same "
                "config and diverge again: start a new run with the change the error names, "
                f"as --set KEY=VALUE added to: {self.resume_command.split(' --resume ')[0]}"
            )
        else:
            tqdm.write(
                f"run {self.parent} marked FAILED; {kept}. Continue it with: {self.resume_command}"
            )

    @property
    def iterations(self) -> int:
        """Outer iterations of a distilled method (0 for coresets and the whole set)."""
        if self.method.kind is Kind.DISTILLED:
            return self.config.method_config.iterations
        return 0

    def sets_from(self, index: int) -> int:
        """How many of this run's sets are set ``index`` or come after it (for estimates)."""
        return sum(1 for i in self.set_indices if i >= index)

    def print_header(self) -> None:
        """What is about to run: recipe, budget, overrides, published target, work, hardware."""
        recipe, config, ev = self.recipe, self.config, self.config.eval
        budget = recipe.budgets.get(config.budget)
        iterations = self.iterations
        print(f"{recipe.name} (v{recipe.version}): {recipe.title}")
        print(f"  data     : {self.train.card.display_name}")
        print(
            f"  budget   : {config.budget} — "
            f"{budget.description if budget else 'the paper protocol'}"
        )
        if config.overrides:
            print(f"  overrides: {' '.join(config.overrides)}")
        speed = speed_settings(config)
        if speed:
            note = "speed only: the same algorithm, float summation order may differ"
            print(f"  speed    : {' '.join(speed)} ({note})")
        print(f"  published: {format_published(recipe)} [{format_source(recipe)}]")
        figure = power(recipe.published, recipe.margin, recipe.alpha, ev.num_exp, ev.num_eval)
        print(f"  power    : {ev.num_exp} set(s) x {ev.num_eval} networks: {figure.summary()}")
        count = len(self.set_indices)
        distilled = self.given or self.kept  # every set of the run, or none
        distill = f" x {iterations} outer iterations" if iterations and not distilled else ""
        size = f"{config.ipc} image(s)/class" if config.ipc else f"{len(self.train.labels)} images"
        print(
            f"  work     : {count} set(s){distill}; {count * ev.models_per_set} "
            f"network(s) x {ev.epochs + 1} epochs on {size}"
        )
        for run_id in dict.fromkeys(k.run_id for k in self.kept.values()):
            indices = tuple(i for i, k in self.kept.items() if k.run_id == run_id)
            print(f"  kept     : set(s) {format_sets(indices)} as run {run_id} distilled them")
        if self.is_shard:
            print(
                f"  shard    : set(s) {format_sets(self.set_indices)} of the design's "
                f"{ev.num_exp} (seeds as in the full run; no verdict until every set is in)"
            )
        print(f"  hardware : {hardware(self.device)}")
        print(f"  run      : {self.parent} in {self.tracker.uri} (config {config.config_hash()})")

    def child_run(self, index: int) -> str:
        """The nested run of synthetic set ``index``: the existing one on resume, else new."""
        for run in self.tracker.children(self.parent):
            if run.data.tags.get("set_index") == str(index):
                self.tracker.set_status(run.info.run_id, "RUNNING")
                return run.info.run_id
        return self.tracker.start_run(f"set{index}", {"set_index": str(index)}, self.parent)

    def one_synthetic_set(
        self, index: int, child: str
    ) -> tuple[dict[str, list[float]], list[float]]:
        """Distil (or restore) synthetic set ``index`` and evaluate it. Returns its accuracies
        ``{model: [...]}`` and the best evaluation of the recipe's model during distillation or
        of the final set (the one with the highest mean: the max-over-evaluations statistic)."""
        config, card = self.config, self.train.card
        set_seed = derive_seed(config.seed, index)
        # the whole training split is neither checkpointed nor logged: the data card names it
        keeps_set = self.method.kind is not Kind.WHOLE
        image_shape = (card.num_classes * (config.ipc or 0), card.channels, *card.image_size)
        state = self.checkpoints.load(index, image_shape) or {"accuracies": {}}
        label = f"set {index + 1}/{config.eval.num_exp} "
        if self.given is not None:  # made elsewhere: evaluated as a distilled one
            synset = self.given[index].synset
            self.tracker.set_tags(child, self.given[index].tags())
        elif index in self.kept:  # distilled by an earlier run of the design
            synset = self.kept[index].synset
            self.tracker.set_tags(child, self.kept[index].tags())
            if self.kept[index].distill_s is not None:
                state["distill_s"] = self.kept[index].distill_s
        elif "synthetic" in state:  # distilled before an interruption
            synset = SyntheticSet.from_tensors(
                state["synthetic"],
                method=config.method,
                dataset=card.name,
                ipc=config.ipc,
                seed=set_seed,
            )
        else:
            synset = self.distill(index, set_seed, state, child, label)
            if keeps_set:
                state["synthetic"] = synset.tensors()
                self.checkpoints.save(index, state)
        if "distill_s" in state:
            self.tracker.log_metrics(child, {"time/distill_s": state["distill_s"]})
        synset = dataclasses.replace(
            synset, config_hash=config.config_hash(), preprocessing=self.train.preprocessing
        )
        if keeps_set:
            self.log_synthetic_set(synset, child, self.folder / f"set{index}")
        for model, values in state["accuracies"].items():  # checkpointed, maybe never logged
            missing = set(range(len(values))) - self.tracker.logged_steps(
                child, f"eval/{model}/model_acc"
            )
            for k in sorted(missing):
                self.tracker.log_metrics(child, {f"eval/{model}/model_acc": values[k]}, step=k)
        result = evaluate_synthetic_set(
            synset,
            self.test,
            config.eval,
            RUNNER_STREAMS.seed(set_seed, "evaluation"),
            self.device,
            done=state["accuracies"],
            on_result=self._record_network(index, child, state),
            label=label,
        )
        means = {f"eval/{m}/acc": float(np.mean(v)) for m, v in result.items()}
        self.tracker.log_metrics(child, means)
        if "evaluate_s" in state:
            self.tracker.log_metrics(child, {"time/evaluate_s": state["evaluate_s"]})
        if config.eval.stream:
            self.evaluate_stream(index, child, synset, state, set_seed, label)
        during = list(state.get("evaluations", {}).values())
        best = max([*during, result[config.eval.models[0]]], key=np.mean)
        return result, best

    def evaluate_stream(
        self,
        index: int,
        child: str,
        synset: SyntheticSet,
        state: dict[str, Any],
        set_seed: int,
        label: str,
    ) -> None:
        """``eval.stream``: the shared evaluation on a fresh batch per epoch from the stream the
        method rebuilds from ``synset`` (``Method.stream``); per-network results checkpointed
        and logged as ``eval/<model>/stream_model_acc``, means as ``eval/<model>/stream_acc``,
        and added to ``stream_accuracies``."""
        done = state.setdefault("stream_accuracies", {})

        def on_result(model: str, k: int, accuracy: float) -> None:
            done.setdefault(model, []).append(accuracy)
            self.checkpoints.save(index, state)
            self.tracker.log_metrics(child, {f"eval/{model}/stream_model_acc": accuracy}, step=k)

        result = evaluate_synthetic_set(
            synset,
            self.test,
            self.config.eval,
            RUNNER_STREAMS.seed(set_seed, "stream_evaluation"),
            self.device,
            done={m: list(v) for m, v in done.items()},
            on_result=on_result,
            label=f"{label}stream ",
            stream=self.method.stream(synset, self.config.method_config, self.device),
        )
        means = {f"eval/{m}/stream_acc": float(np.mean(v)) for m, v in result.items()}
        self.tracker.log_metrics(child, means)
        for model, values in result.items():
            self.stream_accuracies.setdefault(model, []).append(values)

    def distill(
        self, index: int, seed: int, state: dict[str, Any], child: str, label: str
    ) -> SyntheticSet:
        """Run the method from its last checkpoint, logging, showing progress, checkpointing
        every ``checkpoint_every`` outer iterations and estimating the remaining time."""
        iterations = self.iterations
        if not iterations:  # baselines: a selection, no outer loop to show or checkpoint
            return self.method.distill(
                self.train, self.config.ipc, self.config.method_config, seed, self.device
            )
        resume = state.get("distill")
        start = resume["iteration"] if resume else 0
        spent = state.get("distill_s", 0.0)  # seconds spent before an interruption
        # after --resume, the iterations since the last checkpoint were logged before the
        # interruption: replayed (bit-identically), they are not logged again
        logged = self.tracker.logged_steps(child, "distill/loss")
        started = time.perf_counter()
        stamps = [started]
        total_left = iterations * self.sets_from(index) - start
        with tqdm(
            total=iterations,
            initial=start,
            desc=f"{label}distill",
            unit="it",
            dynamic_ncols=True,
            mininterval=1.0,
        ) as bar:

            def after_iteration(it: int, metrics: dict[str, float], get_state) -> None:
                if it not in logged:
                    self.tracker.log_metrics(child, metrics, step=it)
                bar.set_postfix(loss=f"{metrics['distill/loss']:.3f}", refresh=False)
                bar.update(1)
                now = time.perf_counter()
                # from the second iteration where there is one: the first also compiles
                if it == start + 1 or (it == start and it + 1 == iterations):
                    per_it = now - stamps[-1]
                    tqdm.write(
                        f"estimate: distillation {per_it:.2f} s/it x {total_left} "
                        f"iterations ≈ {_duration(per_it * total_left)} on this hardware"
                    )
                stamps.append(now)
                if (it + 1) % self.checkpoint_every == 0 or it + 1 == iterations:
                    state["distill"] = get_state()
                    state["distill_s"] = spent + time.perf_counter() - started
                    self.checkpoints.save(index, state)

            return self.method.distill(
                self.train,
                self.config.ipc,
                self.config.method_config,
                seed,
                self.device,
                resume=resume,
                after_iteration=after_iteration,
                evaluate=self._evaluate_during(index, seed, state, child, label),
            )

    def _evaluate_during(self, index: int, seed: int, state: dict[str, Any], child: str, label):
        """``evaluate(it, synset)`` for methods that evaluate while they distil (e.g.
        ``eval_every``): the shared evaluation of the recipe's model on the intermediate set,
        logged as ``distill/eval/<model>/acc`` at step ``it`` and checkpointed."""
        model = self.config.eval.models[0]
        protocol = dataclasses.replace(self.config.eval, models=(model,))
        key = f"distill/eval/{model}/acc"
        logged = self.tracker.logged_steps(child, key)

        def evaluate(it: int, synset: SyntheticSet) -> None:
            values = evaluate_synthetic_set(
                synset,
                self.test,
                protocol,
                RUNNER_STREAMS.seed(seed, "evaluation_during", it),
                self.device,
                label=f"{label}iteration {it} ",
            )[model]
            state.setdefault("evaluations", {})[str(it)] = values
            self.checkpoints.save(index, state)
            if it not in logged:
                self.tracker.log_metrics(child, {key: float(np.mean(values))}, step=it)

        return evaluate

    def _record_network(self, index: int, child: str, state: dict[str, Any]):
        """Callback after each evaluated network: checkpoint, log, estimate once."""
        ev = self.config.eval
        started = [time.perf_counter()]
        since, spent = started[0], state.get("evaluate_s", 0.0)

        def on_result(model: str, k: int, accuracy: float) -> None:
            state["accuracies"].setdefault(model, []).append(accuracy)
            state["evaluate_s"] = spent + time.perf_counter() - since
            self.checkpoints.save(index, state)
            self.tracker.log_metrics(child, {f"eval/{model}/model_acc": accuracy}, step=k)
            if started:
                per_network = time.perf_counter() - started.pop()
                left = self.sets_from(index) * ev.models_per_set - sum(
                    len(v) for v in state["accuracies"].values()
                )
                tqdm.write(
                    f"estimate: evaluation {per_network:.1f} s/network x {left} networks "
                    f"left ≈ {_duration(per_network * left)}"
                )

        return on_result

    def log_synthetic_set(self, synset: SyntheticSet, run_id: str, folder: Path) -> None:
        """Save the synthetic set and its picture under ``folder`` and log both to ``run_id``."""
        card = self.train.card
        folder.mkdir(parents=True, exist_ok=True)
        self.tracker.log_artifact(run_id, synset.save(folder / "synthetic_set.safetensors", card))
        grid = save_grid(self.train.pixels(synset.images), synset.labels, card, folder / GRID)
        self.tracker.log_artifact(run_id, grid)
        if self.method.artifacts is not None and self.given is None:
            for path in self.method.artifacts(synset, card, folder):
                self.tracker.log_artifact(run_id, path)

    def tested_sets(
        self, accuracies: dict[str, list[list[float]]], best_evaluations: list[list[float]]
    ) -> list[list[float]]:
        """The accuracies of the statistic the published number measures, ``[set][network]``
        (percent): the final sets' (``final``), the best evaluation during distillation
        (``max_over_evaluations``) or the stream evaluation (``stream``)."""
        tested = {
            "max_over_evaluations": best_evaluations,
            "stream": self.stream_accuracies.get(self.config.eval.models[0]),
        }.get(self.recipe.statistic)
        return tested or accuracies[self.config.eval.models[0]]

    def log_shard(
        self, accuracies: dict[str, list[list[float]]], best_evaluations: list[list[float]]
    ) -> None:
        """A shard's summary: the variance split of its sets where estimable, ``accuracies.json``
        (``accuracies[model][set][network]``, percent, in ``set_indices`` order) and
        ``shard.json`` (its set indices and the tested statistic's accuracies per set, which
        the ledger pools); the verdict waits for the design's other sets."""
        summary = {}
        for model, sets in accuracies.items():
            summary.update(summary_metrics(f"eval/{model}/acc", sets))
        self.tracker.log_metrics(self.parent, summary)
        primary = self.config.eval.models[0]
        record = {
            "recipe": self.recipe.name,
            "recipe_version": self.recipe.version,
            "model": primary,
            "statistic": self.recipe.statistic,
            "set_indices": list(self.set_indices),
            "design_sets": self.config.eval.num_exp,
            "sets": self.tested_sets(accuracies, best_evaluations),
            "final_accuracies_by_set": accuracies[primary],
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, content in (("accuracies.json", accuracies), ("shard.json", record)):
            write_atomic(self.folder / name, json.dumps(content, indent=2))
            self.tracker.log_artifact(self.parent, self.folder / name)
        done = ", ".join(
            f"set {i}: {np.mean(v):.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2f}"
            for i, v in zip(self.set_indices, accuracies[primary], strict=True)
        )
        print(
            f"\n{self.recipe.name} [{self.config.budget}] {primary}, shard "
            f"{format_sets(self.set_indices)} of {self.config.eval.num_exp} sets: {done}. "
            "No verdict from a shard: add it to the ledger (python -m bench leaderboard "
            "--ingest) and the design is judged once all its sets are in."
        )

    def judge_and_log(
        self, accuracies: dict[str, list[list[float]]], best_evaluations: list[list[float]]
    ) -> Verdict:
        """Summary metrics with the variance split, the verdict on the recipe's model (on the
        statistic the published number measures), the comparison with the recipe's baselines,
        and their JSON artifacts. ``accuracies[model][set][network]`` and
        ``best_evaluations[set][network]`` are percent, grouped by synthetic set."""
        recipe, config = self.recipe, self.config
        primary = config.eval.models[0]
        named = {f"eval/{m}/acc": v for m, v in accuracies.items()}
        if recipe.statistic == "max_over_evaluations":
            named[f"eval/{primary}/max_over_evaluations_acc"] = best_evaluations
        named.update({f"eval/{m}/stream_acc": v for m, v in self.stream_accuracies.items()})
        summary = {}
        for key, sets in named.items():
            summary.update(summary_metrics(key, sets))
        self.tracker.log_metrics(self.parent, summary)
        tested = recipe.statistic != "final"
        outcome = verdict(
            self.tested_sets(accuracies, best_evaluations),
            recipe.published,
            recipe.margin,
            recipe.alpha,
            config.off_protocol(),
            recipe.statistic,
        )
        final = [a for values in accuracies[primary] for a in values]
        record = {
            "recipe": recipe.name,
            "recipe_version": recipe.version,
            "model": primary,
            **outcome.as_dict(),
            "final_accuracies": final,
            "final_accuracies_by_set": accuracies[primary],
            "baselines": self.compare_with_baselines(final),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, content in (("accuracies.json", accuracies), ("verdict.json", record)):
            write_atomic(self.folder / name, json.dumps(content, indent=2))
            self.tracker.log_artifact(self.parent, self.folder / name)
        self.tracker.set_tags(self.parent, {"verdict": outcome.verdict})
        print(f"\n{recipe.name} [{config.budget}] {primary}: {outcome.summary()}")
        if tested:
            print(
                f"  final set: {np.mean(final):.2f} (the accuracy of the final "
                f"synthetic set; the verdict tests the paper's statistic, {recipe.statistic})"
            )
        for entry in record["baselines"]:
            print(f"  vs {entry['baseline']}: {entry['summary']}")
        return outcome

    def compare_with_baselines(self, values: list[float]) -> list[dict]:
        """The final accuracies against each of the recipe's baselines' latest finished run of
        the same budget and data in this store
        (``bench.evaluation.stats.compare_with_baseline``)."""
        config, primary = self.config, self.config.eval.models[0]
        out = []
        # a set made elsewhere is also compared with the suite's own reproduction of the recipe
        own = (self.recipe.name,) if self.given is not None else ()
        for name in self.recipe.baselines + own:
            tags = {"recipe": name, "budget": config.budget, "dataset": config.dataset}
            run = self.tracker.latest_finished(tags)
            if run is None:
                dataset = (
                    f" --dataset {config.dataset}"
                    if config.dataset != config.recipe_dataset
                    else ""
                )
                out.append(
                    {
                        "baseline": name,
                        "summary": "not measured in this store; run: python -m bench reproduce "
                        f"{name} --budget {config.budget}{dataset}",
                    }
                )
                continue
            metrics = run.data.metrics
            mean = metrics[f"eval/{primary}/acc"]
            std = metrics.get(f"eval/{primary}/acc_std", 0.0)
            n = int(metrics[f"eval/{primary}/n"])
            result = compare_with_baseline(values, mean, std, n, self.recipe.alpha)
            out.append(
                {
                    "baseline": name,
                    "run": run.info.run_id,
                    "mean": mean,
                    "std": std,
                    "n": n,
                    **result,
                    "summary": f"{result['difference']:+.2f} pp against {mean:.2f} (n={n}); "
                    f"one-sided Welch p={result['p_greater']:.3g}: {result['outcome']}",
                }
            )
        return out


def speed_settings(config: RunConfig) -> list[str]:
    """``section.field=value`` of every speed-only field not at its default (the ``--set`` ones
    and a long run's, ``with_long_run_speed``)."""
    shown = []
    for section, values in (("method", config.method_config), ("eval", config.eval)):
        default = type(values)()
        for name in sorted(speed_only_fields(values)):
            if getattr(values, name) != getattr(default, name):
                shown.append(f"{section}.{name}={str(getattr(values, name)).lower()}")
    return shown


def summary_metrics(key: str, sets: list[list[float]]) -> dict[str, float]:
    """MLflow summary metrics of accuracies grouped by synthetic set under ``key``
    (``eval/<arch>/acc``): the mean, ``_std`` (over all networks) and ``_n`` the regression
    check and leaderboards read, and the variance split (``std_between_sets``,
    ``std_within_set``, ``icc``; only where estimable)."""
    flat = [a for values in sets for a in values]
    out = {key: float(np.mean(flat)), key.replace("acc", "n"): len(flat)}
    if len(flat) > 1:
        out[f"{key}_std"] = float(np.std(flat, ddof=1))
    split = variance_split(sets)
    prefix = key.removesuffix("acc")
    for name, value in (
        ("std_between_sets", split.std_between),
        ("std_within_set", split.std_within),
        ("icc", split.icc),
    ):
        if np.isfinite(value):
            out[prefix + name] = float(value)
    return out


def _run_tags(
    recipe: Recipe, config: RunConfig, card: DatasetCard, device: torch.device
) -> dict[str, str]:
    return {
        "recipe": recipe.name,
        "recipe_version": str(recipe.version),
        "budget": config.budget,
        "seed": str(config.seed),
        "method": config.method,
        "dataset": config.dataset,
        "dataset_name": card.display_name,
        "ipc": ipc_label(config.ipc),
        "config_hash": config.config_hash(),
        "overrides": " ".join(config.overrides),
        "eval_models": " ".join(config.eval.models),
        "comparable": str(not config.off_protocol()).lower(),
        **provenance_tags(device),
    }


def _new_parent_run(
    tracker: Tracker,
    recipe: Recipe,
    config: RunConfig,
    card: DatasetCard,
    device: torch.device,
    indices: tuple[int, ...],
) -> str:
    tags = _run_tags(recipe, config, card, device)
    name = f"{recipe.name}/{config.budget}/seed{config.seed}"
    if len(indices) < config.eval.num_exp:
        name += f"/sets{format_sets(indices)}"
    tags.update(sets=format_sets(indices), protocol_hash=config.protocol_hash())
    run_id = tracker.start_run(name, tags)
    params = {
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "budget": config.budget,
        "seed": config.seed,
        "dataset": config.dataset,
        "ipc": ipc_label(config.ipc),
        **as_flat_dict(config.method_config, "method"),
        **as_flat_dict(config.eval, "eval"),
    }
    tracker.log_params(run_id, params)
    return run_id


def _reopen_parent_run(
    tracker: Tracker,
    run_id: str,
    config: RunConfig,
    device: torch.device,
    indices: tuple[int, ...],
    lock: RunLock,
) -> str:
    """Check that ``run_id`` is an unfinished run of this very config, take its ``lock`` (one
    writer) and mark it RUNNING.

    Raises:
        UserError: unknown run, a synthetic-set run, another config or shard, a finished run,
            or a run another live process is writing.
    """
    run = tracker.get_run(run_id)
    tags = run.data.tags
    if tags.get("mlflow.parentRunId"):
        raise UserError(
            f"{run_id} is a synthetic-set run; resume its parent {tags['mlflow.parentRunId']}"
        )
    if tags.get("config_hash") != config.config_hash():
        raise UserError(
            f"run {run_id} was started as {tags.get('recipe')} budget={tags.get('budget')} "
            f"seed={tags.get('seed')} (config {tags.get('config_hash')}); resume it with the same "
            f"recipe, --budget, --seed and --set options (this command resolves to config "
            f"{config.config_hash()})"
        )
    started = tags.get("sets", format_sets(tuple(range(config.eval.num_exp))))
    if started != format_sets(indices):
        raise UserError(
            f"run {run_id} computes synthetic set(s) {started}; resume it with --sets {started}"
        )
    if run.info.status == "FINISHED":
        raise UserError(f"run {run_id} already FINISHED; nothing to resume")
    lock.acquire()  # a second resume of a run being written is refused here
    tracker.set_status(run_id, "RUNNING")
    now = provenance_tags(device)
    tracker.set_tags(run_id, {"resumed_on": now["hardware"], "resumed_commit": now["git_commit"]})
    return run_id
