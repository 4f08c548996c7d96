r"""L∞ attacks in pixel space: PGD (Madry et al. 2018) and FGSM with random start (Wong et al. 2020).

Every attack takes images ``x`` in PIXEL space, :math:`[0, 1]^d`, and a ``normalize`` callable that maps pixels
to the model's input (e.g. ``lambda v: (v - mean) / std``); ε and step sizes are in pixel units of [0, 1]
images whatever the normalisation (ε = 8/255 means 8 grey levels). The perturbed image is searched in

.. math::  S(x) = \{x' : \|x' - x\|_\infty \le \varepsilon\} \cap [0, 1]^d,

the L∞ ball intersected with the image box, and the attacks return the adversarial pixel images. The building
blocks are MadryLab robustness's: :func:`random_perturb` (a uniform start in :math:`S(x)`), :func:`step` (the
signed-gradient ascent step, the steepest ascent for the L∞ norm) and :func:`project` (the Euclidean projection
onto :math:`S(x)`, which for a box is the coordinate-wise clamp).

The loss is cross-entropy of the model's logits. Untargeted attacks ascend :math:`\mathrm{CE}(f(x'), y)`;
targeted ones descend :math:`\mathrm{CE}(f(x'), t)` towards the target labels ``t`` (passed as ``y``). The model
runs in eval mode during the attack (batch norm uses its running statistics, dropout is off) and every
submodule's ``training`` flag is restored afterwards; parameter ``.grad`` fields are never touched.
"""
from __future__ import annotations

import numbers
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from empirical.errors import UserError
from empirical.nets.models import eval_mode as _eval_mode

Normalize = Callable[[torch.Tensor], torch.Tensor]


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    r"""Euclidean projection of ``x_adv`` onto :math:`S(x) = \{x' : \|x' - x\|_\infty \le \varepsilon\} \cap [0,1]^d`.

    :math:`S(x)` is a box, :math:`\prod_k [\max(0, x_k - \varepsilon), \min(1, x_k + \varepsilon)]`, so the
    projection clamps each coordinate. Non-empty whenever :math:`x \in [0, 1]^d`.

    Example:
        >>> project(torch.tensor([0.9, 0.0, 0.5]), torch.tensor([0.5, 0.05, 0.5]), 0.1)
        tensor([0.6000, 0.0000, 0.5000])
    """
    return torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0.0, 1.0)


def step(x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    r"""Steepest-ascent step for the L∞ norm: :math:`x' + \alpha\,\mathrm{sign}(\nabla_{x'} L)` (unprojected).

    Example:
        >>> step(torch.zeros(3), torch.tensor([2.0, -0.1, 0.0]), 0.5)
        tensor([ 0.5000, -0.5000,  0.0000])
    """
    return x_adv + step_size * grad.sign()


def random_perturb(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A random start: :math:`\Pi_{S(x)}(x + \delta)`, :math:`\delta \sim U[-\varepsilon, \varepsilon]^d`.

    Example:
        >>> x = torch.full((2, 3), 0.5)
        >>> bool(((random_perturb(x, 0.1) - x).abs() <= 0.1 + 1e-7).all())
        True
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return project(x + (2.0 * u - 1.0) * eps, x, eps)




def _check(x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float | None, steps: int) -> None:
    if not (isinstance(eps, numbers.Real) and eps >= 0):  # also rejects NaN
        raise UserError(f"eps must be a non-negative number (pixel units of [0, 1] images), got {eps!r}")
    if step_size is not None and not (isinstance(step_size, numbers.Real) and step_size >= 0):
        raise UserError(f"step_size must be a non-negative number (pixel units), got {step_size!r}")
    if not isinstance(steps, int) or steps < 1:
        raise UserError(f"steps must be an integer >= 1, got {steps!r}")
    if not x.is_floating_point():
        raise UserError(f"x must be floating-point pixels in [0, 1], got dtype {x.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise UserError(f"y must hold one label per image, shape ({x.shape[0]},), got {tuple(y.shape)}")
    lo, hi = torch.aminmax(x)
    if lo.item() < 0.0 or hi.item() > 1.0:  # NaN fails both comparisons: caught below
        raise UserError(f"x must be pixel images in [0, 1] (normalise inside the attack), got range "
                        f"[{lo.item():.4g}, {hi.item():.4g}]")
    if torch.isnan(lo):
        raise UserError("x holds NaN")


def _identity(v: torch.Tensor) -> torch.Tensor:
    return v


def _losses(model: nn.Module, normalize: Normalize, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(normalize(x_adv)), y, reduction="none")


def _keep_best(best: torch.Tensor, best_loss: torch.Tensor | None, x_adv: torch.Tensor,
               loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # torch.where, not masked assignment: the same values, but static shapes (no nonzero(), no host
    # sync), so the whole attack can be captured in a CUDA graph (empirical.training.lockstep).
    if best_loss is None:
        return x_adv.clone(), loss.clone()
    better = loss > best_loss
    return torch.where(better.view(-1, *([1] * (x_adv.dim() - 1))), x_adv, best), torch.where(better, loss, best_loss)


def pgd_from(model: nn.Module, normalize: Normalize, x: torch.Tensor, y: torch.Tensor, x_start: torch.Tensor,
             eps: float, step_size: float, steps: int, targeted: bool = False, use_best: bool = True) -> torch.Tensor:
    r"""The PGD iterations of :func:`pgd_linf` from a given start ``x_start`` :math:`\in S(x)`, without input checks.

    Pure tensor code with static shapes and no host synchronisation, so it can run inside a CUDA graph
    capture; :func:`pgd_linf` is the checked entry point and calls it. The caller puts the model in eval mode.
    """
    sign = -1.0 if targeted else 1.0
    with torch.enable_grad():
        x_adv = x_start
        best, best_loss = x_adv, None
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = sign * _losses(model, normalize, x_adv, y)  # larger is better for the attacker
            if use_best:
                best, best_loss = _keep_best(best, best_loss, x_adv.detach(), loss.detach())
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            with torch.no_grad():
                x_adv = project(step(x_adv, grad, step_size), x, eps)
        if use_best:
            with torch.no_grad():
                best, _ = _keep_best(best, best_loss, x_adv, sign * _losses(model, normalize, x_adv, y))
    return (best if use_best else x_adv).detach()


def pgd_linf(model: nn.Module, normalize: Normalize | None, x: torch.Tensor, y: torch.Tensor, eps: float,
             step_size: float, steps: int, random_start: bool = True, targeted: bool = False,
             use_best: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Projected gradient descent in L∞ (Madry et al. 2018, sec. 2.1).

    :math:`x^{t+1} = \Pi_{S(x)}(x^t \pm \alpha\,\mathrm{sign}\,\nabla_{x^t} L)`, :math:`x^0` = ``x`` or a random
    start. Solves :math:`\max_{x' \in S(x)} \mathrm{CE}(f(\mathrm{normalize}(x')), y)` (untargeted) or
    :math:`\min_{x' \in S(x)} \mathrm{CE}(f(\mathrm{normalize}(x')), t)` (targeted, ``y`` = target labels t),
    with :math:`S(x) = \{x' : \|x' - x\|_\infty \le \varepsilon\} \cap [0,1]^d` in pixel space.

    Args:
        model: maps ``normalize(x')`` :math:`(B, \ldots)` to logits :math:`(B, K)`.
        normalize: pixels → model input; None for the identity.
        x: pixel images :math:`(B, \ldots)` in [0, 1].
        y: labels :math:`(B,)` (targets if ``targeted``).
        eps: ε, L∞ radius in pixel units.
        step_size: α, pixel units per step (the paper's training attack: ε/10 for 40 steps).
        steps: number of gradient steps, ≥ 1.
        random_start: start from :func:`random_perturb` instead of ``x``.
        targeted: descend towards ``y`` instead of ascending away from it.
        use_best: return, per image, the iterate with the best loss seen (as MadryLab robustness does) rather
            than the last one.
        generator: for the random start; on the device of ``x``.

    Returns:
        adversarial pixel images, ``x``'s shape, in :math:`S(x)`, detached.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
        >>> x_adv = pgd_linf(model, None, x, y, eps=8 / 255, step_size=2 / 255, steps=10)
        >>> bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        True
    """
    _check(x, y, eps, step_size, steps)
    normalize = normalize or _identity
    x = x.detach()
    with _eval_mode(model):
        x_start = random_perturb(x, eps, generator) if random_start else x.clone()
        return pgd_from(model, normalize, x, y, x_start, eps, step_size, steps, targeted=targeted, use_best=use_best)


def fgsm_rs(model: nn.Module, normalize: Normalize | None, x: torch.Tensor, y: torch.Tensor, eps: float,
            step_size: float | None = None, random_start: bool = True, targeted: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
    r"""FGSM with random start (Wong et al. 2020, "Fast is better than free", Alg. 3): one step of size α = 1.25ε.

    :math:`x' = \Pi_{S(x)}(x_0 \pm \alpha\,\mathrm{sign}\,\nabla L(x_0))`, :math:`x_0` = :func:`random_perturb`
    (or ``x`` if not ``random_start``, which with α = ε is Goodfellow et al.'s FGSM). The fast option for
    adversarial training; evaluate robustness with :func:`pgd_linf`.

    Args:
        as :func:`pgd_linf`; ``step_size`` defaults to 1.25·eps (Wong et al.'s choice).

    Returns:
        adversarial pixel images in :math:`S(x)`, detached.
    """
    step_size = 1.25 * eps if step_size is None else step_size
    return pgd_linf(model, normalize, x, y, eps, step_size, 1, random_start=random_start, targeted=targeted,
                    use_best=False, generator=generator)


def robust_accuracy(model: nn.Module, normalize: Normalize | None, x: torch.Tensor, y: torch.Tensor, eps: float,
                    steps: int = 100, step_size: float | None = None, random_start: bool = True,
                    batch_size: int = 256, generator: torch.Generator | None = None) -> float:
    r"""Fraction of images still classified correctly after an untargeted PGD L∞ attack.

    Args:
        as :func:`pgd_linf`; ``step_size`` defaults to 2.5·ε/steps (Madry et al. 2018's rule: enough to cross
        the ball from any start); ``batch_size`` images are attacked at a time.

    Returns:
        robust accuracy in [0, 1]; with ``eps=0`` the clean accuracy.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x, y = torch.rand(6, 1, 2, 2), torch.zeros(6, dtype=torch.long)
        >>> 0.0 <= robust_accuracy(model, None, x, y, eps=0.1, steps=5) <= 1.0
        True
    """
    step_size = 2.5 * eps / steps if step_size is None else step_size
    _check(x, y, eps, step_size, steps)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")
    normalize = normalize or _identity
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = pgd_linf(model, normalize, xb, yb, eps, step_size, steps, random_start=random_start,
                         generator=generator)
        with _eval_mode(model), torch.no_grad():
            correct += (model(normalize(x_adv)).argmax(1) == yb).sum().item()
    return correct / max(1, x.shape[0])
