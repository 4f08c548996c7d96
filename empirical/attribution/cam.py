r"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from empirical.attribution._checks import _alias, _check_choice, _check_max_batch, _check_target, _logits_at, _shape
from empirical.attribution.engine import keeps_graph
from empirical.attribution.inputs import Packed
from empirical.errors import UserError
from empirical.nets.models import eval_mode as _eval_mode

UPSAMPLE = ("bilinear", "nearest", None)


# --------------------------------------------------------------------------- Grad-CAM
def _cam(acts: torch.Tensor, grads: torch.Tensor, plus: bool, relu: bool) -> torch.Tensor:
    space = tuple(range(2, acts.dim()))  # the layer's spatial dims (none for a linear layer, as in Captum)
    if not plus:
        weights = grads.mean(space, keepdim=True) if space else grads
    else:
        g2 = grads ** 2
        denom = 2 * g2 + (acts.sum(space, keepdim=True) if space else acts) * g2 * grads
        nonzero = denom != 0
        alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(g2))
        a_g = alpha * grads.clamp_min(0)
        weights = a_g.sum(space, keepdim=True) if space else a_g
    cam = (weights * acts).sum(1, keepdim=True)
    return cam.clamp_min(0) if relu else cam


def gradcam(model: nn.Module, inputs, target=None, layer: nn.Module | None = None, plus: bool = False,
            upsample: str | None = "bilinear", max_batch: int | None = None, *, relu_attributions: bool = True,
            additional_forward_args=None, internal_batch_size: int | None = None) -> torch.Tensor:
    r"""Grad-CAM (Selvaraju et al. 2017) or, with ``plus``, Grad-CAM++ (Chattopadhay et al. 2018); [N, 1, H, W].

    With :math:`A^k` the activations of ``layer`` (output [N, K, h, w], captured by a forward hook) and
    :math:`g^k = \partial f_y / \partial A^k`:

    - Grad-CAM: :math:`L = \mathrm{ReLU}(\sum_k w_k A^k)`, :math:`w_k = \frac{1}{hw}\sum_{ij} g^k_{ij}`.
    - Grad-CAM++: :math:`w_k = \sum_{ij} \alpha^k_{ij} \mathrm{ReLU}(g^k_{ij})` with the closed-form alphas of
      the exponentiated score (paper eq. 19), :math:`\alpha^k_{ij} = (g^k_{ij})^2 / (2 (g^k_{ij})^2 +
      \sum_{ab} A^k_{ab} (g^k_{ij})^3)`, 0 where the denominator is 0. The paper's weights carry a factor
      :math:`e^{f_y}`, a positive per-image scale; it is left out (as pytorch-grad-cam does) because it
      overflows float32 for logits above ~88 and would make raw map norms depend on the confidence.

    ``relu_attributions``: the final ReLU of the paper (default True); Captum's ``LayerGradCam`` has the same
    switch but defaults to False. ``upsample``: ``"bilinear"`` (``align_corners=False``) or ``"nearest"`` to
    the (first) input's H × W, or None for the layer resolution [N, 1, h, w] (Captum's ``LayerGradCam``
    output). A layer without spatial dims ([N, K], e.g. a linear layer) gives [N, 1] (then ``upsample`` must
    be None), as Captum. ``inputs``, ``target``, ``additional_forward_args``: as :func:`vanilla_gradient`;
    ``internal_batch_size`` (alias ``max_batch``): images per forward pass.
    """
    packed = Packed(model, inputs, additional_forward_args)
    x = packed.x
    _check_choice("upsample", upsample, UPSAMPLE)
    if upsample is not None and packed.parts[0].dim() != 4:
        raise UserError(f"Grad-CAM upsampling needs images [N, C, H, W] as the (first) input, got shape "
                        f"{_shape(packed.parts[0])}; pass upsample=None for the layer's resolution")
    if not isinstance(model, nn.Module) or not isinstance(layer, nn.Module) \
            or not any(m is layer for m in model.modules()):
        raise UserError(f"layer must be a submodule of the model, got {type(layer).__name__}")
    max_batch = _check_max_batch(_alias("internal_batch_size", internal_batch_size, "max_batch", max_batch, None))
    captured: list[torch.Tensor] = []
    keep = keeps_graph()
    with _eval_mode(model):
        target, hi = _check_target(x, target)
        handle = layer.register_forward_hook(lambda mod, inp, out: captured.append(out))
        cams = []
        try:
            step = max_batch or x.shape[0]
            for lo in range(0, x.shape[0], step):
                captured.clear()
                rows = torch.arange(lo, min(lo + step, x.shape[0]), device=x.device)
                with torch.enable_grad():
                    # x needs grad so that the layer's output is in the graph even for a frozen model; inside
                    # engine.differentiable() x keeps its own graph and the map stays differentiable.
                    xb = x[lo:lo + step]
                    logits = packed.forward(xb if keep and xb.requires_grad else xb.detach().requires_grad_(True), rows)
                    ok_dims = (4,) if upsample is not None else (2, 3, 4)
                    if len(captured) != 1 or not isinstance(captured[0], torch.Tensor) \
                            or captured[0].dim() not in ok_dims:
                        raise UserError(f"the Grad-CAM layer must run once per forward and output [N, K, h, w]"
                                        f"{' (or [N, K] with upsample=None)' if upsample is not None else ' or [N, K]'}"
                                        f"; it ran {len(captured)} times, output "
                                        f"{_shape(captured[0]) if captured else None}")
                    score = _logits_at(logits, len(rows), hi, target[lo:lo + step]).sum()
                    (grads,) = torch.autograd.grad(score, captured[0], create_graph=keep)
                cams.append(_cam(captured[0] if keep else captured[0].detach(), grads, plus, relu_attributions))
        finally:
            handle.remove()
    cam = torch.cat(cams)
    if upsample is None:
        return cam
    kw = {"align_corners": False} if upsample == "bilinear" else {}
    return F.interpolate(cam, size=tuple(packed.parts[0].shape[-2:]), mode=upsample, **kw)
