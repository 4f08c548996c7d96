"""Building a regime's network (the smoothing block in place) and its training attack."""
from __future__ import annotations

import torch
from torch import nn

from empirical import data as data_mod
from empirical.errors import UserError
from empirical.experiments.smoothing.config import REGIMES, SmoothingStudyConfig
from empirical.nets import models
from empirical.nets.smoothing import SmoothingBlock, insert_smoothing_block
from empirical.training.lockstep import AttackSpec


class PixelModel(nn.Module):
    """x in [0,1] pixel space → logits of the wrapped network (normalisation inside)."""

    def __init__(self, net: nn.Module, spec: data_mod.DatasetSpec):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def build_regime(cfg: SmoothingStudyConfig, spec: data_mod.DatasetSpec, regime: str) -> nn.Module:
    net = models.build(cfg.model, spec.channels, spec.size, spec.num_classes, cfg.activation)
    flt, _ = REGIMES[regime]
    if flt is None:
        return net
    names = [n for n, _ in net.named_children()]
    if cfg.block_after not in names:
        raise UserError(f"--block-after {cfg.block_after!r} is not a block of {cfg.model}; valid: {', '.join(names)}")
    channels = _channels_after(net, cfg.block_after, spec)
    block = SmoothingBlock(channels, filter=flt, kernel_size=cfg.kernel_size, sigma=cfg.gaussian_sigma)
    return insert_smoothing_block(net, cfg.block_after, block)


def _channels_after(net: nn.Module, name: str, spec: data_mod.DatasetSpec) -> int:
    shapes = []
    h = getattr(net, name).register_forward_hook(lambda m, i, o: shapes.append(o.shape))
    with torch.no_grad():
        net.eval()(torch.zeros(1, spec.channels, spec.size, spec.size))
    h.remove()
    if len(shapes[0]) != 4:
        raise UserError(f"block {name!r} outputs shape {tuple(shapes[0])}: a smoothing block needs a feature map")
    return int(shapes[0][1])


def lockstep_group(cfg: SmoothingStudyConfig, n_models: int) -> int:
    """How many models train together. All of them for LeNet, whose steps are launch-bound (the reason for
    lockstep). One at a time for the larger networks: their steps already fill the GPU, and each model's CUDA
    graph keeps a memory pool of its own, so seven WRN-28-10s at once would hold seven sets of activations."""
    return max(1, n_models) if cfg.model == "lenet" else 1


def attack_spec(cfg: SmoothingStudyConfig, eps: float) -> AttackSpec | None:
    """The training attack at ε: PGD with step ε/10 for `attack_steps` steps (appendix A), keeping each image's
    best iterate (MadryLab robustness's default), or FGSM with random start (step 1.25ε; Wong et al. 2020)."""
    if eps <= 0:
        return None
    if cfg.attack == "fgsm":
        return AttackSpec(eps=eps, step_size=1.25 * eps, steps=1, use_best=False)
    return AttackSpec(eps=eps, step_size=eps / 10, steps=cfg.attack_steps, use_best=True)
