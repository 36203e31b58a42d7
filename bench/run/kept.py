"""``reproduce --distilled-from RECORD``: evaluate kept synthetic sets again instead of
distilling them again.

When a recipe's version is raised for a change that leaves its distillation alone (say, the
evaluation's augmentation made exact), the paper-budget sets already in the ledger
(``leaderboards/runs/<run id>/set<i>.safetensors``) are the sets the new version would distil;
only their evaluation is out of date. ``kept_sets`` takes them from the ledger records given,
after checking that each is the set this run would distil: the same recipe, budget, base seed,
design size, data copy and protocol-changing overrides, a recipe version from the recipe's
``distilled_since`` on, the same method settings (speed-only ones aside), and per file its
recorded SHA-256, its seed (``derive_seed(seed, index)``), method, dataset and images per class.
The run then evaluates them under the current protocol and records, per set, the run it was
distilled in (``distilled_in``), that run's machine, commit and distillation seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.core.config import as_flat_dict, speed_only_fields
from bench.core.errors import UserError
from bench.core.hashing import sha256_file
from bench.core.seeds import derive_seed
from bench.data.synthetic import SyntheticSet
from bench.spec.recipes import Recipe, RunConfig


@dataclass(frozen=True)
class KeptSet:
    """A synthetic set of an earlier run of the same design, to be evaluated again."""

    synset: SyntheticSet
    run_id: str
    """the run that distilled it (a record that evaluated a kept set again names that run)"""
    sha256: str
    commit: str
    hardware: str
    distill_s: float | None

    def tags(self) -> dict[str, str]:
        """Tags of the set's run that say where the set was distilled."""
        return {
            "distilled_in": self.run_id,
            "distilled_sha256": self.sha256,
            "distilled_commit": self.commit,
            "distilled_hardware": self.hardware,
        }


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
        record["tags"], record["params"]  # noqa: B018 - a ledger record has both
        return record
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"--distilled-from {path}: not a readable ledger record (leaderboards/runs/"
            f"<run id>.json) ({exc.__class__.__name__}: {exc})"
        ) from None


def _check_design(path: Path, record: dict, recipe: Recipe, config: RunConfig) -> None:
    """Raise ``UserError`` unless ``record`` is a run of the design ``config`` computes, from a
    recipe version whose distillation is this version's."""
    tags, design = record["tags"], record.get("design") or {}
    expected = {
        "recipe": (tags.get("recipe"), recipe.name),
        "budget": (tags.get("budget"), config.budget),
        "seed": (str(design.get("seed", tags.get("seed"))), str(config.seed)),
        "sets in the design": (design.get("num_exp"), config.eval.num_exp),
        "data": (tags.get("dataset"), config.dataset),
        "overrides": (record.get("protocol_overrides", ""), " ".join(config.protocol_overrides())),
    }
    for what, (theirs, ours) in expected.items():
        if theirs != ours:
            raise UserError(
                f"--distilled-from {path}: its {what} is {theirs!r}, this run's {ours!r}; "
                "give records of this recipe's design"
            )
    version = int(tags.get("recipe_version") or 0)
    if not recipe.distilled_since <= version <= recipe.version:
        raise UserError(
            f"--distilled-from {path}: its sets were distilled under {recipe.name} v{version}; "
            f"v{recipe.version} distils as versions {recipe.distilled_since}-{recipe.version} do "
            "(the recipe's distilled_since), so distil them again"
        )
    speed = speed_only_fields(config.method_config)
    ours = {
        k: str(v)
        for k, v in as_flat_dict(config.method_config, "method").items()
        if k.split(".", 1)[1] not in speed
    }
    differ = [k for k, v in ours.items() if record["params"].get(k, v) != v]
    if differ:
        k = differ[0]
        raise UserError(
            f"--distilled-from {path}: {k}={record['params'][k]} there, {ours[k]} here; its sets "
            "are not this run's"
        )


def kept_sets(
    paths: tuple[str, ...], recipe: Recipe, config: RunConfig, indices: tuple[int, ...]
) -> dict[int, KeptSet]:
    """The kept files of sets ``indices`` from the ledger records at ``paths``, checked as the
    module docstring says; ``{}`` without paths.

    Raises:
        UserError: an unreadable record, a record of another design or of a version whose
            distillation differs, two files for one set, a set none of the records kept, or a
            file that is missing, corrupt or not that set.
    """
    found: dict[int, KeptSet] = {}
    for raw in paths:
        path = Path(raw)
        record = _read_record(path)
        _check_design(path, record, recipe, config)
        for entry in record.get("set_records", ()):
            index = entry["index"]
            if index not in indices or not entry.get("file"):
                continue
            file = path.parent / entry["file"]
            kept = KeptSet(
                SyntheticSet.load(file),
                entry.get("distilled_in") or record["run_id"],  # the run that distilled it
                entry.get("sha256", ""),
                entry.get("commit", ""),
                entry.get("hardware", ""),
                entry.get("distill_s"),
            )
            if sha256_file(file) != kept.sha256:
                raise UserError(f"{file}: its SHA-256 differs from its record's; restore it (git)")
            synset, seed = kept.synset, derive_seed(config.seed, index)
            if (synset.seed, synset.method, synset.ipc) != (seed, config.method, config.ipc):
                raise UserError(
                    f"{file}: set of {synset.method}, ipc {synset.ipc}, seed {synset.seed}; set "
                    f"{index} of this design is {config.method}, ipc {config.ipc}, seed {seed}"
                )
            if index in found and found[index].sha256 != kept.sha256:
                raise UserError(
                    f"--distilled-from: set {index} is kept with different files by runs "
                    f"{found[index].run_id} and {kept.run_id}; give one of them"
                )
            found[index] = kept
    missing = [i for i in indices if i not in found]
    if paths and missing:
        raise UserError(
            f"--distilled-from: no record given keeps a file of set(s) "
            f"{', '.join(map(str, missing))}; give their records or leave them out of --sets"
        )
    return found
