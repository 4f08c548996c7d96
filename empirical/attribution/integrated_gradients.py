"""Integrated Gradients (Sundararajan et al. 2017; Ye & Farnia eq. 6) and its quadrature rules."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from empirical.attribution._checks import (
    _check_baseline,
    _check_choice,
    _check_max_batch,
    _check_target,
    _check_x,
    _positive_int,
)
from empirical.attribution.engine import _engine, _target_grad, _target_logits
from empirical.nets.models import eval_mode as _eval_mode

RULES = ("gausslegendre", "riemann_trapezoid", "riemann_right", "riemann_left", "riemann_middle")


# --------------------------------------------------------------------------- building blocks
def ig_quadrature(steps: int, rule: str = "gausslegendre", dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Nodes :math:`\alpha_s` and weights :math:`w_s` with :math:`\int_0^1 g \approx \sum_s w_s g(\alpha_s)`.

    Every rule's weights sum to 1, so IG is exact (up to rounding) on a linear model. ``riemann_trapezoid``
    is the composite trapezoid rule on ``steps`` equally spaced nodes including 0 and 1 (weights
    :math:`1/(n-1)`, halved at the ends); Captum's version uses :math:`1/n` there, so its weights sum to
    :math:`(n-1)/n` and its IG misses completeness by a factor :math:`(n-1)/n` even on a linear model.
    ``gausslegendre`` matches Captum's nodes and weights exactly. Shapes: both [steps].

    Example:
        >>> a, w = ig_quadrature(3, "riemann_trapezoid")
        >>> a.tolist(), w.tolist()
        ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    _check_choice("rule", rule, RULES)
    n = _positive_int("steps", steps, 2 if rule == "riemann_trapezoid" else 1)
    if rule == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (t + 1.0), 0.5 * w
    elif rule == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
    else:
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[rule]
        alphas, weights = (np.arange(n) + offset) / n, np.full(n, 1.0 / n)
    return (torch.as_tensor(alphas, dtype=dtype, device=device), torch.as_tensor(weights, dtype=dtype, device=device))


def integrated_gradients(model: nn.Module, x: torch.Tensor, target, baseline=None, steps: int = 50,
                         rule: str = "gausslegendre", return_residual: bool = False,
                         max_batch: int | None = None):
    r"""Integrated Gradients (Ye & Farnia eq. 6; Sundararajan et al. 2017), shape of ``x``:

    .. math::  \mathrm{IG}(x) = (x - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha (x - x_0))\, d\alpha
               \approx (x - x_0) \odot \sum_s w_s \nabla f_y(x_0 + \alpha_s (x - x_0)),

    nodes and weights from :func:`ig_quadrature` (``rule``, ``steps``). ``baseline`` :math:`x_0`: None
    (zeros), a number, or a tensor of ``x``'s shape or one sample's shape. With ``return_residual`` also the
    completeness residual :math:`\sum_j \mathrm{IG}_j - (f_y(x) - f_y(x_0))`, shape [N] (Captum's
    convergence delta, sign included); it is 0 up to rounding on a linear model.

    Example:
        >>> lin = nn.Linear(3, 1).double()
        >>> x = torch.randn(2, 3, dtype=torch.float64)
        >>> ig, res = integrated_gradients(lin, x, torch.zeros(2, dtype=torch.long), return_residual=True)
        >>> torch.allclose(ig, lin.weight.detach() * x), bool(res.abs().max() < 1e-12)
        (True, True)
    """
    _check_x(x)
    alphas, weights = ig_quadrature(steps, rule, x.dtype, x.device)
    x0 = _check_baseline(baseline, x)
    max_batch = _check_max_batch(max_batch)
    with _eval_mode(model):
        target, hi = _check_target(x, target)

        def evaluate(n, d, s):
            diff = x[n] - x0[n]
            a = alphas[s].view((-1,) + (1,) * (x.dim() - 1))
            w = weights[s].view_as(a)
            return w * _target_grad(model, x0[n] + a * diff, target[n], hi) * diff

        ig, _ = _engine(x, evaluate, 1, len(alphas), max_batch)
        if not return_residual:
            return ig
        gap = _target_logits(model, x, target, max_batch) - _target_logits(model, x0, target, max_batch)
    return ig, ig.flatten(1).sum(1) - gap
