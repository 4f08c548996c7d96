"""Integrated Gradients (Sundararajan et al. 2017; Ye & Farnia eq. 6) and its quadrature rules."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from empirical.attribution._checks import (
    _alias,
    _check_choice,
    _check_max_batch,
    _check_target,
    _positive_int,
)
from empirical.attribution.engine import _engine, _target_grad, _target_logits
from empirical.attribution.inputs import Packed, eval_mode

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


def integrated_gradients(model: nn.Module, inputs, target=None, baselines=None, n_steps: int | None = None,
                         method: str | None = None, return_convergence_delta: bool | None = None,
                         internal_batch_size: int | None = None, *, multiply_by_inputs: bool = True,
                         additional_forward_args=None, baseline=None, steps: int | None = None,
                         rule: str | None = None, return_residual: bool | None = None, max_batch: int | None = None):
    r"""Integrated Gradients (Ye & Farnia eq. 6; Sundararajan et al. 2017), shape of ``inputs``:

    .. math::  \mathrm{IG}(x) = (x - x_0) \odot \int_0^1 \nabla f_y(x_0 + \alpha (x - x_0))\, d\alpha
               \approx (x - x_0) \odot \sum_s w_s \nabla f_y(x_0 + \alpha_s (x - x_0)),

    nodes and weights from :func:`ig_quadrature` (``method``, ``n_steps``). Captum's argument names, with our
    older names as aliases (give one of each pair): ``baselines``/``baseline`` :math:`x_0` (None: zeros; a
    number; a tensor of the input's shape, [1, ...] or one sample's shape; per input for a tuple),
    ``n_steps``/``steps`` (50), ``method``/``rule`` ("gausslegendre"), ``internal_batch_size``/``max_batch``
    (rows per forward/backward), ``return_convergence_delta``/``return_residual``. ``inputs``: a tensor
    [N, ...] or a tuple of them (a tuple of maps back); ``target``: an int, a 0-d tensor, a list or a tensor
    [N]; ``additional_forward_args`` as Captum. ``multiply_by_inputs=False`` leaves out the factor
    :math:`(x - x_0)`: the path-averaged gradient (Captum's "local" IG).

    With ``return_convergence_delta`` also the completeness residual :math:`\sum_j \mathrm{IG}_j - (f_y(x) -
    f_y(x_0))`, shape [N] (Captum's convergence delta, sign included, summed over all inputs of a tuple); it
    is 0 up to rounding on a linear model, and, as in Captum, it is computed from the returned maps even with
    ``multiply_by_inputs=False``, where it has no meaning.

    Example:
        >>> lin = nn.Linear(3, 1).double()
        >>> x = torch.randn(2, 3, dtype=torch.float64)
        >>> ig, res = integrated_gradients(lin, x, torch.zeros(2, dtype=torch.long), return_residual=True)
        >>> torch.allclose(ig, lin.weight.detach() * x), bool(res.abs().max() < 1e-12)
        (True, True)
    """
    baselines = _alias("baselines", baselines, "baseline", baseline, None)
    n_steps = _alias("n_steps", n_steps, "steps", steps, 50)
    method = _alias("method", method, "rule", rule, "gausslegendre")
    delta = _alias("return_convergence_delta", return_convergence_delta, "return_residual", return_residual, False)
    max_batch = _alias("internal_batch_size", internal_batch_size, "max_batch", max_batch, None)
    packed = Packed(model, inputs, additional_forward_args)
    x = packed.x
    alphas, weights = ig_quadrature(n_steps, method, x.dtype, x.device)
    x0 = packed.baselines(baselines)
    max_batch = _check_max_batch(max_batch)
    with eval_mode(model):
        target, hi = _check_target(x, target)

        def evaluate(n, d, s):
            diff = x[n] - x0[n]
            a = alphas[s].view((-1,) + (1,) * (x.dim() - 1))
            w = weights[s].view_as(a)
            g = w * _target_grad(packed.at(n), x0[n] + a * diff, target[n], hi)
            return g * diff if multiply_by_inputs else g

        ig, _ = _engine(x, evaluate, 1, len(alphas), max_batch)
        if not delta:
            return packed.maps(ig)
        gap = _target_logits(packed, x, target, max_batch, hi) - _target_logits(packed, x0, target, max_batch, hi)
    return packed.maps(ig), ig.flatten(1).sum(1) - gap
