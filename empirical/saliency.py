r"""Batched gradient saliency: vanilla gradient, Integrated Gradients, SmoothGrad, Grad-CAM and Grad-CAM++.

Every method takes ``model`` (an ``nn.Module`` mapping ``x`` of shape [N, C, H, W] or [N, D] to logits
[N, K]), ``x`` already in the space the model sees (normalised by the caller) and ``target`` (a LongTensor
[N] of class indices), and returns maps of ``x``'s shape, signed (no absolute value), except Grad-CAM
([N, 1, H, W]). With :math:`f_y` the target logit:

- :func:`vanilla_gradient`: :math:`\nabla_x f_y(x)` (Ye & Farnia eq. 4; Simonyan et al. 2013).
- :func:`integrated_gradients`: :math:`(x - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha(x - x_0))\,d\alpha`
  (Ye & Farnia eq. 6; Sundararajan et al. 2017), by a quadrature rule (:func:`ig_quadrature`).
- :func:`smoothgrad`: :math:`\mathbb{E}_z[\mathrm{Sal}(x + z)]`, :math:`z \sim N(0, \sigma_c^2)` per channel
  (Ye & Farnia eq. 5; Smilkov et al. 2017), by Monte Carlo; :func:`smoothed` does the same for any map.
- :func:`gradcam`: Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018).
- :func:`saliency`: one dispatcher over :data:`METHODS`.

Choices made here:

- **Eval mode.** Gradients are taken of :math:`\sum_i f_{y_i}(x_i)` with one ``torch.autograd.grad`` per
  chunk; that gives every sample its own gradient only if sample i's logits do not depend on sample j.
  Batch norm in train mode (batch statistics) and dropout break that, so every function runs the model in
  eval mode and restores each submodule's ``training`` flag afterwards. Parameter ``.grad`` is never touched.
- **Batching.** Images × noise draws × path steps are flattened into one index and evaluated ``max_batch``
  points per forward/backward (``None``: all at once); partial sums are carried across chunk borders and
  per-image draw statistics merged with Chan et al.'s parallel update, so results do not depend on
  ``max_batch`` beyond float rounding. :func:`empirical.memory.max_batch_for_memory` estimates a ``max_batch``.
- **Noise (common random numbers).** Draw d of image i is counter-based: each value a hash of (seed, ids[i],
  d, position) (:mod:`empirical.keyed_rng`, :func:`draw_noise`), computed for a whole chunk at once on the
  device. So an image gets the same draws whatever batch it sits in and whatever ``max_batch`` is, the first
  m draws do not change when more are asked for, the two networks of a pair given the same seed and ids see
  the same noise, and CPU and CUDA draw the same numbers. (Until 2026-11-23 each (image, draw) reseeded a
  ``torch.Generator``: one kernel launch per draw, which held SmoothGrad to 8% of the GPU's gradient rate.)
- **Noise layout.** An explicit ``noise`` holds STANDARD normal draws :math:`\varepsilon` of shape
  [N, n_draws, *x.shape[1:]] (image-major, as Captum's ``NoiseTunnel`` repeats its inputs); the
  perturbation is :math:`z = \sigma_c \varepsilon`. To pass absolute perturbations, use ``sigma=1.0``.
- **Smoothed IG** (``base="ig"``) is IG evaluated at :math:`x + z` with the baseline unchanged,
  :math:`\mathbb{E}_z[(x + z - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha(x + z - x_0))\,d\alpha]`, which is
  what Captum's ``NoiseTunnel(IntegratedGradients)`` computes.
- **Monte-Carlo standard error**: sample standard deviation over draws (ddof = 1) divided by
  :math:`\sqrt{n}`, per pixel; NaN for a single draw (no estimate), zero for σ = 0 (no draws).
- **Grad-CAM upsampling**: bilinear, ``align_corners=False``, to ``x``'s H × W (``upsample=None`` keeps the
  layer resolution; ``"nearest"`` is what Captum's ``LayerAttribution.interpolate`` does by default).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from empirical.errors import UserError
from empirical.keyed_rng import noise_draws
from empirical.models import eval_mode as _eval_mode

METHODS = ("vg", "ig", "sg", "sg_ig", "gradcam", "gradcampp")
RULES = ("gausslegendre", "riemann_trapezoid", "riemann_right", "riemann_left", "riemann_middle")
BASES = ("vg", "ig")
UPSAMPLE = ("bilinear", "nearest", None)

SaliencyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- validation


def _shape(v) -> str:
    return str(list(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__


def _check_x(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
        raise UserError(f"x must be a floating tensor of shape [N, C, H, W] or [N, D], got "
                        f"{_shape(x)} {getattr(x, 'dtype', '')}")
    if x.shape[0] < 1:
        raise UserError(f"x holds no images: shape {_shape(x)}")


def _positive_int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise UserError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _check_max_batch(max_batch) -> int | None:
    return None if max_batch is None else _positive_int("max_batch", max_batch)


def _check_target(x: torch.Tensor, target) -> tuple[torch.Tensor, int]:
    """(target as a long tensor on x's device, its largest class). Whether that class exists is checked on the
    first forward's logits (:func:`_logits_at`): learning K here would cost an extra forward per call."""
    n = x.shape[0]
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = torch.full((n,), int(target), dtype=torch.long, device=x.device)
    if not isinstance(target, torch.Tensor) or target.dtype.is_floating_point or target.dtype == torch.bool \
            or target.is_complex() or tuple(target.shape) != (n,):
        raise UserError(f"target must be an integer tensor of shape [{n}] (one class per image), got "
                        f"{_shape(target)} {getattr(target, 'dtype', '')}")
    target = target.to(device=x.device, dtype=torch.long)
    lo, hi = (int(v) for v in torch.aminmax(target)) if n else (0, 0)
    if lo < 0:
        raise UserError(f"target out of range: classes must be >= 0, got {lo}")
    return target, hi


def _logits_at(out, n: int, hi: int | None, target: torch.Tensor) -> torch.Tensor:
    """out[i, target[i]], after checking that ``out`` is [n, K] logits with K > hi, the largest target (an
    out-of-range gather on CUDA is a device-side assert that kills the process, not an error message)."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != n:
        raise UserError(f"the model must map x [N, ...] to logits [N, K]; on {n} image(s) it returned {_shape(out)}")
    if hi is not None and hi >= out.shape[1]:
        raise UserError(f"target out of range: classes must be in [0, {out.shape[1] - 1}], got {hi}")
    return out.gather(1, target[:, None])[:, 0]


def _check_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ as a tensor broadcastable against one sample x[i] (per channel along dim 0 of the sample)."""
    c = x.shape[1]
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        s = float(sigma)
        if not math.isfinite(s) or s < 0:
            raise UserError(f"sigma must be a finite number >= 0 (absolute, model-input units), got {sigma!r}")
        return torch.tensor(s, dtype=x.dtype, device=x.device)
    if not isinstance(sigma, torch.Tensor) or tuple(sigma.shape) not in ((), (c,)):
        raise UserError(f"sigma must be a float or a tensor of shape [{c}] (one per channel), got "
                        f"{_shape(sigma)}")
    vals = sigma.detach().double().cpu().reshape(-1)
    if not bool(torch.isfinite(vals).all()) or bool((vals < 0).any()):
        raise UserError(f"sigma must be finite and >= 0 in every channel, got {vals.tolist()}")
    s = sigma.detach().to(device=x.device, dtype=x.dtype)
    return s.reshape((c,) + (1,) * (x.dim() - 2)) if s.dim() == 1 else s


def _check_ids(ids, n: int) -> list[int]:
    if ids is None:
        return list(range(n))
    if isinstance(ids, torch.Tensor):
        if ids.dtype.is_floating_point or tuple(ids.shape) != (n,):
            raise UserError(f"ids must be an integer tensor of shape [{n}], got {_shape(ids)} {ids.dtype}")
        return [int(i) for i in ids.tolist()]
    ids = list(ids)
    if len(ids) != n or not all(isinstance(i, numbers.Integral) for i in ids):
        raise UserError(f"ids must be {n} integers (one per image), got {ids!r}")
    return [int(i) for i in ids]


def _check_baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if not isinstance(baseline, torch.Tensor) or tuple(baseline.shape) not in (tuple(x.shape), tuple(x.shape[1:])):
        raise UserError(f"baseline must be None, a number, or a tensor of shape {list(x.shape)} or "
                        f"{list(x.shape[1:])}, got {_shape(baseline)}")
    return baseline.detach().to(device=x.device, dtype=x.dtype).expand_as(x)


def _check_choice(name: str, v, valid: Sequence) -> None:
    if v not in valid:
        raise UserError(f"unknown {name} {v!r}; valid: {', '.join(repr(u) for u in valid)}")


# --------------------------------------------------------------------------- building blocks
def ig_quadrature(steps: int, rule: str = "gausslegendre", dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Nodes :math:`\alpha_s` and weights :math:`w_s` with :math:`\int_0^1 g \approx \sum_s w_s g(\alpha_s)`.

    Every rule's weights sum to 1, so IG is exact (up to rounding) on a linear model. ``riemann_trapezoid``
    is the composite trapezoid rule on ``steps`` equally spaced nodes including 0 and 1 (weights
    :math:`1/(n-1)`, halved at the ends); Captum's version uses :math:`1/n` there, so its weights sum to
    :math:`(n-1)/n` and its IG misses completeness by a factor :math:`(n-1)/n` even on a linear model.
    ``gausslegendre`` matches Captum's nodes and weights exactly. Shapes: both [steps].

    Example:
        >>> a, w = ig_quadrature(3, "riemann_trapezoid")
        >>> a.tolist(), w.tolist()
        ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    _check_choice("rule", rule, RULES)
    n = _positive_int("steps", steps, 2 if rule == "riemann_trapezoid" else 1)
    if rule == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (t + 1.0), 0.5 * w
    elif rule == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
    else:
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[rule]
        alphas, weights = (np.arange(n) + offset) / n, np.full(n, 1.0 / n)
    return (torch.as_tensor(alphas, dtype=dtype, device=device), torch.as_tensor(weights, dtype=dtype, device=device))


def draw_noise(x: torch.Tensor, n_draws: int, seed: int = 0, ids=None) -> torch.Tensor:
    r"""The standard normal draws :math:`\varepsilon` that :func:`smoothgrad` uses, [N, n_draws, *x.shape[1:]].

    Draw d of image i is a pure function of (seed, ids[i], d) (:func:`empirical.keyed_rng.noise_draws`),
    in ``x``'s dtype, the same on every device; ``ids`` defaults to ``arange(N)``.

    Example:
        >>> x = torch.zeros(2, 3)
        >>> torch.equal(draw_noise(x, 4, ids=[7, 8])[1], draw_noise(x[1:], 4, ids=[8])[0])
        True
    """
    _check_x(x)
    n_draws = _positive_int("n_draws", n_draws)
    ids = torch.as_tensor(_check_ids(ids, x.shape[0]), dtype=torch.int64, device=x.device)
    n = x.shape[0]
    eps = noise_draws(seed, ids.repeat_interleave(n_draws), torch.arange(n_draws, device=x.device).repeat(n),
                      x[0].numel(), x.dtype, x.device)
    return eps.view(n, n_draws, *x.shape[1:])


def _target_grad(model: nn.Module, points: torch.Tensor, target: torch.Tensor, hi: int | None = None) -> torch.Tensor:
    """∇ of f_{target[i]} at points[i], for all i in one backward of Σ_i f_{target[i]}(points[i]); ``hi``: the
    largest class any call asks for, checked against the logits (None: not checked)."""
    with torch.enable_grad():
        points = points.detach().requires_grad_(True)
        score = _logits_at(model(points), points.shape[0], hi, target).sum()
        (grad,) = torch.autograd.grad(score, points)
    return grad


def _target_logits(model: nn.Module, x: torch.Tensor, target: torch.Tensor, max_batch: int | None) -> torch.Tensor:
    step = max_batch or x.shape[0]
    with torch.no_grad():
        return torch.cat([_logits_at(model(x[lo:lo + step]), x[lo:lo + step].shape[0], None, target[lo:lo + step])
                          for lo in range(0, x.shape[0], step)])


def _fold(v: torch.Tensor, start: int, width: int) -> torch.Tensor:
    """Rows of ``v`` are flat indices start, start + 1, ...: zero-pad to whole blocks, view [m, width, ...]."""
    front, back = start % width, (-(start + v.shape[0])) % width
    if front or back:
        v = torch.cat([v.new_zeros((front,) + v.shape[1:]), v, v.new_zeros((back,) + v.shape[1:])])
    return v.view((-1, width) + v.shape[1:])


def _engine(x: torch.Tensor, evaluate: Callable, n_draws: int, steps: int,
            max_batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and M2 (sum of squared deviations) over draws of :math:`M_{nd} = \sum_s c(n, d, s)`, per image.

    The flat index e = (n · n_draws + d) · steps + s runs over images × draws × steps; each chunk of at most
    ``max_batch`` indices is one call ``evaluate(n, d, s)`` returning contributions [k, *map_shape]. Sums over
    s are carried across chunk borders; per-image statistics over d are merged chunk by chunk (Chan, Golub &
    LeVeque 1979), so memory stays O(max_batch + N) maps whatever n_draws and steps are. Reductions are
    reshapes and sums, not scatter-adds, so they are deterministic on CUDA too.
    """
    n_img, dev = x.shape[0], x.device
    total = n_img * n_draws * steps
    chunk = max_batch or total
    mean = m2 = None
    carry = None
    for lo in range(0, total, chunk):
        hi = min(total, lo + chunk)
        idx = torch.arange(lo, hi, device=dev)
        gid = idx // steps
        c = evaluate(gid // n_draws, gid % n_draws, idx % steps)
        g_lo, g_hi = lo // steps, (hi - 1) // steps
        sums = c if steps == 1 else _fold(c, lo, steps).sum(1)
        if carry is not None:
            sums[0] += carry
        if hi % steps:  # the last group continues in the next chunk
            carry, sums = sums[-1].clone(), sums[:-1]
            g_hi -= 1
        else:
            carry = None
        if sums.shape[0] == 0:
            continue
        if mean is None:
            mean = c.new_zeros((n_img,) + c.shape[1:])
            m2 = torch.zeros_like(mean)
        # Completed groups g_lo..g_hi belong to images n_lo..n_hi; groups complete in order, so image n had
        # na of its draws merged before this chunk and gets nb more now.
        n_lo, n_hi = g_lo // n_draws, g_hi // n_draws
        sl = slice(n_lo, n_hi + 1)
        first_g = torch.arange(n_lo, n_hi + 1, device=dev, dtype=c.dtype) * n_draws
        na = (first_g.clamp_min(g_lo) - first_g)
        nb = (first_g + n_draws - 1).clamp_max(g_hi) - first_g.clamp_min(g_lo) + 1
        bshape = (-1,) + (1,) * (c.dim() - 1)
        mask = _fold(torch.ones(sums.shape[0], device=dev, dtype=c.dtype), g_lo, n_draws)
        folded = _fold(sums, g_lo, n_draws)
        mean_b = folded.sum(1) / nb.view(bshape)
        dev_b = (folded - mean_b[:, None]) * mask.view(mask.shape + (1,) * (c.dim() - 1))
        m2_b = (dev_b ** 2).sum(1)
        first = (na == 0).view(bshape)
        ntot = (na + nb).view(bshape)
        delta = mean_b - mean[sl]
        # The first batch of an image is taken as is, so a one-chunk run is not perturbed by the merge.
        mean[sl] = torch.where(first, mean_b, mean[sl] + delta * nb.view(bshape) / ntot)
        m2[sl] = torch.where(first, m2_b, m2[sl] + m2_b + delta ** 2 * (na * nb).view(bshape) / ntot)
    return mean, m2


def _stderr(m2: torch.Tensor, n_draws: int) -> torch.Tensor:
    if n_draws == 1:
        return torch.full_like(m2, float("nan"))
    return (m2 / (n_draws - 1)).sqrt() / math.sqrt(n_draws)


# --------------------------------------------------------------------------- gradient methods
def vanilla_gradient(model: nn.Module, x: torch.Tensor, target, max_batch: int | None = None) -> torch.Tensor:
    r"""The vanilla gradient :math:`\nabla_x f_y(x)` (Ye & Farnia eq. 4; Simonyan et al. 2013), shape of ``x``.

    Example:
        >>> lin = nn.Linear(3, 2, bias=False)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(vanilla_gradient(lin, x, torch.ones(4, dtype=torch.long)), lin.weight[1].expand(4, 3))
        True
    """
    _check_x(x)
    max_batch = _check_max_batch(max_batch)
    with _eval_mode(model):
        target, hi = _check_target(x, target)
        mean, _ = _engine(x, lambda n, d, s: _target_grad(model, x[n], target[n], hi), 1, 1, max_batch)
    return mean


def integrated_gradients(model: nn.Module, x: torch.Tensor, target, baseline=None, steps: int = 50,
                         rule: str = "gausslegendre", return_residual: bool = False,
                         max_batch: int | None = None):
    r"""Integrated Gradients (Ye & Farnia eq. 6; Sundararajan et al. 2017), shape of ``x``:

    .. math::  \mathrm{IG}(x) = (x - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha (x - x_0))\, d\alpha
               \approx (x - x_0) \odot \sum_s w_s \nabla f_y(x_0 + \alpha_s (x - x_0)),

    nodes and weights from :func:`ig_quadrature` (``rule``, ``steps``). ``baseline`` :math:`x_0`: None
    (zeros), a number, or a tensor of ``x``'s shape or one sample's shape. With ``return_residual`` also the
    completeness residual :math:`\sum_j \mathrm{IG}_j - (f_y(x) - f_y(x_0))`, shape [N] (Captum's
    convergence delta, sign included); it is 0 up to rounding on a linear model.

    Example:
        >>> lin = nn.Linear(3, 1).double()
        >>> x = torch.randn(2, 3, dtype=torch.float64)
        >>> ig, res = integrated_gradients(lin, x, torch.zeros(2, dtype=torch.long), return_residual=True)
        >>> torch.allclose(ig, lin.weight.detach() * x), bool(res.abs().max() < 1e-12)
        (True, True)
    """
    _check_x(x)
    alphas, weights = ig_quadrature(steps, rule, x.dtype, x.device)
    x0 = _check_baseline(baseline, x)
    max_batch = _check_max_batch(max_batch)
    with _eval_mode(model):
        target, hi = _check_target(x, target)

        def evaluate(n, d, s):
            diff = x[n] - x0[n]
            a = alphas[s].view((-1,) + (1,) * (x.dim() - 1))
            w = weights[s].view_as(a)
            return w * _target_grad(model, x0[n] + a * diff, target[n], hi) * diff

        ig, _ = _engine(x, evaluate, 1, len(alphas), max_batch)
        if not return_residual:
            return ig
        gap = _target_logits(model, x, target, max_batch) - _target_logits(model, x0, target, max_batch)
    return ig, ig.flatten(1).sum(1) - gap


def smoothed(fn: SaliencyFn, x: torch.Tensor, target, sigma, n_draws: int, seed: int = 0, ids=None,
             noise: torch.Tensor | None = None, max_batch: int | None = None, return_stderr: bool = False):
    r"""Monte-Carlo Gaussian smoothing of any batch-wise map: :math:`\frac{1}{n}\sum_d \mathrm{fn}(x + z_d, y)`.

    ``fn(points [k, ...], target [k]) -> maps [k, ...]`` must treat rows independently (it is called on
    chunks of at most ``max_batch`` (image, draw) pairs). ``sigma``: a float or a tensor [C], absolute
    (model-input units), per channel. Draws: :func:`draw_noise` (seed, ids), or ``noise`` =
    standard normal :math:`\varepsilon` of shape [N, n_draws, *x.shape[1:]]. σ = 0 returns ``fn(x, target)``
    exactly (no draws; stderr zeros). Returns the mean map, or (mean, Monte-Carlo standard error) with
    ``return_stderr``, both of ``fn``'s output shape.
    """
    _check_x(x)
    n_draws = _positive_int("n_draws", n_draws)
    sig = _check_sigma(sigma, x)
    ids = torch.as_tensor(_check_ids(ids, x.shape[0]), dtype=torch.int64, device=x.device)
    max_batch = _check_max_batch(max_batch)
    shape = (x.shape[0], n_draws) + tuple(x.shape[1:])
    if noise is not None and (not isinstance(noise, torch.Tensor) or tuple(noise.shape) != shape):
        raise UserError(f"noise must be standard normal draws of shape [N, n_draws, ...] = {list(shape)}, got "
                        f"{_shape(noise)}")
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (x.shape[0],):
        raise UserError(f"target must be a tensor of shape [{x.shape[0]}], got {_shape(target)}")
    target = target.to(x.device)
    if not bool((sig != 0).any()):
        out = _engine(x, lambda n, d, s: fn(x[n], target[n]), 1, 1, max_batch)[0]
        return (out, torch.zeros_like(out)) if return_stderr else out

    def evaluate(n, d, s):
        return fn(_perturb(x, sig, n, d, noise, seed, ids), target[n])

    mean, m2 = _engine(x, evaluate, n_draws, 1, max_batch)
    return (mean, _stderr(m2, n_draws)) if return_stderr else mean


def _perturb(x, sig, n, d, noise, seed, ids) -> torch.Tensor:
    """x[n] + σ ε_{n,d} for index tensors n, d of one chunk."""
    if noise is not None:
        eps = noise[n, d].to(device=x.device, dtype=x.dtype)
    else:
        # Path steps repeat an (image, draw) pair on consecutive rows: draw each pair once, then expand.
        new = torch.cat([n.new_ones(1, dtype=torch.bool), (n[1:] != n[:-1]) | (d[1:] != d[:-1])])
        eps = noise_draws(seed, ids[n[new]], d[new], x[0].numel(), x.dtype, x.device).view(-1, *x.shape[1:])
        eps = eps[torch.cumsum(new.long(), 0) - 1]
    return x[n] + sig * eps


def smoothgrad(model: nn.Module, x: torch.Tensor, target, sigma, n_draws: int, seed: int = 0, ids=None,
               noise: torch.Tensor | None = None, base: str = "vg", ig_steps: int = 50,
               ig_rule: str = "gausslegendre", baseline=None, max_batch: int | None = None,
               return_stderr: bool = False):
    r"""SmoothGrad :math:`\mathbb{E}_z[\mathrm{Sal}(x + z)]`, :math:`z_c \sim N(0, \sigma_c^2)` (Ye & Farnia eq. 5;
    Smilkov et al. 2017), by Monte Carlo over ``n_draws`` draws; shape of ``x``.

    ``sigma``: a float or a tensor [C], ABSOLUTE in the model's input units (the caller converts a fraction
    of the pixel range). ``base="vg"``: Sal is the vanilla gradient. ``base="ig"``: Sal is Integrated
    Gradients evaluated at :math:`x + z` with the baseline UNCHANGED (``baseline``, ``ig_steps``,
    ``ig_rule`` as in :func:`integrated_gradients`), i.e. :math:`\mathbb{E}_z[\mathrm{IG}_{x_0}(x + z)]`.
    Noise: draw d of image i is seeded by (seed, ids[i], d) (:func:`draw_noise`; ``ids`` defaults to
    ``arange(N)``), so it does not depend on the batch or ``max_batch``, and two networks given the same
    seed and ids see the same noise. ``noise``: explicit standard normal draws [N, n_draws, *x.shape[1:]]
    (z = σ ε). σ = 0 returns the unsmoothed map exactly, without drawing. With ``return_stderr`` also the
    per-pixel Monte-Carlo standard error std_d / sqrt(n_draws) (ddof = 1).

    Example:
        >>> lin = nn.Linear(3, 2)
        >>> x = torch.randn(4, 3)
        >>> t = torch.zeros(4, dtype=torch.long)
        >>> torch.allclose(smoothgrad(lin, x, t, sigma=0.5, n_draws=8), vanilla_gradient(lin, x, t))
        True
    """
    _check_x(x)
    _check_choice("base", base, BASES)
    n_draws = _positive_int("n_draws", n_draws)
    sig = _check_sigma(sigma, x)
    ids = torch.as_tensor(_check_ids(ids, x.shape[0]), dtype=torch.int64, device=x.device)
    max_batch = _check_max_batch(max_batch)
    alphas, weights = ig_quadrature(ig_steps, ig_rule, x.dtype, x.device)
    x0 = _check_baseline(baseline, x)
    shape = (x.shape[0], n_draws) + tuple(x.shape[1:])
    if noise is not None and (not isinstance(noise, torch.Tensor) or tuple(noise.shape) != shape):
        raise UserError(f"noise must be standard normal draws of shape [N, n_draws, ...] = {list(shape)}, got "
                        f"{_shape(noise)}")
    if not bool((sig != 0).any()):
        out = (vanilla_gradient(model, x, target, max_batch) if base == "vg" else
               integrated_gradients(model, x, target, x0, ig_steps, ig_rule, max_batch=max_batch))
        return (out, torch.zeros_like(out)) if return_stderr else out
    with _eval_mode(model):
        target, hi = _check_target(x, target)
        if base == "vg":
            def evaluate(n, d, s):
                return _target_grad(model, _perturb(x, sig, n, d, noise, seed, ids), target[n], hi)
            steps = 1
        else:
            def evaluate(n, d, s):
                diff = _perturb(x, sig, n, d, noise, seed, ids) - x0[n]
                a = alphas[s].view((-1,) + (1,) * (x.dim() - 1))
                return weights[s].view_as(a) * _target_grad(model, x0[n] + a * diff, target[n], hi) * diff
            steps = len(alphas)
        mean, m2 = _engine(x, evaluate, n_draws, steps, max_batch)
    return (mean, _stderr(m2, n_draws)) if return_stderr else mean


# --------------------------------------------------------------------------- Grad-CAM
def _cam(acts: torch.Tensor, grads: torch.Tensor, plus: bool) -> torch.Tensor:
    if not plus:
        weights = grads.mean((2, 3), keepdim=True)
    else:
        g2 = grads ** 2
        denom = 2 * g2 + acts.sum((2, 3), keepdim=True) * g2 * grads
        nonzero = denom != 0
        alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(g2))
        weights = (alpha * grads.clamp_min(0)).sum((2, 3), keepdim=True)
    return (weights * acts).sum(1, keepdim=True).clamp_min(0)


def gradcam(model: nn.Module, x: torch.Tensor, target, layer: nn.Module, plus: bool = False,
            upsample: str | None = "bilinear", max_batch: int | None = None) -> torch.Tensor:
    r"""Grad-CAM (Selvaraju et al. 2017) or, with ``plus``, Grad-CAM++ (Chattopadhay et al. 2018); [N, 1, H, W].

    With :math:`A^k` the activations of ``layer`` (output [N, K, h, w], captured by a forward hook) and
    :math:`g^k = \partial f_y / \partial A^k`:

    - Grad-CAM: :math:`L = \mathrm{ReLU}(\sum_k w_k A^k)`, :math:`w_k = \frac{1}{hw}\sum_{ij} g^k_{ij}`.
    - Grad-CAM++: :math:`w_k = \sum_{ij} \alpha^k_{ij} \mathrm{ReLU}(g^k_{ij})` with the closed-form alphas of
      the exponentiated score (paper eq. 19), :math:`\alpha^k_{ij} = (g^k_{ij})^2 / (2 (g^k_{ij})^2 +
      \sum_{ab} A^k_{ab} (g^k_{ij})^3)`, 0 where the denominator is 0. The paper's weights carry a factor
      :math:`e^{f_y}`, a positive per-image scale; it is left out (as pytorch-grad-cam does) because it
      overflows float32 for logits above ~88 and would make raw map norms depend on the confidence.

    ``upsample``: ``"bilinear"`` (``align_corners=False``) or ``"nearest"`` to ``x``'s H × W, or None for the
    layer resolution [N, 1, h, w]. ``max_batch`` images per forward pass.
    """
    _check_x(x)
    if x.dim() != 4:
        raise UserError(f"Grad-CAM needs images [N, C, H, W], got shape {_shape(x)}")
    _check_choice("upsample", upsample, UPSAMPLE)
    if not isinstance(layer, nn.Module) or not any(m is layer for m in model.modules()):
        raise UserError(f"layer must be a submodule of the model, got {type(layer).__name__}")
    max_batch = _check_max_batch(max_batch)
    captured: list[torch.Tensor] = []
    with _eval_mode(model):
        target, hi = _check_target(x, target)
        handle = layer.register_forward_hook(lambda mod, inp, out: captured.append(out))
        cams = []
        try:
            step = max_batch or x.shape[0]
            for lo in range(0, x.shape[0], step):
                captured.clear()
                with torch.enable_grad():
                    # x needs grad so that the layer's output is in the graph even for a frozen model.
                    logits = model(x[lo:lo + step].detach().requires_grad_(True))
                    if len(captured) != 1 or not isinstance(captured[0], torch.Tensor) or captured[0].dim() != 4:
                        raise UserError(f"the Grad-CAM layer must run once per forward and output [N, K, h, w]; it "
                                        f"ran {len(captured)} times, output "
                                        f"{_shape(captured[0]) if captured else None}")
                    score = _logits_at(logits, len(target[lo:lo + step]), hi, target[lo:lo + step]).sum()
                    (grads,) = torch.autograd.grad(score, captured[0])
                cams.append(_cam(captured[0].detach(), grads, plus))
        finally:
            handle.remove()
    cam = torch.cat(cams)
    if upsample is None:
        return cam
    kw = {"align_corners": False} if upsample == "bilinear" else {}
    return F.interpolate(cam, size=tuple(x.shape[-2:]), mode=upsample, **kw)


# --------------------------------------------------------------------------- dispatch, memory
def saliency(method: str, model: nn.Module, x: torch.Tensor, target, **kw):
    """``method`` in :data:`METHODS`: "vg", "ig", "sg" (SmoothGrad), "sg_ig" (smoothed IG), "gradcam",
    "gradcampp"; keyword arguments go to the method's function."""
    _check_choice("method", method, METHODS)
    if method == "vg":
        return vanilla_gradient(model, x, target, **kw)
    if method == "ig":
        return integrated_gradients(model, x, target, **kw)
    if method in ("sg", "sg_ig"):
        return smoothgrad(model, x, target, base="vg" if method == "sg" else "ig", **kw)
    return gradcam(model, x, target, plus=method == "gradcampp", **kw)
