r"""Curvature at a finite radius: how much the input gradient turns over a step, defined for ReLU networks too.

Two measures, both batched over images and draws (every perturbed image of every draw and radius goes
through the network in chunks of ``max_batch`` rows; no per-image loop):

- :func:`gradient_variation`: the finite-difference quantity the mean-value argument (ledger
  ``cv-mean-value``) bounds,

  .. math:: V_h(x) = \frac{\|\nabla_x f_y(x + \delta) - \nabla_x f_y(x)\|_2}{\|\delta\|_2},
            \quad \delta = h\,u,\ u \text{ uniform on the unit L2 sphere},

  mean and max over draws of u. Units: logit per pixel unit squared (a Hessian norm's units). For smooth f,
  V_h → ‖∇²f(x) u‖₂ as h → 0 (≤ ‖∇²f(x)‖₂). For a ReLU network V_h is 0 while no activation or max-pool
  choice changes within the step, and counts the gradient's jumps across the boundaries the step crosses
  otherwise (~ jump/h): it is informative only at finite h, which is why several radii are taken.
- :func:`cure_curvature` (Moosavi-Dezfooli et al. 2019, "Robustness via curvature regularization, and vice
  versa", CVPR; the CURE regulariser as their public code computes it): the change of the loss gradient
  along the sign of the gradient,

  .. math:: C_h(x) = \|\nabla_x \ell(x + h z) - \nabla_x \ell(x)\|_2,
            \quad z = \frac{\mathrm{sign}\,\nabla_x \ell(x)}{\|\mathrm{sign}\,\nabla_x \ell(x)\|_2},

  ℓ the cross-entropy of the label (nats). z normalised to unit L2 norm as the CURE code does, so the step
  h·z has L2 length h (the paper writes the regulariser squared; its code, and we, take the norm). Units:
  nats per pixel unit; ``per_step`` = C_h/h, nats per pixel unit squared, → ‖∇²ℓ(x) z‖₂ as h → 0.

Radii are L2 lengths in pixel units of [0, 1] images; perturbed images are not clipped to [0, 1] (clipping
would shorten δ and break the ratio). The L∞ ball of the stability metrics (radius r, uniform draws) has
typical L2 length r·√(d/3): :func:`linf_matched_l2_radius`. In float32 the difference of two gradients
carries a rounding error ~ε‖∇f‖ that the division by h amplifies: keep h ≳ 1e-3 there (float64 for tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from empirical.errors import UserError
from empirical.keyed_rng import keyed_normal
from empirical.nets.models import eval_mode

DIRECTION_STREAM = 0x0C0A7E5A  # xor-ed into the seed of the random directions: not the metrics' or SmoothGrad's stream


def _check(x, target, radii, max_batch) -> tuple[float, ...]:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise UserError(f"x must be a tensor shaped (N, ...), got {getattr(x, 'shape', type(x))}")
    if not isinstance(target, torch.Tensor) or target.shape != (len(x),):
        raise UserError(f"target must be a tensor of shape ({len(x)},), one class per image, "
                        f"got {getattr(target, 'shape', type(target))}")
    radii = tuple(radii) if isinstance(radii, Sequence) else (radii,)
    if not radii or not all(isinstance(r, (int, float)) and math.isfinite(r) and r > 0 for r in radii):
        raise UserError(f"radii must be finite L2 lengths > 0 (pixel units), got {radii!r}")
    if not (isinstance(max_batch, int) and max_batch >= 1):
        raise UserError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    return tuple(float(r) for r in radii)


def _input_gradient(scalar: Callable, x: torch.Tensor, target: torch.Tensor, max_batch: int) -> torch.Tensor:
    """∇_x of ``scalar(x, target) -> (B,)`` row by row, in chunks of ``max_batch`` rows: in eval mode row i's
    scalar depends on row i's input only, so the gradient of the chunk's sum is every row's own gradient."""
    out = torch.empty_like(x)
    for s in range(0, len(x), max_batch):
        xb = x[s:s + max_batch].detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(scalar(xb, target[s:s + max_batch]).sum(), xb)
        out[s:s + max_batch] = g
    return out


def _logit(model):
    return lambda xb, tb: model(xb).gather(1, tb.view(-1, 1)).squeeze(1)


def _cross_entropy(model):
    return lambda xb, tb: F.cross_entropy(model(xb), tb, reduction="none")


def linf_matched_l2_radius(linf_radius: float, x: torch.Tensor) -> float:
    """r·√(d/3): the root-mean-square L2 length of a draw uniform in the L∞ ball of radius r in d = x[0].numel()
    dimensions (each coordinate has variance r²/3), the L2 radius at the scale of RIS/ROS/RRS's perturbations."""
    return float(linf_radius) * math.sqrt(x[0].numel() / 3)


def _ids(x: torch.Tensor, ids) -> torch.Tensor:
    n = len(x)
    ids = torch.arange(n, device=x.device) if ids is None else torch.as_tensor(ids, device=x.device)
    if ids.shape != (n,):
        raise UserError(f"ids must have shape ({n},), one per image, got {tuple(ids.shape)}")
    return ids


def _unit_directions(seed: int, ids: torch.Tensor, draws: torch.Tensor, d: int) -> torch.Tensor:
    """(B, d) float64: row b is draw ``draws[b]`` of image ``ids[b]``, a normalised Gaussian from positions
    [draw·d, (draw + 1)·d) of the image's keyed normal stream."""
    g = keyed_normal(int(seed) ^ DIRECTION_STREAM, ids, draws.to(torch.int64) * d, d, torch.float64)
    return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)


def sphere_directions(x: torch.Tensor, n_draws: int, seed: int = 0, ids=None) -> torch.Tensor:
    """Directions ``(n_draws, N, ...)`` uniform on the unit L2 sphere (normalised Gaussians), draw s of image i
    keyed by (seed, ids[i], s): independent of batch size and composition, and the first draws do not change
    when more are asked for. :func:`gradient_variation` draws exactly these, chunk by chunk."""
    if not (isinstance(n_draws, int) and n_draws >= 1):
        raise UserError(f"n_draws must be an integer >= 1, got {n_draws!r}")
    n, d = len(x), x[0].numel()
    ids = _ids(x, ids)
    draws = torch.arange(n_draws, device=x.device).repeat_interleave(n)
    return _unit_directions(seed, ids.repeat(n_draws), draws, d).reshape(n_draws, *x.shape).to(x.dtype)


@dataclass(frozen=True)
class GradientVariation:
    """:func:`gradient_variation`'s values per radius, draw and image."""

    radii: tuple[float, ...]  # L2 step lengths h, pixel units
    values: torch.Tensor  # (R, S, N) V_h per radius, draw, image; logit per pixel unit squared

    @property
    def mean(self) -> torch.Tensor:
        """(R, N): mean over draws."""
        return self.values.mean(1)

    @property
    def max(self) -> torch.Tensor:
        """(R, N): max over draws."""
        return self.values.amax(1)


def gradient_variation(model: nn.Module, x: torch.Tensor, target: torch.Tensor, radii: Sequence[float],
                       n_draws: int = 8, seed: int = 0, ids=None, max_batch: int = 1024) -> GradientVariation:
    """V_h(x) = ‖∇f_t(x + h·u) − ∇f_t(x)‖₂ / h for ``n_draws`` directions u (:func:`sphere_directions`) and each
    h in ``radii``; f_t the logit of ``target`` (N,). x: (N, ...) model input in pixel units. See the module
    docstring for units and the h → 0 limits."""
    radii = _check(x, target, radii, max_batch)
    if not (isinstance(n_draws, int) and n_draws >= 1):
        raise UserError(f"n_draws must be an integer >= 1, got {n_draws!r}")
    ids = _ids(x, ids)
    n_r, n_s, n, d = len(radii), n_draws, len(x), x[0].numel()
    h = torch.tensor(radii, dtype=x.dtype, device=x.device)
    rows = n_r * n_s * n  # row k: radius k // (S·N), draw (k // N) % S, image k % N
    values = torch.empty(rows, dtype=x.dtype, device=x.device)
    with eval_mode(model):
        g0 = _input_gradient(_logit(model), x, target, max_batch).flatten(1)
        # the perturbed images of one chunk at a time (directions drawn for that chunk only): memory stays at
        # max_batch images whatever R·S·N is
        for a in range(0, rows, max_batch):
            k = torch.arange(a, min(a + max_batch, rows), device=x.device)
            r, s, i = k // (n_s * n), (k // n) % n_s, k % n
            u = _unit_directions(seed, ids[i], s, d).to(x.dtype)
            xp = (x.flatten(1)[i] + h[r].unsqueeze(1) * u).view(len(k), *x.shape[1:])
            gp = _input_gradient(_logit(model), xp, target[i], max_batch).flatten(1)
            values[a:a + len(k)] = torch.linalg.vector_norm(gp - g0[i], dim=-1) / h[r]
    return GradientVariation(radii, values.view(n_r, n_s, n).detach())


@dataclass(frozen=True)
class CureCurvature:
    """:func:`cure_curvature`'s values per radius and image."""

    radii: tuple[float, ...]  # L2 step lengths h, pixel units
    values: torch.Tensor  # (R, N) C_h = ‖∇ℓ(x + h z) − ∇ℓ(x)‖₂, nats per pixel unit; NaN where ∇ℓ(x) = 0
    loss_gradient_norm: torch.Tensor  # (N,) ‖∇ℓ(x)‖₂, nats per pixel unit (CURE's norm_grad)

    @property
    def per_step(self) -> torch.Tensor:
        """(R, N): C_h / h, nats per pixel unit squared; → ‖∇²ℓ(x) z‖₂ as h → 0 for smooth ℓ."""
        return self.values / torch.tensor(self.radii, dtype=self.values.dtype, device=self.values.device).view(-1, 1)


def cure_curvature(model: nn.Module, x: torch.Tensor, label: torch.Tensor, radii: Sequence[float],
                   max_batch: int = 1024) -> CureCurvature:
    """C_h(x) = ‖∇ℓ(x + h·z) − ∇ℓ(x)‖₂ with z = sign ∇ℓ(x) / ‖sign ∇ℓ(x)‖₂ and ℓ = cross-entropy of ``label``
    (N,), for each h in ``radii`` (Moosavi-Dezfooli et al. 2019). An image whose loss gradient is exactly 0
    (a saturated softmax) has no direction z: NaN. See the module docstring for units."""
    radii = _check(x, label, radii, max_batch)
    n_r, n = len(radii), len(x)
    with eval_mode(model):
        g0 = _input_gradient(_cross_entropy(model), x, label, max_batch)
        s = torch.sign(g0).flatten(1)
        s_norm = torch.linalg.vector_norm(s, dim=1)  # √(number of non-zero gradient entries)
        z = (s / s_norm.clamp_min(1).view(-1, 1)).view_as(x)
        h = torch.tensor(radii, dtype=x.dtype, device=x.device).view(n_r, 1, *([1] * (x.dim() - 1)))
        xp = (x.unsqueeze(0) + h * z.unsqueeze(0)).reshape(n_r * n, *x.shape[1:])
        gp = _input_gradient(_cross_entropy(model), xp, label.repeat(n_r), max_batch).view(n_r, n, -1)
    values = torch.linalg.vector_norm(gp - g0.flatten(1), dim=-1)
    values = torch.where(s_norm > 0, values, torch.full_like(values, math.nan))
    return CureCurvature(radii, values.detach(), torch.linalg.vector_norm(g0.flatten(1), dim=1).detach())
