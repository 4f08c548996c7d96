r"""The front door: the few calls a researcher needs, on ANY ``nn.Module`` and plain tensors or a torch ``Dataset``.

    >>> import empirical as es
    >>> maps = es.attribute(model, x, target, method="ig")                  # doctest: +SKIP
    >>> es.stability(net_a, net_b, x, y, method="vg", sigma=0.1)            # doctest: +SKIP

- :func:`attribute`: one call for every saliency method (vanilla gradient, Input × Gradient, Integrated
  Gradients, Grad-CAM / Grad-CAM++), smoothed by Gaussian noise when ``sigma > 0`` (SmoothGrad, or Captum's
  ``NoiseTunnel`` over the method; ``nt_type`` for SmoothGrad-squared and VarGrad).
- :func:`sigma_abs` / :func:`sigma_rel`: σ as a fraction of the pixel range ↔ σ in the model's input units.
  EVERY σ here is a fraction of the pixel range (``pixel_range``: the range's width in model-input units, 1.0
  by default, i.e. inputs in [0, 1]); Captum's absolute ``stdevs`` is accepted instead.
- :func:`stability`: Ye & Farnia's stability error (eq. 12), :math:`\|Sal_A(x) - Sal_B(x)\|_2` per image,
  its mean over images and a bootstrap CI over images (:mod:`empirical.stats`).
- :func:`fidelity`: Ye & Farnia eq. 13, :math:`\|\mathbb{E}_z Sal(x + z) - Sal(x)\|_2`, the same way.
- :func:`quality`: Gini sparsity, RIS / ROS / RRS relative stability, ROAD faithfulness
  (:mod:`empirical.measures`), each per image with its mean and CI.
- :func:`train_disjoint_pair`: two copies of the user's model trained on disjoint halves of the user's data,
  the design of Ye & Farnia sec. 5.1.

Intervals here are over IMAGES (unit "image") for the networks given: they say how precisely the mean over
this image sample is known, not how it varies across training runs; for that, train several pairs and
bootstrap over pairs (``empirical.stats.summarize(values, unit="model pair")``), as the split study does.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from empirical import stats
from empirical.attribution import (
    gradcam,
    input_x_gradient,
    integrated_gradients,
    smoothed,
    smoothgrad,
    vanilla_gradient,
)
from empirical.attribution._checks import _check_target
from empirical.attribution.sigma import sigma_abs, sigma_rel  # noqa: F401  (re-exported by empirical)
from empirical.errors import UserError
from empirical.measures import agreement, faithfulness, relative_stability, sparsity

# The front door's method names; Captum-style long names are aliases.
ATTRIBUTE_METHODS = ("vg", "ixg", "ig", "gradcam", "gradcampp")
_ALIASES = {"saliency": "vg", "input_x_gradient": "ixg", "integrated_gradients": "ig"}
_SMOOTHED = {"sg": "vg", "smoothgrad": "vg", "sg_ig": "ig"}  # the registry's smoothed names: they need sigma
QUALITY_METRICS = ("gini", "ris", "ros", "rrs", "road", "road_lerf")
NT_SAMPLES = 32  # noise draws per image when sigma > 0 and nt_samples is not given (Monte-Carlo error ~ 1/√32)


def _method(method: str) -> str:
    m = _ALIASES.get(method, _SMOOTHED.get(method, method))
    if m not in ATTRIBUTE_METHODS:
        raise UserError(f"unknown method {method!r}; valid: {', '.join(ATTRIBUTE_METHODS)} "
                        f"(or {', '.join(_ALIASES)}; {', '.join(_SMOOTHED)} with sigma > 0)")
    return m


def _smoothing(sigma, stdevs) -> bool:
    """Whether noise is asked for: a σ (relative) or stdevs (absolute) that is not all zero."""
    def nonzero(v):
        if v is None:
            return False
        if isinstance(v, (tuple, list)):
            return any(nonzero(u) for u in v)
        return bool((v != 0).any()) if isinstance(v, torch.Tensor) else v != 0
    if sigma is not None and not isinstance(sigma, (numbers.Real, torch.Tensor, tuple, list)):
        raise UserError(f"sigma must be a number (fraction of the pixel range), got {sigma!r}")
    return nonzero(sigma) or nonzero(stdevs)


def attribute(model: nn.Module, x, target=None, method: str = "ig", *, sigma=None, stdevs=None, pixel_range=None,
              nt_samples: int | None = None, nt_type: str = "smoothgrad", seed: int = 0, ids=None,
              layer: nn.Module | None = None, **kw):
    """Saliency maps of ``model`` at ``x`` for ``target``, shape of ``x`` (Grad-CAM: [N, 1, H, W]).

    ``x``: a tensor [N, ...] or a tuple of them (Captum's convention), in the model's input units;
    ``target``: an int, a 0-d tensor, a list or a tensor [N] (None for a model with one output per example).
    ``method``: "vg" (vanilla gradient, Captum's ``Saliency``), "ixg" (``InputXGradient``), "ig"
    (``IntegratedGradients``), "gradcam" / "gradcampp" (``layer``: the model's conv layer); "sg" and "sg_ig"
    (the registry's SmoothGrad and smoothed IG) are "vg" and "ig" with a ``sigma`` > 0 required.
    ``sigma`` > 0 (a FRACTION OF THE PIXEL RANGE, at most 1; ``pixel_range``: the range's width in model-input
    units, default 1.0; or Captum's absolute ``stdevs``) smooths the map over ``nt_samples`` Gaussian draws
    (default :data:`NT_SAMPLES`), seeded by (``seed``, ``ids``): two models called with the same seed and ids
    see the same noise. ``nt_type``: "smoothgrad", "smoothgrad_sq" or "vargrad". Other keywords go to the
    method's function (:mod:`empirical.attribution`), with Captum's names: ``baselines``, ``n_steps``,
    ``internal_batch_size``, ``additional_forward_args``, ``abs``, ``multiply_by_inputs``,
    ``relu_attributions``; IG's quadrature rule is ``rule`` here (``method`` names the attribution method).
    """
    m = _method(method)
    if method in _SMOOTHED and not _smoothing(sigma, stdevs):
        raise UserError(f"method {method!r} is smoothed: give sigma > 0 (fraction of the pixel range), got "
                        f"sigma={sigma!r}; or method={m!r} for the plain map")
    if nt_type != "smoothgrad" and not _smoothing(sigma, stdevs):
        raise UserError(f"nt_type {nt_type!r} is a statistic over noise draws: give sigma > 0 (fraction of the "
                        f"pixel range), got sigma={sigma!r}")
    if m.startswith("gradcam"):
        if layer is None:
            raise UserError(f"method {method!r} needs layer=, the conv layer of the model whose activations it weighs")
        kw = dict(kw, layer=layer, plus=m == "gradcampp")
    elif layer is not None:
        raise UserError(f"layer= is for Grad-CAM; method {method!r} takes none")
    if "rule" in kw:
        kw["method"] = kw.pop("rule")
    if not _smoothing(sigma, stdevs):
        fn = {"vg": vanilla_gradient, "ixg": input_x_gradient, "ig": integrated_gradients}.get(m, gradcam)
        return fn(model, x, target, **kw)
    noise = dict(sigma=sigma, stdevs=stdevs, pixel_range=pixel_range, nt_type=nt_type, seed=seed, ids=ids,
                 nt_samples=NT_SAMPLES if nt_samples is None else nt_samples)
    if m.startswith("gradcam"):
        return smoothed(lambda p, t: gradcam(model, p, t, **kw), x, target, **noise)
    return smoothgrad(model, x, target, base=m, **noise, **kw)


# --------------------------------------------------------------------------- measures with their intervals
@dataclass(frozen=True)
class ImageEstimate:
    """A per-image measure, its mean over images and a bootstrap CI over images (:mod:`empirical.stats`).

    ``n_undefined`` images scored NaN (e.g. RIS where every perturbation flipped the class) and are left out of
    the mean and the interval."""

    name: str
    per_image: torch.Tensor  # [N], NaN where undefined
    summary: stats.Summary  # over the images with a defined value; unit "image"
    n_undefined: int = 0

    @property
    def estimate(self) -> float:
        return self.summary.estimate

    @property
    def ci(self) -> tuple[float, float]:
        return self.summary.ci_low, self.summary.ci_high

    def __str__(self) -> str:
        s = self.summary
        out = (f"{self.name}: {s.estimate:.4g} ({s.confidence:.0%} CI {s.ci_low:.4g} to {s.ci_high:.4g}, "
               f"{s.method} over {s.n_units} images)")
        return out + (f"; {self.n_undefined} image(s) undefined, left out" if self.n_undefined else "")


def _estimate(name: str, values: torch.Tensor, confidence: float, seed: int) -> ImageEstimate:
    v = values.detach().double().cpu().reshape(-1)
    ok = torch.isfinite(v)
    if not bool(ok.any()):
        raise UserError(f"{name}: no image has a defined value ({len(v)} NaN/inf); nothing to average")
    s = stats.bootstrap(v[ok].numpy(), unit="image", confidence=confidence, seed=seed)
    return ImageEstimate(name, values.detach(), s, int((~ok).sum()))


def _xy(x, target):
    """A torch Dataset of (x, y) pairs stands for (inputs, targets); tensors pass through."""
    if isinstance(x, Dataset):
        if target is not None:
            raise UserError("target= goes with a tensor of inputs; a Dataset yields its own (x, y) pairs")
        return _as_tensors(x, None)
    return x, target


def _flat_maps(maps) -> torch.Tensor:
    """A map or a tuple of maps (tuple inputs) as one [N, D] tensor, for norms over all inputs together."""
    return torch.cat([m.flatten(1) for m in maps], 1) if isinstance(maps, tuple) else maps.flatten(1)


def stability(model_a: nn.Module, model_b: nn.Module, x, target=None, method: str = "vg", sigma=None, *,
              normalize: bool = False, confidence: float = stats.CONFIDENCE, seed: int = 0,
              **kw) -> ImageEstimate:
    r"""Ye & Farnia's stability error (eq. 12) of two networks' maps, :math:`\|Sal_A(x) - Sal_B(x)\|_2` per image,
    with its mean and a bootstrap CI over images.

    For the paper's quantity, ``model_a`` and ``model_b`` are trained on disjoint splits
    (:func:`train_disjoint_pair`). ``x`` and ``target`` as :func:`attribute`, or ``x`` a torch ``Dataset`` of
    (x, y) pairs (then no ``target``; the same in :func:`fidelity` and :func:`quality`). ``method``, ``sigma``
    (fraction of the pixel range) and the keywords are those of :func:`attribute`; both networks get the
    same noise draws (common random numbers), so the difference measures the networks, not the Monte-Carlo
    noise. ``normalize``: compare unit-L2 maps (a difference of direction, in [0, 2]).
    """
    x, target = _xy(x, target)
    a = attribute(model_a, x, target, method, sigma=sigma, seed=seed, **kw)
    b = attribute(model_b, x, target, method, sigma=sigma, seed=seed, **kw)
    err = agreement.stability_error(_flat_maps(a), _flat_maps(b), normalize=normalize)
    return _estimate(f"stability error ({method}, sigma={sigma or 0:g})", err, confidence, seed)


def fidelity(model: nn.Module, x, target=None, method: str = "vg", sigma=None, *, normalize: bool = False,
             confidence: float = stats.CONFIDENCE, seed: int = 0, **kw) -> ImageEstimate:
    r"""Ye & Farnia eq. 13: :math:`\|\mathbb{E}_z Sal(x + z) - Sal(x)\|_2` per image, how far smoothing moves the
    map, with its mean and a bootstrap CI over images. ``sigma`` (fraction of the pixel range, > 0) or
    ``stdevs``, and the other keywords, as :func:`attribute`. Eq. 13 averages over the two networks of a
    pair: average two calls' ``per_image``."""
    if not _smoothing(sigma, kw.get("stdevs")):
        raise UserError(f"fidelity compares the smoothed map with the plain one: it needs sigma > 0, got {sigma!r}")
    x, target = _xy(x, target)
    plain = attribute(model, x, target, method, seed=seed,
                      **{k: v for k, v in kw.items() if k not in ("stdevs", "pixel_range", "nt_samples", "nt_type")})
    smooth = attribute(model, x, target, method, sigma=sigma, seed=seed, **kw)
    err = agreement.fidelity_error(_flat_maps(smooth), _flat_maps(plain), normalize=normalize)
    return _estimate(f"fidelity error ({method}, sigma={sigma if sigma is not None else kw.get('stdevs')})", err,
                     confidence, seed)


def quality(model: nn.Module, x: torch.Tensor, target=None, metrics: Sequence[str] = ("gini",), method: str = "vg",
            sigma=None, *, representation: Callable | None = None, radius: float = 0.05, n_samples: int = 16,
            clip: tuple[float, float] | None = None, percentages: Sequence[float] = (0.1, 0.2, 0.3),
            confidence: float = stats.CONFIDENCE, seed: int = 0, **kw) -> dict[str, ImageEstimate]:
    """Explanation quality of one network's maps, per metric an :class:`ImageEstimate` (mean, CI over images).

    ``metrics`` among :data:`QUALITY_METRICS`: "gini" (sparseness, Chalasani et al. 2020; higher is sparser),
    "ris" / "ros" / "rrs" (relative input / output / representation stability, Agarwal et al. 2022; lower is
    more stable; ``n_samples`` perturbations per image uniform in the L∞ ball of ``radius`` in input units,
    clamped to ``clip`` only if given; "rrs" needs ``representation``, a callable x → internal features),
    "road" / "road_lerf" (ROAD AUC under most- / least-relevant-first removal at ``percentages``, Rong et al.
    2022; needs images [N, C, H, W]). The maps are those of :func:`attribute` (``method``, ``sigma`` and
    keywords), explained at every perturbed input with the image's own noise draws.
    """
    bad = [m for m in metrics if m not in QUALITY_METRICS]
    if bad or not metrics:
        raise UserError(f"unknown quality metric(s) {bad or '(none)'}; valid: {', '.join(QUALITY_METRICS)}")
    if "rrs" in metrics and not callable(representation):
        raise UserError("metric 'rrs' needs representation=, a callable x -> the model's internal features")
    x, target = _xy(x, target)
    maps = attribute(model, x, target, method, sigma=sigma, seed=seed, **kw)
    if not isinstance(x, torch.Tensor):
        raise UserError(f"quality needs x as one tensor [N, ...], got {type(x).__name__}")
    tgt = None if target is None else _check_target(x, target)[0]  # None: RIS/ROS/ROAD use the predicted class
    out = {}
    if "gini" in metrics:
        out["gini"] = _estimate("gini", sparsity.gini(maps), confidence, seed)
    kinds = tuple(k for k, m in (("input", "ris"), ("output", "ros"), ("representation", "rrs")) if m in metrics)
    if kinds:
        def explain(v, t, ids):
            return attribute(model, v, t, method, sigma=sigma, seed=seed, ids=ids, **kw)
        res = relative_stability.relative_stabilities(explain, model, x, tgt, representation=representation,
                                                      kinds=kinds, radius=radius, n_samples=n_samples, seed=seed,
                                                      clip=clip, explain_ids=True)
        for k, m in (("input", "ris"), ("output", "ros"), ("representation", "rrs")):
            if k in res:
                out[m] = _estimate(m.upper(), res[k].score, confidence, seed)
    for m, order in (("road", "morf"), ("road_lerf", "lerf")):
        if m in metrics:
            r = faithfulness.road(model, x, maps, tgt, percentages=percentages, order=order, seed=seed)
            out[m] = _estimate(f"ROAD AUC ({order.upper()})", r.auc, confidence, seed)
    return out


# --------------------------------------------------------------------------- training a disjoint pair
def _as_tensors(data, targets) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, torch.Tensor):
        if not isinstance(targets, torch.Tensor) or targets.shape != data.shape[:1] or targets.dtype.is_floating_point:
            raise UserError(f"with a tensor of inputs {list(data.shape)}, targets must be an integer tensor of shape "
                            f"[{data.shape[0]}], got {getattr(targets, 'shape', type(targets).__name__)}")
        return data, targets
    if targets is not None:
        raise UserError("targets= goes with a tensor of inputs; a Dataset yields its own (x, y) pairs")
    try:
        n = len(data)
        pairs = [data[i] for i in range(n)]
        xs = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        ys = torch.as_tensor([int(p[1]) for p in pairs], dtype=torch.long)
    except (TypeError, IndexError, ValueError, RuntimeError) as e:
        raise UserError(f"data must be a tensor of inputs (with targets=) or a torch Dataset of (x, y) pairs with "
                        f"equal-shaped x and integer y; got {type(data).__name__}: {e}") from e
    return xs, ys


def train_disjoint_pair(make_model: Callable[[], nn.Module], data, targets=None, *, n: int | None = None,
                        epochs: float = 2.0, batch_size: int = 64, lr: float = 0.05, optimizer: str = "sgd_ct",
                        c: float = 20.0, weight_noise: float = 0.0, seed: int = 0, device: str | torch.device = "cpu",
                        progress: bool = False,
                        fit: Callable | None = None) -> tuple[nn.Module, nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Two networks from ``make_model()`` trained on disjoint halves of the data: Ye & Farnia sec. 5.1's pair.

    ``data``: a float tensor of inputs [n_total, ...] in the model's units with ``targets`` (integer [n_total]),
    or a torch ``Dataset`` of (x, y) pairs. ``n`` images per half (default: half of the data), drawn by a
    seeded permutation (:func:`empirical.data.disjoint_splits`: never overlapping). Each network is trained by
    the project's one trainer, :func:`empirical.training.trainer.train` (cross-entropy on the model's logits;
    ``optimizer`` "sgd_ct": α_t = min(lr, c/t), the step rule of Theorems 5-6, or "noisy_sgd" with
    ``weight_noise``, "sgd", "adam"; divergence is a one-line error), with its own seed (initialisation and
    batch order). The trainer reads pixel images in [0, 1]; inputs in any units are handed to it mapped
    affinely onto [0, 1] by the data's min and max, and mapped back by its ``normalize`` step, so the model
    sees its own units (to float32 rounding). ``fit(model, x, y, seed)`` replaces the trainer with the
    caller's own training. Returns (model_a, model_b, (indices_a, indices_b)), both in eval mode.
    """
    from dataclasses import replace

    from empirical import data as data_mod
    from empirical.training.trainer import TrainConfig, train

    x, y = _as_tensors(data, targets)
    if not x.is_floating_point():
        raise UserError(f"inputs must be floats in the model's units, got {x.dtype} (scale integer images first)")
    half = x.shape[0] // 2 if n is None else n
    idx = data_mod.disjoint_splits(x.shape[0], 2, half, seed=seed)
    cfg = TrainConfig(optimizer=optimizer, epochs=epochs, batch_size=batch_size, lr=lr, c=c,
                      weight_noise=weight_noise, seed=seed)
    cfg.validate()
    if fit is None:
        lo, hi = float(x.min()), float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise UserError(f"inputs must be finite and not all equal, got values in [{lo}, {hi}]")
        span, dtype = hi - lo, x.dtype
        x01 = ((x - lo) / span).clamp_(0.0, 1.0)  # clamp: rounding at the two ends

        def to_model_units(b: torch.Tensor) -> torch.Tensor:
            return b.to(dtype) * span + lo
    models = []
    for h, ix in enumerate(idx):
        torch.manual_seed(seed * 2 + h)
        model = make_model()
        if not isinstance(model, nn.Module):
            raise UserError(f"make_model must return an nn.Module, got {type(model).__name__}")
        model = model.to(device)
        if fit is not None:
            fit(model, x[ix].to(device), y[ix].to(device), seed * 2 + h)
        else:
            train(model, x01[ix], y[ix], to_model_units, replace(cfg, seed=seed * 2 + h), device=device,
                  desc=f"half {h}", progress=progress)
        models.append(model.eval())
    return models[0], models[1], (idx[0], idx[1])
