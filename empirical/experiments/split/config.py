"""The split-stability experiment's configuration (Ye & Farnia sec. 5.1)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from empirical import data as data_mod
from empirical.errors import UserError
from empirical.nets import models
from empirical.training.trainer import TrainConfig

STUDY_METHODS = ("vg", "ig", "gradcam", "gradcampp")  # among attribution.METHODS (σ > 0: SmoothGrad)


PAPER_SIGMAS = tuple(round(0.05 * i, 2) for i in range(9))  # 0, 0.05, ..., 0.40 (Ye & Farnia Fig. 2)


@dataclass(frozen=True)
class SplitStabilityConfig:
    dataset: str = "fashion-mnist"
    data_root: str | None = None  # folder of the data files; None: Debian's Fashion-MNIST location
    image_size: int = 64  # imagefolder only: images resized to this side (pixels)
    model: str = "lenet"
    activation: str = "relu"
    sigmas: tuple[float, ...] = (0.15,)  # fraction of the pixel range (x_max − x_min); 0 is always added
    methods: tuple[str, ...] = ("vg", "ig")
    pairs: int = 2  # independent random splits, each into two disjoint halves
    n: int | None = None  # training images per split; None: min(n_cap, half the training set)
    n_cap: int | None = None  # cap on the default n (the demo uses 10,000 to stay fast on a CPU)
    test_images: int = 100  # evaluated test images (a seeded random subset)
    draws: int = 16  # Gaussian noise draws per smoothed map
    ig_steps: int = 16  # Integrated Gradients path steps (Gauss–Legendre)
    topk_fraction: float = 0.1  # k of the top-k metrics, as a fraction of the pixels
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0  # splits, test subset and noise; model seeds derive from it
    device: str = "cpu"
    max_batch: int = 4096  # model evaluations per forward pass (memory cap)
    mem_mb: float | None = None  # memory cap in MiB for the saliency passes; lowers max_batch to fit (None: off)

    def validate(self) -> None:
        if self.dataset not in data_mod.DATASETS:
            raise UserError(f"unknown data set {self.dataset!r}; valid: {', '.join(data_mod.DATASETS)}")
        if self.model not in models.MODELS:
            raise UserError(f"unknown model {self.model!r}; valid: {', '.join(models.MODELS)}")
        if self.activation not in models.ACTIVATIONS:
            raise UserError(f"unknown activation {self.activation!r}; valid: {', '.join(models.ACTIVATIONS)}")
        bad = [m for m in self.methods if m not in STUDY_METHODS]
        if bad or not self.methods:
            raise UserError(f"unknown method(s) {bad or '(none)'}; valid: {', '.join(STUDY_METHODS)}")
        if any(m.startswith("gradcam") for m in self.methods) and models.GRADCAM_LAYER[self.model] is None:
            raise UserError(f"Grad-CAM needs a convolutional model; {self.model!r} has no conv layer")
        for s in self.sigmas:
            if not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 <= s <= 1:
                raise UserError(f"sigma must be a number in [0, 1] (fraction of the pixel range), got {s!r}")
        for name, v, lo in (("pairs", self.pairs, 1), ("test images", self.test_images, 1), ("draws", self.draws, 1),
                            ("IG steps", self.ig_steps, 1), ("max batch", self.max_batch, 1)):
            if not isinstance(v, int) or v < lo:
                raise UserError(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.mem_mb is not None and not (self.mem_mb > 0):
            raise UserError(f"memory cap must be > 0 MiB, got {self.mem_mb}")
        if self.n is not None and self.n < 2:
            raise UserError(f"n (training images per split) must be >= 2, got {self.n}")
        if not (0 < self.topk_fraction <= 1):
            raise UserError(f"topk fraction must be in (0, 1], got {self.topk_fraction}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {self.device!r} asked for, but no CUDA GPU is available; use --device cpu")
        self.train.validate()

    @property
    def all_sigmas(self) -> tuple[float, ...]:
        return tuple(sorted(set((0.0,) + tuple(float(s) for s in self.sigmas))))
