"""Training: the theorems' SGD (step c/t), noisy SGD (Ye & Farnia eq. 3), and the usual recipes.

The data set sits on the device as uint8 and is normalised per batch (airbench style: no
DataLoader); the batch order comes from a seeded generator, so one seed fixes a model. A trained
model is saved as a checkpoint keyed by the digest of everything that determines it (model,
activation, training config, data set, split indices), and reused when the same configuration is
asked for again. Checkpoints are written atomically (temp file + rename). A training in progress also
saves its whole state at every epoch boundary (`<key>.partial.pt`), so an interrupted run resumes from
there and ends with the same weights as an uninterrupted one.

Optimisers (`TrainConfig.optimizer`):
- ``sgd_ct``: plain minibatch SGD with α_t = min(lr, c/t), t = 1, 2, ... counting steps. This satisfies
  the hypothesis α_t ≤ c/t of Theorems 5 and 6 (Ye & Farnia; Hardt et al. 2016 Thm 3.12) while not
  starting at a step of c; T and c are recorded for the bounds.
- ``noisy_sgd``: the same schedule on the Gaussian-smoothed loss ℓ̃(W) = E_V ℓ(W+V), V ~ N(0, s²I)
  (eq. 3), with one draw of V per step (an unbiased estimate of ∇ℓ̃).
- ``sgd``: SGD with momentum 0.9, weight decay and a cosine schedule.
- ``adam``: Adam at a constant lr (the feature-map paper's FMNIST recipe: 1e-3, batch 32).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from empirical.data import check_pixels, pixel_scale
from empirical.errors import DeadlineReached, TrainingDiverged, UserError
from empirical.runtime.progress import bar_disabled
from empirical.training.checkpoints import atomic_save, epoch_snapshot, load_or_build, read_snapshot

OPTIMIZERS = ("sgd_ct", "noisy_sgd", "sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgd_ct"
    epochs: float = 2.0  # passes over the training split (fractional allowed)
    batch_size: int = 64  # images per step
    lr: float = 0.05  # peak step size (per step, not scaled by batch size)
    c: float = 20.0  # step-size constant of α_t ≤ c/t (sgd_ct, noisy_sgd); units: step size × steps
    weight_noise: float = 0.0  # noisy_sgd: std s of V ~ N(0, s²I) added to the weights (parameter units)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 5e-4  # sgd only
    seed: int = 0  # initialisation and batch order

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        for name in ("epochs", "lr", "c", "weight_noise", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UserError(f"{name} must be a finite number, got {v!r}")
        if not (self.epochs > 0):
            raise UserError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0) or not (self.c > 0):
            raise UserError(f"lr and c must be > 0, got lr={self.lr}, c={self.c}")
        if self.weight_noise < 0 or (self.optimizer == "noisy_sgd" and self.weight_noise == 0):
            raise UserError(f"noisy_sgd needs weight_noise > 0 (got {self.weight_noise})")

    def steps(self, n: int) -> int:
        """T: the number of SGD steps for a split of n images."""
        return max(1, math.ceil(self.epochs * n / self.batch_size))


def step_size(cfg: TrainConfig, t: int, T: int) -> float:
    """α_t for step t = 1..T."""
    if cfg.optimizer in ("sgd_ct", "noisy_sgd"):
        return min(cfg.lr, cfg.c / t)
    if cfg.optimizer == "sgd":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * (t - 1) / T))
    return cfg.lr


# A cross-entropy starts near ln K (2.3 for 10 classes); one above this means logit gaps of a million: the step
# size has blown the weights up (NaN follows a step or two later, or, on a single-step run, never shows).
DIVERGED_LOSS = 1e6


def check_losses(losses: torch.Tensor, first_step: int, n: int, cfg: TrainConfig, who: str = "training",
                 when: str = "") -> None:
    """Raise :class:`TrainingDiverged` at the first value of ``losses`` (1-D: the losses of steps ``first_step``,
    ``first_step`` + 1, ...) that is NaN/inf or above :data:`DIVERGED_LOSS`, naming its epoch, step and value. Step t
    draws images (t − 1)·B .. t·B − 1 of a stream of seeded permutations of the n images: epoch ⌊(t − 1)B/n⌋ + 1."""
    bad = ~torch.isfinite(losses) | (losses > DIVERGED_LOSS)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        t = first_step + i
        raise TrainingDiverged(f"{who} diverged at epoch {(t - 1) * cfg.batch_size // n + 1}, step {t} "
                               f"(loss{when} = {float(losses[i]):.3g}); lower --lr (now {cfg.lr:g})")


Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def train(
    model: nn.Module,
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
    perturb: Perturb | None = None,
    desc: str = "train",
    progress: bool = True,
    resume: Path | None = None,
    deadline: float | None = None,
) -> dict:
    """Train `model` in place on (x_uint8 [n,C,H,W], y [n]); returns a record (T, steps, final loss, wall time).

    `x_uint8`: uint8 images (scaled by 1/255), or float images already in pixel space [0, 1] (taken as given; a
    float tensor outside [0, 1], e.g. 0..255, is a one-line error); it is never written into.
    `normalize` maps pixel space [0,1] to the network's input. `perturb(model, x01, y) -> x01'`, when
    given, replaces each batch in pixel space (adversarial training); the model is in eval mode while
    it runs and in train mode for the update.

    `resume`: a file for the state at each epoch boundary (weights, optimiser, remaining batch order, every
    random generator, losses so far), written atomically. If it exists and belongs to the same
    configuration, training continues from it, and ends with the same weights, bit for bit on the same
    device, as a run that was never stopped; an interrupted long training loses at most one epoch.

    `deadline`: wall-clock time (``time.time()`` seconds) after which training stops at the next step boundary,
    saving its state to `resume` (mid-epoch too) and raising :class:`~empirical.errors.DeadlineReached`; at least
    one step runs per call.
    """
    import time

    cfg.validate()
    check_pixels(x_uint8, what="training images")
    scale = pixel_scale(x_uint8.dtype)
    if deadline is not None and resume is None:
        raise UserError("a training deadline needs a resume file (where its state is saved)")
    t0 = time.time()
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model.to(device).train()
    xd, yd = x_uint8.to(device), y.to(device)
    n = len(xd)
    T = cfg.steps(n)
    g = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)
    noise_g = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.empty(0, dtype=torch.long)
    losses = []
    start, before = 1, 0.0
    stamp = {"config": asdict(cfg), "T": T, "n": n}

    def snapshot(t_done: int) -> dict:
        return epoch_snapshot(stamp, t_done, model, opt, order, g, noise_g.get_state(), torch.get_rng_state(),
                              torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                              torch.stack(losses).cpu() if losses else torch.empty(0), before + time.time() - t0)

    st = read_snapshot(resume, stamp)
    if st is not None:
        try:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            order = st["order"]
            g.set_state(st["g"])
            noise_g.set_state(st["noise_g"])
            torch.set_rng_state(st["rng"])
            if st["cuda_rng"] is not None:
                torch.cuda.set_rng_state(st["cuda_rng"], device)
            losses = [v.to(device) for v in st["losses"]]
            start, before = st["t"] + 1, st["seconds"]
        except Exception:  # a state file of another shape: train from the start
            start, before = 1, 0.0
    checked = len(losses)  # losses[:checked] are known finite
    last = None  # the last batch trained on

    def verify() -> None:
        """Divergence: checked before any state is saved. A diverged training's snapshot is removed, so a rerun
        starts clean (with a lower lr the configuration, hence the file, differs anyway)."""
        nonlocal checked
        if len(losses) > checked:
            try:
                check_losses(torch.stack(losses[checked:]), checked + 1, n, cfg)
            except TrainingDiverged:
                if resume is not None:
                    Path(resume).unlink(missing_ok=True)
                raise
            checked = len(losses)

    bar = tqdm(range(start, T + 1), desc=desc, disable=bar_disabled(progress), leave=False, mininterval=1.0,
               initial=start - 1, total=T)
    for t in bar:
        if deadline is not None and t > start and time.time() >= deadline:  # a step boundary: save and stop
            verify()  # never save a diverged state
            atomic_save(snapshot(t - 1), Path(resume))
            bar.close()
            raise DeadlineReached(f"training stopped at its deadline after step {t - 1} of {T}; its state is saved: "
                                  "re-run the same command to resume")
        if len(order) < cfg.batch_size:  # epoch boundary: a fresh seeded permutation
            verify()
            if resume is not None and t > start:
                atomic_save(snapshot(t - 1), Path(resume))
            order = torch.cat([order, torch.randperm(n, generator=g)])
        idx, order = order[: cfg.batch_size].to(device), order[cfg.batch_size :]
        xb = xd[idx].float()  # indexing copies: the caller's tensor is never touched
        if scale != 1.0:
            xb = xb.div_(scale)
        yb = yd[idx]
        if perturb is not None:
            model.eval()
            xb = perturb(model, xb, yb).detach()
            model.train()
        for group in opt.param_groups:
            group["lr"] = step_size(cfg, t, T)
        noises = None
        if cfg.optimizer == "noisy_sgd":  # ∇ of E_V ℓ(W+V), one draw per step (eq. 3)
            with torch.no_grad():
                noises = [torch.randn(p.shape, generator=noise_g, device=device) * cfg.weight_noise for p in params]
                for p, v in zip(params, noises):
                    p.add_(v)
        loss = loss_fn(model(normalize(xb)), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if noises is not None:
            with torch.no_grad():
                for p, v in zip(params, noises):
                    p.sub_(v)
        opt.step()
        losses.append(loss.detach())
        last = (xb, yb)
        if device.type == "cpu":  # every step where it costs no device sync; elsewhere at epoch boundaries
            verify()
        if t % 50 == 0 and progress:
            bar.set_postfix(loss=f"{torch.stack(losses[-50:]).mean().item():.3f}")
    verify()
    model.eval()
    if last is not None:  # the last update is seen by no training loss: one more forward on its batch
        with torch.no_grad():
            after = loss_fn(model(normalize(last[0])), last[1]).detach()
        try:
            check_losses(after.view(1), T, n, cfg, when=" after its update")
        except TrainingDiverged:
            if resume is not None:
                Path(resume).unlink(missing_ok=True)
            raise
    tail = torch.stack(losses[-max(1, T // 10):]).mean().item()
    return {"T": T, "n": n, "final_loss": tail, "train_seconds": before + time.time() - t0, "config": asdict(cfg),
            "resumed_after_step": start - 1}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    """Top-1 accuracy of `model` on normalised inputs x (already on the model's device)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
    return correct / max(1, len(x))


def train_or_load(
    build: Callable[[], nn.Module],
    key_parts: dict,
    ckpt_dir: Path,
    train_kwargs: dict,
) -> tuple[nn.Module, dict, bool]:
    """Train a model, or load it when a checkpoint of the same configuration exists.

    Returns (model in eval mode, training record, reused?). The key digests `key_parts`, which must
    hold everything that determines the weights (model, activation, config, data, split digest).
    """
    model, record, key, path = load_or_build(build, key_parts, ckpt_dir, train_kwargs["cfg"].seed,
                                             train_kwargs.get("device", "cpu"))
    if record is not None:
        return model, record, True
    partial = path.with_name(f"{key}.partial.pt")  # the last epoch boundary of an interrupted training
    record = train(model, **{"resume": partial, **train_kwargs})
    record["key"] = key
    record["key_parts"] = key_parts
    atomic_save({"state_dict": model.state_dict(), "record": record}, path)
    partial.unlink(missing_ok=True)
    return model, record, False
