"""Sparseness of a map: the Gini index (Chalasani et al. 2020; Bhusal et al. eq. 44)."""
from __future__ import annotations

import torch

from empirical.errors import UserError
from empirical.measures.agreement import check_finite


# --------------------------------------------------------------------------- sparseness (Chalasani et al. 2020)
def gini(maps: torch.Tensor) -> torch.Tensor:
    r"""Gini index of :math:`|\phi(x)|` per image (Chalasani et al. 2020; Hurley & Rickard 2009), shape ``(N,)``.

    Bhusal et al. appendix I.1, eq. 39, with :math:`|\phi|_{(1)} \le \dots \le |\phi|_{(d)}` sorted ascending:

    .. math:: G = 1 - 2\sum_{k=1}^{d} \frac{|\phi|_{(k)}}{\|\phi\|_1}\,\frac{d - k + 0.5}{d}
                = \frac{\sum_k (2k - d - 1)\,|\phi|_{(k)}}{d\,\|\phi\|_1}.

    All C·H·W elements of each map count (no channel reduction). A map with one non-zero element scores
    (d − 1)/d, a constant map 0; an all-zero map, where eq. 39 is 0/0, is given 0. A NaN or Inf map is an error
    (the rule of :mod:`empirical.measures.agreement`). Gini is invariant to
    scaling the map. quantus.Sparseness computes the same closed form but on ``|φ|/max|φ| + 1e-7`` (it adds
    1e-7 to every element), which lowers the index by a relative ≈ d·1e-7 / mean(|φ|/max|φ|).
    """
    if maps.dim() < 2:
        raise UserError(f"maps must be shaped (N, ...) with at least 2 dimensions, got {tuple(maps.shape)}")
    check_finite(maps)
    a = torch.sort(maps.flatten(1).abs(), dim=1).values
    # G is scale invariant: divide by the largest magnitude first, so the sums cannot overflow (a finite map of
    # ~1e36 would otherwise give inf/inf = NaN)
    top = a[:, -1:]
    a = a / torch.where(top > 0, top, torch.ones_like(top))
    d = a.shape[1]
    k = torch.arange(1, d + 1, device=a.device, dtype=a.dtype)
    total = a.sum(1)
    num = ((2 * k - d - 1) * a).sum(1)
    return torch.where(total > 0, num / (d * torch.where(total > 0, total, torch.ones_like(total))), 0.0)
