"""Input-Hessian norm of the target logit: the curvature view of attribution stability.

The later version of the feature-map paper ("Training for Trustworthy Saliency Maps") ties attribution
stability to how smoothly the input-gradient field varies: ‖∇f(x+δ) − ∇f(x)‖ ≤ sup_t ‖∇²f(x+tδ)‖₂ ‖δ‖
(ledger: cv-mean-value). We estimate ‖∇²_x f_y(x)‖₂ per test image by power iteration on
Hessian-vector products (double backward), all images of a batch at once: in eval mode each image's
logit depends only on its own input, so one HVP of Σ_i f_{y_i}(x_i) gives every image's HVP.

For ReLU/max-pool networks the Hessian is zero almost everywhere (piecewise linear): the estimate is
then ~0 and says nothing about the gradient's jumps; use a smooth activation to read curvature.
"""
from __future__ import annotations

import torch
from torch import nn


def input_hessian_norm(model: nn.Module, x: torch.Tensor, target: torch.Tensor, iters: int = 20,
                       seed: int = 0) -> torch.Tensor:
    """‖∇²_x f_{target}(x)‖₂ per image (largest |eigenvalue|), shape [N]. x: [N, ...] model input."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    was = model.training
    model.eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
    lam = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(xr).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(out, xr, create_graph=True)
        for _ in range(iters):
            (hv,) = torch.autograd.grad(grad, xr, grad_outputs=v, retain_graph=True, allow_unused=True)
            if hv is None:  # piecewise-linear network: the Hessian is identically zero here
                hv = torch.zeros_like(xr)
            lam = hv.flatten(1).norm(dim=1)
            v = (hv / lam.clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))).detach()
    model.train(was)
    return lam.detach()
