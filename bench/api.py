"""The one module a method author imports: the method contract and the parts of the suite a
method is built from. ``methods/`` (the built-ins) and ``examples/`` import ``bench`` only
through here (an import-linter contract in pyproject.toml); what is not here is internal and
may change without notice.

Contract (``bench.spec.method``): ``Method``, ``Kind``, the ``AfterIteration`` and
``EvaluateDuring`` callbacks, ``OuterLoop`` (resume, divergence check, per-iteration reporting).
Sets: ``SyntheticSet`` (construct with keywords), ``GENERATOR_PREFIX``; the real set:
``RealSet``, ``load_card``, ``load_real``, ``smallest_class``, ``normalise``, ``denormalise``;
preprocessing and augmentation: ``Preprocessing``, ``PREPROCESSING``, ``prepare_real``,
``check_preprocessing``, ``describe``, ``dsa_augment`` (DSA, Zhao & Bilen 2021) with
``DSADraws`` (per-call or siamese draws), ``DSAParams`` and ``check_dsa_strategy``.
Networks and the shared evaluation: ``NETWORKS``, ``build_network`` (ConvNet-3 and the rest),
``EvalProtocol``, ``train_on_synthetic``, ``train_many``, ``test_accuracy``, ``test_batch``,
``predictions``, ``SyntheticStream``, ``training_batches``, ``channels_last_copy``.
Config: ``SPEED_ONLY`` and ``HASHED_IF_CHANGED`` (field metadata: a field added later keeps
earlier designs' hashes), ``require_positive``, ``require_in_range``,
``require_learning_rates``, ``speed_only_fields``, ``as_flat_dict``; a command's options from
a config dataclass: ``add_config_arguments``, ``config_from_arguments``. Seeds: ``SeedStreams`` of
named ``Stream``s (checked against the runner's), ``derive_seed``.
Errors: ``UserError`` and its kinds. For a method's own commands and speed scripts: devices,
provenance, atomic files, tracking, benchmark records, and their options as typed dataclasses
(``option`` fields, ``parse_options``; ``Location``, ``DataRoot`` and ``SpeedOutput`` shared).
"""

from bench.core.config import (
    HASHED_IF_CHANGED,
    SPEED_ONLY,
    add_config_arguments,
    as_flat_dict,
    config_from_arguments,
    require_in_range,
    require_learning_rates,
    require_positive,
    speed_only_fields,
)
from bench.core.device import pick_device
from bench.core.errors import (
    CheckpointError,
    ConfigError,
    DataNotFoundError,
    EnvironmentFault,
    ShapeError,
    UserError,
)
from bench.core.hashing import atomic_target, sha256_file, write_atomic
from bench.core.provenance import git_commit, hardware, package_versions, provenance_tags
from bench.core.seeds import SeedStreams, Stream, derive_seed
from bench.data.dsa import DSADraws, DSAParams, dsa_augment
from bench.data.dsa import check_strategy as check_dsa_strategy
from bench.data.preprocess import (
    PREPROCESSING,
    Preprocessing,
    check_preprocessing,
    describe,
    prepare_real,
)
from bench.data.real import (
    RealSet,
    denormalise,
    load_card,
    load_real,
    normalise,
    smallest_class,
)
from bench.data.synthetic import GENERATOR_PREFIX, SyntheticSet
from bench.evaluation.batched import train_many
from bench.evaluation.cpu_inference import channels_last_copy
from bench.evaluation.evaluate import (
    EvalProtocol,
    SyntheticStream,
    predictions,
    test_accuracy,
    test_batch,
    train_on_synthetic,
)
from bench.evaluation.networks import NETWORKS, build_network
from bench.evaluation.schedule import training_batches
from bench.run.options import DataRoot, Location, add_options, from_namespace, option, parse_options
from bench.run.tracking import Tracker, resolve_tracking_uri
from bench.spec.method import AfterIteration, EvaluateDuring, Kind, Method
from bench.spec.outer_loop import OuterLoop
from bench.speed.benchmark import SpeedOutput, gemm_rates_gflops, peak_memory_mb, write_record

__all__ = [
    "GENERATOR_PREFIX",
    "HASHED_IF_CHANGED",
    "NETWORKS",
    "PREPROCESSING",
    "SPEED_ONLY",
    "AfterIteration",
    "CheckpointError",
    "ConfigError",
    "DSADraws",
    "DSAParams",
    "DataRoot",
    "DataNotFoundError",
    "EnvironmentFault",
    "EvalProtocol",
    "EvaluateDuring",
    "Kind",
    "Location",
    "Method",
    "OuterLoop",
    "Preprocessing",
    "RealSet",
    "ShapeError",
    "SyntheticSet",
    "SyntheticStream",
    "Tracker",
    "UserError",
    "add_options",
    "add_config_arguments",
    "as_flat_dict",
    "config_from_arguments",
    "atomic_target",
    "build_network",
    "channels_last_copy",
    "check_dsa_strategy",
    "check_preprocessing",
    "denormalise",
    "SeedStreams",
    "SpeedOutput",
    "Stream",
    "derive_seed",
    "describe",
    "dsa_augment",
    "from_namespace",
    "gemm_rates_gflops",
    "git_commit",
    "hardware",
    "load_card",
    "load_real",
    "normalise",
    "option",
    "package_versions",
    "parse_options",
    "peak_memory_mb",
    "pick_device",
    "predictions",
    "prepare_real",
    "provenance_tags",
    "require_in_range",
    "require_learning_rates",
    "require_positive",
    "resolve_tracking_uri",
    "sha256_file",
    "smallest_class",
    "speed_only_fields",
    "test_accuracy",
    "test_batch",
    "train_many",
    "train_on_synthetic",
    "training_batches",
    "write_atomic",
    "write_record",
]
