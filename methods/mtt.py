"""Dataset distillation by matching training trajectories (MTT).

Cazenavette, Wang, Torralba, Efros, Zhu, "Dataset Distillation by Matching Training
Trajectories", CVPR 2022 (arXiv 2203.11932); reference code GeorgeCazenavette/mtt-distillation
at commit 50dccea (``distill.py``), applied to EuroSAT by julius-lautz/imp_dataset_distillation.

The synthetic set S (``ipc`` images per class) and a synthetic learning rate alpha are learned so
that ``syn_steps`` SGD steps on S, started from an expert's parameters at epoch t, land near the
same expert's parameters ``expert_epochs`` epochs later (paper Eq. 2):

    theta_{n+1} = theta_n - alpha grad L(A(S_n); theta_n),  theta_0 = theta*_t   (n < syn_steps)
    L = ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2

with A the DSA augmentation, S_n the n-th mini-batch of ``batch_syn`` synthetic images (all of
S by default) and t drawn uniformly from ``[0, max_start_epoch)`` (as the reference's
``np.random.randint(0, max_start_epoch)``). S is updated by SGD (momentum 0.5) at ``lr_img``, alpha
at ``lr_lr``; the expert trajectories come from ``methods/experts.py``.

Differences from the reference, stated where they apply: every draw comes from seeds derived
from the run's seed, per iteration, so ``--resume`` continues exactly; the expert is drawn
uniformly each iteration (the reference's ``--load_all`` behaviour; its default walks shuffled
files of ten experts); alpha is kept at least ``MIN_LR`` after each step (the reference lets it
go negative, which would train the evaluation networks backwards).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from bench.core.config import SPEED_ONLY, require_learning_rates, require_positive
from bench.core.errors import ConfigError
from bench.core.seeds import derive_seed
from bench.data.real import RealSet
from bench.data.synthetic import SyntheticSet
from bench.data.zca import prepare_real
from bench.evaluation.networks import NETWORKS, build_network
from bench.spec.method import AfterIteration, EvaluateDuring, Kind, Method
from bench.spec.outer_loop import OuterLoop
from methods.experts import ExpertConfig, ExpertTrajectories, trajectory_folder
from methods.gm import initial_synthetic_images

MIN_LR = 1e-8
"""floor of the learned learning rate"""

# Seed streams (first key of derive_seed) so no two draws share a stream; stream 0 is the
# initial images' (``methods.gm.initial_synthetic_images``).
_ITERATION, _NETWORK = 1, 2


@dataclass(frozen=True)
class MTTConfig:
    """MTT hyper-parameters. Defaults are the EuroSAT work's (imp_dataset_distillation
    ``distillation.py`` and README: syn_steps 20, expert_epochs 3, max_start_epoch 5, lr_img
    1000, lr_lr 1e-5, lr_teacher 0.01, ZCA) and the reference's (5000 iterations, real
    initialisation, DSA, 100 experts x 50 epochs); CIFAR-10 recipes override them."""

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
    zca: bool = True
    """ZCA-whiten the real data (``bench/data/zca.py``); experts must have been made the same way"""
    dsa: bool = True
    dsa_strategy: str = "color_crop_cutout_flip_rotate"
    """DSA strategy during distillation (EuroSAT work's default; MTT's has ``scale`` too)"""
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
        require_positive(
            self,
            ("iterations", "syn_steps", "expert_epochs", "max_start_epoch", "num_experts"),
            "method",
        )
        require_positive(self, ("batch_syn", "expert_train_epochs"), "method")
        require_learning_rates(self, "method")
        if self.max_start_epoch - 1 + self.expert_epochs > self.expert_train_epochs:
            raise ConfigError(
                f"method.max_start_epoch={self.max_start_epoch} and method.expert_epochs="
                f"{self.expert_epochs} reach epoch {self.max_start_epoch - 1 + self.expert_epochs}"
                f" of experts trained for {self.expert_train_epochs}; lower them or train longer "
                "experts (method.expert_train_epochs)"
            )

    def experts(self, dataset: str) -> ExpertConfig:
        """The expert trajectories this distillation needs."""
        return ExpertConfig(
            dataset=dataset,
            model=self.model,
            zca=self.zca,
            num_experts=self.num_experts,
            epochs=self.expert_train_epochs,
            images_per_class=self.expert_images_per_class,
        )


def load_experts(real: RealSet, config: MTTConfig) -> ExpertTrajectories:
    """The verified expert trajectories for ``real`` (see ``ExpertTrajectories`` for errors)."""
    expert_config = config.experts(real.card.name)
    card = real.card
    net = build_network(config.model, card.channels, card.num_classes, card.image_size, 0)
    folder = trajectory_folder(config.experts_dir, expert_config)
    return ExpertTrajectories(folder, expert_config, real, net)


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

    from bench.data.dsa import dsa_augment

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
        config.model, card.channels, card.num_classes, card.image_size, derive_seed(seed, _NETWORK)
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
            images.detach().cpu().clone(),
            labels.clone(),
            "mtt",
            card.name,
            ipc,
            seed,
            "",
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
        generator = torch.Generator().manual_seed(derive_seed(seed, _ITERATION, it))
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
    speed_benchmark="methods.mtt_speed:main",
    description="Matching training trajectories (Cazenavette et al., CVPR 2022)",
)
