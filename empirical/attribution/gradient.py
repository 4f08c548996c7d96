"""Vanilla gradient (Simonyan et al. 2013; Ye & Farnia eq. 4)."""
from __future__ import annotations

import torch
from torch import nn

from empirical.attribution._checks import _check_max_batch, _check_target, _check_x
from empirical.attribution.engine import _engine, _target_grad
from empirical.nets.models import eval_mode as _eval_mode


# --------------------------------------------------------------------------- gradient methods
def vanilla_gradient(model: nn.Module, x: torch.Tensor, target, max_batch: int | None = None) -> torch.Tensor:
    r"""The vanilla gradient :math:`\nabla_x f_y(x)` (Ye & Farnia eq. 4; Simonyan et al. 2013), shape of ``x``.

    Example:
        >>> lin = nn.Linear(3, 2, bias=False)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(vanilla_gradient(lin, x, torch.ones(4, dtype=torch.long)), lin.weight[1].expand(4, 3))
        True
    """
    _check_x(x)
    max_batch = _check_max_batch(max_batch)
    with _eval_mode(model):
        target, hi = _check_target(x, target)
        mean, _ = _engine(x, lambda n, d, s: _target_grad(model, x[n], target[n], hi), 1, 1, max_batch)
    return mean
