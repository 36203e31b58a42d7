"""``python -m bench evaluate``: judge synthetic sets made elsewhere under a recipe's protocol.

The files are read and checked (``bench.data.formats``) before anything is trained or logged;
the sets then take the path of every result (``Reproduction``): set ``i`` is evaluated with the
seeds a reproduction gives its set ``i``, logged as a child run of a parent run tagged
``source=external`` with each file's name and SHA-256, and judged against the recipe's
published number, its baselines and the suite's own reproduction of the recipe.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from bench.core.errors import ConfigError, ShapeError
from bench.data.formats import ReadSet, check_set, read_set_file
from bench.data.real import RealSet, load_card
from bench.evaluation.stats import Verdict
from bench.run.options import EvaluateOptions, to_argv
from bench.run.runner import Reproduction
from bench.spec.recipes import Recipe, RunConfig, load_recipe


def evaluate_argv(paths: list[Path], options: EvaluateOptions) -> list[str]:
    """``python -m bench evaluate FILE... <flags>`` as an argv (without the interpreter)."""
    return [
        "-m",
        "bench",
        "evaluate",
        *map(str, paths),
        *to_argv(options, skip=("checkpoint_every",)),
    ]


def external_tags(sets: list[ReadSet], options: EvaluateOptions) -> dict[str, str]:
    """Tags of the parent run: ``source=external``, ``submitted_by`` and each file's name,
    format and SHA-256 (``file.<k>.*``, files in the order given)."""
    tags = {"source": "external", "submitted_by": options.submitted_by or "unknown"}
    files = list(dict.fromkeys((s.path, s.sha256, s.format) for s in sets))
    for k, (path, digest, fmt) in enumerate(files):
        tags |= {f"file.{k}.name": path.name, f"file.{k}.sha256": digest, f"file.{k}.format": fmt}
    tags["files"] = str(len(files))
    return tags


def evaluate(paths: list[Path], options: EvaluateOptions) -> Verdict:
    """Evaluate and judge every synthetic set in ``paths`` under ``options.recipe``.

    Raises:
        UserError: unknown recipe, a group or whole-set recipe, an unreadable file or one that
            needs arbitrary pickle, wrong shape/classes/labels/values/preprocessing, NaN, or a
            protocol that needs a learned learning rate the sets lack; all before any run is
            opened.
    """
    recipe = load_recipe(options.recipe)
    if not isinstance(recipe, Recipe):
        raise ConfigError(
            f"{recipe.name} is a group; evaluate takes one of its recipes: "
            f"{', '.join(recipe.members)}"
        )
    if recipe.ipc is None:
        raise ConfigError(
            f"{recipe.name} trains on the whole training set; evaluate a set with the recipe of "
            "its dataset and images per class (python -m bench list)"
        )
    # the files are read before the (slow) data loading; the card is the data's (--dataset)
    card = load_card(options.dataset or recipe.dataset)
    read = [
        s
        for path in paths
        for s in read_set_file(Path(path), card, options.preprocessing, options.learned_lr)
    ]

    def given(config: RunConfig, train: RealSet) -> list[ReadSet]:
        # the preprocessing is known once the method has prepared the data (e.g. ZCA)
        expected = train.preprocessing_description()
        sets = [replace(s, synset=check_set(s, card, recipe.ipc, expected)) for s in read]
        if config.eval.lr_from_set and any("lr" not in s.synset.extras for s in sets):
            raise ShapeError(
                f"{recipe.name} trains with the set's learned learning rate (eval.lr_from_set), "
                "which these files do not hold; pass --learned-lr LR (MTT logs it to wandb as "
                "Synthetic_LR) or --set eval.lr_from_set=false (off the paper's protocol)"
            )
        for s in sets:
            digest = s.sha256[:12]
            where = f"{s.path.name}" + (f"[{s.index}]" if s.format == "dc-result" else "")
            recorded = ", ".join(f"{m} {a:.2f}" for m, a in s.recorded.items())
            note = f"; the file records {recorded}" if recorded else ""
            print(
                f"set {where}: {s.format}, sha256 {digest}..., {len(s.synset.labels)} images{note}"
            )
        return sets

    run = Reproduction.start(recipe, options.run_options(), given)
    run.resume_command = shlex.join(["python", *evaluate_argv(list(paths), options)])
    run.tracker.set_tags(
        run.parent,
        external_tags(run.given, options)
        | {"mlflow.runName": f"evaluate/{recipe.name}/{options.budget}/seed{options.seed}"},
    )
    return run.run()
