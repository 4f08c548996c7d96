"""The leave-one-out study's configuration and seeds."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from empirical.errors import UserError
from empirical.training.trainer import TrainConfig

ACTS = {"tanh": torch.tanh, "softplus": F.softplus, "relu": F.relu, "gelu": F.gelu}


KINDS = ("random", "flip", "outlier", "outlier_flip")


OPTIMIZERS = ("sgd_ct", "noisy_sgd")


NOISE_BLOCK = 32  # noisy SGD: steps of weight noise drawn per generator call


@dataclass(frozen=True)
class LooConfig:
    data_root: str | None = None  # Fashion-MNIST IDX folder; None: Debian's /usr/share/datasets/fashion-mnist
    downsample: int = 2  # average-pooling factor of the 28×28 images (2: 14×14, m = 196 inputs)
    activation: str = "tanh"  # φ of the chain network (the theorems assume 1-Lipschitz, 1-smooth, φ(0) = 0)
    width: int = 64  # hidden units per layer
    depth: int = 2  # hidden layers; k = depth + 1 weight matrices
    ns: tuple[int, ...] = (64, 128, 256)  # training-set sizes n
    steps: tuple[int, ...] = (256, 512, 1024, 2048)  # T grid: single-sample SGD steps (snapshots of one run)
    # fixed-epoch arm: per n, also a snapshot at T = round(e·n) for each e (epochs: passes over the n samples),
    # so T ∝ n; a fixed T is 256 epochs at n = 64 but half an epoch at n = 2048 (issue 21)
    epochs: tuple[float, ...] = ()
    replicas: int = 8  # independent (S, S', W_0, sample sequence, V) draws per n
    kinds: tuple[str, ...] = KINDS  # which replaced samples (search toward the sup of eq. 10)
    optimizers: tuple[str, ...] = OPTIMIZERS  # sgd_ct: α_t = min(lr, c/t); noisy_sgd: the same on eq. 3
    lr: float = 0.05  # largest step size (parameter units per unit gradient)
    c: float = 2.0  # α_t ≤ c/t (the theorems' c); units: step size × steps
    weight_noise: float = 0.01  # noisy SGD: std s of V ~ N(0, s²I) (parameter units)
    sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)  # SmoothGrad σ, fraction of the pixel range
    test_images: int = 32  # test points x (a seeded random subset of the test set)
    draws: int = 16  # SmoothGrad noise draws per test image
    ig_steps: int = 16  # Integrated Gradients Gauss–Legendre nodes
    outlier_pool: int = 512  # fresh draws searched for the image farthest from its class mean
    seed: int = 0
    device: str = "cpu"
    max_points: int = 1 << 22  # memory cap: nets × points × features (floats) per saliency pass

    def validate(self) -> None:
        if self.activation not in ACTS:
            raise UserError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTS)}")
        for name, v, lo in (("downsample", self.downsample, 1), ("width", self.width, 1), ("depth", self.depth, 0),
                            ("replicas", self.replicas, 1), ("test images", self.test_images, 1),
                            ("draws", self.draws, 2), ("IG steps", self.ig_steps, 1),
                            ("outlier pool", self.outlier_pool, 1), ("max points", self.max_points, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise UserError(f"{name} must be an integer >= {lo}, got {v!r}")
        if 28 % self.downsample:
            raise UserError(f"downsample must divide 28 (the Fashion-MNIST side), got {self.downsample}")
        if not self.ns or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in self.ns):
            raise UserError(f"every n (training-set size) must be an integer >= 2 (the bounds have 1/(n−1)), got {self.ns}")
        if not self.steps or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in self.steps):
            raise UserError(f"every T (number of SGD steps) must be an integer >= 1, got {self.steps}")
        for e in self.epochs:
            if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0:
                raise UserError(f"every fixed-epoch value must be a finite number > 0 (passes over the n samples), "
                                f"got {e!r}")
            if min(self.ns) * e < 1:
                raise UserError(f"epochs {e} gives T = round({e}·{min(self.ns)}) < 1 step at n = {min(self.ns)}; "
                                f"use epochs >= {1 / min(self.ns):g}")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise UserError(f"unknown replacement kind in {self.kinds}; valid: {', '.join(KINDS)}")
        if not self.optimizers or any(o not in OPTIMIZERS for o in self.optimizers):
            raise UserError(f"unknown optimizer in {self.optimizers}; valid: {', '.join(OPTIMIZERS)}")
        for s in self.sigmas:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 < s <= 1:
                raise UserError(f"SmoothGrad sigma must be a number in (0, 1] (fraction of the pixel range; "
                                f"σ = 0 is the vanilla gradient, always measured), got {s!r}")
        for name, v in (("lr", self.lr), ("c", self.c)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserError(f"{name} must be a finite number > 0, got {v!r}")
        if "noisy_sgd" in self.optimizers and not (math.isfinite(self.weight_noise) and self.weight_noise > 0):
            raise UserError(f"noisy SGD needs weight noise > 0 (parameter units), got {self.weight_noise}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {self.device!r} asked for, but no CUDA GPU is available; use --device cpu")
        for o in self.optimizers:
            self.train_config(o).validate()

    def epoch_steps(self, n: int, epochs: float) -> int:
        """T of the fixed-epoch arm: `epochs` passes over n samples, in single-sample steps (T ∝ n)."""
        return max(1, round(epochs * n))

    def unit_steps(self, n: int) -> tuple[int, ...]:
        """Every T snapshot of the unit of size n: the fixed grid and the fixed-epoch arm, sorted."""
        return tuple(sorted(set(self.steps) | {self.epoch_steps(n, e) for e in self.epochs}))

    def train_config(self, optimizer: str) -> TrainConfig:
        """The step-size schedule as `empirical.training` defines it (batch size 1: single-sample SGD)."""
        return TrainConfig(optimizer=optimizer, epochs=1.0, batch_size=1, lr=self.lr, c=self.c,
                           weight_noise=self.weight_noise if optimizer == "noisy_sgd" else 0.0, seed=self.seed)

    @property
    def roles(self) -> tuple[str, ...]:
        """The networks of one replica: S, one S' per kind, and the disjoint S2 (shared and own seeds)."""
        return ("S",) + tuple(f"S'_{k}" for k in self.kinds) + ("S2", "S2_indep")

    @property
    def comparisons(self) -> dict[str, tuple[str, str]]:
        out = {f"loo_{k}": ("S", f"S'_{k}") for k in self.kinds}
        out.update(proxy_shared=("S", "S2"), proxy_indep=("S", "S2_indep"))
        return out


def derive_seed(*parts: object) -> int:
    """A 62-bit seed from any key (base seed, stream name, replica): independent of every other key."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16) >> 2


# --------------------------------------------------------------------------- the batched chain network
def widths(cfg: LooConfig, m: int, num_classes: int = 10) -> list[int]:
    return [m] + [cfg.width] * cfg.depth + [num_classes]
