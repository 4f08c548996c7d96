r"""Gaussian smoothing of a map by Monte Carlo: SmoothGrad (Smilkov et al. 2017; Ye & Farnia eq. 5), its squared
and variance forms (SmoothGrad-squared, VarGrad: Adebayo et al. 2018, as Captum's ``NoiseTunnel`` ``nt_type``),
smoothed IG and Input × Gradient, and the smoothing of any batch-wise map.

σ: ``sigma`` is a fraction of the pixel range (:mod:`empirical.attribution.sigma`; ``pixel_range`` is the
range's width in model-input units, 1.0 by default: inputs in [0, 1]); Captum's ``stdevs`` gives it in
model-input units instead. Exactly one of the two.

From the engine's per-image mean :math:`\bar a` and M2 (sum of squared deviations) over the n draws:
smoothgrad :math:`\bar a`; smoothgrad_sq :math:`\frac{1}{n}\sum_d a_d^2 = \bar a^2 + M_2/n`; vargrad
:math:`M_2/n`, the population variance (ddof = 0) as in Captum, which computes
:math:`\frac{1}{n}\sum a_d^2 - \bar a^2`; ours has no cancellation.

Clipping: off unless ``clip=(lo, hi)`` is given; then every noisy input value is clamped to [lo, hi] and the
clamped values are counted per image (``return_clipped``), so that clipping cannot silently change what is
averaged (with inputs outside [lo, hi] it moves even a noise-free point).
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from empirical.attribution._checks import (
    SaliencyFn,
    _alias,
    _check_choice,
    _check_ids,
    _check_max_batch,
    _check_target,
    _check_x,
    _positive_int,
    _shape,
)
from empirical.attribution.engine import _engine, _perturb, _stderr, _target_grad
from empirical.attribution.gradient import input_x_gradient, vanilla_gradient
from empirical.attribution.inputs import Packed, eval_mode
from empirical.attribution.integrated_gradients import ig_quadrature, integrated_gradients
from empirical.attribution.sigma import resolve
from empirical.errors import UserError

BASES = ("vg", "ig", "ixg")
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _check_clip(clip):
    if clip is None:
        return None
    if not (isinstance(clip, (tuple, list)) and len(clip) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in clip)
            and clip[0] < clip[1]):
        raise UserError(f"clip must be None (no clipping) or a pair (lo, hi) of finite numbers with lo < hi, "
                        f"got {clip!r}")
    return float(clip[0]), float(clip[1])


def _check_common(nt_type, n_draws, nt_samples, return_stderr):
    _check_choice("nt_type", nt_type, NT_TYPES)
    n = _alias("nt_samples", nt_samples, "n_draws", n_draws, None)
    if n is None:
        raise UserError("the number of noise draws is required: pass nt_samples (or its alias n_draws)")
    n = _positive_int("nt_samples", n)
    if return_stderr and nt_type != "smoothgrad":
        raise UserError(f"return_stderr is the Monte-Carlo standard error of the mean map: nt_type 'smoothgrad' "
                        f"only, got {nt_type!r}")
    return n


class _Noisy:
    """x[n] + σ ε per chunk, clamped to ``clip`` when asked, with the clamped values counted per image (once per
    (image, draw): the path steps of a draw share its noisy point)."""

    def __init__(self, x, sig, noise, seed, ids, clip):
        self.x, self.sig, self.noise, self.seed, self.ids, self.clip = x, sig, noise, seed, ids, clip
        self.clipped = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)

    def __call__(self, n, d, s):
        p = _perturb(self.x, self.sig, n, d, self.noise, self.seed, self.ids)
        if self.clip is None:
            return p
        lo, hi = self.clip
        first = s == 0
        out = ((p < lo) | (p > hi)).flatten(1).sum(1)
        self.clipped.index_add_(0, n[first], out[first])
        return p.clamp(lo, hi)


def _finish(mean, m2, n_draws, nt_type):
    if nt_type == "smoothgrad":
        return mean
    var = m2 / n_draws  # population variance over the draws, as Captum's vargrad
    return var if nt_type == "vargrad" else mean ** 2 + var


def _plain_finish(plain, nt_type):
    """σ = 0: every draw is the plain map."""
    return plain if nt_type == "smoothgrad" else plain ** 2 if nt_type == "smoothgrad_sq" else torch.zeros_like(plain)


def smoothed(fn: SaliencyFn, x: torch.Tensor, target, sigma=None, n_draws: int | None = None, seed: int = 0,
             ids=None, noise: torch.Tensor | None = None, max_batch: int | None = None, return_stderr: bool = False,
             *, nt_type: str = "smoothgrad", nt_samples: int | None = None, stdevs=None, pixel_range=None,
             internal_batch_size: int | None = None, clip=None, return_clipped: bool = False):
    r"""Monte-Carlo Gaussian smoothing of any batch-wise map: :math:`\frac{1}{n}\sum_d \mathrm{fn}(x + z_d, y)`.

    ``fn(points [k, ...], target [k]) -> maps [k, ...]`` must treat rows independently (it is called on
    chunks of at most ``max_batch`` (image, draw) pairs). ``target``: an int, a 0-d tensor, a list or a
    tensor [N] (passed to ``fn`` as a long tensor). Noise level: ``sigma``, a fraction of the pixel range
    (``pixel_range``: its width in model-input units, default 1.0), or ``stdevs``, absolute; a number or a
    tensor [C] per channel. ``n_draws`` (alias of Captum's ``nt_samples``), ``nt_type``, ``clip`` and
    ``return_clipped`` as in :func:`smoothgrad`. Draws: :func:`draw_noise` (seed, ids), or ``noise`` = standard
    normal :math:`\varepsilon` of shape [N, n_draws, *x.shape[1:]]. σ = 0 returns ``fn(x, target)`` exactly
    (no draws; stderr zeros). Returns the map, then the Monte-Carlo standard error with ``return_stderr``,
    then the clipped-value counts [N] with ``return_clipped``.
    """
    _check_x(x)
    n_draws = _check_common(nt_type, n_draws, nt_samples, return_stderr)
    sig = Packed(fn, x).scale(resolve(sigma, stdevs, pixel_range, None))
    ids = torch.as_tensor(_check_ids(ids, x.shape[0]), dtype=torch.int64, device=x.device)
    max_batch = _check_max_batch(_alias("internal_batch_size", internal_batch_size, "max_batch", max_batch, None))
    clip = _check_clip(clip)
    noise = Packed(fn, x).noise(noise, n_draws)
    given = target
    target, _ = _check_target(x, target)
    rows = (lambda n: None) if given is None else (lambda n: target[n])  # fn sees None if the caller passed None
    noisy = _Noisy(x, sig, noise, seed, ids, clip)
    if not bool((sig != 0).any()):
        out = _plain_finish(_engine(x, lambda n, d, s: fn(x[n], rows(n)), 1, 1, max_batch)[0], nt_type)
        se = torch.zeros_like(out)
    else:
        mean, m2 = _engine(x, lambda n, d, s: fn(noisy(n, d, s), rows(n)), n_draws, 1, max_batch)
        out, se = _finish(mean, m2, n_draws, nt_type), _stderr(m2, n_draws)
    return _returns(out, se if return_stderr else None, noisy.clipped if return_clipped else None)


def _returns(out, se, clipped):
    extra = tuple(v for v in (se, clipped) if v is not None)
    return (out,) + extra if extra else out


def smoothgrad(model: nn.Module, inputs, target=None, sigma=None, n_draws: int | None = None, seed: int = 0,
               ids=None, noise=None, base: str = "vg", ig_steps: int | None = None, ig_rule: str | None = None,
               baseline=None, max_batch: int | None = None, return_stderr: bool = False, *,
               nt_type: str = "smoothgrad", nt_samples: int | None = None, stdevs=None, pixel_range=None,
               n_steps: int | None = None, method: str | None = None, baselines=None,
               internal_batch_size: int | None = None, abs: bool = False, multiply_by_inputs: bool = True,
               additional_forward_args=None, clip=None, return_clipped: bool = False,
               nt_samples_batch_size: int | None = None):
    r"""SmoothGrad :math:`\mathbb{E}_z[\mathrm{Sal}(x + z)]`, :math:`z_c \sim N(0, \sigma_c^2)` (Ye & Farnia eq. 5;
    Smilkov et al. 2017), by Monte Carlo over ``n_draws`` draws; shape of ``inputs`` (Captum's ``NoiseTunnel``).

    Noise level, exactly one of: ``sigma``, a FRACTION OF THE PIXEL RANGE (at most 1; ``pixel_range``: the
    range's width in model-input units, default 1.0 for inputs in [0, 1], a tensor [C] per channel for
    normalised inputs; see :mod:`empirical.attribution.sigma`), or ``stdevs``, ABSOLUTE in model-input units
    (Captum's name). Each a float or a tensor [C] per channel; per input for a tuple.
    ``nt_type``: "smoothgrad" (the mean), "smoothgrad_sq" (mean of squares), "vargrad" (variance, ddof 0).
    ``base``: Sal is the vanilla gradient ("vg"; ``abs`` takes its absolute value per draw, as Captum's
    ``Saliency``), Integrated Gradients ("ig") evaluated at :math:`x + z` with the baseline UNCHANGED, i.e.
    :math:`\mathbb{E}_z[\mathrm{IG}_{x_0}(x + z)]` (``baselines``/``baseline``, ``n_steps``/``ig_steps`` (50),
    ``method``/``ig_rule`` ("gausslegendre"), ``multiply_by_inputs`` as in :func:`integrated_gradients`), or
    Input × Gradient at :math:`x + z` ("ixg").
    Captum's names, our older ones as aliases: ``nt_samples``/``n_draws``, ``internal_batch_size``/``max_batch``
    (rows per forward/backward); Captum's ``nt_samples_batch_size`` (draws per forward) is taken as
    ``max_batch`` = nt_samples_batch_size · N · path steps when no row count is given (results do not depend
    on the batching beyond float rounding).
    ``inputs``, ``target``, ``additional_forward_args``: as :func:`vanilla_gradient`.
    Noise: draw d of image i is seeded by (seed, ids[i], d) (:func:`draw_noise`; ``ids`` defaults to
    ``arange(N)``), so it does not depend on the batch or ``max_batch``, and two networks given the same
    seed and ids see the same noise. ``noise``: explicit standard normal draws [N, n_draws, *x.shape[1:]]
    (z = σ ε; per input for a tuple). σ = 0 returns the unsmoothed map exactly, without drawing.
    ``clip=(lo, hi)``: clamp every noisy input to the range (off by default); ``return_clipped`` returns the
    number of clamped values per image [N]. With ``return_stderr`` (smoothgrad only) also the per-pixel
    Monte-Carlo standard error std_d / sqrt(n_draws) (ddof = 1). Returns the map, then stderr, then counts.

    Example:
        >>> lin = nn.Linear(3, 2)
        >>> x = torch.randn(4, 3)
        >>> t = torch.zeros(4, dtype=torch.long)
        >>> torch.allclose(smoothgrad(lin, x, t, sigma=0.5, n_draws=8), vanilla_gradient(lin, x, t))
        True
    """
    _check_choice("base", base, BASES)
    n_draws = _check_common(nt_type, n_draws, nt_samples, return_stderr)
    ig_steps = _alias("n_steps", n_steps, "ig_steps", ig_steps, 50)
    ig_rule = _alias("method", method, "ig_rule", ig_rule, "gausslegendre")
    baselines = _alias("baselines", baselines, "baseline", baseline, None)
    max_batch = _check_max_batch(_alias("internal_batch_size", internal_batch_size, "max_batch", max_batch, None))
    if nt_samples_batch_size is not None:
        per = _positive_int("nt_samples_batch_size", nt_samples_batch_size)
        max_batch = max_batch or per * _rows(inputs) * (ig_steps if base == "ig" else 1)
    packed = Packed(model, inputs, additional_forward_args)
    x = packed.x
    sig = packed.scale(resolve(sigma, stdevs, pixel_range, len(packed.parts) if packed.is_tuple else None))
    ids = torch.as_tensor(_check_ids(ids, x.shape[0]), dtype=torch.int64, device=x.device)
    alphas, weights = ig_quadrature(ig_steps, ig_rule, x.dtype, x.device)
    x0 = packed.baselines(baselines)
    noise = packed.noise(noise, n_draws)
    clip = _check_clip(clip)
    noisy = _Noisy(x, sig, noise, seed, ids, clip)
    if not bool((sig != 0).any()):
        kw = dict(additional_forward_args=additional_forward_args, max_batch=max_batch)
        plain = (vanilla_gradient(model, inputs, target, abs=abs, **kw) if base == "vg" else
                 input_x_gradient(model, inputs, target, **kw) if base == "ixg" else
                 integrated_gradients(model, inputs, target, baselines, ig_steps, ig_rule,
                                      multiply_by_inputs=multiply_by_inputs, **kw))
        out = packed.maps(_plain_finish(_flat(packed, plain), nt_type))
        zeros = packed.maps(torch.zeros_like(x))
        return _returns(out, zeros if return_stderr else None, noisy.clipped if return_clipped else None)
    with eval_mode(model):
        target, hi = _check_target(x, target)
        if base in ("vg", "ixg"):
            def evaluate(n, d, s):
                p = noisy(n, d, s)
                g = _target_grad(packed.at(n), p, target[n], hi)
                return g * p if base == "ixg" else g.abs() if abs else g
            steps = 1
        else:
            def evaluate(n, d, s):
                p = noisy(n, d, s)
                diff = p - x0[n]
                a = alphas[s].view((-1,) + (1,) * (x.dim() - 1))
                g = weights[s].view_as(a) * _target_grad(packed.at(n), x0[n] + a * diff, target[n], hi)
                return g * diff if multiply_by_inputs else g
            steps = len(alphas)
        mean, m2 = _engine(x, evaluate, n_draws, steps, max_batch)
    out = packed.maps(_finish(mean, m2, n_draws, nt_type))
    se = packed.maps(_stderr(m2, n_draws)) if return_stderr else None
    return _returns(out, se, noisy.clipped if return_clipped else None)


def _rows(inputs) -> int:
    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1


def _flat(packed: Packed, maps) -> torch.Tensor:
    """Maps in the caller's form → the packed form (inverse of :meth:`Packed.maps`)."""
    if not packed.is_tuple:
        return maps
    return torch.cat([m.reshape(packed.n, -1) for m in maps], 1)
