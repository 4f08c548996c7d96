r"""The quality of one saliency map: sparseness, relative stability and faithfulness, batched in torch.

The metrics of Bhusal et al. ("feature-map smoothing", sec. 4.1 and appendix I), each checked against
Quantus 0.6 in tests/test_quality_metrics.py, following the papers where Quantus differs:

- :func:`gini`: sparseness (Chalasani et al. 2020), eq. 39.
- :func:`relative_input_stability`, :func:`relative_output_stability`, :func:`relative_representation_stability`:
  RIS, ROS, RRS (Agarwal et al. 2022), eqs. 40-42, over seeded L∞-ball perturbations;
  :func:`aggregate_stability`: one number per batch, our way (mean of log10) or Quantus's (mean, then log10).
- :func:`road`, :func:`road_auc`: ROAD with noisy linear imputation (Rong et al. 2022) and the paper's AUC.

Random numbers here are counter-based (:func:`keyed_uniform`): a function of (seed, image id, position),
so every value is independent of batch size, batch composition and device. Agreement between two maps
(stability and fidelity errors, SSIM, top-k) is :mod:`empirical.measures.agreement`.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from empirical.errors import UserError
from empirical.keyed_rng import keyed_uniform  # keyed_uniform: public here too, where it began
from empirical.measures.agreement import check_finite


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
    n_excluded: torch.Tensor  # (N,) perturbations left out: they changed the predicted class, or e_x is all zero
    n_samples: int  # perturbations drawn per image
    n_clipped: torch.Tensor | None = None  # (N,) perturbed values clamped to ``clip``, over all draws; None: clip off


def linf_ball_perturbations(x: torch.Tensor, radius: float, sample: int, n_samples: int, seed: int = 0,
                            ids=None, clip: tuple[float, float] | None = None) -> torch.Tensor:
    r"""Perturbations ``sample .. sample + n_samples − 1`` of each image: :math:`x' = \mathrm{clip}(x + u)`,
    :math:`u \sim U[-r, r]^d` i.i.d. per element (uniform in the L∞ ball of radius r), clamped to ``clip`` =
    (lo, hi) if given (off by default: on inputs outside the range, normalised ones say, a clamp moves the point
    far from x and the draw is then likely dropped as a class flip).

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
    check_finite(e0, "explanations at x")
    # An all-zero e_x leaves no entry to take a relative change over (every |(e - e')/e| is 0/0): the numerator
    # would be 0 and the image would score "perfectly stable" however e_x' moves. Its draws are left out and
    # counted in n_excluded, so it scores NaN, as an image whose every draw flips the class does.
    zero_map = (e0 == 0).all(1)
    x0 = x.flatten(1)
    if "representation" in kinds:
        with torch.no_grad():
            l0 = representation(x).flatten(1)
    best = {k: torch.full((n,), -math.inf, dtype=e0.dtype, device=x.device) for k in kinds}
    excluded = torch.zeros(n, dtype=torch.int64, device=x.device)
    clipped = torch.zeros(n, dtype=torch.int64, device=x.device)
    per_chunk = max(1, batch_size // n)
    for s0 in range(0, n_samples, per_chunk):
        cs = min(per_chunk, n_samples - s0)
        xp = linf_ball_perturbations(x, radius, s0, cs, seed, ids).reshape(cs * n, *x.shape[1:])
        if clip is not None:
            clipped += ((xp < clip[0]) | (xp > clip[1])).view(cs, n, -1).sum((0, 2))
            xp = xp.clamp(*clip)
        zp, hp = head(xp)
        flip = (zp.argmax(-1) != pred0.repeat(cs)).view(cs, n)
        ep = (explain(xp, target.repeat(cs), ids.repeat(cs)) if explain_ids
              else explain(xp, target.repeat(cs))).detach().view(cs, n, -1)
        check_finite(ep.transpose(0, 1), "explanations at the perturbed inputs")  # (N, S, d): names the image
        flip = flip | zero_map.unsqueeze(0)
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
                               n_samples, None if clip is None else clipped) for k, b in best.items()}


STABILITY_KINDS = ("input", "output", "representation")


def relative_stabilities(explain, model, x, target=None, representation=None,
                         kinds: Sequence[str] = STABILITY_KINDS, radius: float = 0.05, n_samples: int = 50,
                         eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None, clip=None,
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
    image, uniform in the L∞ ball of radius ``radius`` (input units) around x, clamped to ``clip`` = (lo, hi)
    only when given (off by default; then the clamped values are counted in ``n_clipped``); draws are
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
    An image whose explanation at x is all zero has no relative change to measure (every term is 0/0; it would
    otherwise score 0, "perfectly stable", even when its maps at x' are huge): all its draws are left out and
    counted in ``n_excluded`` (= ``n_samples``), and it scores NaN. NaN or Inf in an explanation is an error
    (the rule of :mod:`empirical.measures.agreement`).

    Relative changes :math:`\|(v - v')/v\|_p` are taken over the entries with :math:`v \ne 0` (a relative
    change from 0 is undefined); the denominator is :math:`\max(\cdot, \epsilon_{min})` as the paper writes it.
    Differences from Quantus 0.6 (same names, same formula otherwise; tested): Quantus replaces a zero
    :math:`v_i` by ε_min and keeps it, so exactly-zero pixels (black background) or zero attributions add
    terms of size :math:`|v'_i|/\epsilon_{min}` (~1e4-1e6) that swamp the norm; it adds ε_min only when a
    denominator is exactly 0 instead of taking the max; its default perturbation is the one-sided shift
    :math:`x + U[0.02, 0.2]` (no clipping); and a single prediction-changing draw makes the image's score NaN.
    On inputs with no zero entries, no flips and denominators above ε_min the values agree.
    Returns :class:`StabilityResult` (score, n_excluded, n_samples, n_clipped)."""


def relative_input_stability(explain, model, x, target=None, radius: float = 0.05, n_samples: int = 50,
                             eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None,
                             clip=None, batch_size: int = 256, explain_ids: bool = False) -> StabilityResult:
    r"""RIS (Agarwal et al. 2022, eq. 2; Bhusal et al. eq. 40), per image, lower is more stable:

    .. math:: RIS(x) = \max_{x'} \frac{\|(e_x - e_{x'})/e_x\|_p}{\max(\|(x - x')/x\|_p,\ \epsilon_{min})}.
    """
    return _relative_stability(("input",), explain, model, x, target, None, radius, n_samples, eps_min, p, seed, ids,
                               clip, batch_size, "logits", True, explain_ids)["input"]


def relative_output_stability(explain, model, x, target=None, radius: float = 0.05, n_samples: int = 50,
                              eps_min: float = 1e-6, p: float = 2, seed: int = 0, ids=None, clip=None,
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
                                      ids=None, clip=None, batch_size: int = 256,
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


# --------------------------------------------------------------------------- one number per batch
AGGREGATIONS = ("mean_log10", "log10_mean", "mean")


def aggregate_stability(scores, how: str = "mean_log10", nan_policy: str = "omit") -> float:
    r"""One batch's RIS / ROS / RRS from the per-image scores (``StabilityResult.score``, shape (N,)).

    - ``"mean_log10"`` (ours, the smoothing study's ``log10_ris`` etc.): :math:`\frac1N \sum_i \log_{10} S_i`, the
      log of the geometric mean; every image weighs the same whatever its magnitude (the ratios span orders of
      magnitude, and a few near-zero denominators would otherwise decide the batch).
    - ``"log10_mean"``: :math:`\log_{10} \frac1N \sum_i S_i`, Quantus 0.6's aggregate put on the same log scale.
      Quantus takes the max over draws per image (as we do) and, with ``return_aggregate=True``, its
      ``aggregate_func`` (default ``np.mean``) over images; it takes no log, and no ratio of batch means either
      (numerator and denominator are divided per image and draw, then maxed). By Jensen's inequality
      ``log10_mean >= mean_log10``, and the gap grows with the spread of the per-image scores: a heavy upper
      tail moves ``log10_mean`` and hardly ``mean_log10``.
    - ``"mean"``: :math:`\frac1N \sum_i S_i`, the number Quantus returns.

    ``nan_policy``: ``"omit"`` leaves out images with a NaN score (every draw flipped the prediction);
    ``"propagate"`` returns NaN if any image is NaN, as ``np.mean`` does in Quantus (where one flipped draw
    already makes the image NaN). Scores must be >= 0; a 0 score gives ``-inf`` on the log scales."""
    if how not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {how!r}; valid: {', '.join(AGGREGATIONS)}")
    if nan_policy not in ("omit", "propagate"):
        raise UserError(f"unknown nan_policy {nan_policy!r}; valid: omit, propagate")
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    if bool((s < 0).any()) or bool(torch.isinf(s).any()):
        raise UserError(f"stability scores must be finite and >= 0 (or NaN), got min {s.nan_to_num(0).min().item()}"
                        f" and {int(torch.isinf(s).sum())} infinite")
    nan = torch.isnan(s)
    if nan.any() and nan_policy == "propagate":
        return math.nan
    s = s[~nan]
    if len(s) == 0:
        return math.nan
    if how == "mean_log10":
        return s.log10().mean().item()
    m = s.mean().item()
    return m if how == "mean" else (math.log10(m) if m > 0 else -math.inf)
