"""The feature-map smoothing study's regimes and configuration (Bhusal, Alam & Rastogi)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from empirical import data as data_mod
from empirical.errors import UserError
from empirical.nets import models
from empirical.training.trainer import TrainConfig

# name → (filter or None, adversarially trained?)
REGIMES: dict[str, tuple[str | None, bool]] = {
    "N": (None, False), "A": (None, True),
    "M1": ("mean", True), "M2": ("median", True), "G": ("gaussian", True),
    "E": ("embedded_gaussian", True), "NG": ("nonlocal_gaussian", True),
    # receptive-field ablation (appendix G): the block without filtering
    "ID": ("identity", True), "RC": ("random_conv", True),
}


for _name, (_flt, _adv) in list(REGIMES.items()):
    if _flt is not None:
        REGIMES[f"{_name}-nat"] = (_flt, False)  # the same filter without adversarial training


PAPER_REGIMES = ("N", "A", "M1", "M2", "G", "E", "NG")


STUDY_METHODS = ("vg", "ig", "sg")  # the study's choices among attribution.METHODS


@dataclass(frozen=True)
class SmoothingStudyConfig:
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    image_size: int = 64  # imagefolder only
    model: str = "lenet"
    activation: str = "relu"
    regimes: tuple[str, ...] = PAPER_REGIMES
    block_after: str = "block1"  # named block of the model after which the smoothing block goes
    kernel_size: int = 3  # local filters' window (feature-map pixels)
    gaussian_sigma: float = 1.0  # Gaussian filter σ (feature-map pixels), explicit
    eps: float = 0.1  # adversarial-training L∞ radius, pixel units of [0, 1]
    eps_grid: tuple[float, ...] = ()  # extra ε values for the trade-off figure (adversarial regimes)
    attack_steps: int = 40  # PGD steps in training (step size ε/10, as the paper)
    attack: str = "pgd"  # "pgd" or "fgsm" (FGSM with random start: the fast option)
    train_images: int | None = None  # None: the whole training set
    train: TrainConfig = field(default_factory=lambda: TrainConfig(optimizer="adam", lr=1e-3, batch_size=32, epochs=50))
    methods: tuple[str, ...] = STUDY_METHODS
    eval_images: int = 1000  # correctly classified test images evaluated
    ig_steps: int = 32
    sg_sigma: float = 0.15  # SmoothGrad noise, fraction of the pixel range
    sg_draws: int = 50
    stab_radius: float = 0.05  # RIS/ROS/RRS: L∞ radius of the perturbation ball (pixel units)
    stab_samples: int = 20  # perturbations per image
    eps_min: float = 1e-6
    road_percentages: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    ssim_noise: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)  # std of the input noise, pixel units
    robust_eps: float = 0.1  # robust accuracy: PGD L∞ ε (pixel units), 100 steps
    robust_steps: int = 100
    robust_images: int = 1000
    curvature_iters: int = 20
    seed: int = 0
    device: str = "cpu"
    max_batch: int = 4096
    cuda_graphs: bool = True  # on a GPU, capture each training step in a CUDA graph (same results, faster)
    # On a GPU, train with TF32 convolutions and matrix products (10-bit mantissa, ~1e-3 relative rounding per
    # product; PyTorch's own default for cuDNN convolutions, so most likely what the paper's code ran with).
    # The paper's LeNet protocol is ~45 PFLOP of training: at the H100's 67 TFLOPS float32 peak that is 11 min
    # of pure arithmetic, more in practice; TF32 tensor cores are several times faster. Evaluation (maps,
    # metrics, accuracies) always runs in full float32. No effect on the CPU.
    train_tf32: bool = False

    def validate(self) -> None:
        if self.dataset not in data_mod.DATASETS:
            raise UserError(f"unknown data set {self.dataset!r}; valid: {', '.join(data_mod.DATASETS)}")
        if self.model not in models.MODELS or self.model == "mlp":
            raise UserError(f"the smoothing study needs a convolutional model; got {self.model!r}, "
                            f"valid: {', '.join(m for m in models.MODELS if m != 'mlp')}")
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad or not self.regimes:
            raise UserError(f"unknown regime(s) {bad or '(none)'}; valid: {', '.join(REGIMES)}")
        bad = [m for m in self.methods if m not in STUDY_METHODS]
        if bad or not self.methods:
            raise UserError(f"unknown method(s) {bad or '(none)'}; valid: {', '.join(STUDY_METHODS)}")
        if self.attack not in ("pgd", "fgsm"):
            raise UserError(f"unknown attack {self.attack!r}; valid: pgd, fgsm")
        for name, v in (("eps", self.eps), ("robust eps", self.robust_eps), ("stability radius", self.stab_radius)):
            if not math.isfinite(v) or not (0 < v <= 1):
                raise UserError(f"{name} must be in (0, 1] (pixel units of [0, 1] images), got {v}")
        for v in self.eps_grid:
            if not math.isfinite(v) or not (0 < v <= 1):
                raise UserError(f"eps grid values must be in (0, 1] (pixel units), got {v}")
        if not math.isfinite(self.sg_sigma) or not 0 <= self.sg_sigma <= 1:
            raise UserError(f"SmoothGrad sigma must be in [0, 1] (fraction of the pixel range), got {self.sg_sigma}")
        for v in self.ssim_noise:
            if not math.isfinite(v) or v <= 0:
                raise UserError(f"SSIM noise levels must be > 0 (pixel units), got {v}")
        for v in self.road_percentages:
            if not (0 < v < 1):
                raise UserError(f"ROAD percentages must be in (0, 1), got {v}")
        for name, v in (("eval images", self.eval_images), ("IG steps", self.ig_steps), ("SG draws", self.sg_draws),
                        ("stability samples", self.stab_samples), ("attack steps", self.attack_steps),
                        ("robust steps", self.robust_steps), ("robust images", self.robust_images),
                        ("curvature iterations", self.curvature_iters)):
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{name} must be an integer >= 1, got {v!r}")
        if self.train_images is not None and self.train_images < 2:
            raise UserError(f"train images must be >= 2, got {self.train_images}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {self.device!r} asked for, but no CUDA GPU is available; use --device cpu")
        self.train.validate()
