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

Statistics: :func:`summarize` (mean, std, t-interval) and :func:`fit_power_law` (log-log exponent).

Quality of one map (Bhusal et al., "feature-map smoothing", sec. 4.1 and appendix I), each checked against
Quantus 0.6 in tests/test_quality_metrics.py, following the papers where Quantus differs:

- :func:`gini`: sparseness (Chalasani et al. 2020), eq. 39.
- :func:`relative_input_stability`, :func:`relative_output_stability`, :func:`relative_representation_stability`:
  RIS, ROS, RRS (Agarwal et al. 2022), eqs. 40-42, over seeded L∞-ball perturbations.
- :func:`road`, :func:`road_auc`: ROAD with noisy linear imputation (Rong et al. 2022) and the paper's AUC.

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
- Top-k ranking: by :math:`|v|` (``signed=False``) or by :math:`v` (``signed=True``), largest first; ties go
  to the lower flat index (a stable descending sort), so the selected set is a deterministic function of the
  map and exactly k elements are taken.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from empirical.errors import UserError

REDUCTIONS = ("sum_abs", "abs_max", "mean", "none")
SSIM_NORMALIZATIONS = ("minmax", "maxabs", "none")
SSIM_WINDOWS = ("uniform", "gaussian")


# --------------------------------------------------------------------------- checks and shared pieces
def _check_pair(a: torch.Tensor, b: torch.Tensor, min_dim: int = 2) -> None:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise UserError(f"expected two tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise UserError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < min_dim:
        raise UserError(f"maps must be shaped (N, ...) with at least {min_dim} dimensions, got {tuple(a.shape)}")


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


def _unit_l2(x: torch.Tensor) -> torch.Tensor:
    """Each image scaled to unit L2 norm; an all-zero image stays zero (it has no direction to keep)."""
    norm = x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))
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
    return (a - b).flatten(1).norm(dim=1)


def fidelity_error(smoothed: torch.Tensor, plain: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    r"""Per-image :math:`\|\mathbb{E}_{z\sim N(0,\sigma^2 I)} Sal(x+z) - Sal(x)\|_2`: Ye & Farnia eq. 13.

    ``smoothed``: the σ-smoothed maps (the Monte-Carlo mean over z), ``plain``: the unsmoothed maps of the
    same network, both ``(N, ...)``; returns ``(N,)``. Eq. 13 also averages over the two networks i = 1, 2:
    average two calls. ``normalize`` as in :func:`stability_error`.
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


def summarize(values, confidence: float = 0.95) -> dict:
    r"""Mean, sample std (ddof = 1), n, and the t-interval of the mean, as a dict of plain numbers.

    ``ci_low, ci_high`` :math:`= \bar v \mp t_{(1+\gamma)/2,\,n-1}\, s/\sqrt n` (Student's t, scipy.stats.t),
    which assumes independent values (average per-image values within a pair first if pairs are the unit).
    With n = 1 the std, sem and interval are NaN (undefined), not 0. Also returns ``sem`` and ``confidence``.
    """
    from scipy import stats

    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise UserError(f"confidence must be in (0, 1), got {confidence!r}")
    v = _as_float_array(values, "values")
    n = v.size
    if n == 0:
        raise UserError("summarize needs at least one value, got none")
    mean = float(v.mean())
    if n < 2:
        nan = float("nan")
        return {"mean": mean, "std": nan, "sem": nan, "n": 1, "ci_low": nan, "ci_high": nan, "confidence": confidence}
    std = float(v.std(ddof=1))
    sem = std / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return {"mean": mean, "std": std, "sem": sem, "n": int(n), "ci_low": mean - half, "ci_high": mean + half,
            "confidence": confidence}


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


# --------------------------------------------------------------------------- sparseness (Chalasani et al. 2020)
def gini(maps: torch.Tensor) -> torch.Tensor:
    r"""Gini index of :math:`|\phi(x)|` per image (Chalasani et al. 2020; Hurley & Rickard 2009), shape ``(N,)``.

    Bhusal et al. appendix I.1, eq. 39, with :math:`|\phi|_{(1)} \le \dots \le |\phi|_{(d)}` sorted ascending:

    .. math:: G = 1 - 2\sum_{k=1}^{d} \frac{|\phi|_{(k)}}{\|\phi\|_1}\,\frac{d - k + 0.5}{d}
                = \frac{\sum_k (2k - d - 1)\,|\phi|_{(k)}}{d\,\|\phi\|_1}.

    All C·H·W elements of each map count (no channel reduction). A map with one non-zero element scores
    (d − 1)/d, a constant map 0; an all-zero map, where eq. 39 is 0/0, is given 0. Gini is invariant to
    scaling the map. quantus.Sparseness computes the same closed form but on ``|φ|/max|φ| + 1e-7`` (it adds
    1e-7 to every element), which lowers the index by a relative ≈ d·1e-7 / mean(|φ|/max|φ|).
    """
    if maps.dim() < 2:
        raise UserError(f"maps must be shaped (N, ...) with at least 2 dimensions, got {tuple(maps.shape)}")
    a = torch.sort(maps.flatten(1).abs(), dim=1).values
    d = a.shape[1]
    k = torch.arange(1, d + 1, device=a.device, dtype=a.dtype)
    total = a.sum(1)
    num = ((2 * k - d - 1) * a).sum(1)
    return torch.where(total > 0, num / (d * torch.where(total > 0, total, torch.ones_like(total))), 0.0)


# --------------------------------------------------------------------------- counter-based random numbers
_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    # (x · c) mod 2^32 from 16-bit halves, so no int64 product can overflow on any device.
    return ((x & 0xFFFF) * c + ((((x >> 16) * c) & 0xFFFF) << 16)) & _M32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 integer hash on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def keyed_uniform(seed: int, ids: torch.Tensor, offset, count: int, dtype=torch.float32) -> torch.Tensor:
    """Uniform numbers in (0, 1), shape ``(len(ids), count)``: entry j of row i is a function of (seed, ids[i], offset + j).

    A counter-based generator (hash of the key and the position), so each image's stream depends only on
    its id: results do not change with batch size, batch composition or device. 24-bit resolution.
    ``offset``: one int for all rows, or one per row (a ``(len(ids),)`` integer tensor).
    """
    ids = ids.to(torch.int64)
    k1 = _hash32((ids ^ _hash32(torch.tensor(int(seed) & _M32, device=ids.device))) & _M32)
    k2 = _hash32((k1 + 0x9E3779B9) & _M32)
    off = torch.as_tensor(offset, device=ids.device, dtype=torch.int64).reshape(-1, 1)
    ctr = off + torch.arange(count, device=ids.device, dtype=torch.int64)[None, :]
    h = _hash32((_hash32((ctr ^ k1[:, None]) & _M32) + k2[:, None]) & _M32)
    return ((h >> 8).to(torch.float64) + 0.5).div(2.0**24).to(dtype)


def _keyed_normal(seed: int, ids: torch.Tensor, offset, count: int, dtype) -> torch.Tensor:
    u = keyed_uniform(seed, ids, 2 * offset, 2 * count, torch.float64).view(len(ids), count, 2)
    return (torch.sqrt(-2 * torch.log(u[..., 0])) * torch.cos(2 * math.pi * u[..., 1])).to(dtype)


def _image_ids(ids, n: int, device) -> torch.Tensor:
    if ids is None:
        return torch.arange(n, device=device)
    ids = torch.as_tensor(ids, device=device)
    if ids.shape != (n,):
        raise UserError(f"ids must have shape ({n},), one per image, got {tuple(ids.shape)}")
    return ids


# --------------------------------------------------------------------------- relative stability (Agarwal et al. 2022)
class StabilityResult(NamedTuple):
    score: torch.Tensor  # (N,) max of the ratio over kept perturbations; NaN where none was kept
    n_excluded: torch.Tensor  # (N,) perturbations left out because they changed the predicted class
    n_samples: int  # perturbations drawn per image


def linf_ball_perturbations(x: torch.Tensor, radius: float, sample: int, n_samples: int, seed: int = 0,
                            ids=None, clip: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    r"""Perturbations ``sample .. sample + n_samples − 1`` of each image: :math:`x' = \mathrm{clip}(x + u)`,
    :math:`u \sim U[-r, r]^d` i.i.d. per element (uniform in the L∞ ball of radius r), clipped to the data range.

    Returns ``(n_samples, N, ...)``. Drawn with :func:`keyed_uniform` keyed by (seed, image id, sample, element).
    """
    n = x.shape[0]
    d = x[0].numel()
    ids = _image_ids(ids, n, x.device)
    u = keyed_uniform(seed, ids, sample * d, n_samples * d, x.dtype)  # (N, S·d)
    u = u.view(n, n_samples, *x.shape[1:]).transpose(0, 1)
    xp = x.unsqueeze(0) + radius * (2 * u - 1)
    return xp if clip is None else xp.clamp(*clip)


def _relative_change(v: torch.Tensor, vp: torch.Tensor, p: float) -> torch.Tensor:
    r""":math:`\|(v - v')/v\|_p` over the last axis, leaving out entries with v = 0 (their relative change is undefined)."""
    nz = v != 0
    ratio = torch.where(nz, (v - vp) / torch.where(nz, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.linalg.vector_norm(ratio, ord=p, dim=-1)


def _relative_stability(kind, explain, model, x, target, representation, radius, n_samples, eps_min, p, seed, ids,
                        clip, batch_size, output, relative_representation):
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise UserError(f"x must be a tensor shaped (N, ...), got {getattr(x, 'shape', type(x))}")
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius >= 0):
        raise UserError(f"radius must be a finite number >= 0 (L∞ radius in input units), got {radius!r}")
    if not (isinstance(n_samples, int) and n_samples >= 1):
        raise UserError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    if not (isinstance(eps_min, (int, float)) and eps_min > 0):
        raise UserError(f"eps_min must be > 0, got {eps_min!r}")
    if not (p == math.inf or (isinstance(p, (int, float)) and p >= 1)):
        raise UserError(f"p must be >= 1 or inf, got {p!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise UserError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if output not in ("logits", "probs"):
        raise UserError(f"unknown output {output!r}; valid: logits, probs")
    if clip is not None and not clip[0] < clip[1]:
        raise UserError(f"clip must be (low, high) with low < high, got {clip!r}")
    n = x.shape[0]
    ids = _image_ids(ids, n, x.device)

    def head(v):
        with torch.no_grad():
            z = model(v)
        return z, (z if output == "logits" else z.softmax(-1))

    z0, h0 = head(x)
    pred0 = z0.argmax(-1)
    target = pred0 if target is None else torch.as_tensor(target, device=x.device)
    if target.shape != (n,):
        raise UserError(f"target must have shape ({n},), got {tuple(target.shape)}")
    e0 = explain(x, target).detach().flatten(1)
    if kind == "input":
        ref0 = x.flatten(1)
    elif kind == "representation":
        with torch.no_grad():
            ref0 = representation(x).flatten(1)
    best = torch.full((n,), -math.inf, dtype=e0.dtype, device=x.device)
    excluded = torch.zeros(n, dtype=torch.int64, device=x.device)
    per_chunk = max(1, batch_size // n)
    for s0 in range(0, n_samples, per_chunk):
        cs = min(per_chunk, n_samples - s0)
        xp = linf_ball_perturbations(x, radius, s0, cs, seed, ids, clip).reshape(cs * n, *x.shape[1:])
        zp, hp = head(xp)
        flip = (zp.argmax(-1) != pred0.repeat(cs)).view(cs, n)
        ep = explain(xp, target.repeat(cs)).detach().view(cs, n, -1)
        num = _relative_change(e0.unsqueeze(0), ep, p)
        if kind == "input":
            den = _relative_change(ref0.unsqueeze(0), xp.view(cs, n, -1), p)
        elif kind == "output":
            den = torch.linalg.vector_norm(h0.unsqueeze(0) - hp.view(cs, n, -1), ord=p, dim=-1)
        else:
            with torch.no_grad():
                rp = representation(xp).reshape(cs, n, -1)
            den = (_relative_change(ref0.unsqueeze(0), rp, p) if relative_representation
                   else torch.linalg.vector_norm(ref0.unsqueeze(0) - rp, ord=p, dim=-1))
        ratio = num / den.clamp_min(eps_min)
        ratio = torch.where(flip, torch.full_like(ratio, -math.inf), ratio.to(best.dtype))
        best = torch.maximum(best, ratio.amax(0))
        excluded += flip.sum(0)
    score = torch.where(torch.isinf(best) & (best < 0), torch.full_like(best, math.nan), best)
    return StabilityResult(score, excluded, n_samples)


_STABILITY_DOC = r"""

    ``explain(x, target) -> maps``: batched explanation function (``(B, ...)`` inputs and ``(B,)`` class
    indices to ``(B, ...)`` maps); ``model(x) -> logits``. ``target`` (default: the predicted class at x) is
    explained at x and at every x'. Perturbations (:func:`linf_ball_perturbations`): ``n_samples`` draws per
    image, uniform in the L∞ ball of radius ``radius`` around x, clipped to ``clip`` (the data range); draws are
    keyed by (``seed``, image id in ``ids``, sample index), so scores do not depend on batch size or
    composition. ``batch_size`` bounds the number of perturbed images per call of ``explain``/``model``.
    A perturbation that changes the predicted class is left out of the max (the paper's constraint
    :math:`\hat y_x = \hat y_{x'}`) and counted in ``n_excluded``; an image with every draw left out scores NaN.

    Relative changes :math:`\|(v - v')/v\|_p` are taken over the entries with :math:`v \ne 0` (a relative
    change from 0 is undefined); the denominator is :math:`\max(\cdot, \epsilon_{min})` as the paper writes it.
    Differences from Quantus 0.6 (same names, same formula otherwise; tested): Quantus replaces a zero
    :math:`v_i` by ε_min and keeps it, so exactly-zero pixels (black background) or zero attributions add
    terms of size :math:`|v'_i|/\epsilon_{min}` (~1e4-1e6) that swamp the norm; it adds ε_min only when a
    denominator is exactly 0 instead of taking the max; its default perturbation is the one-sided shift
    :math:`x + U[0.02, 0.2]` (no clipping); and a single prediction-changing draw makes the image's score NaN.
    On inputs with no zero entries, no flips and denominators above ε_min the values agree.
    Returns :class:`StabilityResult` (score, n_excluded, n_samples)."""


def relative_input_stability(explain, model, x, target=None, radius: float = 0.05, n_samples: int = 50,
                             eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None,
                             clip=(0.0, 1.0), batch_size: int = 256) -> StabilityResult:
    r"""RIS (Agarwal et al. 2022, eq. 2; Bhusal et al. eq. 40), per image, lower is more stable:

    .. math:: RIS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|(x - x')/x\|_p,\ \epsilon_{min})}.
    """
    return _relative_stability("input", explain, model, x, target, None, radius, n_samples, eps_min, p, seed, ids,
                               clip, batch_size, "logits", True)


def relative_output_stability(explain, model, x, target=None, radius: float = 0.05, n_samples: int = 50,
                              eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None, clip=(0.0, 1.0),
                              batch_size: int = 256, output: str = "logits") -> StabilityResult:
    r"""ROS (Agarwal et al. 2022, eq. 5; Bhusal et al. eq. 42), per image, lower is more stable:

    .. math:: ROS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|h(x) - h(x')\|_p,\ \epsilon_{min})},

    h = the logits (``output="logits"``, as in both papers and Quantus's default) or the softmax probabilities
    (``output="probs"``)."""
    return _relative_stability("output", explain, model, x, target, None, radius, n_samples, eps_min, p, seed, ids,
                               clip, batch_size, output, True)


def relative_representation_stability(explain, model, representation, x, target=None, radius: float = 0.05,
                                      n_samples: int = 50, eps_min: float = 1e-6, p: float = 2, seed: int = 0,
                                      ids=None, clip=(0.0, 1.0), batch_size: int = 256,
                                      relative: bool = True) -> StabilityResult:
    r"""RRS (Agarwal et al. 2022, eq. 3), per image, lower is more stable:

    .. math:: RRS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|(L_x - L_{x'})/L_x\|_p,\ \epsilon_{min})},

    :math:`L_x` = ``representation(x)`` (an internal layer's output, flattened). Bhusal et al. eq. 41 prints the
    denominator without the division by :math:`L_x` but states they ran Quantus, which divides (as Agarwal et
    al. do); ``relative=True`` (default) divides, ``relative=False`` gives eq. 41 as printed."""
    if not callable(representation):
        raise UserError(f"representation must be a callable x -> internal representation, got {representation!r}")
    return _relative_stability("representation", explain, model, x, target, representation, radius, n_samples,
                               eps_min, p, seed, ids, clip, batch_size, "logits", relative)


relative_input_stability.__doc__ += _STABILITY_DOC
relative_output_stability.__doc__ += _STABILITY_DOC
relative_representation_stability.__doc__ += _STABILITY_DOC


# --------------------------------------------------------------------------- ROAD (Rong et al. 2022)
def _neighbour_kernel(dtype, device) -> torch.Tensor:
    # Rong et al.'s noisy linear imputation: direct neighbours weigh 1/6, diagonal ones 1/12.
    e, c = 1.0 / 6.0, 1.0 / 12.0
    return torch.tensor([[c, e, c], [e, 0.0, e], [c, e, c]], dtype=dtype, device=device).view(1, 1, 3, 3)


def noisy_linear_imputation(x: torch.Tensor, removed: torch.Tensor, noise: float = 0.01, seed: int = 0, ids=None,
                            stream=0, tol: float = 1e-10, max_iter: int | None = None) -> torch.Tensor:
    r"""Replace the ``removed`` pixels of ``x`` by Rong et al.'s (2022) noisy linear imputation, batched.

    ``x``: ``(N, C, H, W)``; ``removed``: ``(N, H, W)`` bool (a pixel is removed in every channel). The removed
    values :math:`u` solve, per image and channel, the sparse linear system

    .. math:: s_i u_i - \sum_{j \in R,\, j \sim i} w_{ij} u_j = \sum_{j \notin R,\, j \sim i} w_{ij} x_j,
              \quad i \in R,

    over the 8-neighbourhood inside the image (:math:`w` = 1/6 direct, 1/12 diagonal; :math:`s_i = \sum_{j\sim i}
    w_{ij}` over neighbours inside the image): each removed pixel is the weighted mean of its neighbours. Then
    :math:`\mathcal N(0, \mathrm{noise}^2)` is added to the imputed pixels only (keyed by seed, image id,
    ``stream`` and position, see :func:`keyed_uniform`; ``stream`` is one int or one per image, which lets
    :func:`road` solve all its removal levels in one batch). The matrix is symmetric positive definite whenever at
    least one pixel is kept, so it is solved by Jacobi-preconditioned conjugate gradients on all images and
    channels at once, with the masked 3×3 convolution as the operator, in float64, to a relative residual
    ``tol`` (``max_iter`` defaults to H·W, the exact-arithmetic bound). Returns ``x``'s dtype.
    """
    if x.dim() != 4:
        raise UserError(f"x must be shaped (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if removed.shape != (n, h, w):
        raise UserError(f"removed must be shaped ({n}, {h}, {w}), got {tuple(removed.shape)}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise UserError(f"noise must be a finite number >= 0, got {noise!r}")
    streams = torch.as_tensor(stream, dtype=torch.int64, device=x.device)
    if streams.dim() > 1 or (streams.dim() == 1 and streams.shape != (n,)):
        raise UserError(f"stream must be one int or one per image ({n},), got shape {tuple(streams.shape)}")
    if bool((removed.flatten(1).all(1)).any()):
        raise UserError("noisy linear imputation needs at least one kept pixel per image (remove fewer than H·W)")
    dt = torch.float64
    k = _neighbour_kernel(dt, x.device)
    m = removed.to(dt).unsqueeze(1).expand(n, c, h, w).reshape(n * c, 1, h, w)
    xv = x.to(dt).reshape(n * c, 1, h, w)
    s = F.conv2d(torch.ones(1, 1, h, w, dtype=dt, device=x.device), k, padding=1)
    minv = m / s

    def apply(u):
        return m * (s * u - F.conv2d(m * u, k, padding=1))

    def dot(a, b):
        return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)

    b = m * F.conv2d((1 - m) * xv, k, padding=1)
    u = torch.zeros_like(b)
    r = b.clone()
    z = minv * r
    pdir = z.clone()
    rz = dot(r, z)
    bnorm = b.flatten(1).norm(dim=1)
    for it in range(max_iter or h * w):
        ap = apply(pdir)
        pap = dot(pdir, ap)
        alpha = torch.where(pap > 0, rz / torch.where(pap > 0, pap, torch.ones_like(pap)), torch.zeros_like(pap))
        u = u + alpha * pdir
        r = r - alpha * ap
        if it % 8 == 7 and bool((r.flatten(1).norm(dim=1) <= tol * bnorm).all()):
            break
        z = minv * r
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        pdir = z + beta * pdir
        rz = rz_new
    if noise > 0:
        ids_ = _image_ids(ids, n, x.device)
        eps = _keyed_normal(seed, ids_, streams * (c * h * w), c * h * w, dt).view(n * c, 1, h, w)
        u = u + noise * eps
    out = (1 - m) * xv + m * u
    return out.view(n, c, h, w).to(x.dtype)


def removal_order(maps: torch.Tensor, order: str = "morf", reduce_channels: str = "sum_abs",
                  signed: bool = False) -> torch.Tensor:
    """Rank ``(N, H·W)`` of every pixel in the removal order: rank 0 is removed first.

    MoRF removes the largest score first, LeRF the smallest; the score is the channel-reduced map, by
    ``|v|`` unless ``signed``. Ties go to the lower flat index first in both orders (stable sort).
    """
    _check_choice("order", order, ("morf", "lerf"))
    red = collapse_channels(maps, reduce_channels)
    if red.shape[1] != 1:
        raise UserError(f"ROAD removes pixels: maps must reduce to one channel, got {red.shape[1]} "
                        f"(reduce_channels={reduce_channels!r})")
    score = red.flatten(1)
    score = score if signed else score.abs()
    idx = torch.sort(score, dim=1, descending=(order == "morf"), stable=True).indices
    rank = torch.empty_like(idx)
    return rank.scatter_(1, idx, torch.arange(idx.shape[1], device=idx.device).expand_as(idx))


class RoadResult(NamedTuple):
    probs: torch.Tensor  # (N, L) target-class probability after removing each percentage
    correct: torch.Tensor  # (N, L) bool, predicted class == target after removal (what Quantus averages)
    base_prob: torch.Tensor  # (N,) target-class probability of the unperturbed image, f(x^(0))
    n_removed: tuple  # (L,) pixels removed per image at each percentage

    @property
    def auc(self) -> torch.Tensor:
        return road_auc(self.base_prob, self.probs)


def road_auc(base_prob: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    r"""Bhusal et al. sec. 4.1: :math:`ROAD_{AUC} = \frac{1}{L+1}\sum_{k=1}^{L} (f(x^{(0)}) - f(x^{(k)}))`, per image.

    ``base_prob``: ``(N,)`` :math:`f(x^{(0)})`; ``probs``: ``(N, L)``; returns ``(N,)`` (the paper's ⟨·⟩ is the mean
    over images). Larger means a faster drop under MoRF, i.e. a more faithful map."""
    if probs.dim() != 2 or base_prob.shape != probs.shape[:1]:
        raise UserError(f"expected base_prob (N,) and probs (N, L), got {tuple(base_prob.shape)}, {tuple(probs.shape)}")
    return (base_prob.unsqueeze(1) - probs).sum(1) / (probs.shape[1] + 1)


def road(model, x: torch.Tensor, maps: torch.Tensor, target=None, percentages: Sequence[float] = (0.1, 0.2, 0.3),
         order: str = "morf", noise: float = 0.01, reduce_channels: str = "sum_abs", signed: bool = False,
         seed: int = 0, ids=None, tol: float = 1e-10, max_elems: int = 1 << 23) -> RoadResult:
    r"""ROAD: remove-and-debias faithfulness curve (Rong et al. 2022; Bhusal et al. sec. 4.1 and appendix I.3).

    For each fraction p in ``percentages`` (each in [0, 1)), exactly :math:`\lfloor pHW \rfloor` pixels of each
    image are removed from the ORIGINAL image (not cumulatively), in the order of :func:`removal_order` (MoRF:
    most relevant first; LeRF: least; ties to the lower flat index), imputed by
    :func:`noisy_linear_imputation` (noise std ``noise`` in input units, stream = percentage index), and the
    model's softmax probability of ``target`` (default: the class predicted at x, as in the paper) is recorded.
    :math:`\lfloor pHW \rfloor` is computed as ``floor(p·H·W + 1e-9)`` so that 0.29·100 removes 29 pixels.

    ``x``: ``(N, C, H, W)``; ``maps``: ``(N, C', H, W)`` reduced to one score per pixel. Returns
    :class:`RoadResult` with ``probs (N, L)``, ``correct (N, L)``, ``base_prob (N,)``, ``n_removed`` and ``.auc``.

    Speed: the N·L imputations (every image at every level) are independent linear systems, so they are
    solved together, in chunks of at most ``max_elems`` pixel values (float64; the solver holds about
    eight such buffers), one conjugate-gradient run per chunk instead of one per level. Every value is
    a function of (image, level, seed) alone, so results do not depend on N, on the chunking or on the
    other images, up to the solver tolerance ``tol``.

    Differences from quantus.ROAD 0.6 (tested): Quantus ranks by the signed attribution (our ``signed=True``,
    ``reduce_channels="none"`` on one channel) with an unstable argsort, so tied pixels are removed in an
    arbitrary order; it records accuracy (our ``correct``), not probability; it takes percentages in percent;
    it fails on 3-channel input (it ranks C·H·W elements but imputes H·W pixels); and it averages only the
    first batch when the data span several batches.
    """
    if x.dim() != 4:
        raise UserError(f"x must be shaped (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if maps.dim() != 4 or maps.shape[0] != n or maps.shape[2:] != x.shape[2:]:
        raise UserError(f"maps must be shaped ({n}, C', {h}, {w}), got {tuple(maps.shape)}")
    pcts = [float(p) for p in percentages]
    if not pcts or any(not (0.0 <= p < 1.0) for p in pcts):
        raise UserError(f"percentages must be fractions in [0, 1) (at least one pixel is kept), got {pcts}")
    rank = removal_order(maps, order, reduce_channels, signed)
    ids_ = _image_ids(ids, n, x.device)
    with torch.no_grad():
        z0 = model(x)
    target = z0.argmax(-1) if target is None else torch.as_tensor(target, device=x.device)
    if target.shape != (n,):
        raise UserError(f"target must have shape ({n},), got {tuple(target.shape)}")
    base = z0.softmax(-1).gather(1, target.view(-1, 1)).squeeze(1)
    counts = [int(math.floor(p * h * w + 1e-9)) for p in pcts]
    L = len(pcts)
    # one row per (level, image); rows are solved in chunks, each a batch of independent systems
    level = torch.arange(L, device=x.device).repeat_interleave(n)
    image = torch.arange(n, device=x.device).repeat(L)
    n_remove = torch.tensor(counts, device=x.device)[level]
    probs = torch.empty(L * n, dtype=base.dtype, device=x.device)
    correct = torch.empty(L * n, dtype=torch.bool, device=x.device)
    chunk = max(1, max_elems // (c * h * w))
    for a in range(0, L * n, chunk):
        lv, im = level[a:a + chunk], image[a:a + chunk]
        removed = (rank[im] < n_remove[a:a + chunk, None]).view(-1, h, w)
        xr = noisy_linear_imputation(x[im], removed, noise, seed, ids_[im], stream=lv, tol=tol)
        with torch.no_grad():
            z = model(xr)
        probs[a:a + chunk] = z.softmax(-1).gather(1, target[im].view(-1, 1)).squeeze(1)
        correct[a:a + chunk] = z.argmax(-1) == target[im]
    return RoadResult(probs.view(L, n).T.contiguous(), correct.view(L, n).T.contiguous(), base, tuple(counts))
