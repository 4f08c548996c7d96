r"""IFIA, the iterative feature-importance attack (Ghorbani, Abid & Zou 2019), as Sarkar et al. (2021) use it:

.. math::  \arg\max_{\delta} D(I(x; f), I(x + \delta; f)) \quad \text{s.t.}\ \|\delta\|_\infty \le \varepsilon,\
           \arg\max f(x + \delta) = \arg\max f(x)  \qquad \text{(Sarkar et al., eq. 3)}

with D scored on the top-k pixels. The protocol is that of the public RAR code (Chen et al. 2019,
``Fashion-MNIST/ig_attack.py`` and ``config.json``), which the paper reuses; every choice is a field of
:class:`IFIAConfig` whose default is that code's Fashion-MNIST value:

- Saliency :math:`s(x) = \sum_c |I_c(x)|`, normalised to unit mass: :math:`\hat s = s / \sum_j s_j`.
- Attack loss: the mass of :math:`\hat s(x')` on the ORIGINAL map's k most salient pixels K,
  :math:`L(x') = \sum_{i \in K} \hat s_i(x')`, descended by signed steps
  :math:`x^{t+1} = \Pi_{S(x)}(x^t - \alpha\,\mathrm{sign}\nabla L(x^t))`, :math:`S(x)` the ε-ball ∩ [0, 1]^d
  (:func:`empirical.attacks.pgd.project`). The gradient is taken through a copy of the model whose ReLU
  modules are Softplus(β) (ReLU's second derivative is 0, so :math:`\nabla_x` of a gradient map would miss
  the curvature the attack needs); the label check and every scored map use the REAL model.
- Per restart, every iterate that keeps the predicted label is scored by ``select_by`` (the RAR code's
  ``attribution_attack_measure = "kendall"``: Kendall's τ of the full maps) and the lowest is kept (the
  unattacked x, scoring 1, if none is lower). Across restarts the restart with the lowest score is kept; its
  top-k intersection, Kendall and Spearman (full map and top-k, :mod:`empirical.measures.rank_agreement`)
  are the image's metrics.
- Only images the model classifies correctly are attacked and enter the metrics (:attr:`IFIAResult.n_correct`).

Choices where the RAR code and the issue differ, or the code is silent:

- **Restarts.** The RAR code runs its 3 restarts from x with a deterministic step, so they are identical
  (up to GPU nondeterminism). Here restart 0 starts from x (exactly the RAR run) and, with ``random_start``,
  restarts 1.. start from a uniform point of :math:`S(x)` (:func:`~empirical.attacks.pgd.random_perturb`);
  a random start that changes the label falls back to x.
- **Label changes.** ``on_label_change="skip"`` (the RAR code): the iterate moves on, but a label-changing
  iterate is never a candidate. ``"reject"`` undoes the step (the iterate stays; with a deterministic sign
  step it then stays for good). Either way the returned image keeps the label.
- **Normalisation.** ``x`` is in pixel space [0, 1] and ε, α are pixel units; the model sees
  ``normalize(x)`` (as :func:`~empirical.attacks.pgd.pgd_linf`). The IG baseline is the black image, pixel
  value ``baseline`` = 0, normalised like x.
- **Any method.** ``method`` is any of :data:`empirical.attribution.METHODS`, computed by
  :func:`empirical.attribution.saliency` (differentiably, :func:`empirical.attribution.differentiable`, for
  the attack's gradient). IG uses the RAR code's rule: ``riemann_right`` (nodes (i+1)/m), 100 steps.

Batching: images × restarts form one batch of rows (``max_rows`` per chunk if memory requires), so one step
costs one double backward of the method on every row, one method evaluation on the real model and one
forward (the label check).
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from empirical.attacks.pgd import project, random_perturb
from empirical.attribution import METHODS, RULES, differentiable, saliency
from empirical.errors import UserError
from empirical.measures.agreement import collapse_channels, topk_indices
from empirical.measures.rank_agreement import (
    agreement_metrics,
    kendall_rows,
    resolve_k,
    spearman_rows,
    summarize_images,
)
from empirical.nets.models import eval_mode

SELECT_BY = ("kendall", "spearman", "topk", "kendall_topk")  # kendall_topk: Sarkar et al.'s D (sec. 3)
ON_LABEL_CHANGE = ("skip", "reject")
ATTACK_REDUCTIONS = ("sum_abs", "abs_max")  # non-negative maps: the attack loss is a share of their mass
_SET_BY_CONFIG = {"ig": ("steps", "rule", "baseline"), "sg_ig": ("ig_steps", "ig_rule", "baseline", "ids", "base"),
                  "sg": ("ids", "base"), "gradcam": ("layer", "plus"), "gradcampp": ("layer", "plus"), "vg": ()}


@dataclass(frozen=True)
class IFIAConfig:
    """The attack's protocol; defaults are the RAR code's Fashion-MNIST ``config.json`` (key in quotes)."""

    epsilon: float = 0.1  # L∞ radius, pixel units of [0, 1] images ("epsilon")
    step_size: float = 0.01  # α, pixel units per step ("attribution_attack_step_size")
    steps: int = 100  # iterations per restart ("attribution_attack_steps")
    k: int | float = 100  # top-k set of the loss and the metrics: pixels, or a fraction ("k_top", "eval_k_top")
    restarts: int = 3  # ("attribution_attack_times"); the best restart per image is kept
    random_start: bool = True  # restarts 1.. from U(S(x)); the RAR code starts every restart at x
    method: str = "ig"  # any of empirical.attribution.METHODS ("saliency_type": "ig")
    ig_steps: int = 100  # IG path steps ("num_IG_steps"); also smoothed IG's
    ig_rule: str = "riemann_right"  # the RAR code's counterfactuals (i + 1)/m, i = 0..m-1
    baseline: float = 0.0  # IG baseline pixel value: the black image ("reference_image" zeros)
    softplus_beta: float = 1.0  # β of the Softplus replacing ReLU for the attack's gradient (tf.nn.softplus: 1)
    select_by: str = "kendall"  # the measure minimised over iterates and restarts ("attribution_attack_measure")
    on_label_change: str = "skip"  # "skip" (RAR code) or "reject": see the module docstring
    reduce_channels: str = "sum_abs"  # channel reduction of maps: RAR's reduce_sum(abs(.), -1)
    # extra (name, value) pairs for the method, e.g. (("sigma", 0.5), ("n_draws", 10)); sigma is a fraction of the
    # pixel range (empirical.attribution.sigma: pixel_range= gives its width in the model's input units, default 1)
    method_kwargs: tuple = ()
    gradcam_layer: str | None = None  # submodule name for Grad-CAM (e.g. "block2" of the LeNet)
    # image × restart rows per chunk (None: all in one batch). The attack's double backward keeps ~1.6 MiB per
    # row × IG step on the LeNet (measured, CPU float32), ~160 MiB a row at 100 IG steps: size it to the memory.
    max_rows: int | None = None
    seed: int = 0  # random starts

    def __post_init__(self):
        def real(name, lo, lo_open=False, hi=math.inf):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                    or (v <= lo if lo_open else v < lo) or v > hi:
                raise UserError(f"{name} must be a finite number {'>' if lo_open else '>='} {lo}"
                                f"{'' if hi == math.inf else f' and <= {hi}'}, got {v!r}")

        def integer(name, lo=1):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise UserError(f"{name} must be an integer >= {lo}, got {v!r}")

        real("epsilon", 0)
        real("step_size", 0)
        real("softplus_beta", 0, lo_open=True)
        real("baseline", 0, hi=1)
        integer("steps")
        integer("restarts")
        integer("ig_steps", 2 if self.ig_rule == "riemann_trapezoid" else 1)
        if self.max_rows is not None:
            integer("max_rows")
        for name, valid in (("method", METHODS), ("ig_rule", RULES), ("select_by", SELECT_BY),
                            ("on_label_change", ON_LABEL_CHANGE), ("reduce_channels", ATTACK_REDUCTIONS)):
            if getattr(self, name) not in valid:
                raise UserError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if not (isinstance(self.k, numbers.Real) and not isinstance(self.k, bool) and self.k > 0):
            raise UserError(f"k must be a positive number of pixels or a fraction in (0, 1), got {self.k!r}")
        kw = self.extra_kwargs()
        clash = sorted(set(kw) & set(_SET_BY_CONFIG[self.method]))
        if clash:
            raise UserError(f"method_kwargs may not set {clash}: the config sets them for method {self.method!r}")
        if self.method in ("sg", "sg_ig") and not {"sigma", "n_draws"} <= set(kw):
            raise UserError(f"method {self.method!r} needs sigma and n_draws in method_kwargs, got {sorted(kw)}")
        if self.method in ("gradcam", "gradcampp") and not self.gradcam_layer:
            raise UserError(f"method {self.method!r} needs gradcam_layer (a submodule name, e.g. 'block2')")

    def extra_kwargs(self) -> dict:
        try:
            return dict(self.method_kwargs)
        except (TypeError, ValueError):
            raise UserError(f"method_kwargs must be (name, value) pairs, got {self.method_kwargs!r}") from None


@dataclass(frozen=True)
class IFIAResult:
    """What :func:`ifia_attack` returns. Per-image tensors cover the ``n_correct`` correctly classified images."""

    config: IFIAConfig
    n_images: int  # images given
    n_correct: int  # classified correctly: attacked, and the only ones in the metrics
    correct: torch.Tensor  # (n_images,) bool
    x_adv: torch.Tensor  # (n_correct, C, H, W) pixels: the kept iterate of the kept restart
    x_last: torch.Tensor | None = None  # (n_correct, C, H, W) the kept restart's last iterate (may change the label)
    metrics: dict = field(default_factory=dict)  # name -> (n_correct,) float64, see agreement_metrics()
    restart: torch.Tensor | None = None  # (n_correct,) the kept restart
    label_changes: torch.Tensor | None = None  # (n_correct, restarts) iterates that changed the label
    k_pixels: int = 0  # k in pixels
    n_pixels: int = 0  # pixels per map, so k_fraction = k_pixels / n_pixels
    surrogate_relus: int = 0  # ReLU modules swapped for Softplus(β) in the gradient copy

    def summary(self, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0) -> dict:
        """Plain numbers: counts, natural accuracy, k (pixels and fraction), and per metric the median and the
        mean over images with bootstrap intervals over images
        (:func:`~empirical.measures.rank_agreement.summarize_images`)."""
        cfg = asdict(self.config)
        cfg["method_kwargs"] = [[k, v if isinstance(v, (int, float, str, bool)) else repr(v)]
                                for k, v in self.config.method_kwargs]
        return {"n_images": self.n_images, "n_correct": self.n_correct,
                "natural_accuracy": self.n_correct / self.n_images if self.n_images else float("nan"),
                "k_pixels": self.k_pixels,
                "k_fraction": self.k_pixels / self.n_pixels if self.n_pixels else float("nan"),
                "topk_intersection_reported_as": "fraction |A_k ∩ B_k| / k",
                "surrogate_relus": self.surrogate_relus,
                "metrics": {name: summarize_images(v, confidence, resamples, seed) for name, v in self.metrics.items()},
                "config": cfg}


# --------------------------------------------------------------------------- pieces
def softplus_surrogate(model: nn.Module, beta: float) -> tuple[nn.Module, int]:
    """A frozen copy of ``model`` with every ``nn.ReLU`` module replaced by ``nn.Softplus(beta)``, and how many
    were replaced (ReLUs called functionally, ``F.relu``, cannot be swapped and stay)."""
    sur = copy.deepcopy(model)
    swapped = 0
    for mod in list(sur.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(mod, name, nn.Softplus(beta=beta))
                swapped += 1
    return sur.requires_grad_(False), swapped


def _identity(v: torch.Tensor) -> torch.Tensor:
    return v


def _maps(model: nn.Module, normalize: Callable, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor,
          cfg: IFIAConfig) -> torch.Tensor:
    """The configured method's maps of pixel images ``x`` (rows independent), in the model's input space."""
    kw = cfg.extra_kwargs()
    if cfg.method in ("ig", "sg_ig"):
        base = normalize(torch.full((1,) + tuple(x.shape[1:]), float(cfg.baseline), dtype=x.dtype, device=x.device))[0]
        kw.update({"steps": cfg.ig_steps, "rule": cfg.ig_rule} if cfg.method == "ig" else
                  {"ig_steps": cfg.ig_steps, "ig_rule": cfg.ig_rule})
        kw["baseline"] = base.detach()
    if cfg.method in ("sg", "sg_ig"):
        kw["ids"] = ids  # the same noise for an image's original and attacked maps, in every restart
    if cfg.method in ("gradcam", "gradcampp"):
        try:
            kw["layer"] = model.get_submodule(cfg.gradcam_layer)
        except AttributeError:
            raise UserError(f"gradcam_layer {cfg.gradcam_layer!r} is not a submodule of the model") from None
    return saliency(cfg.method, model, normalize(x), target, **kw)


def _reduced(m: torch.Tensor, cfg: IFIAConfig) -> torch.Tensor:
    return collapse_channels(m, cfg.reduce_channels).flatten(1)


def _chunks(rows: int, max_rows: int | None):
    step = max_rows or rows
    return [slice(lo, min(rows, lo + step)) for lo in range(0, rows, step)]


def _real_maps(model, normalize, x, target, ids, cfg) -> torch.Tensor:
    return torch.cat([_reduced(_maps(model, normalize, x[s], target[s], ids[s], cfg), cfg).detach().to(torch.float64)
                      for s in _chunks(x.shape[0], cfg.max_rows)])


def _loss_grad(sur, normalize, x, target, ids, mask, cfg) -> torch.Tensor:
    """∇_x of the attack loss Σ_{i∈K} ŝ_i(x) (unit-mass saliency on the original top-k), chunk by chunk."""
    grads = []
    for s in _chunks(x.shape[0], cfg.max_rows):
        xb = x[s].detach().requires_grad_(True)
        with torch.enable_grad(), differentiable():
            r = _reduced(_maps(sur, normalize, xb, target[s], ids[s], cfg), cfg)
            mass = r.sum(1, keepdim=True)
            share = r / torch.where(mass > 0, mass, torch.ones_like(mass))  # an all-zero map has no share to move
            (g,) = torch.autograd.grad((share * mask[s]).sum(), xb)
        grads.append(g)
    return torch.cat(grads)


def _score(r0: torch.Tensor, r1: torch.Tensor, cfg: IFIAConfig, k: int) -> torch.Tensor:
    if cfg.select_by == "kendall":
        return kendall_rows(r0, r1)
    if cfg.select_by == "spearman":
        return spearman_rows(r0, r1)
    ia = topk_indices(r0.unsqueeze(1), k, "none")
    if cfg.select_by == "kendall_topk":
        return kendall_rows(r0.gather(1, ia), r1.gather(1, ia))
    ib = topk_indices(r1.unsqueeze(1), k, "none")
    return torch.zeros_like(r0, dtype=torch.bool).scatter(1, ia, True).gather(1, ib).sum(1).to(torch.float64) / k


def _predict(model, normalize, x, max_rows) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(normalize(x[s])).argmax(1) for s in _chunks(x.shape[0], max_rows)])


def _check_inputs(x, y) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise UserError(f"x must be floating pixel images [N, C, H, W], got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[0] == 0:
        raise UserError(f"x holds no images: shape {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (x.shape[0],) or y.is_floating_point():
        got = getattr(y, "shape", type(y).__name__)
        raise UserError(f"y must be integer labels of shape [{x.shape[0]}], got {got}")
    lo, hi = torch.aminmax(x)
    if not (0.0 <= lo.item() and hi.item() <= 1.0):
        raise UserError(f"x must be pixel images in [0, 1] (normalise inside via `normalize`), got range "
                        f"[{lo.item():.4g}, {hi.item():.4g}]")


# --------------------------------------------------------------------------- the attack
def ifia_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: IFIAConfig = IFIAConfig(),
                normalize: Callable[[torch.Tensor], torch.Tensor] | None = None) -> IFIAResult:
    r"""Attack the ``config.method`` maps of ``model`` on pixel images ``x`` [N, C, H, W] in [0, 1], labels ``y`` [N].

    Returns an :class:`IFIAResult`: the kept adversarial images (each in :math:`S(x)`, each with the original
    label) and per image the top-k intersection, Kendall and Spearman between its original and attacked maps
    (full map and top-k), for the correctly classified images only. ``normalize`` maps pixels to the model's
    input (None: identity). See the module docstring for the protocol.
    """
    cfg = config
    if not isinstance(cfg, IFIAConfig):
        raise UserError(f"config must be an IFIAConfig, got {type(cfg).__name__}")
    _check_inputs(x, y)
    n_pix = collapse_channels(x[:1], cfg.reduce_channels)[0].numel()
    k = resolve_k(cfg.k, n_pix)
    normalize = normalize or _identity
    x, y = x.detach(), y.to(x.device)
    sur, swapped = softplus_surrogate(model, cfg.softplus_beta)
    with eval_mode(model), eval_mode(sur):
        correct = _predict(model, normalize, x, cfg.max_rows) == y
        xs, ys = x[correct], y[correct]
        n, r_n = xs.shape[0], cfg.restarts
        result = dict(config=cfg, n_images=x.shape[0], n_correct=n, correct=correct, k_pixels=k, n_pixels=n_pix,
                      surrogate_relus=swapped)
        if n == 0:
            return IFIAResult(x_adv=xs.clone(), x_last=xs.clone(), metrics={},
                              restart=torch.zeros(0, dtype=torch.long),
                              label_changes=torch.zeros(0, r_n, dtype=torch.long), **result)
        ids = torch.arange(n, device=x.device)
        r0 = _real_maps(model, normalize, xs, ys, ids, cfg)  # (n, pixels): the original maps
        mask = torch.zeros_like(r0, dtype=x.dtype).scatter(1, topk_indices(r0.unsqueeze(1), k, "none"), 1.0)
        # Rows: restart-major, row = restart · n + image; one batch for every image and restart.
        x_rows, y_rows, ids_rows = xs.repeat(r_n, 1, 1, 1), ys.repeat(r_n), ids.repeat(r_n)
        r0_rows, mask_rows = r0.repeat(r_n, 1), mask.repeat(r_n, 1)
        cur = x_rows.clone()
        if cfg.random_start and r_n > 1:
            gen = torch.Generator(device=x.device).manual_seed(cfg.seed)
            cur[n:] = random_perturb(x_rows[n:], cfg.epsilon, gen)
            keeps = _predict(model, normalize, cur, cfg.max_rows) == y_rows
            cur = torch.where(keeps.view(-1, 1, 1, 1), cur, x_rows)  # a label-changing start falls back to x
        best, best_score = x_rows.clone(), torch.ones(x_rows.shape[0], dtype=torch.float64, device=x.device)
        changes = torch.zeros(x_rows.shape[0], dtype=torch.long, device=x.device)
        for _ in range(cfg.steps):
            grad = _loss_grad(sur, normalize, cur, y_rows, ids_rows, mask_rows, cfg)
            new = project(cur - cfg.step_size * grad.sign(), x_rows, cfg.epsilon)
            keeps = _predict(model, normalize, new, cfg.max_rows) == y_rows
            changes += (~keeps).long()
            score = _score(r0_rows, _real_maps(model, normalize, new, y_rows, ids_rows, cfg), cfg, k)
            better = keeps & (score < best_score)  # NaN (a constant map) is never better
            best = torch.where(better.view(-1, 1, 1, 1), new, best)
            best_score = torch.where(better, score, best_score)
            cur = new if cfg.on_label_change == "skip" else torch.where(keeps.view(-1, 1, 1, 1), new, cur)
        final = agreement_metrics(r0_rows, _real_maps(model, normalize, best, y_rows, ids_rows, cfg), k, "none")
        pick = best_score.view(r_n, n).argmin(0)  # the first of equally good restarts
        rows = pick * n + ids
        return IFIAResult(x_adv=best[rows], x_last=cur[rows], metrics={name: v[rows] for name, v in final.items()},
                          restart=pick, label_changes=changes.view(r_n, n).T.contiguous(), **result)


# --------------------------------------------------------------------------- one model's attributional robustness
@dataclass(frozen=True)
class PGDEvalConfig:
    """The adversarial accuracy reported beside IFIA; defaults: the RAR code's Fashion-MNIST ``config.json``."""

    epsilon: float = 0.1  # L∞ radius, pixel units ("epsilon")
    steps: int = 20  # ("k")
    step_size: float = 0.01  # pixel units per step ("a")
    random_start: bool = True  # ("random_start")
    seed: int = 0  # the random start's generator


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: IFIAConfig = IFIAConfig(),
             pgd: PGDEvalConfig = PGDEvalConfig(), normalize: Callable | None = None, confidence: float = 0.95,
             resamples: int = 10_000) -> tuple[dict, IFIAResult]:
    """Natural accuracy, PGD accuracy (:func:`~empirical.attacks.pgd.robust_accuracy` with ``pgd``) and the IFIA
    metrics (median and mean over the correctly classified images, bootstrap intervals over images) of one model
    on pixel images ``x``: (the record of :meth:`IFIAResult.summary` plus ``pgd_accuracy`` and ``pgd``, the result)."""
    from empirical.attacks.pgd import robust_accuracy

    if not isinstance(pgd, PGDEvalConfig):
        raise UserError(f"pgd must be a PGDEvalConfig, got {type(pgd).__name__}")
    res = ifia_attack(model, x, y, config, normalize)
    gen = torch.Generator(device=x.device).manual_seed(pgd.seed)
    acc = robust_accuracy(model, normalize, x, y.to(x.device), pgd.epsilon, pgd.steps, pgd.step_size,
                          pgd.random_start, generator=gen)
    return {**res.summary(confidence, resamples), "pgd_accuracy": acc, "pgd": asdict(pgd)}, res
