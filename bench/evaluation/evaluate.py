"""The shared evaluation: train fresh networks on a synthetic set, test them on the real test set.

Every method's synthetic set is evaluated by this code, so every number in a leaderboard comes
from one protocol. It follows ``evaluate_synset``/``epoch`` of the DC reference code
(VICO-UoE/DatasetCondensation@53f63a6, ``utils.py``): SGD with momentum 0.9 and weight decay
5e-4, learning rate 0.01 multiplied by 0.1 after half the epochs (the reference builds a new
optimizer at that point, which also resets the momentum buffer; so does this), batch 256,
``epochs + 1`` passes over the synthetic set as the reference's ``range(Epoch + 1)``, and the
test accuracy of the final network. DC's paper reports mean +- std over ``num_exp`` synthetic
sets x ``num_eval`` networks (5 x 20 = 100 models).

A method whose set comes from a generator may also be evaluated on a *stream*
(``EvalProtocol.stream``): the same schedule, but every pass trains on a fresh batch that a
``SyntheticStream`` draws (the GTN reference's ``TeacherIterDataset``:
dm-medvedev/EfficientDistillation@7ebe4b9, ``my_experiments/utils.py``, one generator batch per
epoch, the whole batch one mini-batch). The method builds the stream from its set
(``Method.stream``); the evaluation still happens here.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench.core.config import (
    HASHED_IF_CHANGED,
    SPEED_ONLY,
    require_in_range,
    require_learning_rates,
    require_positive,
)
from bench.core.errors import ConfigError, ShapeError
from bench.core.seeds import derive_seed
from bench.data.augment import dc_augment
from bench.data.dsa import check_strategy
from bench.data.real import DatasetCard, RealSet
from bench.data.synthetic import SyntheticSet
from bench.evaluation.batched import AUGMENTED_TEST_BATCH, test_accuracy_many, train_many
from bench.evaluation.cpu_inference import channels_last_copy, cpu_test_copy
from bench.evaluation.networks import NETWORKS, build_network
from bench.evaluation.schedule import train_by_schedule, training_batches

SyntheticStream = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""``stream(rng) -> (images [N, C, H, W], labels [N] int64)``: one epoch's training batch,
drawn fresh with ``rng`` (CPU generator); on any device"""


@dataclass(frozen=True)
class EvalProtocol:
    """How a synthetic set is evaluated. Defaults are the DC paper's (no augmentation, 300
    epochs); recipes override them (MNIST: DC augmentation and 1000 epochs)."""

    models: tuple[str, ...] = ("ConvNet",)
    """architectures trained on the synthetic set; results go to ``eval/<model>/acc``"""
    num_exp: int = 5
    """synthetic sets distilled per run, each from its own derived seed"""
    num_eval: int = 20
    """freshly initialised networks trained per synthetic set and architecture"""
    epochs: int = 300
    """training epochs per network (the reference trains ``epochs + 1`` passes)"""
    lr: float = 0.01
    """initial learning rate, multiplied by 0.1 after ``epochs // 2 + 1`` passes"""
    lr_from_set: bool = False
    """start from the synthetic set's learned learning rate instead of ``lr`` (MTT evaluates
    its sets with the learning rate it learned)"""
    momentum: float = 0.9
    weight_decay: float = 0.0005
    batch_train: int = 256
    """mini-batch size on the synthetic set"""
    augmentation: Literal["none", "dc", "dsa"] = "none"
    """``"dc"``: DC's crop/scale/rotate augmentation during training (reference: MNIST only);
    ``"dsa"``: differentiable siamese augmentation with ``dsa_strategy`` (``bench/dsa.py``)"""
    aug_crop: int = 4
    """DC augmentation: maximum shift in pixels"""
    aug_scale: float = 0.2
    """DC augmentation: maximum relative resize"""
    aug_rotate: int = 45
    """DC augmentation: maximum rotation in degrees"""
    augment_test: bool = False
    """also apply the DC augmentation to the test images, in blocks of ``AUGMENTED_TEST_BATCH``
    (the crop fills with the block's mean), each network with its own draws: the point-cloud
    reference (kghandour/dd3d@d3dc89f, ``mnist_distill.py`` ``epoch``) augments every batch it
    sees, test batches included. Needs ``augmentation = "dc"``"""
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    """DSA augmentation: parts joined by ``"_"``, one drawn per mini-batch (MTT's evaluation
    strategy)"""
    dsa_align_corners: bool = field(default=True, metadata=HASHED_IF_CHANGED)
    """DSA's scale and rotate sample with corners aligned, as MTT's ``DiffAugment`` does; False: as
    DC's (VICO-UoE/DatasetCondensation@53f63a6 ``utils.py``), which DSA and DM evaluate with. The
    same maps, other float rounding (about 1e-6 per pixel)"""
    batch_test: int | None = field(default=None, metadata=SPEED_ONLY)
    """test images per forward pass; None: ``test_batch`` picks per device (speed only)"""
    stream: bool = False
    """also train every network on a stream of fresh batches from the method's generator
    (``Method.stream``, the GTN reference's evaluation), logged as
    ``eval/<model>/stream_acc`` beside the fixed set's ``eval/<model>/acc``"""
    networks_per_batch: int = field(default=1, metadata=SPEED_ONLY)
    """networks of one architecture trained together as one batched computation
    (``bench/batched.py``); 1 trains them one after another. Speed and memory only: every
    network's result is the same up to floating-point summation order"""
    compile_test: bool = field(default=False, metadata=SPEED_ONLY)
    """the test pass of networks trained one at a time runs a ``torch.compile``d channels_last
    copy (``predictions(fast=True)``): identical predictions on the real MNIST test set, 1.3x
    the default eager pass on a CPU, but it pays a compilation (tens of seconds) once per
    process and architecture, so it only helps long evaluations. Speed only"""

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in NETWORKS]
        if unknown or not self.models:
            raise ConfigError(
                f"eval.models: unknown or no network(s) {unknown}; available: {', '.join(NETWORKS)}"
            )
        require_positive(
            self,
            ("num_exp", "num_eval", "batch_train", "batch_test", "networks_per_batch"),
            "eval",
        )
        require_learning_rates(self, "eval")
        require_in_range(self, ("aug_scale",), "eval", low_included=True)
        check_strategy(self.dsa_strategy, "eval.dsa_strategy")
        if self.augment_test and self.augmentation != "dc":
            raise ConfigError('eval.augment_test needs eval.augmentation = "dc"')
        if self.epochs < 0:
            raise ConfigError(f"eval.epochs must be >= 0 (0: one pass), got {self.epochs}")

    @property
    def models_per_set(self) -> int:
        return len(self.models) * self.num_eval


def train_on_synthetic(
    model: str,
    synset: SyntheticSet,
    card: DatasetCard,
    protocol: EvalProtocol,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[], None] | None = None,
    stream: SyntheticStream | None = None,
) -> torch.nn.Module:
    """Train one freshly initialised ``model`` for ``card``'s image shape and classes on
    ``synset`` (images ``[N, C, H, W]`` normalised, labels ``[N]``) under ``protocol``.

    With ``stream``, every pass instead trains on one fresh batch ``stream(rng)`` as a single
    mini-batch (whatever ``batch_train``: the reference's ``TeacherIterDataset`` yields its
    batch whole), augmented as ``protocol`` says; ``synset`` is then unused.

    The initial parameters come from ``derive_seed(seed, 0)``; data order, augmentation and
    stream draws from a generator seeded with ``derive_seed(seed, 1)``. Returns the trained
    network (on ``device``, in train mode).
    """
    net = build_network(
        model, card.channels, card.num_classes, card.image_size, derive_seed(seed, 0)
    )
    net = net.to(device).train()
    generator = torch.Generator().manual_seed(derive_seed(seed, 1))
    images = synset.images.to(device)
    labels = synset.labels.to(device)

    def epoch_losses():
        x_all, y_all, batching = images, labels, protocol
        if stream is not None:
            x_all, y_all = (t.to(device) for t in stream(generator))
            batching = dataclasses.replace(protocol, batch_train=len(y_all))
        for x, y in training_batches(x_all, y_all, batching, generator, device):
            yield F.cross_entropy(net(x), y)

    train_by_schedule(net.parameters(), protocol, epoch_losses, on_epoch)
    return net


def test_augmenter(
    protocol: EvalProtocol, seed: int
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The augmentation of the test images of the network with ``seed`` (draws from
    ``derive_seed(seed, 2)``), or ``None`` when ``protocol.augment_test`` is off."""
    if not protocol.augment_test:
        return None
    generator = torch.Generator().manual_seed(derive_seed(seed, 2))
    crop, scale, rotate = protocol.aug_crop, protocol.aug_scale, protocol.aug_rotate
    return lambda x: dc_augment(x, generator, crop, scale, rotate)


CPU_TEST_BATCH = 32
"""test images per forward pass on a CPU: ConvNet-3's largest activation for 32 MNIST images
(32 x 128 x 32 x 32 float32, 16 MiB) stays in the cache between the convolution, instance norm,
ReLU and pooling that read it, which 1000 images' (500 MiB) do not"""
LARGE_TEST_BATCH = 1000
"""test images per forward pass elsewhere (a GPU wants large batches) and per call of networks
trained together (``test_accuracy_many``), as before the CPU figure above was measured"""


def test_batch(batch: int | None, device: torch.device) -> int:
    """``batch`` (``eval.batch_test``) if set, else ``CPU_TEST_BATCH`` on a CPU and
    ``LARGE_TEST_BATCH`` on other devices."""
    if batch is not None:
        return batch
    return CPU_TEST_BATCH if device.type == "cpu" else LARGE_TEST_BATCH


_COMPILED: dict[tuple, torch.nn.Module] = {}
"""compiled test-pass copies, one per architecture, parameter shapes and device: a trained
network's parameters are copied into its architecture's copy, so ``torch.compile`` runs once per
process, not once per network"""


def _compiled_copy(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net``'s architecture compiled for the test pass (channels_last, eval mode) holding a copy
    of ``net``'s parameters and buffers. Compilation happens at its first call."""
    key = (
        type(net).__qualname__,
        tuple((name, tuple(t.shape)) for name, t in net.state_dict().items()),
        str(device),
    )
    if key not in _COMPILED:
        template = channels_last_copy(net)
        _COMPILED[key] = torch.compile(template, dynamic=False)
    compiled = _COMPILED[key]
    compiled._orig_mod.load_state_dict(net.state_dict())  # in place: no recompilation
    return compiled


@torch.inference_mode()
def predictions(
    net: torch.nn.Module,
    images: torch.Tensor,
    batch: int | None,
    device: torch.device,
    fast: bool = False,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Predicted classes ``[N]`` (int64, on ``device``) of ``net`` (put in eval mode) for
    ``images [N, C, H, W]``, ``test_batch(batch, device)`` images at a time; with ``augment``
    (``test_augmenter``) on augmented images, ``AUGMENTED_TEST_BATCH`` at a time.

    On a CPU the pass runs ``cpu_test_copy(net)`` (channels_last, oneDNN's native layout, with
    instance norm computed on NHWC rows; ``net`` itself is left as it is) on ``CPU_TEST_BATCH``
    images at a time. Only float summation order differs from the float32 NCHW pass over
    1000-image batches that the suite ran before: the predictions on all 10,000 real MNIST test
    images are identical to that pass's (``tests/test_batched.py``). Speed against that pass and
    against the fp32 GEMM peak: ``bench speed gm`` (``leaderboards/benchmarks/gm-*.json``). The
    reference (``utils.epoch``, VICO-UoE/DatasetCondensation@53f63a6) tests in 256-image NCHW
    batches.

    ``fast`` runs a ``torch.compile``d channels_last copy instead (``eval.compile_test``):
    inductor fuses instance norm, ReLU and pooling around the oneDNN convolutions; identical
    predictions there too, 1.3x the default CPU pass after a compilation (tens of seconds).
    """
    net.eval()
    channels_last = fast or device.type == "cpu"
    if fast:
        model = _compiled_copy(net, device)
    elif channels_last:
        model = cpu_test_copy(net)
    else:
        model = net
    batch = AUGMENTED_TEST_BATCH if augment is not None else test_batch(batch, device)
    out = []
    for start in range(0, len(images), batch):
        x = images[start : start + batch].to(device, non_blocking=True)
        if augment is not None:
            x = augment(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            out.append(model(x).argmax(dim=1))
        except Exception as exc:  # compiling needs a C++ compiler (CPU) or Triton (GPU)
            if not fast:
                raise
            _COMPILED.clear()
            warnings.warn(f"test pass: torch.compile failed ({exc}); using eager", stacklevel=2)
            return predictions(net, images, batch, device, fast=False, augment=augment)
    return torch.cat(out)


def test_accuracy(
    net: torch.nn.Module,
    test: RealSet,
    batch: int | None,
    device: torch.device,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fast: bool = False,
) -> float:
    """Top-1 accuracy in percent of ``net`` on the whole real ``test`` split (``predictions``;
    ``augment``: on augmented test images; ``fast``: the compiled pass, same predictions)."""
    predicted = predictions(net, test.images, batch, device, fast, augment)
    return 100.0 * int((predicted.cpu() == test.labels).sum()) / len(test.labels)


def evaluate_synthetic_set(
    synset: SyntheticSet,
    test: RealSet,
    protocol: EvalProtocol,
    seed: int,
    device: torch.device,
    done: dict[str, list[float]] | None = None,
    on_result: Callable[[str, int, float], None] | None = None,
    label: str = "",
    stream: SyntheticStream | None = None,
) -> dict[str, list[float]]:
    """Train and test ``protocol.num_eval`` networks of every architecture on ``synset``, or,
    with ``stream``, on a fresh batch of the stream every epoch (``train_on_synthetic``; one
    network at a time).

    Args:
        synset: the synthetic set (validated against ``test.card`` first).
        test: the real test split.
        protocol: the evaluation protocol.
        seed: base seed of this synthetic set's evaluation; network ``k`` of architecture
            ``m`` uses ``derive_seed(seed, m, k)``.
        device: where to train.
        done: accuracies already measured (``{model: [acc, ...]}``, e.g. after ``--resume``);
            those networks are not trained again.
        on_result: called as ``on_result(model, k, accuracy)`` after each network.
        label: prefix of the progress bar.

    Returns:
        ``{model: [accuracy % of network 0, 1, ...]}`` with ``num_eval`` entries per model.

    Raises:
        ShapeError: the synthetic set does not fit the dataset, or ``lr_from_set`` for a set
            without a learned learning rate.
    """
    card = test.card
    synset.validate(card)
    if protocol.lr_from_set:
        if "lr" not in synset.extras:
            raise ShapeError(
                "eval.lr_from_set: this synthetic set has no learned learning rate; "
                "set eval.lr_from_set=false"
            )
        protocol = dataclasses.replace(protocol, lr=float(synset.extras["lr"]))
    results = {m: list((done or {}).get(m, [])) for m in protocol.models}
    todo = sum(protocol.num_eval - len(results[m]) for m in protocol.models)
    with tqdm(
        total=todo * (protocol.epochs + 1),
        desc=f"{label}evaluate",
        unit="epoch",
        dynamic_ncols=True,
        leave=False,
        mininterval=1.0,
    ) as bar:
        for m_index, model in enumerate(protocol.models):
            while len(results[model]) < protocol.num_eval:
                first = len(results[model])
                group = range(first, min(first + protocol.networks_per_batch, protocol.num_eval))
                seeds = [derive_seed(seed, m_index, k) for k in group]
                if stream is not None:
                    group, seeds = group[:1], seeds[:1]
                if len(seeds) == 1:
                    net = train_on_synthetic(
                        model,
                        synset,
                        card,
                        protocol,
                        seeds[0],
                        device,
                        lambda: bar.update(1),
                        stream,
                    )
                    augment = test_augmenter(protocol, seeds[0])
                    accuracies = [
                        test_accuracy(
                            net, test, protocol.batch_test, device, augment, protocol.compile_test
                        )
                    ]
                else:
                    stack = train_many(
                        model,
                        synset,
                        card,
                        protocol,
                        seeds,
                        device,
                        partial(bar.update, len(seeds)),
                    )
                    per_call = max(1, (protocol.batch_test or LARGE_TEST_BATCH) // len(seeds))
                    augments = [test_augmenter(protocol, s) for s in seeds]
                    accuracies = test_accuracy_many(stack, test, per_call, device, augments)
                for k, accuracy in zip(group, accuracies, strict=True):
                    results[model].append(accuracy)
                    bar.set_postfix(model=model, last_acc=f"{accuracy:.2f}", refresh=False)
                    if on_result is not None:
                        on_result(model, k, accuracy)
    return results
