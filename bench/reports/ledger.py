"""The ledger: one committed JSON record per finished reproduction, and the designs it pools.

``leaderboards/runs/<run id>.json`` holds what a leaderboard cell needs without the MLflow store
it came from: tags (commit, hardware, versions), params, metrics, the accuracies of the recipe's
model per synthetic set and network (``sets`` of the tested statistic, ``final_sets`` of the
final set), and since shards (``reproduce --sets``):

- ``set_indices``: which synthetic sets of the design the run computed (all of them for a run
  made in one go);
- ``design``: ``protocol_hash`` (``bench.spec.recipes.protocol_hash``: the resolved config
  without seed and speed-only settings), ``seed`` and ``num_exp``, the design's size;
- ``set_records``: per set its index, the SHA-256 of its synthetic-set file, the machine and
  commit that made it (``distilled_in``: the run whose kept file this run evaluated again) and
  the compute seconds of its distillation and evaluation; for
  ``paper``-budget runs also ``file``, the set itself, committed beside the record as
  ``runs/<run id>/set<i>.safetensors`` so that anyone can re-judge it (``bench evaluate``).

A design is the unit a verdict is made of: the ``num_exp`` synthetic sets of one recipe version,
protocol and base seed. Records of one design (a full run, or shards from any number of machines
and days) are pooled set by set (``pool_designs``): a set measured twice with the same file is
one set; measured twice with different files it is a conflict, reported and not pooled. Only a
complete design is judged; an incomplete one shows its progress.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.core.hashing import sha256_file, write_atomic
from bench.run.tracking import Tracker
from bench.spec.recipes import protocol_hash

SET_FILE = "synthetic_set.safetensors"


@dataclass(frozen=True)
class SetRecord:
    """One synthetic set of a record: its index in the design and where it came from."""

    index: int
    sha256: str = ""
    """of its synthetic-set file; empty in records made before set files were recorded"""
    file: str = ""
    """the committed copy, relative to the ledger folder (``paper`` budget only)"""
    hardware: str = ""
    commit: str = ""
    distilled_in: str = ""
    """the run that distilled it where this run evaluated a kept file again
    (``reproduce --distilled-from``); then ``hardware``, ``commit`` and ``distill_s`` are that
    run's; empty: distilled by this run"""
    distill_s: float | None = None
    """wall-clock seconds its process spent distilling (summed over resumes, so without the time
    between them; with any time the process was paused), where the run logged them"""
    evaluate_s: float | None = None
    wall_s: float | None = None
    """from the start to the end of its MLflow run (includes time waiting between resumes)"""


@dataclass(frozen=True)
class MeasuredRun:
    """What the leaderboards read of one ledger record (a finished parent run)."""

    run_id: str
    recipe: str
    dataset_name: str
    budget: str
    model: str
    mean: float
    std: float | None
    n: int
    verdict: str
    commit: str
    hardware: str
    start_time: int
    """milliseconds since the epoch (MLflow's), to order runs"""
    final_mean: float | None = None
    """where ``mean`` is the best evaluation during distillation (recipes whose published
    number is that statistic) or on a stream of batches drawn from the set: the final
    synthetic set's mean accuracy, shown beside it"""
    recipe_version: str = ""
    dataset: str = ""
    overrides: str = ""
    """the ``--set`` overrides that change results (speed-only ones left out)"""
    comparable: bool = False
    sets: tuple[tuple[float, ...], ...] | None = None
    """accuracies of the tested statistic per synthetic set (in ``set_records`` order); ``None``
    in records logged before the set-level verdict (they cannot be pooled)"""
    final_sets: tuple[tuple[float, ...], ...] | None = None
    pictures: tuple[str, ...] = ()
    """pictures of this run under the leaderboard folder (``grids/...``)"""
    statistic: str = "final"
    """what ``mean`` is (``bench.spec.recipes.STATISTICS``)"""
    submitted: str = ""
    """for a set made elsewhere and judged with ``python -m bench evaluate`` (tag
    ``source=external``): who made it and the first file's SHA-256 prefix; its row stands beside
    the suite's own reproduction of the recipe and is never pooled with it"""
    design: tuple[str, str] = ("", "")
    """(protocol hash, base seed): runs with the same design compute the same sets; records
    from before protocol hashes use their config hash, or their run id where none is known"""
    design_sets: int = 0
    """how many synthetic sets make the design complete (its ``eval.num_exp``)"""
    set_records: tuple[SetRecord, ...] = ()

    @classmethod
    def from_record(cls, record: dict) -> MeasuredRun | None:
        """Read a ledger record; ``None`` for a run that is not a reproduction parent run."""
        tags, metrics = record["tags"], record["metrics"]
        model = (tags.get("eval_models") or "ConvNet").split()[0]
        if f"eval/{model}/acc" not in metrics:
            return None
        key, final = f"eval/{model}/acc", None
        statistic = "final"
        for other in ("max_over_evaluations", "stream"):  # bench.spec.recipes.STATISTICS
            if f"eval/{model}/{other}_acc" in metrics:
                key, final, statistic = f"eval/{model}/{other}_acc", metrics[key], other

        def nested(values):
            return None if values is None else tuple(tuple(map(float, s)) for s in values)

        sets = nested(record.get("sets"))
        design = record.get("design") or {}
        count = len(sets) if sets else 0
        records = tuple(SetRecord(**s) for s in record.get("set_records", ())) or tuple(
            SetRecord(index) for index in record.get("set_indices", range(count))
        )
        return cls(
            run_id=record["run_id"],
            recipe=tags.get("recipe", ""),
            dataset_name=tags.get("dataset_name", tags.get("dataset", "")),
            budget=tags.get("budget", ""),
            model=model,
            mean=metrics[key],
            std=metrics.get(f"{key}_std"),
            n=int(metrics.get(key.replace("acc", "n"), 1)),
            verdict=tags.get("verdict", ""),
            commit=tags.get("git_commit", ""),
            hardware=tags.get("hardware", ""),
            start_time=int(record.get("start_time_ms", 0)),
            final_mean=final,
            recipe_version=tags.get("recipe_version", ""),
            dataset=tags.get("dataset", ""),
            overrides=record.get("protocol_overrides", tags.get("overrides", "")),
            comparable=tags.get("comparable") == "true",
            sets=sets,
            final_sets=nested(record.get("final_sets")),
            pictures=tuple(record.get("pictures", ())),
            statistic=statistic,
            submitted=(
                f"{tags.get('submitted_by') or 'unnamed'}, {tags.get('file.0.sha256', '')[:12]}"
                if tags.get("source") == "external"
                else ""
            ),
            design=(
                design.get("protocol_hash") or tags.get("config_hash") or record["run_id"],
                str(design.get("seed", tags.get("seed", ""))),
            ),
            design_sets=int(design.get("num_exp", count)),
            set_records=records,
        )

    @property
    def cell(self) -> tuple[str, ...]:
        """Runs with the same cell are pooled: recipe, version, data copy, budget, overrides;
        each submitted set is a cell of its own."""
        return (
            self.recipe,
            self.recipe_version,
            self.dataset_name,
            self.budget,
            self.overrides,
            self.submitted and self.run_id,
        )


@dataclass(frozen=True)
class Design:
    """The synthetic sets of one design gathered from its records (``pool_designs``)."""

    key: tuple[str, str]
    """(protocol hash, base seed)"""
    size: int
    """sets that make it complete"""
    sets: dict[int, tuple[float, ...]]
    """index -> accuracies of the tested statistic, conflicts left out"""
    final_sets: dict[int, tuple[float, ...]]
    runs: tuple[MeasuredRun, ...]
    conflicts: dict[int, tuple[str, ...]]
    """index -> the runs that measured that set with different files"""

    @property
    def complete(self) -> bool:
        return len(self.sets) == self.size and not self.conflicts

    def progress(self, budget: str) -> str:
        """``3 of 5 sets, paper protocol (seed 0)``."""
        protocol = "paper protocol" if budget == "paper" else f"{budget} budget"
        return f"{len(self.sets)} of {self.size} sets, {protocol} (seed {self.key[1]})"


def pool_designs(runs: Iterable[MeasuredRun]) -> list[Design]:
    """Group poolable runs (with per-set accuracies) by design and gather each design's sets by
    index, oldest run first: a set measured again with the same file hash (or, where no hash
    was recorded, the same accuracies) is one set; with a different one it is a conflict, and
    that set is pooled from neither run until one record is removed."""
    grouped: dict[tuple[str, str], list[MeasuredRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.start_time, r.run_id)):
        if run.sets:
            grouped[run.design].append(run)
    designs = []
    for key, members in grouped.items():
        sets, finals, seen = {}, {}, {}
        conflicts: dict[int, list[str]] = defaultdict(list)
        for run in members:
            finals_of = run.final_sets or run.sets
            for record, values, final in zip(run.set_records, run.sets, finals_of, strict=True):
                identity = record.sha256 or values
                if record.index not in seen:
                    seen[record.index] = (identity, run.run_id)
                    sets[record.index], finals[record.index] = values, final
                elif seen[record.index][0] != identity:
                    conflicts[record.index] += [seen[record.index][1], run.run_id]
        for index in conflicts:
            sets.pop(index), finals.pop(index)
        designs.append(
            Design(
                key,
                max(r.design_sets for r in members),
                dict(sorted(sets.items())),
                dict(sorted(finals.items())),
                tuple(members),
                {i: tuple(dict.fromkeys(r)) for i, r in sorted(conflicts.items())},
            )
        )
    return designs


def read_ledger(folder: Path) -> list[MeasuredRun]:
    """Every reproduction record in ``folder`` (``<run id>.json``), oldest first. A damaged
    record (cut short by a kill before records were written atomically, or by a disk fault) is
    named on stderr with the fix, in one line, and left out; the rest are read."""
    runs = []
    for path in sorted(folder.glob("*.json")):
        try:
            run = MeasuredRun.from_record(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            print(
                f"warning: ledger record {path} is damaged ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:80] if str(exc) else ''}); left out. Restore it "
                f"with `git checkout -- {path}`, or delete it and ingest its run again",
                file=sys.stderr,
            )
            continue
        if run is not None:
            runs.append(run)
    return sorted(runs, key=lambda r: (r.start_time, r.run_id))


def ingest(tracker: Tracker, ledger: Path) -> list[Path]:
    """Add every finished reproduction (parent) run of the store to the ledger (one record
    each, replacing an older record of the same run); returns the files written (records and
    the set files of ``paper``-budget runs)."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=50000,
    )
    written = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        model = (tags.get("eval_models") or "ConvNet").split()[0]
        if "mlflow.parentRunId" in tags or f"eval/{model}/acc" not in metrics:
            continue
        written += export_run(tracker, run.info.run_id, ledger / f"{run.info.run_id}.json")
    return written


def _artifact_json(tracker: Tracker, run_id: str, name: str) -> dict:
    """A JSON artifact of a run, or ``{}`` where the run has none (older runs)."""
    if f"sha256/{name}" not in tracker.get_run(run_id).data.tags:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(tracker.download_artifact(run_id, name, Path(tmp)).read_text())


def _sets_of(tracker: Tracker, run) -> tuple[dict, list[int] | None]:
    """(``{"statistic", "sets", "final_sets"}`` or ``{}``, the set indices) of a parent run:
    from its ``verdict.json`` (a run made in one go) or ``shard.json``; a shard made before
    ``shard.json`` existed (final statistic only) from its ``accuracies.json``."""
    run_id, tags = run.info.run_id, run.data.tags
    judged = _artifact_json(tracker, run_id, "verdict.json")
    if judged.get("sets") and judged.get("final_accuracies_by_set"):
        finals = judged["final_accuracies_by_set"]
        return {
            "statistic": judged.get("statistic", "final"),
            "sets": judged["sets"],
            "final_sets": finals,
        }, list(range(len(finals)))
    shard = _artifact_json(tracker, run_id, "shard.json")
    if shard:
        return {
            "statistic": shard["statistic"],
            "sets": shard["sets"],
            "final_sets": shard["final_accuracies_by_set"],
        }, shard["set_indices"]
    if "sets" in tags:
        from bench.run.options import parse_sets

        model = (tags.get("eval_models") or "ConvNet").split()[0]
        finals = _artifact_json(tracker, run_id, "accuracies.json").get(model)
        if finals:
            return {"statistic": "final", "sets": finals, "final_sets": finals}, list(
                parse_sets(tags["sets"])
            )
    return {}, None


def _set_records(tracker: Tracker, run, indices: list[int], folder: Path) -> list[dict]:
    """Per set of ``indices``: its file's hash, machine, commit and seconds (``SetRecord``);
    a ``paper``-budget run's set files are copied to ``folder`` (atomically)."""
    tags = run.data.tags
    hardware, commit = tags.get("hardware", ""), tags.get("git_commit", "")
    if "resumed_on" in tags:  # the last resume's machine and commit finished it
        hardware += f"; resumed on {tags['resumed_on']}"
        commit += f"; resumed at {tags.get('resumed_commit', '')}"
    by_index = {c.data.tags.get("set_index"): c for c in tracker.children(run.info.run_id)}
    records = []
    for index in indices:
        child = by_index.get(str(index))
        entry: dict = {"index": index, "hardware": hardware, "commit": commit}
        if child is None:
            records.append(entry)
            continue
        entry["sha256"] = child.data.tags.get(f"sha256/{SET_FILE}", "")
        if "distilled_in" in child.data.tags:  # evaluated again: made by that run
            entry["distilled_in"] = child.data.tags["distilled_in"]
            entry["hardware"] = child.data.tags.get("distilled_hardware", "")
            entry["commit"] = child.data.tags.get("distilled_commit", "")
        for key in ("distill_s", "evaluate_s"):
            if f"time/{key}" in child.data.metrics:
                entry[key] = child.data.metrics[f"time/{key}"]
        if child.info.end_time:
            entry["wall_s"] = (child.info.end_time - child.info.start_time) / 1000
        if tags.get("budget") == "paper" and entry["sha256"]:
            target = folder / run.info.run_id / f"set{index}.safetensors"
            with tempfile.TemporaryDirectory() as tmp:
                local = tracker.download_artifact(child.info.run_id, SET_FILE, Path(tmp))
                if sha256_file(local) != entry["sha256"]:
                    raise ValueError(f"{local}: its SHA-256 differs from the run's record")
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, local.read_bytes())
            entry["file"] = str(target.relative_to(folder))
        records.append(entry)
    return records


def _design(tracker: Tracker, run, indices: list[int]) -> dict:
    """``{"protocol_hash", "seed", "num_exp"}`` of a parent run (the hash from its tag, or
    computed from its ``config.json``; ``num_exp`` from its params)."""
    tags, params = run.data.tags, run.data.params
    protocol = tags.get("protocol_hash")
    if not protocol:
        config = _artifact_json(tracker, run.info.run_id, "config.json")
        protocol = protocol_hash(config) if config else ""
    num_exp = int(params.get("eval.num_exp", len(indices)))
    return {"protocol_hash": protocol, "seed": int(tags.get("seed", 0)), "num_exp": num_exp}


def protocol_overrides(method: str, overrides: str) -> str:
    """The ``--set`` overrides (space-separated ``section.field=value``) that can change
    results: speed-only ones left out (``bench.core.config.speed_only_fields``)."""
    from bench.core.config import speed_only_fields
    from bench.evaluation.evaluate import EvalProtocol
    from bench.spec.method import load_method

    speed = {
        "method": speed_only_fields(load_method(method).config_class),
        "eval": speed_only_fields(EvalProtocol),
    }
    kept = []
    for item in overrides.split():
        section, _, rest = item.partition(".")
        if rest.split("=", 1)[0] not in speed.get(section, set()):
            kept.append(item)
    return " ".join(kept)


def export_run(tracker: Tracker, run_id: str, path: Path) -> list[Path]:
    """Write a run's ledger record as JSON (see the module docstring), atomically, keeping the
    ``pictures`` of an older record of the same run; returns the files written (the record and
    any set files)."""
    run = tracker.get_run(run_id)
    tags = {k: v for k, v in sorted(run.data.tags.items()) if not k.startswith("mlflow.")}
    record = {
        "run_id": run_id,
        "status": run.info.status,
        "start_time_ms": run.info.start_time,
        "tags": tags,
        "params": dict(sorted(run.data.params.items())),
        "metrics": dict(sorted(run.data.metrics.items())),
    }
    sets, indices = _sets_of(tracker, run)
    written = []
    if sets and indices is not None:
        record.update(sets)
        record["set_indices"] = indices
        record["design"] = _design(tracker, run, indices)
        record["set_records"] = _set_records(tracker, run, indices, path.parent)
        written = [path.parent / s["file"] for s in record["set_records"] if "file" in s]
    if tags.get("overrides") and tags.get("method"):
        record["protocol_overrides"] = protocol_overrides(tags["method"], tags["overrides"])
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("pictures"):
            record["pictures"] = old["pictures"]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(record, indent=2) + "\n").encode())
    return [path, *written]


def note_pictures(record: Path, pictures: list[Path], out: Path) -> None:
    """Name the pictures copied from a run in its ledger record."""
    data = json.loads(record.read_text())
    data["pictures"] = [str(p.relative_to(out)) for p in pictures]
    write_atomic(record, (json.dumps(data, indent=2) + "\n").encode())
