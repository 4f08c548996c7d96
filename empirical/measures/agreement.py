r"""Metrics on saliency maps, batched over images in torch, and the statistics reported with them.

Maps are tensors shaped ``(N, C, H, W)`` (``(N, ...)`` where only a per-image norm is needed); every
metric returns one value per image, shape ``(N,)``, on the input's device. Nothing loops over images in
Python.

Agreement between two maps (Ye & Farnia 2025, AISTATS, "Gaussian smoothing in saliency maps"):

- :func:`stability_error`: :math:`\|Sal_{A(S_1)}(x) - Sal_{A(S_2)}(x)\|_2`, the disjoint-split proxy of eq. 12.
- :func:`fidelity_error`: :math:`\|\mathbb{E}_z Sal(x + z) - Sal(x)\|_2`, the fidelity proxy of eq. 13.
- :func:`ssim`: structural similarity (Wang et al. 2004), sec. 5.3 and Table 1.
- :func:`topk_intersection`, :func:`topk_iou`: overlap of the k most salient pixels; sec. 5.3 uses
  "top-k mIoU" with k = 500 (the mean over images of :func:`topk_iou`).

Statistics: :func:`summarize` (mean, std, bootstrap interval over units via :mod:`empirical.stats`) and :func:`fit_power_law` (log-log exponent).

The quality of one map (Gini, RIS/ROS/RRS, ROAD) lives in :mod:`empirical.measures`.

Choices made here, where the papers leave them open:

- Channel reduction (``reduce_channels``) before SSIM and top-k: ``"sum_abs"`` (default:
  :math:`\sum_c |m_c|`, one non-negative 2-D map per image, as saliency maps are usually displayed),
  ``"abs_max"`` (:math:`\max_c |m_c|`), ``"mean"`` (signed channel mean) or ``"none"`` (keep channels: SSIM is
  averaged over channels as skimage does with ``channel_axis``; top-k ranks the C·H·W elements).
- SSIM window: 7×7 uniform with the sample covariance (N/(N−1)), K1 = 0.01, K2 = 0.03, statistics taken only
  where the window fits inside the map ("valid"), which is skimage's ``structural_similarity`` default (the
  one Adebayo et al. 2018 and most saliency code use). ``window="gaussian"`` gives Wang et al.'s 11×11
  Gaussian, σ = 1.5 (skimage's ``gaussian_weights=True, use_sample_covariance=False``: truncate 3.5). skimage filters
  with reflected borders and then crops (win − 1)/2 pixels per side before averaging, so its mean SSIM
  equals our valid-window mean exactly; no border rule enters.
- SSIM map normalisation is explicit, and ``data_range`` follows from it: ``"minmax"`` rescales each reduced
  map to [0, 1] (data_range 1), ``"maxabs"`` divides it by its largest magnitude, into [−1, 1] (data_range 2),
  ``"none"`` leaves it alone and then needs ``data_range``. A constant (e.g. all-zero) map normalises to zeros.
  With a normalisation SSIM is invariant to scaling either map by a positive constant. The published code fed
  unnormalised gradient maps with a data_range meant for [−1, 1]; since gradients are ~1e-3, the constants
  :math:`C_1, C_2` then dominate and SSIM is pushed towards 1 regardless of structure.
- NaN or Inf in a map is an error (a one-line :class:`~empirical.errors.UserError` naming the argument, the
  count and the first image), in every metric here and in :mod:`empirical.measures` (Gini, RIS/ROS/RRS, ROAD):
  never a score. Comparisons such as ``x > 0`` treat NaN as zero, so without this rule a NaN map scored as a
  perfect match (SSIM 1, top-k IoU 1, Gini 0). Erroring, not NaN-with-a-count, because a NaN map means the
  network or the explanation is broken (e.g. a diverged training), which no aggregate should absorb.
- Top-k ranking: by :math:`|v|` (``signed=False``) or by :math:`v` (``signed=True``), largest first; ties go
  to the lower flat index (a stable descending sort), so the selected set is a deterministic function of the
  map and exactly k elements are taken.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from empirical.errors import UserError

REDUCTIONS = ("sum_abs", "abs_max", "mean", "none")
SSIM_NORMALIZATIONS = ("minmax", "maxabs", "none")
SSIM_WINDOWS = ("uniform", "gaussian")


# --------------------------------------------------------------------------- checks and shared pieces
def check_finite(maps: torch.Tensor, name: str = "maps") -> None:
    """The module's NaN/Inf rule (see its docstring): a one-line error naming ``name``, the count and the first
    image holding one. One reduction over the map; the message is built only when the check fails."""
    if maps.is_floating_point() or maps.is_complex():
        bad = ~torch.isfinite(maps)
        if bool(bad.any()):
            per_image = bad.reshape(bad.shape[0], -1).sum(1) if bad.dim() > 0 else bad.view(1)
            first = int(torch.nonzero(per_image).flatten()[0])
            raise UserError(f"{name} hold {int(bad.sum())} NaN/inf value(s) of {maps.numel()} (first in image "
                            f"{first}); a map must be finite to be scored")


def _check_pair(a: torch.Tensor, b: torch.Tensor, min_dim: int = 2) -> None:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise UserError(f"expected two tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise UserError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < min_dim:
        raise UserError(f"maps must be shaped (N, ...) with at least {min_dim} dimensions, got {tuple(a.shape)}")
    check_finite(a, "map a")
    check_finite(b, "map b")


def _check_choice(name: str, value, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UserError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def collapse_channels(maps: torch.Tensor, mode: str = "sum_abs") -> torch.Tensor:
    """Collapse the channel axis of ``(N, C, H, W)`` maps to ``(N, 1, H, W)`` (``mode="none"``: unchanged).

    ``"sum_abs"``: :math:`\\sum_c |m_c|`; ``"abs_max"``: :math:`\\max_c |m_c|`; ``"mean"``: :math:`\\frac1C\\sum_c m_c`.
    A 3-D input ``(N, H, W)`` is taken as one channel.
    """
    _check_choice("reduce_channels", mode, REDUCTIONS)
    if maps.dim() == 3:
        maps = maps.unsqueeze(1)
    if maps.dim() != 4:
        raise UserError(f"maps must be shaped (N, C, H, W) or (N, H, W), got {tuple(maps.shape)}")
    if mode == "sum_abs":
        return maps.abs().sum(1, keepdim=True)
    if mode == "abs_max":
        return maps.abs().amax(1, keepdim=True)
    if mode == "mean":
        return maps.mean(1, keepdim=True)
    return maps


def _l2(x: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm of ``(N, ...)``, as max|x| · ‖x / max|x|‖ (the scaling of BLAS nrm2): squaring a finite
    map can overflow (|x| > 1.8e19 in float32, e.g. the input gradient of a network with huge weights) or underflow
    (|x| < 1e-19), and a plain norm then reads inf or 0 for a finite non-zero map. Inf only if the norm itself
    exceeds the dtype's range."""
    flat = x.flatten(1)
    top = flat.abs().amax(1, keepdim=True) if flat.shape[1] else flat.new_zeros(flat.shape[0], 1)
    safe = torch.where(top > 0, top, torch.ones_like(top))
    return (flat / safe).norm(dim=1) * top.squeeze(1)


def _unit_l2(x: torch.Tensor) -> torch.Tensor:
    """Each image scaled to unit L2 norm; an all-zero image stays zero (it has no direction to keep). Scaled by
    its largest magnitude first, so a huge or tiny (but finite, non-zero) map still gets its direction, not 0."""
    shape = (-1, *([1] * (x.dim() - 1)))
    top = x.flatten(1).abs().amax(1).view(shape)
    x = torch.where(top > 0, x / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(x))
    norm = x.flatten(1).norm(dim=1).view(shape)
    return torch.where(norm > 0, x / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(x))


# --------------------------------------------------------------------------- L2 errors (Ye & Farnia eqs. 12-13)
def stability_error(a: torch.Tensor, b: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    r"""Per-image :math:`\|a - b\|_2` between the maps of two networks: the proxy of Ye & Farnia eq. 12.

    ``a``, ``b``: ``(N, ...)`` maps of the same images from networks trained on disjoint splits
    :math:`S_1, S_2`; returns ``(N,)``. The paper's :math:`\mathbb{E}_{(x,y)\sim D}` is the mean of the result.

    ``normalize=True`` first scales each map to unit L2 norm, so the error measures a difference of
    direction only (between 0 and 2); an all-zero map stays zero, so its error against a unit map is 1.
    """
    _check_pair(a, b)
    if normalize:
        a, b = _unit_l2(a), _unit_l2(b)
    return _l2(a - b)


def fidelity_error(smoothed: torch.Tensor, plain: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    r"""Per-image :math:`\|\mathbb{E}_{z\sim N(0,\sigma^2 I)} Sal(x+z) - Sal(x)\|_2`: Ye & Farnia eq. 13.

    ``smoothed``: the σ-smoothed maps (the Monte-Carlo mean over z), ``plain``: the unsmoothed maps of the
    same network, both ``(N, ...)``; returns ``(N,)``. Eq. 13 also averages over the two networks i = 1, 2:
    average two calls. ``normalize`` as in :func:`stability_error`. σ is whatever the smoothed maps were made
    with (this library states it as a fraction of the pixel range: :mod:`empirical.attribution.sigma`).
    """
    return stability_error(smoothed, plain, normalize)


# --------------------------------------------------------------------------- SSIM (Wang et al. 2004)
def _ssim_kernel(window: str, win_size: int, dtype, device) -> torch.Tensor:
    if window == "uniform":
        return torch.full((win_size, win_size), 1.0 / win_size**2, dtype=dtype, device=device)
    # skimage: sigma 1.5, truncate 3.5 -> radius int(3.5 * 1.5 + 0.5) = 5; we let win_size set the radius.
    r = torch.arange(win_size, dtype=torch.float64, device=device) - (win_size - 1) / 2
    g = torch.exp(-(r**2) / (2 * 1.5**2))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype)


def _normalize_maps(m: torch.Tensor, mode: str) -> torch.Tensor:
    """Per image and channel: minmax to [0, 1] or maxabs to [−1, 1]; constant maps become zeros."""
    if mode == "none":
        return m
    flat = m.flatten(2)
    if mode == "minmax":
        lo = flat.amin(2, keepdim=True)
        span = flat.amax(2, keepdim=True) - lo
        out = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)
    else:
        top = flat.abs().amax(2, keepdim=True)
        out = torch.where(top > 0, flat / torch.where(top > 0, top, torch.ones_like(top)), 0.0)
    return out.view_as(m)


def ssim(a: torch.Tensor, b: torch.Tensor, normalize: str = "minmax", data_range: float | None = None,
         reduce_channels: str = "sum_abs", window: str = "uniform", win_size: int | None = None,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    r"""Mean structural similarity per image (Wang et al. 2004, eq. 13), as in Ye & Farnia sec. 5.3.

    .. math:: SSIM(a, b) = \mathrm{mean}_{windows}
              \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}{(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)},
              \quad C_i = (K_i \cdot \mathrm{data\_range})^2.

    ``a``, ``b``: ``(N, C, H, W)`` (or ``(N, H, W)``); returns ``(N,)`` in [−1, 1], 1 when the (reduced,
    normalised) maps are equal. Steps: channels are reduced (``reduce_channels``, see the module docstring),
    each map is normalised (``normalize``: ``"minmax"`` → [0, 1], data_range 1; ``"maxabs"`` → [−1, 1],
    data_range 2; ``"none"`` → as is, ``data_range`` required), windowed statistics are taken over every
    position where the window fits, and their SSIM is averaged (and averaged over channels for
    ``reduce_channels="none"``).

    ``window="uniform"``: ``win_size`` × ``win_size`` box (default 7) with sample covariances (skimage's
    default). ``window="gaussian"``: Gaussian weights σ = 1.5 on ``win_size`` (default 11) taps, population
    covariances (Wang et al.; skimage ``gaussian_weights=True``). Maps must be at least ``win_size`` on a side.
    """
    _check_pair(a, b, min_dim=3)
    _check_choice("normalize", normalize, SSIM_NORMALIZATIONS)
    _check_choice("window", window, SSIM_WINDOWS)
    derived = {"minmax": 1.0, "maxabs": 2.0}.get(normalize)
    if normalize == "none":
        if data_range is None or not (isinstance(data_range, (int, float)) and math.isfinite(data_range)
                                      and data_range > 0):
            raise UserError(f"normalize='none' needs a positive finite data_range, got {data_range!r}")
    elif data_range is not None and data_range != derived:
        raise UserError(f"data_range {data_range!r} contradicts normalize={normalize!r}, which implies "
                        f"data_range {derived}; pass data_range=None")
    data_range = float(data_range if derived is None else derived)
    if win_size is None:
        win_size = 7 if window == "uniform" else 11
    if not (isinstance(win_size, int) and win_size >= 3 and win_size % 2 == 1):
        raise UserError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    dt = torch.promote_types(a.dtype, b.dtype)
    dt = dt if dt.is_floating_point else torch.get_default_dtype()
    a, b = a.to(dt), b.to(dt)
    ra, rb = collapse_channels(a, reduce_channels), collapse_channels(b, reduce_channels)
    n, c, h, w = ra.shape
    if h < win_size or w < win_size:
        raise UserError(f"SSIM with a {win_size}×{win_size} window needs maps at least that size, got {h}×{w}")
    x = _normalize_maps(ra, normalize).reshape(n * c, 1, h, w)
    y = _normalize_maps(rb, normalize).reshape(n * c, 1, h, w)
    kern = _ssim_kernel(window, win_size, x.dtype, x.device).view(1, 1, win_size, win_size)
    # One conv for all five moments: stack them as a batch rather than looping.
    stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y]), kern).view(5, n * c, -1)
    mx, my, mxx, myy, mxy = stats
    cov_norm = win_size**2 / (win_size**2 - 1) if window == "uniform" else 1.0
    vx, vy, vxy = cov_norm * (mxx - mx * mx), cov_norm * (myy - my * my), cov_norm * (mxy - mx * my)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(1).view(n, c).mean(1)



# --------------------------------------------------------------------------- top-k overlap
def topk_indices(maps: torch.Tensor, k: int, reduce_channels: str = "sum_abs", signed: bool = False) -> torch.Tensor:
    """Flat indices ``(N, k)`` of the k most salient elements of each reduced map, most salient first.

    Ranked by ``|v|`` (or ``v`` if ``signed``), largest first; among equal values the lower flat index comes
    first (stable descending sort), so the set is deterministic and has exactly k elements. ``signed`` only
    matters for a signed reduction (``"mean"``, ``"none"``): ``"sum_abs"`` and ``"abs_max"`` are already >= 0.
    """
    check_finite(maps)
    flat = collapse_channels(maps, reduce_channels).flatten(1)
    d = flat.shape[1]
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= d):
        raise UserError(f"k must be an integer in [1, {d}] (the number of ranked elements), got {k!r}")
    score = flat if signed else flat.abs()
    return torch.sort(score, dim=1, descending=True, stable=True).indices[:, :k]


def _topk_overlap(a, b, k, reduce_channels, signed) -> torch.Tensor:
    _check_pair(a, b, min_dim=3)
    ia, ib = topk_indices(a, k, reduce_channels, signed), topk_indices(b, k, reduce_channels, signed)
    d = collapse_channels(a, reduce_channels)[0].numel()
    mask = torch.zeros(a.shape[0], d, dtype=torch.bool, device=a.device)
    in_a = mask.scatter(1, ia, True)
    return in_a.gather(1, ib).sum(1)


def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int, reduce_channels: str = "sum_abs",
                      signed: bool = False) -> torch.Tensor:
    r"""Fraction of the k most salient pixels that two maps share: :math:`|A_k \cap B_k| / k`, shape ``(N,)``.

    The top-k intersection of Ghorbani et al. 2019 (used by Sarkar et al. 2021). ``reduce_channels="none"``
    ranks individual channel elements instead of pixels. Ranking and tie-break: see :func:`topk_indices`.
    """
    inter = _topk_overlap(a, b, k, reduce_channels, signed)
    return inter.to(torch.get_default_dtype()) / k


def topk_iou(a: torch.Tensor, b: torch.Tensor, k: int, reduce_channels: str = "sum_abs",
             signed: bool = False) -> torch.Tensor:
    r"""Intersection over union of the k most salient pixels: :math:`|A_k\cap B_k| / |A_k\cup B_k|`, ``(N,)``.

    Ye & Farnia sec. 5.3, "top-k mIoU" with k = 500 (its mean over images). Since :math:`|A_k| = |B_k| = k`,
    the union is :math:`2k - |A_k\cap B_k|`. Ranking and tie-break: see :func:`topk_indices`.
    """
    inter = _topk_overlap(a, b, k, reduce_channels, signed).to(torch.get_default_dtype())
    return inter / (2 * k - inter)


# --------------------------------------------------------------------------- statistics
def _as_float_array(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{name} must be finite; got {int((~np.isfinite(arr)).sum())} NaN/inf of {arr.size}")
    return arr


def summarize(values, confidence: float = 0.95, unit: str = "unit") -> dict:
    r"""Mean, sample std (ddof = 1), n, and the project's bootstrap interval of the mean, as plain numbers.

    One statistics standard across the project (:mod:`empirical.stats`, docs/statistics.md): the values are
    independent *units* (model pairs, replicas, seeds: average per-image values within a unit first), and the
    interval is a bootstrap over them — expanded percentile below 10 units, BCa from 10 — not a t-interval,
    because the per-unit values here (stability errors, leave-one-out distances) are skewed and heavy-tailed.
    With n = 1 the std, sem and interval are NaN (undefined), not 0. Also returns ``sem``, ``confidence``,
    ``method`` (the interval's name) and ``unit``.
    """
    from empirical import stats

    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise UserError(f"confidence must be in (0, 1), got {confidence!r}")
    v = _as_float_array(values, "values")
    n = v.size
    if n == 0:
        raise UserError("summarize needs at least one value, got none")
    b = stats.summarize(v, unit=unit, confidence=confidence)
    nan = float("nan")
    std = float(v.std(ddof=1)) if n > 1 else nan
    return {"mean": float(v.mean()), "std": std, "sem": std / math.sqrt(n) if n > 1 else nan, "n": int(n),
            "ci_low": b.ci_low, "ci_high": b.ci_high, "confidence": confidence, "method": b.method, "unit": unit}


def fit_power_law(x, y, confidence: float = 0.95) -> dict:
    r"""Least-squares fit of :math:`\log y = \log c + \beta \log x`: the exponent of :math:`y \approx c\,x^\beta`.

    Used for the fitted exponents of stability and fidelity error against σ. Points with x = 0 (the unsmoothed
    baseline, σ = 0) have no logarithm and are DROPPED (``n_dropped`` counts them); every other x and every
    y of a kept point must be positive. Repeated x (several seeds per σ) are fine: each point counts once.

    Returns ``exponent`` (β), ``stderr`` (its OLS standard error, :math:`\sqrt{\hat s^2 / S_{xx}}` with
    n − 2 degrees of freedom), ``ci_low, ci_high`` (β ∓ t_{(1+γ)/2, n−2} · stderr), ``prefactor`` (c),
    ``r2``, ``n`` (points used) and ``n_dropped``. With 2 points the line is exact: stderr and the interval
    are NaN.
    """
    from scipy import stats

    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise UserError(f"confidence must be in (0, 1), got {confidence!r}")
    xs, ys = _as_float_array(x, "x"), _as_float_array(y, "y")
    if xs.shape != ys.shape:
        raise UserError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    if np.any(xs < 0):
        raise UserError(f"x must be >= 0 (x = 0 points are dropped), got min {xs.min()}")
    keep = xs > 0
    if np.any(ys[keep] <= 0):
        raise UserError(f"y must be > 0 where x > 0 to take logs, got min {ys[keep].min()}")
    lx, ly = np.log(xs[keep]), np.log(ys[keep])
    n = lx.size
    if n < 2 or np.ptp(lx) == 0:
        raise UserError(f"a power-law fit needs at least 2 distinct positive x values, got {np.unique(lx).size}")
    mx, my = lx.mean(), ly.mean()
    sxx = float(((lx - mx) ** 2).sum())
    beta = float(((lx - mx) * (ly - my)).sum() / sxx)
    alpha = my - beta * mx
    resid = ly - alpha - beta * lx
    syy = float(((ly - my) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / syy if syy > 0 else 1.0
    if n > 2:
        se = math.sqrt(float((resid**2).sum()) / (n - 2) / sxx)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * se
    else:
        se = half = float("nan")
    return {"exponent": beta, "stderr": se, "ci_low": beta - half, "ci_high": beta + half,
            "prefactor": float(math.exp(alpha)), "r2": r2, "n": int(n), "n_dropped": int((~keep).sum()),
            "confidence": confidence}
