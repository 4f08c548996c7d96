"""Input-Hessian norm of the target logit, on the network itself or on a softplus surrogate of it.

We estimate ‖∇²_x f_y(x)‖₂ (units: logit per pixel unit squared) per test image by power iteration on
Hessian-vector products (double backward), all images of a batch at once: in eval mode each image's
logit depends only on its own input, so one HVP of Σ_i f_{y_i}(x_i) gives every image's HVP.

For ReLU/max-pool networks the Hessian is zero almost everywhere (piecewise linear): the estimate is
then ~0 and says nothing about the gradient's jumps. :func:`softplus_hessian_norm` reads a smooth
stand-in instead: a copy of the network with every ``nn.ReLU`` replaced by ``Softplus(β)``,
softplus_β(z) = log(1 + e^{βz})/β, which lies within log(2)/β of ReLU and whose second derivative
β·σ(βz)(1 − σ(βz)) is a bump of height β/4 and width ~1/β at the kink: as β → ∞ the surrogate's logits and
gradients tend to the ReLU network's, and its Hessian at a point whose pre-activations stay away from 0
tends to 0 (tests/test_curvature.py). Max-pooling is left as it is (still piecewise linear), so the
surrogate's curvature comes from the activations alone.
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
from torch import nn

from empirical.errors import UserError
from empirical.nets.models import eval_mode


def input_hessian_norm(model: nn.Module, x: torch.Tensor, target: torch.Tensor, iters: int = 20,
                       seed: int = 0) -> torch.Tensor:
    """‖∇²_x f_{target}(x)‖₂ per image (largest |eigenvalue|), shape [N]. x: [N, ...] model input."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
    lam = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    xr = x.detach().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        out = model(xr).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(out, xr, create_graph=True)
        for _ in range(iters):
            (hv,) = torch.autograd.grad(grad, xr, grad_outputs=v, retain_graph=True, allow_unused=True)
            if hv is None:  # piecewise-linear network: the Hessian is identically zero here
                hv = torch.zeros_like(xr)
            lam = hv.flatten(1).norm(dim=1)
            v = (hv / lam.clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))).detach()
    return lam.detach()


class SurrogateCurvature(NamedTuple):
    norm: torch.Tensor  # (N,) ‖∇²_x f_target(x)‖₂ of the surrogate, logit per pixel unit squared
    beta: float  # the Softplus sharpness β (1/pre-activation unit); softplus_β → ReLU as β → ∞
    n_replaced: int  # nn.ReLU modules replaced in the copy


def softplus_surrogate(model: nn.Module, beta: float) -> tuple[nn.Module, int]:
    """A deep copy of ``model`` with every ``nn.ReLU`` module replaced by ``nn.Softplus(beta)``; the original is
    untouched. Returns ``(copy, number replaced)``. A model with no ``nn.ReLU`` module (a functional relu in a
    forward, say) is rejected: its copy would be no smoother than the original."""
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise UserError(f"beta must be a finite number > 0 (Softplus sharpness), got {beta!r}")
    surrogate = copy.deepcopy(model)
    found = [(parent, name) for parent in surrogate.modules() for name, child in parent.named_children()
             if isinstance(child, nn.ReLU)]
    if not found:
        raise UserError(f"{type(model).__name__} has no nn.ReLU module to replace by Softplus(beta={beta})")
    for parent, name in found:
        # torch's threshold (20): above β·z = 20 softplus returns z itself, where s'' < β·2e-9 anyway
        setattr(parent, name, nn.Softplus(beta=float(beta)))
    return surrogate, len(found)


def softplus_hessian_norm(model: nn.Module, x: torch.Tensor, target: torch.Tensor, beta: float, iters: int = 20,
                          seed: int = 0) -> SurrogateCurvature:
    """:func:`input_hessian_norm` of :func:`softplus_surrogate` ``(model, beta)``: the curvature a smooth reading
    of a ReLU network has at x, with β recorded beside it (larger β: closer to the ReLU net, and a Hessian
    concentrated in thinner shells around its activation boundaries)."""
    surrogate, n = softplus_surrogate(model, beta)
    return SurrogateCurvature(input_hessian_norm(surrogate, x, target, iters=iters, seed=seed), float(beta), n)
