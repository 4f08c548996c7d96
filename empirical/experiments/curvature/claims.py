r"""Claim 4 per model: rank-correlate each curvature measure with RIS, ROS and RRS over images.

The later feature-map paper ("Training for Trustworthy Saliency Maps") links attribution stability to how
smoothly the input-gradient field varies locally. For one model and a batch of images we compute, per image,

- curvature (:mod:`empirical.measures.curvature`): the gradient-field variation V_h (mean and max over random
  L2 directions, each radius h), CURE's C_h/h along sign ∇ℓ (each h), and the input-Hessian norm of softplus
  surrogates (each β), all of the target logit / cross-entropy at the image's label;
- stability (:mod:`empirical.measures.relative_stability`): RIS, ROS and, given a representation, RRS of the
  maps of ``explain`` (higher = less stable), plus any per-image column the caller adds (``extra_stability``,
  e.g. the disjoint-split stability error of :mod:`empirical.experiments.split`);

and Spearman's ρ of every (curvature, stability) pair with a bootstrap CI over images
(:func:`empirical.stats.rank_correlation`). ρ > 0 with a CI above 0: images where the gradient field turns
faster have less stable maps, the paper's direction. The unit is the image: the interval says how sure we are
about *this model's* images, not about training; across regimes and seeds each model gives one ρ, and a claim
over training is then a statistic over those (one per seed).

Images whose stability is NaN (every perturbation flipped the prediction) or whose CURE direction is
undefined (zero loss gradient) are left out of the pairs they enter; each row records how many images it used.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from empirical import stats
from empirical.errors import UserError
from empirical.measures import curvature
from empirical.measures.relative_stability import relative_stabilities


@dataclass(frozen=True)
class CurvatureClaimConfig:
    # L2 step lengths h, pixel units of [0, 1]: on 28×28, 0.11 is one grey level (1/255) on every pixel and
    # 0.81 the typical L2 length of a draw in the RIS ball of L∞ radius 0.05 (linf_matched_l2_radius)
    radii: tuple[float, ...] = (0.1, 0.3, 1.0)
    n_draws: int = 8  # random directions per image and radius (V_h's mean and max are over these)
    betas: tuple[float, ...] = (1.0, 10.0, 100.0)  # Softplus sharpness of the surrogate, 1 / pre-activation unit
    hessian_iters: int = 20  # power iterations for the surrogate's Hessian norm
    stab_radius: float = 0.05  # RIS/ROS/RRS: L∞ radius of the perturbation ball, pixel units (the smoothing study's)
    stab_samples: int = 20  # perturbations per image (the smoothing study's)
    eps_min: float = 1e-6  # RIS/ROS/RRS denominator floor
    seed: int = 0  # directions, perturbations and the bootstrap
    max_batch: int = 1024  # rows per forward/backward call
    confidence: float = 0.95
    resamples: int = 2000  # bootstrap resamples per correlation

    def validate(self) -> None:
        for name, v in (("radii", self.radii), ("betas", self.betas)):
            if not v or not all(isinstance(r, (int, float)) and math.isfinite(r) and r > 0 for r in v):
                raise UserError(f"{name} must be a non-empty tuple of finite numbers > 0, got {v!r}")
        for name, v in (("n_draws", self.n_draws), ("hessian_iters", self.hessian_iters),
                        ("stab_samples", self.stab_samples), ("max_batch", self.max_batch),
                        ("resamples", self.resamples)):
            if not (isinstance(v, int) and v >= 1):
                raise UserError(f"{name} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.stab_radius, (int, float)) and 0 < self.stab_radius < math.inf):
            raise UserError(f"stab_radius must be a finite L∞ radius > 0 (pixel units), got {self.stab_radius!r}")
        if not 0 < self.confidence < 1:
            raise UserError(f"confidence must be in (0, 1), got {self.confidence!r}")


def curvature_columns(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: CurvatureClaimConfig,
                      ids=None) -> dict[str, np.ndarray]:
    """Every curvature measure per image, ``{name: (N,) array}``: ``gv_mean_h{h}``, ``gv_max_h{h}`` (logit per
    pixel unit²), ``cure_h{h}`` (C_h/h, nats per pixel unit²), ``softplus_hessian_b{β}`` (logit per pixel unit²)."""
    gv = curvature.gradient_variation(model, x, y, cfg.radii, n_draws=cfg.n_draws, seed=cfg.seed, ids=ids,
                                      max_batch=cfg.max_batch)
    cure = curvature.cure_curvature(model, x, y, cfg.radii, max_batch=cfg.max_batch)
    cols: dict[str, np.ndarray] = {}
    for j, h in enumerate(cfg.radii):
        cols[f"gv_mean_h{h:g}"] = gv.mean[j].double().cpu().numpy()
        cols[f"gv_max_h{h:g}"] = gv.max[j].double().cpu().numpy()
    for j, h in enumerate(cfg.radii):
        cols[f"cure_h{h:g}"] = cure.per_step[j].double().cpu().numpy()
    for b in cfg.betas:
        res = curvature.softplus_hessian_norm(model, x, y, beta=b, iters=cfg.hessian_iters, seed=cfg.seed)
        cols[f"softplus_hessian_b{b:g}"] = res.norm.double().cpu().numpy()
    return cols


def stability_columns(model: nn.Module, x: torch.Tensor, y: torch.Tensor, explain: Callable, cfg: CurvatureClaimConfig,
                      representation: Callable | None = None, ids=None,
                      explain_ids: bool = False) -> dict[str, np.ndarray]:
    """RIS, ROS (and RRS given ``representation``) per image, ``{"ris"|"ros"|"rrs": (N,) array}``, on the same
    perturbations (:func:`empirical.measures.relative_stability.relative_stabilities`); NaN where every
    perturbation flipped the prediction."""
    kinds = ("input", "output") + (("representation",) if representation is not None else ())
    res = relative_stabilities(explain, model, x, y, representation=representation, kinds=kinds,
                               radius=cfg.stab_radius, n_samples=cfg.stab_samples, eps_min=cfg.eps_min, seed=cfg.seed,
                               ids=ids, batch_size=cfg.max_batch, explain_ids=explain_ids)
    names = {"input": "ris", "output": "ros", "representation": "rrs"}
    return {names[k]: r.score.double().cpu().numpy() for k, r in res.items()}


def correlations(curv: dict[str, np.ndarray], stab: dict[str, np.ndarray], cfg: CurvatureClaimConfig) -> list[dict]:
    """Spearman's ρ with its bootstrap CI over images for every (curvature, stability) pair: one record each,
    ``{curvature, stability, n_images, estimate, ci_low, ci_high, confidence, method, unit, n_units, resamples,
    verdict}``; ``estimate`` None (and ``verdict`` the reason) where fewer than 3 images remain or a column is
    constant over them (ρ undefined: e.g. the Hessian norm of a ReLU network, 0 everywhere)."""
    return [{"curvature": cname, "stability": sname, **rho_row(c, s, "image", cfg)}
            for cname, c in curv.items() for sname, s in stab.items()]


def rho_row(a: np.ndarray, b: np.ndarray, unit: str, cfg: CurvatureClaimConfig) -> dict:
    """Spearman ρ of two columns over the units where both are finite, with its bootstrap interval and verdict;
    ``estimate`` None and ``verdict`` the reason where fewer than 3 units remain or a column is constant."""
    keep = np.isfinite(a) & np.isfinite(b)
    row = {f"n_{unit}s": int(keep.sum())}
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return dict(row, estimate=None, ci_low=None, ci_high=None,
                    verdict=f"undefined (fewer than 3 {unit}s or a constant column)")
    summ = stats.rank_correlation(a[keep], b[keep], unit=unit, confidence=cfg.confidence, resamples=cfg.resamples,
                                  seed=cfg.seed)
    rec = summ.as_dict()
    rec.pop("unit_values")
    return dict(row, **rec, verdict=stats.verdict(summ, "more curvature, less stable", "more curvature, more stable"))


def curvature_claim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, explain: Callable,
                    cfg: CurvatureClaimConfig = CurvatureClaimConfig(), representation: Callable | None = None,
                    ids=None, explain_ids: bool = False,
                    extra_stability: dict[str, np.ndarray] | None = None) -> dict:
    """Claim 4 for one model: per-image curvature and stability columns and their rank correlations.

    model: pixel-space ``x -> logits``; x: ``(N, ...)`` images in [0, 1]; y: ``(N,)`` labels (the curvature
    measures' target class and CURE's loss label; RIS/ROS/RRS explain y too). ``explain(x, target) -> maps``
    (with ``explain_ids``, ``explain(x, target, ids)``). ``extra_stability``: more per-image stability columns,
    ``{name: (N,)}``. Returns ``{"config", "n_images", "curvature": {name: list}, "stability": {name: list},
    "correlations": [records]}``."""
    cfg.validate()
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or len(x) < 3:
        raise UserError(f"x must be a tensor of at least 3 images shaped (N, ...), got {getattr(x, 'shape', type(x))}")
    y = torch.as_tensor(y, device=x.device)
    if y.shape != (len(x),):
        raise UserError(f"y must have shape ({len(x)},), one label per image, got {tuple(y.shape)}")
    extra = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in (extra_stability or {}).items()}
    bad = [k for k, v in extra.items() if v.shape != (len(x),)]
    if bad:
        raise UserError(f"extra_stability column(s) {bad} must have one value per image ({len(x)})")
    curv = curvature_columns(model, x, y, cfg, ids)
    stab = {**stability_columns(model, x, y, explain, cfg, representation, ids, explain_ids), **extra}
    return {"config": asdict(cfg), "n_images": len(x),
            "curvature": {k: v.tolist() for k, v in curv.items()},
            "stability": {k: v.tolist() for k, v in stab.items()},
            "correlations": correlations(curv, stab, cfg)}
