"""One dispatcher over the methods."""
from __future__ import annotations

import torch
from torch import nn

from empirical.attribution._checks import _check_choice
from empirical.attribution.cam import gradcam
from empirical.attribution.gradient import input_x_gradient, vanilla_gradient
from empirical.attribution.integrated_gradients import integrated_gradients
from empirical.attribution.noise_tunnel import smoothgrad

METHODS = ("vg", "ig", "ixg", "sg", "sg_ig", "gradcam", "gradcampp")


# --------------------------------------------------------------------------- dispatch, memory
def saliency(method: str, model: nn.Module, x: torch.Tensor, target, **kw):
    """``method`` in :data:`METHODS`: "vg" (vanilla gradient), "ig", "ixg" (Input × Gradient), "sg" (SmoothGrad;
    ``nt_type`` for SmoothGrad-squared and VarGrad), "sg_ig" (smoothed IG), "gradcam", "gradcampp"; keyword
    arguments go to the method's function (so IG's quadrature rule is ``rule`` here: ``method`` names the
    attribution method)."""
    _check_choice("method", method, METHODS)
    if method == "vg":
        return vanilla_gradient(model, x, target, **kw)
    if method == "ixg":
        return input_x_gradient(model, x, target, **kw)
    if method == "ig":
        return integrated_gradients(model, x, target, **kw)
    if method in ("sg", "sg_ig"):
        return smoothgrad(model, x, target, base="vg" if method == "sg" else "ig", **kw)
    return gradcam(model, x, target, plus=method == "gradcampp", **kw)
