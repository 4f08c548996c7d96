"""ROAD: RemOve And Debias (Rong et al. 2022), with noisy linear imputation; MoRF and LeRF orders, AUC."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from empirical.errors import UserError
from empirical.keyed_rng import keyed_normal  # keyed_uniform: public here too, where it began
from empirical.measures.agreement import _check_choice, check_finite, collapse_channels
from empirical.measures.relative_stability import _image_ids


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
    :math:`\mathcal N(0, \mathrm{noise}^2)` (``noise``: an ABSOLUTE std in ``x``'s units, not a fraction of a
    range; Rong et al.'s 0.01 is for images in [0, 1]) is added to the imputed pixels only (keyed by seed, image id,
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
        eps = keyed_normal(seed, ids_, streams * (c * h * w), c * h * w, dt).view(n * c, 1, h, w)
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
    check_finite(maps)  # a NaN map has no ranking (see empirical.measures.agreement)
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
