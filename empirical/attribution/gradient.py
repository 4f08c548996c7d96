"""Vanilla gradient (Simonyan et al. 2013; Ye & Farnia eq. 4) and Input × Gradient (Shrikumar et al. 2016)."""
from __future__ import annotations

import torch
from torch import nn

from empirical.attribution._checks import _alias, _check_max_batch, _check_target
from empirical.attribution.engine import _engine, _target_grad
from empirical.attribution.inputs import Packed, eval_mode


def _gradient(model, inputs, target, max_batch, abs: bool, times_input: bool, additional_forward_args):
    packed = Packed(model, inputs, additional_forward_args)
    x = packed.x
    max_batch = _check_max_batch(max_batch)
    with eval_mode(model):
        target, hi = _check_target(x, target)

        def evaluate(n, d, s):
            g = _target_grad(packed.at(n), x[n], target[n], hi)
            return g * x[n] if times_input else g

        mean, _ = _engine(x, evaluate, 1, 1, max_batch)
    return packed.maps(mean.abs() if abs else mean)


# --------------------------------------------------------------------------- gradient methods
def vanilla_gradient(model: nn.Module, inputs, target=None, max_batch: int | None = None, *, abs: bool = False,
                     additional_forward_args=None, internal_batch_size: int | None = None):
    r"""The vanilla gradient :math:`\nabla_x f_y(x)` (Ye & Farnia eq. 4; Simonyan et al. 2013), shape of ``inputs``.

    Captum's ``Saliency``: ``inputs`` a tensor [N, ...] or a tuple of them (a tuple of maps back), ``target``
    an int, a 0-d tensor, a list or a tensor [N], ``additional_forward_args`` after the inputs,
    ``internal_batch_size`` (alias ``max_batch``: rows per forward/backward). ``abs``: the absolute value of
    the gradient. Our default is the SIGNED gradient (``abs=False``), which the stability bounds are about;
    Captum's ``Saliency.attribute`` defaults to ``abs=True``.

    Example:
        >>> lin = nn.Linear(3, 2, bias=False)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(vanilla_gradient(lin, x, torch.ones(4, dtype=torch.long)), lin.weight[1].expand(4, 3))
        True
    """
    max_batch = _alias("internal_batch_size", internal_batch_size, "max_batch", max_batch, None)
    return _gradient(model, inputs, target, max_batch, abs, False, additional_forward_args)


def input_x_gradient(model: nn.Module, inputs, target=None, *, additional_forward_args=None,
                     internal_batch_size: int | None = None, max_batch: int | None = None):
    r"""Input × Gradient :math:`x \odot \nabla_x f_y(x)` (Shrikumar et al. 2016; Captum's ``InputXGradient``),
    shape of ``inputs``; arguments as :func:`vanilla_gradient`.

    Example:
        >>> lin = nn.Linear(3, 1, bias=False)
        >>> x = torch.randn(2, 3)
        >>> torch.allclose(input_x_gradient(lin, x, 0), x * lin.weight[0])
        True
    """
    max_batch = _alias("internal_batch_size", internal_batch_size, "max_batch", max_batch, None)
    return _gradient(model, inputs, target, max_batch, False, True, additional_forward_args)
