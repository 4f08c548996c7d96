"""Checkpoints: keyed by the digest of what determines the weights, written atomically; epoch-boundary snapshots
for resuming a training (one format for :func:`~empirical.training.trainer.train` and the lockstep trainer)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from empirical.runtime.files import default_mode


def config_digest(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, default_mode())  # not mkstemp's 0600 (see empirical.runtime.files)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def epoch_snapshot(stamp: dict, t: int, model: nn.Module, opt: torch.optim.Optimizer, order: torch.Tensor,
                   g: torch.Generator, noise_g_state: torch.Tensor, rng: torch.Tensor, cuda_rng: torch.Tensor | None,
                   losses: torch.Tensor, seconds: float) -> dict:
    """A training's whole state after step ``t`` (an epoch boundary): the one format that :func:`train` and
    :func:`empirical.training.lockstep.train_lockstep` write and read, so either resumes the other's. ``stamp`` (config,
    T, n) identifies the training; ``rng``/``cuda_rng``: the generator states the random perturbations draw from."""
    return {**stamp, "t": t, "model": model.state_dict(), "opt": opt.state_dict(), "order": order, "g": g.get_state(),
            "noise_g": noise_g_state, "rng": rng, "cuda_rng": cuda_rng, "losses": losses, "seconds": seconds}


def read_snapshot(path: Path, stamp: dict) -> dict | None:
    """The snapshot at ``path`` if it exists and belongs to the training ``stamp`` names; else None (a missing,
    damaged or foreign file: that training starts from the beginning)."""
    if path is None or not Path(path).exists():
        return None
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
        return st if {k: st[k] for k in stamp} == stamp else None
    except Exception:
        return None


def load_or_build(build: Callable[[], nn.Module], key_parts: dict, ckpt_dir: Path, seed: int,
                  device: torch.device | str = "cpu") -> tuple[nn.Module, dict | None, str, Path]:
    """The model of ``key_parts``: (model, its training record, key, checkpoint path). The record is None when
    no usable checkpoint exists; the model is then freshly built, for training. The global torch generator is
    seeded with the training seed before ``build()``, so the initialisation is fixed by the same seed as the
    batch order. A damaged checkpoint, or one holding NaN/inf weights, is deleted (and retrained), never trusted."""
    key = config_digest(key_parts)
    path = Path(ckpt_dir) / f"{key}.pt"
    torch.manual_seed(seed)  # the initialisation is part of "one seed per model"
    model = build()
    if path.exists():
        try:
            blob = torch.load(path, map_location=device, weights_only=False)
            if not all(bool(torch.isfinite(v).all()) for v in blob["state_dict"].values() if v.is_floating_point()):
                raise ValueError("non-finite weights")  # a diverged training cached before that was an error
            model.load_state_dict(blob["state_dict"])
            return model.to(device).eval(), blob["record"], key, path
        except Exception:
            path.unlink(missing_ok=True)
    return model, None, key, path
