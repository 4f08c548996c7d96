"""The papers' networks, with a selectable activation (the bounds assume a smooth one).

- `lenet`: the small LeNet of the papers (Chalasani et al. 2020's FMNIST net, used by Bhusal et al.):
  conv 5×5 32 → act → 2×2 max-pool → conv 5×5 64 → act → 2×2 max-pool → FC 1024 → act → FC classes.
- `mlp`: flatten → (Linear → act) × depth → Linear.
- `resnet18`, `resnet34`: CIFAR form (3×3 stem, no stem max-pool; He et al. 2016).
- `wrn28_10`: Wide-ResNet-28-10 (Zagoruyko & Komodakis 2016), pre-activation blocks.

Every model is an `nn.Sequential` of named blocks (`block1`, `block2`, ..., `head`) so that a
smoothing block can be inserted after a named block, and Grad-CAM can name its layer. The block
whose output feeds the classifier head is `GRADCAM_LAYER[name]`.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Iterator

import torch
from torch import nn

from empirical.errors import UserError


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block, then every submodule's own flag restored (a model in mixed modes — a
    frozen eval-mode backbone under a training head — comes back exactly as it was)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, t in flags:
            m.training = t


ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "gelu": nn.GELU, "tanh": nn.Tanh}
MODELS = ("lenet", "mlp", "resnet18", "resnet34", "wrn28_10")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def lenet(in_ch: int, size: int, num_classes: int, act: str = "relu") -> nn.Sequential:
    flat = 64 * (size // 4) * (size // 4)
    return nn.Sequential(OrderedDict(
        block1=nn.Sequential(nn.Conv2d(in_ch, 32, 5, padding=2), activation(act), nn.MaxPool2d(2)),
        block2=nn.Sequential(nn.Conv2d(32, 64, 5, padding=2), activation(act), nn.MaxPool2d(2)),
        block3=nn.Sequential(nn.Flatten(), nn.Linear(flat, 1024), activation(act)),
        head=nn.Linear(1024, num_classes),
    ))


def mlp(in_ch: int, size: int, num_classes: int, act: str = "relu", width: int = 256, depth: int = 2) -> nn.Sequential:
    blocks: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    d = in_ch * size * size
    for i in range(depth):
        blocks[f"block{i + 1}"] = nn.Sequential(nn.Linear(d, width), activation(act))
        d = width
    blocks["head"] = nn.Linear(d, num_classes)
    return nn.Sequential(blocks)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = activation(act)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.short(x))


def resnet(in_ch: int, size: int, num_classes: int, act: str = "relu", layers=(2, 2, 2, 2)) -> nn.Sequential:
    blocks: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(nn.Conv2d(in_ch, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), activation(act)))
    cin = 64
    for i, (w, n) in enumerate(zip((64, 128, 256, 512), layers)):
        seq = []
        for j in range(n):
            seq.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1, act))
            cin = w
        blocks[f"block{i + 1}"] = nn.Sequential(*seq)
    blocks["head"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))
    return nn.Sequential(blocks)


class WideBlock(nn.Module):
    """Pre-activation wide block (BN-act-conv ×2, dropout omitted)."""

    def __init__(self, cin: int, cout: int, stride: int, act: str):
        super().__init__()
        self.bn1, self.act1 = nn.BatchNorm2d(cin), activation(act)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.act2 = nn.BatchNorm2d(cout), activation(act)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act1(self.bn1(x))
        y = self.conv2(self.act2(self.bn2(self.conv1(o))))
        return y + (x if self.short is None else self.short(o))


def wrn(in_ch: int, size: int, num_classes: int, act: str = "relu", depth: int = 28, widen: int = 10) -> nn.Sequential:
    n = (depth - 4) // 6
    widths = (16, 16 * widen, 32 * widen, 64 * widen)
    blocks: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False))
    cin = widths[0]
    for i in range(3):
        seq = []
        for j in range(n):
            seq.append(WideBlock(cin, widths[i + 1], 2 if (j == 0 and i > 0) else 1, act))
            cin = widths[i + 1]
        blocks[f"block{i + 1}"] = nn.Sequential(*seq)
    blocks["head"] = nn.Sequential(nn.BatchNorm2d(cin), activation(act), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.Linear(cin, num_classes))
    return nn.Sequential(blocks)


GRADCAM_LAYER = {"lenet": "block2", "resnet18": "block4", "resnet34": "block4", "wrn28_10": "block3", "mlp": None}


def build(name: str, in_ch: int, size: int, num_classes: int, act: str = "relu") -> nn.Sequential:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    activation(act)  # validate before building
    if name == "lenet":
        if size % 4:
            raise UserError(f"lenet needs an image side divisible by 4, got {size}")
        return lenet(in_ch, size, num_classes, act)
    if name == "mlp":
        return mlp(in_ch, size, num_classes, act)
    if name == "resnet18":
        return resnet(in_ch, size, num_classes, act, (2, 2, 2, 2))
    if name == "resnet34":
        return resnet(in_ch, size, num_classes, act, (3, 4, 6, 3))
    return wrn(in_ch, size, num_classes, act)


def gradcam_layer(model: nn.Sequential, name: str) -> nn.Module | None:
    key = GRADCAM_LAYER[name]
    return None if key is None else getattr(model, key)
