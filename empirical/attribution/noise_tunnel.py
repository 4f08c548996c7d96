"""Gaussian smoothing of a map by Monte Carlo: SmoothGrad (Smilkov et al. 2017; Ye & Farnia eq. 5), smoothed IG,
and the smoothing of any batch-wise map."""
from __future__ import annotations

import torch
from torch import nn

from empirical.attribution._checks import (
    SaliencyFn,
    _check_baseline,
    _check_choice,
    _check_ids,
    _check_max_batch,
    _check_sigma,
    _check_target,
    _check_x,
    _positive_int,
    _shape,
)
from empirical.attribution.engine import _engine, _perturb, _stderr, _target_grad
from empirical.attribution.gradient import vanilla_gradient
from empirical.attribution.integrated_gradients import ig_quadrature, integrated_gradients
from empirical.errors import UserError
from empirical.nets.models import eval_mode as _eval_mode

BASES = ("vg", "ig")


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
