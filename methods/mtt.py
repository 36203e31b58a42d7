"""Dataset distillation by matching training trajectories (MTT).

Cazenavette, Wang, Torralba, Efros, Zhu, "Dataset Distillation by Matching Training
Trajectories", CVPR 2022 (arXiv 2203.11932); reference code GeorgeCazenavette/mtt-distillation
at commit 50dccea (``distill.py``, ``buffer.py``: "MTT" below), applied to EuroSAT by D. Leal and
J. Lautz, julius-lautz/imp_dataset_distillation at commit 4b8bf43 (``distillation.py``,
``expert_training.py``, ``helper_functions.py``: "EuroSAT" below).

The synthetic set S (``ipc`` images per class) and a synthetic learning rate alpha are learned so
that ``syn_steps`` SGD steps on S, started from an expert's parameters at epoch t, land near the
same expert's parameters ``expert_epochs`` epochs later (paper Eq. 2):

    theta_{n+1} = theta_n - alpha grad L(A(S_n); theta_n),  theta_0 = theta*_t   (n < syn_steps)
    L = ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2

with A the DSA augmentation (``dsa``; identity without), S_n the n-th mini-batch of
``batch_syn`` synthetic images (all of S by default) and t drawn uniformly from
``[0, max_start_epoch)``. S is updated by SGD (momentum 0.5) at ``lr_img``, alpha at ``lr_lr``;
the expert trajectories come from ``methods/experts.py``.

Reference line -> this code -> same or different, why:

- MTT ``buffer.py``: SGD lr 0.01, mom 0, wd 0, no decay, 50 epochs, params saved at init and
  every epoch -> ``experts.generate_experts`` -> same.
- MTT ``buffer.py``: ``batch_train=256``, ``dsa='True'`` (DSA
  ``color_crop_cutout_flip_scale_rotate``) -> ``ExpertConfig`` defaults,
  ``expert_batch_train=256``, ``expert_augmentation="dsa"`` -> same.
- EuroSAT ``expert_training.py``: ``batch_train=128``; ``epoch(aug=True)`` calls
  ``DiffAugment``, whose body is commented out -> EuroSAT recipes: ``expert_batch_train=128``,
  ``expert_augmentation="none"`` -> same: no augmentation anywhere.
- MTT ``--zca``: kornia ``ZCAWhitening(eps=0.1)`` on [0, 1] pixels, experts and distillation
  alike -> ``preprocessing="zca"`` (``bench/data/preprocess.py``) -> same.
- EuroSAT ``get_full_dataset``: ``args.zca`` true -> ``ToTensor`` only, else ``Normalize(mean,
  std)``; nothing whitens -> ``preprocessing="none"`` / ``"normalise"`` -> same.
- EuroSAT ``expert_training.py`` ``--zca`` is ``store_false``: experts default to raw [0, 1]
  pixels -> EuroSAT recipes: ``expert_preprocessing="none"`` -> same, a mismatch allowed by this
  field only.
- EuroSAT ``distillation.py`` ``--zca`` is ``store_true`` but then reads the never-set
  ``args.zca_trans`` (AttributeError), so it runs without: normalised -> EuroSAT recipes:
  ``preprocessing="normalise"`` -> same: experts on raw pixels, distillation on normalised ones
  (the defaults of both scripts).
- EuroSAT ``DiffAugment`` in the student steps (commented-out body) -> EuroSAT recipes:
  ``dsa=false`` -> same.
- MTT ``distill.py``: student steps ``p - syn_lr * grad`` with ``create_graph``, mini-batches
  ``torch.split(randperm, batch_syn)`` popped from the end -> ``trajectory_matching_loss`` ->
  same.
- both: ``mse(.., 'sum' or 'mean') / num_params`` over the start-target distance -> ratio of
  squared norms -> same (the normalisations cancel).
- both: ``np.random.randint(0, max_start_epoch)``; EuroSAT ``load_all`` default
  (``store_false``): a uniform expert per iteration; MTT default: shuffled files of ten experts
  walked in order -> a uniform expert per iteration -> EuroSAT same; MTT different (order only,
  same distribution of experts).
- both: global RNG (``time``-seeded networks in EuroSAT) -> draws from seeds derived from the
  run's seed, per iteration -> different: ``--resume`` continues exactly.
- both: ``syn_lr`` unconstrained -> clamped to at least ``MIN_LR`` after each step -> different:
  a negative rate would train the evaluation networks backwards.
- both ``evaluate_synset``: learned lr, ``epoch_eval_train + 1`` passes, x0.1 after ``Epoch // 2
  + 1``, mom 0.9, wd 5e-4, ``batch_train`` -> shared evaluation (``bench/evaluation``),
  ``eval.lr_from_set`` -> same; MTT batch 256 + DSA, EuroSAT batch 128 + no augmentation
  (recipes' ``[eval]``).
- both: ``for it in range(Iteration + 1)``, evaluating before the update, so the last update is
  never evaluated -> ``iterations`` updates, then the final set is evaluated -> same sets
  measured.
- both: evaluate 5 networks every ``eval_it=100`` iterations, keep the best mean ->
  ``eval_every``; statistic ``max_over_evaluations`` -> same, reported beside the final set's
  accuracy.

Checked side by side with the reference's own student loop (``scripts/reference_check/mtt.py``,
``leaderboards/fidelity.md``): with mtt-cifar10-ipc1's settings, DSA included, the synthetic
images and the learned learning rate are bit-identical over 20 iterations of 50 student steps;
the clamp at ``MIN_LR`` parts them where the reference's rate turns negative (experts that
barely move).

The ``mtt-eurosat-*-cifar-protocol`` recipes apply MTT's CIFAR protocol (ZCA, DSA, batch 256)
to EuroSAT: a labelled variant, not the EuroSAT work's protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from bench.api import (
    NETWORKS,
    SPEED_ONLY,
    AfterIteration,
    ConfigError,
    EvaluateDuring,
    Kind,
    Method,
    OuterLoop,
    Preprocessing,
    RealSet,
    SeedStreams,
    Stream,
    SyntheticSet,
    build_network,
    check_preprocessing,
    describe,
    prepare_real,
    require_learning_rates,
    require_positive,
)
from distillbench_methods.experts import ExpertConfig, ExpertTrajectories, trajectory_folder
from distillbench_methods.gm import initial_synthetic_images

MIN_LR = 1e-8
"""floor of the learned learning rate"""

# The seed streams of a synthetic set's seed: the initial images (drawn by
# ``gm.initial_synthetic_images``), each outer iteration's draws, the student network.
STREAMS = SeedStreams(init=Stream(0), iteration=Stream(1, ("iteration",)), network=Stream(2))


@dataclass(frozen=True)
class MTTConfig:
    """MTT hyper-parameters. The step sizes default to the EuroSAT work's (``distillation.py``:
    syn_steps 20, expert_epochs 3, max_start_epoch 5, lr_img 1000, lr_lr 1e-5, lr_teacher
    0.01), the protocol to MTT's CIFAR one (5000 iterations, real initialisation, ZCA, DSA,
    experts of 100 x 50 epochs with batch 256 and DSA); every recipe states its own values."""

    iterations: int = 5000
    syn_steps: int = 20
    """SGD steps of the student on synthetic mini-batches per iteration (N)"""
    expert_epochs: int = 3
    """epochs of the expert between start and target parameters (M)"""
    max_start_epoch: int = 5
    """start epochs are drawn from ``[0, max_start_epoch)``"""
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01
    """initial value of the learned learning rate alpha"""
    momentum: float = 0.5
    """SGD momentum of both the images and alpha"""
    batch_syn: int | None = None
    """synthetic images per student step; None: all of them (the reference's default; smaller
    batches save memory and change the result)"""
    init: Literal["real", "noise"] = "real"
    """initial synthetic images: ``real`` (random real images of each class) or ``noise``"""
    preprocessing: Preprocessing = "zca"
    """how the real data are preprocessed for the distillation and its evaluation
    (``bench/data/preprocess.py``): ``"zca"`` (MTT), ``"normalise"`` (EuroSAT's distillation),
    ``"none"``"""
    expert_preprocessing: Literal["same", "normalise", "zca", "none"] = "same"
    """the preprocessing the expert trajectories were trained on; ``"same"``: ``preprocessing``.
    Anything else is a deliberate mismatch (the EuroSAT work's experts default to ``"none"``,
    its distillation to ``"normalise"``); the experts' manifest is checked against it"""
    expert_batch_train: int = 256
    """mini-batch size the experts were trained with (MTT 256, EuroSAT 128)"""
    expert_augmentation: Literal["none", "dsa"] = "dsa"
    """augmentation the experts were trained with (MTT DSA; EuroSAT none: its ``DiffAugment``
    body is commented out)"""
    dsa: bool = True
    """DSA on the student's mini-batches (MTT); false: no augmentation (EuroSAT)"""
    dsa_strategy: str = "color_crop_cutout_flip_rotate"
    """DSA strategy during distillation (the EuroSAT work's argument default, which its
    ``DiffAugment`` ignores; MTT's has ``scale`` too and its recipes set it)"""
    model: str = "ConvNet"
    num_experts: int = 100
    """experts drawn from (the paper trains 100)"""
    expert_train_epochs: int = 50
    """epochs each expert was trained for"""
    expert_images_per_class: int | None = None
    """experts trained on the first n images per class (reduced budgets); None: all"""
    eval_every: int = 100
    """evaluate the synthetic set every this many iterations (reference ``eval_it``), for the
    paper's statistic, the best evaluation (the final set is always evaluated); 0: never"""
    experts_dir: str = field(default="experts", metadata=SPEED_ONLY)
    """root folder of the expert trajectories (where, not what: the manifest is checked)"""

    def __post_init__(self) -> None:
        if self.model not in NETWORKS:
            raise ConfigError(f"method.model: unknown network {self.model!r}")
        check_preprocessing(self.preprocessing, "method.preprocessing")
        if self.expert_preprocessing != "same":
            check_preprocessing(self.expert_preprocessing, "method.expert_preprocessing")
        if self.expert_augmentation not in ("none", "dsa"):
            raise ConfigError(
                f"method.expert_augmentation is 'none' or 'dsa', not {self.expert_augmentation!r}"
            )
        require_positive(
            self,
            ("iterations", "syn_steps", "expert_epochs", "max_start_epoch", "num_experts"),
            "method",
        )
        require_positive(self, ("batch_syn", "expert_train_epochs", "expert_batch_train"), "method")
        require_learning_rates(self, "method")
        if self.max_start_epoch - 1 + self.expert_epochs > self.expert_train_epochs:
            raise ConfigError(
                f"method.max_start_epoch={self.max_start_epoch} and method.expert_epochs="
                f"{self.expert_epochs} reach epoch {self.max_start_epoch - 1 + self.expert_epochs}"
                f" of experts trained for {self.expert_train_epochs}; lower them or train longer "
                "experts (method.expert_train_epochs)"
            )

    @property
    def experts_preprocessing(self) -> str:
        """The preprocessing of the experts (``expert_preprocessing`` with ``"same"`` resolved)."""
        same = self.expert_preprocessing == "same"
        return self.preprocessing if same else self.expert_preprocessing

    def experts(self, dataset: str) -> ExpertConfig:
        """The expert trajectories this distillation needs."""
        return ExpertConfig(
            dataset=dataset,
            model=self.model,
            preprocessing=self.experts_preprocessing,
            num_experts=self.num_experts,
            epochs=self.expert_train_epochs,
            batch_train=self.expert_batch_train,
            augmentation=self.expert_augmentation,
            images_per_class=self.expert_images_per_class,
        )


def load_experts(real: RealSet, config: MTTConfig) -> ExpertTrajectories:
    """The verified expert trajectories for ``real`` (see ``ExpertTrajectories`` for errors).

    The experts' manifest must record ``real``'s preprocessing, or, where
    ``config.expert_preprocessing`` names another one, that one on the same training split."""
    expert_config = config.experts(real.card.name)
    card = real.card
    net = build_network(config.model, card.channels, card.num_classes, card.image_size, 0)
    folder = trajectory_folder(config.experts_dir, expert_config)
    if config.experts_preprocessing == config.preprocessing:
        wanted = real.preprocessing_description()
    else:  # the split as load_real gave it, preprocessed the experts' way
        wanted = describe(config.experts_preprocessing, real)
    return ExpertTrajectories(folder, expert_config, wanted, net)


def _unflatten(flat: torch.Tensor, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Views of a flat parameter vector ``[P]`` as the named parameters of the given shapes."""
    sizes = [s.numel() for s in shapes.values()]
    return {
        name: chunk.view(shape)
        for (name, shape), chunk in zip(shapes.items(), flat.split(sizes), strict=True)
    }


def trajectory_matching_loss(
    net: torch.nn.Module,
    start: torch.Tensor,
    target: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    lr: torch.Tensor,
    config: MTTConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Paper Eq. 2: the normalised distance between ``syn_steps`` student steps on the synthetic
    set from ``start`` and the expert's ``target``, differentiable in ``images`` and ``lr``.

    Args:
        net: a network of the experts' architecture (only its structure is used).
        start, target: flat expert parameters ``[P]`` at epochs t and t + M.
        images: synthetic images ``[N, C, H, W]`` (a leaf with ``requires_grad``).
        labels: ``[N]`` int64.
        lr: the learned learning rate, a 0-d tensor with ``requires_grad``.
        config: MTT hyper-parameters (``syn_steps``, ``batch_syn``, ``dsa``, ``dsa_strategy``).
        generator: CPU generator of the mini-batch order and the augmentation.

    Returns:
        scalar loss; its graph holds all ``syn_steps`` unrolled steps (memory grows with them).
    """
    from torch.func import functional_call

    from bench.api import dsa_augment

    shapes = {name: p.shape for name, p in net.named_parameters()}
    batch = config.batch_syn or len(labels)
    params = start.clone().requires_grad_(True)
    order: list[torch.Tensor] = []
    for _ in range(config.syn_steps):
        if not order:
            order = list(torch.randperm(len(labels), generator=generator).split(batch))
        chunk = order.pop().to(images.device)
        x = images[chunk]
        if config.dsa:
            x = dsa_augment(x, generator, config.dsa_strategy)
        loss = F.cross_entropy(
            functional_call(net, _unflatten(params, shapes), (x,)), labels[chunk]
        )
        (grad,) = torch.autograd.grad(loss, params, create_graph=True)
        params = params - lr * grad
    return ((params - target) ** 2).sum() / ((start - target) ** 2).sum()


def distill(
    real: RealSet,
    ipc: int,
    config: MTTConfig,
    seed: int,
    device: torch.device,
    *,
    resume: dict[str, Any] | None = None,
    after_iteration: AfterIteration | None = None,
    evaluate: EvaluateDuring | None = None,
) -> SyntheticSet:
    """Learn ``ipc`` images per class and a learning rate from ``real`` by trajectory matching.

    Args:
        real: ``prepare_real``'s training split, images ``[N, C, H, W]``, labels ``[N]``.
        ipc: images per class.
        config: MTT hyper-parameters.
        seed: seed of this synthetic set; every draw is derived from it.
        device: where to compute.
        resume: a state returned by ``after_iteration``'s ``state()``; continues from there.
        after_iteration: called after every iteration ``it`` as ``after_iteration(it, metrics,
            state)`` with ``distill/loss`` (Eq. 2), ``distill/lr`` and ``distill/start_epoch``.
        evaluate: called as ``evaluate(it, synthetic_set)`` before iteration ``it`` whenever
            ``it`` is a multiple of ``config.eval_every`` (the runner's shared evaluation).

    Returns:
        SyntheticSet with images ``[K * ipc, C, H, W]`` (class-major labels) and ``lr``, the
        learned learning rate the evaluation trains with.

    Raises:
        DataNotFoundError, ConfigError, CheckpointError: missing, mismatched or corrupt experts
            (``load_experts``).
        DivergedError: the loss became NaN/inf; ``error.last_good`` holds the set before it.
    """
    card = real.card
    experts = load_experts(real, config)
    net = build_network(
        config.model,
        card.channels,
        card.num_classes,
        card.image_size,
        STREAMS.seed(seed, "network"),
    ).to(device)
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    labels_dev = labels.to(device)

    real_by_class = [real.images[real.labels == c] for c in range(card.num_classes)]
    images = initial_synthetic_images(real_by_class, ipc, config, seed).to(device)
    images.requires_grad_(True)
    lr = torch.tensor(config.lr_teacher, device=device).requires_grad_(True)
    optimizer_img = torch.optim.SGD([images], lr=config.lr_img, momentum=config.momentum)
    optimizer_lr = torch.optim.SGD([lr], lr=config.lr_lr, momentum=config.momentum)
    if resume is not None:
        with torch.no_grad():
            images.copy_(resume["images"].to(device))
            lr.copy_(resume["lr"].to(device))
        optimizer_img.load_state_dict(resume["optimizer_img"])
        optimizer_lr.load_state_dict(resume["optimizer_lr"])
    loop = OuterLoop(
        config.iterations,
        resume,
        after_iteration,
        synthetic_set=lambda: SyntheticSet(
            images=images.detach().cpu().clone(),
            labels=labels.clone(),
            method="mtt",
            dataset=card.name,
            ipc=ipc,
            seed=seed,
            extras={"lr": lr.detach().cpu().clone()},
        ),
        state=lambda: {
            "images": images.detach().cpu().clone(),
            "lr": lr.detach().cpu().clone(),
            "optimizer_img": optimizer_img.state_dict(),
            "optimizer_lr": optimizer_lr.state_dict(),
        },
    )

    for it in loop:
        if evaluate is not None and config.eval_every and it % config.eval_every == 0:
            evaluate(it, loop.synthetic_set())
        generator = torch.Generator().manual_seed(STREAMS.seed(seed, "iteration", it))
        expert = int(torch.randint(len(experts), (), generator=generator))
        start_epoch = int(torch.randint(config.max_start_epoch, (), generator=generator))
        start = experts.flat_parameters(expert, start_epoch).to(device)
        target = experts.flat_parameters(expert, start_epoch + config.expert_epochs).to(device)
        loss = trajectory_matching_loss(
            net, start, target, images, labels_dev, lr, config, generator
        )
        loop.check_finite(
            f"trajectory-matching loss at iteration {it}",
            loss.item(),
            hint="lower method.lr_img or method.lr_lr",
        )
        optimizer_img.zero_grad(set_to_none=True)
        optimizer_lr.zero_grad(set_to_none=True)
        loss.backward()
        optimizer_img.step()
        optimizer_lr.step()
        with torch.no_grad():
            lr.clamp_(min=MIN_LR)
        metrics = {
            "distill/loss": loss.item(),
            "distill/lr": lr.item(),
            "distill/start_epoch": float(start_epoch),
        }
        loop.report(it, metrics)
    return loop.synthetic_set()


METHOD = Method(
    name="mtt",
    config_class=MTTConfig,
    kind=Kind.DISTILLED,
    distill=distill,
    prepare_real=prepare_real,
    speed_benchmark="distillbench_methods.mtt_speed:main",
    description="Matching training trajectories (Cazenavette et al., CVPR 2022)",
)
