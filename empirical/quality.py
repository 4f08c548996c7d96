r"""The quality of one saliency map: sparseness, relative stability and faithfulness, batched in torch.

The metrics of Bhusal et al. ("feature-map smoothing", sec. 4.1 and appendix I), each checked against
Quantus 0.6 in tests/test_quality_metrics.py, following the papers where Quantus differs:

- :func:`gini`: sparseness (Chalasani et al. 2020), eq. 39.
- :func:`relative_input_stability`, :func:`relative_output_stability`, :func:`relative_representation_stability`:
  RIS, ROS, RRS (Agarwal et al. 2022), eqs. 40-42, over seeded L∞-ball perturbations.
- :func:`road`, :func:`road_auc`: ROAD with noisy linear imputation (Rong et al. 2022) and the paper's AUC.

Random numbers here are counter-based (:func:`keyed_uniform`): a function of (seed, image id, position),
so every value is independent of batch size, batch composition and device. Agreement between two maps
(stability and fidelity errors, SSIM, top-k) is :mod:`empirical.metrics`.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from empirical.errors import UserError
from empirical.keyed_rng import keyed_normal, keyed_uniform  # keyed_uniform: public here too, where it began
from empirical.metrics import _check_choice, collapse_channels


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


def _relative_stability(kinds, explain, model, x, target, representation, radius, n_samples, eps_min, p, seed, ids,
                        clip, batch_size, output, relative_representation,
                        explain_ids=False) -> dict[str, StabilityResult]:
    """RIS / ROS / RRS (any of ``kinds``: "input", "output", "representation") from one pass over the
    perturbations: the maps of the perturbed images, the costly part, are computed once and shared."""
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
    bad = [k for k in kinds if k not in STABILITY_KINDS]
    if bad or not kinds:
        raise UserError(f"unknown stability kind(s) {bad or '(none)'}; valid: {', '.join(STABILITY_KINDS)}")
    if "representation" in kinds and not callable(representation):
        raise UserError(f"representation must be a callable x -> internal representation, got {representation!r}")
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
    # with explain_ids, x and each of its perturbations are explained under the image's id (a seeded SmoothGrad
    # then reuses its noise: common random numbers); without, explain sees only the rows
    e0 = (explain(x, target, ids) if explain_ids else explain(x, target)).detach().flatten(1)
    x0 = x.flatten(1)
    if "representation" in kinds:
        with torch.no_grad():
            l0 = representation(x).flatten(1)
    best = {k: torch.full((n,), -math.inf, dtype=e0.dtype, device=x.device) for k in kinds}
    excluded = torch.zeros(n, dtype=torch.int64, device=x.device)
    per_chunk = max(1, batch_size // n)
    for s0 in range(0, n_samples, per_chunk):
        cs = min(per_chunk, n_samples - s0)
        xp = linf_ball_perturbations(x, radius, s0, cs, seed, ids, clip).reshape(cs * n, *x.shape[1:])
        zp, hp = head(xp)
        flip = (zp.argmax(-1) != pred0.repeat(cs)).view(cs, n)
        ep = (explain(xp, target.repeat(cs), ids.repeat(cs)) if explain_ids
              else explain(xp, target.repeat(cs))).detach().view(cs, n, -1)
        num = _relative_change(e0.unsqueeze(0), ep, p)
        for kind in kinds:
            if kind == "input":
                den = _relative_change(x0.unsqueeze(0), xp.view(cs, n, -1), p)
            elif kind == "output":
                den = torch.linalg.vector_norm(h0.unsqueeze(0) - hp.view(cs, n, -1), ord=p, dim=-1)
            else:
                with torch.no_grad():
                    rp = representation(xp).reshape(cs, n, -1)
                den = (_relative_change(l0.unsqueeze(0), rp, p) if relative_representation
                       else torch.linalg.vector_norm(l0.unsqueeze(0) - rp, ord=p, dim=-1))
            ratio = num / den.clamp_min(eps_min)
            ratio = torch.where(flip, torch.full_like(ratio, -math.inf), ratio.to(e0.dtype))
            best[kind] = torch.maximum(best[kind], ratio.amax(0))
        excluded += flip.sum(0)
    return {k: StabilityResult(torch.where(torch.isinf(b) & (b < 0), torch.full_like(b, math.nan), b), excluded,
                               n_samples) for k, b in best.items()}


STABILITY_KINDS = ("input", "output", "representation")


def relative_stabilities(explain, model, x, target=None, representation=None,
                         kinds: Sequence[str] = STABILITY_KINDS, radius: float = 0.05, n_samples: int = 50,
                         eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None, clip=(0.0, 1.0),
                         batch_size: int = 256, output: str = "logits",
                         relative_representation: bool = True, explain_ids: bool = False) -> dict[str, StabilityResult]:
    """RIS, ROS and RRS together (``kinds``: any of "input", "output", "representation"), on the same
    perturbations, from one explanation of each: the same values as :func:`relative_input_stability`,
    :func:`relative_output_stability` and :func:`relative_representation_stability` called one by one with
    the same arguments (tested), at about a third of the cost. Returns ``{kind: StabilityResult}``."""
    return _relative_stability(tuple(kinds), explain, model, x, target, representation, radius, n_samples, eps_min,
                               p, seed, ids, clip, batch_size, output, relative_representation, explain_ids)


_STABILITY_DOC = r"""

    ``explain(x, target) -> maps``: batched explanation function (``(B, ...)`` inputs and ``(B,)`` class
    indices to ``(B, ...)`` maps); ``model(x) -> logits``. ``target`` (default: the predicted class at x) is
    explained at x and at every x'. Perturbations (:func:`linf_ball_perturbations`): ``n_samples`` draws per
    image, uniform in the L∞ ball of radius ``radius`` around x, clipped to ``clip`` (the data range); draws are
    keyed by (``seed``, image id in ``ids``, sample index), so scores do not depend on batch size or
    composition. ``batch_size`` bounds the number of perturbed images per call of ``explain``/``model``.

    Random explanations (SmoothGrad): with ``explain_ids=True``, ``explain`` is called as ``explain(x, target,
    ids)`` with each row's image id, so a seeded SmoothGrad (``saliency.smoothgrad(..., ids=ids)``) gives x and
    every x' the same noise draws: common random numbers, and the score measures how the smoothed map moves
    with its input. Without it, ``explain`` sees only rows, and a SmoothGrad keyed by row position gives x' the
    draws of x or fresh ones depending on ``batch_size`` (fresh draws add Monte-Carlo noise that does not
    shrink with the radius: on a small softplus net at radius 0.01, RIS 15-50x larger; tested). Quantus with
    Captum's NoiseTunnel draws fresh noise on every call.
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
                             clip=(0.0, 1.0), batch_size: int = 256, explain_ids: bool = False) -> StabilityResult:
    r"""RIS (Agarwal et al. 2022, eq. 2; Bhusal et al. eq. 40), per image, lower is more stable:

    .. math:: RIS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|(x - x')/x\|_p,\ \epsilon_{min})}.
    """
    return _relative_stability(("input",), explain, model, x, target, None, radius, n_samples, eps_min, p, seed, ids,
                               clip, batch_size, "logits", True, explain_ids)["input"]


def relative_output_stability(explain, model, x, target=None, radius: float = 0.05, n_samples: int = 50,
                              eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None, clip=(0.0, 1.0),
                              batch_size: int = 256, output: str = "logits",
                              explain_ids: bool = False) -> StabilityResult:
    r"""ROS (Agarwal et al. 2022, eq. 5; Bhusal et al. eq. 42), per image, lower is more stable:

    .. math:: ROS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|h(x) - h(x')\|_p,\ \epsilon_{min})},

    h = the logits (``output="logits"``, as in both papers and Quantus's default) or the softmax probabilities
    (``output="probs"``)."""
    return _relative_stability(("output",), explain, model, x, target, None, radius, n_samples, eps_min, p, seed,
                               ids, clip, batch_size, output, True, explain_ids)["output"]


def relative_representation_stability(explain, model, representation, x, target=None, radius: float = 0.05,
                                      n_samples: int = 50, eps_min: float = 1e-6, p: float = 2, seed: int = 0,
                                      ids=None, clip=(0.0, 1.0), batch_size: int = 256,
                                      relative: bool = True, explain_ids: bool = False) -> StabilityResult:
    r"""RRS (Agarwal et al. 2022, eq. 3), per image, lower is more stable:

    .. math:: RRS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|(L_x - L_{x'})/L_x\|_p,\ \epsilon_{min})},

    :math:`L_x` = ``representation(x)`` (an internal layer's output, flattened). Bhusal et al. eq. 41 prints the
    denominator without the division by :math:`L_x` but states they ran Quantus, which divides (as Agarwal et
    al. do); ``relative=True`` (default) divides, ``relative=False`` gives eq. 41 as printed."""
    return _relative_stability(("representation",), explain, model, x, target, representation, radius, n_samples,
                               eps_min, p, seed, ids, clip, batch_size, "logits", relative,
                               explain_ids)["representation"]


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
