r"""Rank agreement between an original and an attacked saliency map: top-k intersection, Kendall's τ-b and
Spearman's ρ over the full map and over the top-k pixels, batched over images in torch; and their per-image
summaries (median and mean, each with a bootstrap interval over images).

These are the attributional-robustness metrics of Ghorbani, Abid & Zou (2019, "Interpretation of neural
networks is fragile"), used by Chen et al. (2019, RAR) and Sarkar et al. (2021, sec. "Experiments": "Top-k
intersection ... Kendall's and Spearman correlation"). Maps ``(N, C, H, W)`` are first collapsed to one value
per pixel with :func:`empirical.measures.agreement.collapse_channels` (default ``"sum_abs"``,
:math:`\sum_c |m_c|`: the RAR code's ``reduce_sum(abs(IG), -1)``; its extra normalisation to a fixed sum
changes no rank). Every function returns one value per image, shape ``(N,)``, float64.

Choices made here, where the papers leave them open:

- **k** is given in pixels (an int, RAR's ``k_top = 100`` on 28×28 Fashion-MNIST) or as a fraction of the
  ranked elements (a float in (0, 1): k = round(fraction · H·W), at least 1); :func:`resolve_k` does the
  conversion and the result records state both. The *reported* top-k intersection is the fraction
  :math:`|A_k \cap B_k| / k \in [0, 1]` (the RAR code's ``len(intersect1d) / k``), not the pixel count.
- **Top-k rank correlation** (Sarkar et al.: "Kendall's correlation computed on top-k pixels") is computed on
  the k pixels most salient in the FIRST (original, unattacked) map: :math:`\tau(a_K, b_K)` with
  :math:`K = \mathrm{topk}(a)`, i.e. how the attacked map orders the pixels that mattered originally.
- **Ties** as :mod:`scipy.stats` treats them: Kendall's τ-b (``kendalltau``'s default) and Spearman's ρ as
  the Pearson correlation of average ranks (``spearmanr``). A map constant over the compared pixels has no
  ranking: the result is NaN there, as scipy's.
- Ranking for top-k sets and the tie-break: :func:`empirical.measures.agreement.topk_indices`.

Cost: τ-b compares every pair of pixels, O(N·n²) sign products in int8 (n = compared pixels; 784 for
Fashion-MNIST), done in blocks of at most :data:`PAIR_BLOCK` pairs; ranks for ρ come from one sort, O(N·n log n).
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from empirical.errors import UserError
from empirical.measures.agreement import _check_pair, _topk_overlap, collapse_channels, topk_indices

PAIR_BLOCK = 1 << 22  # pair comparisons per block (4 Mi: ~16 MiB of int8/bool temporaries), bounds Kendall's memory


# --------------------------------------------------------------------------- k and inputs
def resolve_k(k, n: int) -> int:
    """k in pixels: an int in [1, n] is kept; a float in (0, 1) is a fraction of the n ranked elements,
    rounded to the nearest integer (at least 1)."""
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        if not 1 <= k <= n:
            raise UserError(f"k must be in [1, {n}] pixels (or a fraction in (0, 1)), got {k!r}")
        return int(k)
    if isinstance(k, numbers.Real) and not isinstance(k, bool) and 0 < k < 1:
        return max(1, int(round(float(k) * n)))
    raise UserError(f"k must be an integer number of pixels in [1, {n}] or a fraction in (0, 1), got {k!r}")


def _flat_pair(a, b, reduce_channels: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduced maps flattened to ``(N, n)`` float64, after checking they match and are finite."""
    _check_pair(a, b, min_dim=2)
    if a.dim() == 2:  # already (N, n) values per pixel
        fa, fb = a, b
    else:
        fa, fb = collapse_channels(a, reduce_channels).flatten(1), collapse_channels(b, reduce_channels).flatten(1)
    fa, fb = fa.detach().to(torch.float64), fb.detach().to(torch.float64)
    for name, v in (("a", fa), ("b", fb)):
        if not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise UserError(f"map {name} holds {bad} NaN/inf values; ranks need finite maps")
    return fa, fb


# --------------------------------------------------------------------------- rank statistics on (N, n) values
def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """1-based ranks along dim 1, ties given their average rank (``scipy.stats.rankdata(method="average")``).

    One sort per row; a tie group spanning sorted positions s..e (0-based) gets rank (s + e)/2 + 1.

    Example:
        >>> average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]])).tolist()
        [[3.5, 1.0, 3.5, 2.0]]
    """
    s, order = v.sort(dim=1)
    n = v.shape[1]
    pos = torch.arange(n, device=v.device).expand_as(s)
    starts = torch.ones_like(s, dtype=torch.bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, 0).cummax(1).values  # start of each element's tie group
    last = torch.where(ends, pos, n).flip(1).cummin(1).values.flip(1)  # its end
    avg = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(avg).scatter_(1, order, avg)


def _pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    den = (xc.square().sum(1) * yc.square().sum(1)).sqrt()
    return torch.where(den > 0, (xc * yc).sum(1) / torch.where(den > 0, den, 1.0), float("nan"))


def spearman_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman's ρ of each row pair of ``(N, n)`` values: Pearson of average ranks (``scipy.stats.spearmanr``)."""
    return _pearson(average_ranks(x), average_ranks(y))


def _pair_signs(v: torch.Tensor, i0: int, cols: int) -> torch.Tensor:
    """sign(v_i - v_j) as int8 for i in [i0, i0 + cols) and every j: (rows, cols, n). Comparisons, not a
    float difference, so no float64 (rows, cols, n) temporary is made."""
    vi, vj = v[:, i0:i0 + cols, None], v[:, None, :]
    return (vi > vj).to(torch.int8) - (vi < vj).to(torch.int8)


def kendall_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Kendall's τ-b of each row pair of ``(N, n)`` values (``scipy.stats.kendalltau``'s default variant).

    .. math:: \tau_b = \frac{\sum_{i<j} s^x_{ij} s^y_{ij}}{\sqrt{\sum_{i<j} |s^x_{ij}| \sum_{i<j} |s^y_{ij}|}},
              \quad s^x_{ij} = \mathrm{sign}(x_i - x_j),

    i.e. (concordant − discordant) / √((n₀ − n₁)(n₀ − n₂)), n₁ and n₂ the pairs tied in x and in y. The full
    n×n sign matrices count every pair twice, which cancels. Integer sums: exact for any n.
    """
    n_img, n = x.shape
    rows = max(1, PAIR_BLOCK // max(1, n * n))  # images per block when one image's matrix fits
    cols = n if n * n <= PAIR_BLOCK else max(1, PAIR_BLOCK // n)  # else split the i axis too
    out = torch.empty(n_img, dtype=torch.float64, device=x.device)
    for lo in range(0, n_img, rows):
        xb, yb = x[lo:lo + rows], y[lo:lo + rows]
        s = torch.zeros(xb.shape[0], dtype=torch.int64, device=x.device)
        tx, ty = torch.zeros_like(s), torch.zeros_like(s)
        for i0 in range(0, n, cols):
            sx = _pair_signs(xb, i0, cols)
            sy = _pair_signs(yb, i0, cols)
            s += (sx * sy).flatten(1).sum(1, dtype=torch.int64)
            tx += sx.abs().flatten(1).sum(1, dtype=torch.int64)
            ty += sy.abs().flatten(1).sum(1, dtype=torch.int64)
        den = (tx.to(torch.float64) * ty.to(torch.float64)).sqrt()
        out[lo:lo + rows] = torch.where(den > 0, s.to(torch.float64) / torch.where(den > 0, den, 1.0), float("nan"))
    return out


# --------------------------------------------------------------------------- on maps
def topk_intersection(a: torch.Tensor, b: torch.Tensor, k, reduce_channels: str = "sum_abs",
                      count: bool = False) -> torch.Tensor:
    r""":math:`|A_k \cap B_k| / k` per image (``count=True``: the pixel count :math:`|A_k \cap B_k|`), ``(N,)``.

    ``k``: pixels (int) or a fraction of the pixels (float in (0, 1)), see :func:`resolve_k`. Pixels ranked by
    the reduced map's value, largest first (:func:`~empirical.measures.agreement.topk_indices`).

    Example:
        >>> a = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
        >>> b = torch.tensor([[[[4.0, 1.0], [2.0, 3.0]]]])
        >>> topk_intersection(a, b, 2).tolist(), topk_intersection(a, b, 0.75, count=True).tolist()
        ([0.5], [2.0])
    """
    _check_pair(a, b, min_dim=3)
    k = resolve_k(k, collapse_channels(a[:1], reduce_channels)[0].numel())
    inter = _topk_overlap(a, b, k, reduce_channels, signed=False).to(torch.float64)
    return inter if count else inter / k


def kendall_tau(a: torch.Tensor, b: torch.Tensor, k=None, reduce_channels: str = "sum_abs") -> torch.Tensor:
    """Kendall's τ-b per image between two maps ``(N, C, H, W)`` (or ``(N, n)`` per-pixel values), ``(N,)``.

    ``k=None``: over every pixel. ``k`` given (pixels or a fraction): over the k pixels most salient in ``a``
    (see the module docstring).
    """
    fa, fb = _select(a, b, k, reduce_channels)
    return kendall_rows(fa, fb)


def spearman_rho(a: torch.Tensor, b: torch.Tensor, k=None, reduce_channels: str = "sum_abs") -> torch.Tensor:
    """Spearman's ρ per image (average ranks for ties), over every pixel or over ``a``'s top-k; as
    :func:`kendall_tau`."""
    fa, fb = _select(a, b, k, reduce_channels)
    return spearman_rows(fa, fb)


def _select(a, b, k, reduce_channels) -> tuple[torch.Tensor, torch.Tensor]:
    fa, fb = _flat_pair(a, b, reduce_channels)
    if k is None:
        return fa, fb
    idx = topk_indices(fa.unsqueeze(1), resolve_k(k, fa.shape[1]), "none")
    return fa.gather(1, idx), fb.gather(1, idx)


def agreement_metrics(a: torch.Tensor, b: torch.Tensor, k, reduce_channels: str = "sum_abs") -> dict[str, torch.Tensor]:
    """Every metric at once, each ``(N,)`` float64: ``topk_intersection`` (fraction), ``kendall``, ``spearman``
    (full map), ``kendall_topk``, ``spearman_topk`` (over ``a``'s top-k pixels)."""
    fa, fb = _flat_pair(a, b, reduce_channels)
    k = resolve_k(k, fa.shape[1])
    ia = topk_indices(fa.unsqueeze(1), k, "none")
    ib = topk_indices(fb.unsqueeze(1), k, "none")
    in_a = torch.zeros_like(fa, dtype=torch.bool).scatter(1, ia, True)
    ka, kb = fa.gather(1, ia), fb.gather(1, ia)
    return {"topk_intersection": in_a.gather(1, ib).sum(1).to(torch.float64) / k,
            "kendall": kendall_rows(fa, fb), "spearman": spearman_rows(fa, fb),
            "kendall_topk": kendall_rows(ka, kb), "spearman_topk": spearman_rows(ka, kb)}


# --------------------------------------------------------------------------- summaries over images
def summarize_images(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0) -> dict:
    """Median and mean over images, each with its bootstrap interval over images (:func:`empirical.stats.bootstrap`,
    unit "image": BCa from 10 images, expanded percentile below). NaN values (a constant map has no rank
    correlation) are dropped and counted in ``n_nan``. Returns plain numbers: ``{"median": {...}, "mean": {...},
    "n_images", "n_nan"}``, each inner dict a :class:`empirical.stats.Summary` record without per-unit values.
    """
    from empirical import stats

    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isinf(v).any():
        raise UserError(f"per-image values must be finite or NaN, got {int(np.isinf(v).sum())} inf")
    keep = v[~np.isnan(v)]
    out = {"n_images": int(keep.size), "n_nan": int(v.size - keep.size)}
    if keep.size == 0:
        nan = float("nan")
        empty = {"estimate": nan, "ci_low": nan, "ci_high": nan, "confidence": confidence, "method": "none (no images)",
                 "unit": "image", "n_units": 0}
        return {**out, "median": dict(empty), "mean": dict(empty)}
    for name, statistic in (("median", stats.median), ("mean", stats.mean)):
        s = stats.bootstrap(keep, statistic, unit="image", confidence=confidence, resamples=resamples, seed=seed)
        d = s.as_dict()
        d.pop("unit_values")
        out[name] = d
    if not math.isfinite(out["mean"]["estimate"]):
        raise UserError("the mean over images is not finite")
    return out
