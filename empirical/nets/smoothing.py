r"""Feature-map smoothing block (Bhusal et al., sec. 3.3 and appendix B; after Xie et al. 2019).

The block maps a feature map :math:`x` of shape :math:`(B, C, H, W)` to

.. math::  y = x + W_{1\times 1} * \mathrm{filter}(x)

(the paper's Figure 2: smoothing, then a 1×1 convolution, merged with the input by a residual
connection). ``filter`` is one of :data:`FILTERS`:

- ``"mean"``: k×k box filter (appendix B.1, eq. 9), :func:`mean_filter2d`.
- ``"median"``: k×k median (eq. 10), :func:`median_filter2d`, differentiable almost everywhere.
- ``"gaussian"``: k×k Gaussian (eqs. 11-12), :func:`gaussian_filter2d`, σ in feature-map pixels.
- ``"nonlocal_gaussian"``: :math:`f(x_i, x_j) = e^{x_i^\top x_j}` (appendix B.2, eqs. 13-14; Wang et al. 2018),
  :func:`nonlocal_gaussian`.
- ``"embedded_gaussian"``: :math:`f = e^{\theta(x_i)^\top \phi(x_j)}` with 1×1 convolutions θ, φ (eq. 15),
  :func:`embedded_gaussian`.
- ``"identity"``: no filter, :math:`y = x + W_{1\times 1} * x` (receptive-field ablation, appendix G).
- ``"random_conv"``: a randomly initialised k×k convolution in place of the filter (appendix G).

Choices the paper leaves open, made here:

- Borders: every local filter pads by reflection (``"reflect"``: ``d c b | a b c d | c b a``), as kornia's
  filters do by default; the output keeps the input's :math:`H \times W`. Kernel sizes are odd.
- Median: our own unfold-median (reflect-pad, gather the k×k window, ``torch.median``), equal in value to
  ``kornia.filters.median_blur`` (which the paper used). Its gradient is that of a selection: each output
  pixel passes its whole gradient to the single window element that is the median (for an odd window the
  median is one of the values; among exact ties ``torch.median`` picks one). We use our own rather than
  kornia's because kornia 0.9 switches between a sorting network and ``torch.median`` depending on
  ``requires_grad`` and device, which would route gradients among ties differently between runs.
- Gaussian: ``kernel_size=3``, ``sigma=1.0`` by default, both explicit, σ in feature-map pixels; the kernel
  samples :math:`e^{-(u^2+v^2)/2\sigma^2}` at integer offsets and is normalised to sum 1 (so eq. 12's
  :math:`1/2\pi\sigma^2` drops out). With k=3 and σ=1 the weights are 0.075 (corner), 0.124 (edge) and 0.204
  (centre). The paper's code set σ = 0.3((w − 1)/2 − 1) + 0.8 from the feature map's width w (OpenCV's
  default-σ rule with the map's width in place of the kernel size): σ ≈ 5.2 for w = 32, for which a 3×3
  kernel is within 3 % of the mean filter (weights 0.110-0.114 against 1/9). We do not reproduce that.
- Non-local filters follow eq. 13 as written (and Xie et al. 2019's denoising block): the weighted average is
  over the raw features :math:`x_j`, with softmax normalisation :math:`\mathcal{C}(x) = \sum_j f(x_i, x_j)`, no
  value embedding g, no sub-sampling and no batch norm (the AlexHex7 code the paper cites has all three). The
  dot products are not scaled (eq. 14); ``scale`` multiplies them if wanted (Xie et al. use
  :math:`1/\sqrt{d}` in the embedded form).
- Embedded Gaussian: θ, φ are 1×1 convolutions with bias to ``inner_channels`` = max(1, C // 2) channels by
  default (Wang et al. 2018's bottleneck), standard PyTorch initialisation, trainable.
- The 1×1 convolution has a bias and PyTorch's standard initialisation (Kaiming-uniform, a = √5), like a plain
  ``nn.Conv2d`` in the paper's code. ``zero_init=True`` zeroes it so that the block starts as the identity map
  (the trick of Xie et al. and Goyal et al. for residual branches); it is off by default because the paper
  does not use it, and with it the gradient reaching θ, φ or a trainable random conv is zero at step 0.
- Random conv: a full C → C k×k convolution without bias, reflect-padded, PyTorch's standard random
  initialisation, FROZEN by default (``random_conv_trainable=False``): like the mean, median and Gaussian filters
  it is then a fixed operator that only widens the receptive field, which is what appendix G isolates. The
  frozen weights stay in ``state_dict`` (as a parameter with ``requires_grad=False``) so a checkpoint
  reproduces the block.
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

from empirical.errors import UserError
from empirical.nets.filters import (
    _check_border,
    _check_feature_map,
    _check_kernel_size,
    embedded_gaussian,
    filter2d_depthwise,
    gaussian_kernel2d,
    mean_filter2d,
    median_filter2d,
    nonlocal_gaussian,
)

FILTERS = ("mean", "median", "gaussian", "nonlocal_gaussian", "embedded_gaussian", "identity", "random_conv")


class SmoothingBlock(nn.Module):
    r"""Feature-map smoothing block :math:`y = x + W_{1\times 1} * \mathrm{filter}(x)` (sec. 3.3, Figure 2).

    Args:
        channels: C, the feature map's channels (the 1×1 convolution is C → C).
        filter: one of :data:`FILTERS` (see the module docstring).
        kernel_size: odd k of the local filters and of ``random_conv`` (3 in the paper).
        sigma: Gaussian standard deviation in feature-map pixels (``"gaussian"`` only).
        inner_channels: D of the θ, φ embeddings (``"embedded_gaussian"`` only); default max(1, C // 2).
        scale: multiplies the non-local dot products (1 in the paper).
        random_conv_trainable: whether ``random_conv``'s k×k weights train (default frozen).
        zero_init: zero the 1×1 convolution so the block starts as the identity.
        border_type: padding of the local filters and ``random_conv``, one of :data:`BORDERS`.

    Shape:
        :math:`(B, C, H, W) \to (B, C, H, W)`.

    Example:
        >>> block = SmoothingBlock(8, "gaussian", kernel_size=3, sigma=1.0)
        >>> block(torch.randn(2, 8, 6, 6)).shape
        torch.Size([2, 8, 6, 6])
    """

    def __init__(self, channels: int, filter: str = "mean", kernel_size: int = 3, sigma: float = 1.0,
                 inner_channels: int | None = None, scale: float = 1.0, random_conv_trainable: bool = False,
                 zero_init: bool = False, border_type: str = "reflect"):
        super().__init__()
        if filter not in FILTERS:
            raise UserError(f"unknown smoothing filter {filter!r}; valid: {', '.join(FILTERS)}")
        if not isinstance(channels, numbers.Integral) or channels < 1:
            raise UserError(f"channels must be a positive integer, got {channels!r}")
        _check_kernel_size(kernel_size)
        _check_border(border_type)
        self.channels, self.filter, self.kernel_size, self.sigma = channels, filter, kernel_size, sigma
        self.scale, self.border_type, self.zero_init = scale, border_type, zero_init
        self.inner_channels = inner_channels
        self.random_conv_trainable = random_conv_trainable
        if filter == "gaussian":
            self.register_buffer("kernel", gaussian_kernel2d(kernel_size, sigma))
        elif filter == "embedded_gaussian":
            self.inner_channels = inner_channels if inner_channels is not None else max(1, channels // 2)
            self.theta = nn.Conv2d(channels, self.inner_channels, 1)
            self.phi = nn.Conv2d(channels, self.inner_channels, 1)
        elif filter == "random_conv":
            self.random_conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False,
                                         padding_mode="zeros" if border_type == "constant" else border_type)
            self.random_conv.weight.requires_grad_(random_conv_trainable)
        self.conv = nn.Conv2d(channels, channels, 1)
        if zero_init:
            nn.init.zeros_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """The filter alone, before the 1×1 convolution and the residual: :math:`(B, C, H, W)` → same."""
        f = self.filter
        if f == "mean":
            return mean_filter2d(x, self.kernel_size, self.border_type)
        if f == "median":
            return median_filter2d(x, self.kernel_size, self.border_type)
        if f == "gaussian":
            return filter2d_depthwise(x, self.kernel, self.border_type)
        if f == "nonlocal_gaussian":
            return nonlocal_gaussian(x, self.scale)
        if f == "embedded_gaussian":
            return embedded_gaussian(x, self.theta.weight, self.phi.weight, self.theta.bias, self.phi.bias, self.scale)
        if f == "random_conv":
            return self.random_conv(x)
        return x  # "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature_map(x)
        if x.shape[1] != self.channels:
            raise UserError(f"SmoothingBlock({self.channels}) got a feature map with {x.shape[1]} channels")
        return x + self.conv(self.smooth(x))

    def extra_repr(self) -> str:
        s = f"{self.channels}, filter={self.filter!r}"
        if self.filter in ("mean", "median", "gaussian", "random_conv"):
            s += f", kernel_size={self.kernel_size}, border_type={self.border_type!r}"
        if self.filter == "gaussian":
            s += f", sigma={self.sigma}"
        if self.filter in ("nonlocal_gaussian", "embedded_gaussian") and self.scale != 1.0:
            s += f", scale={self.scale}"
        if self.filter == "random_conv":
            s += f", trainable={self.random_conv_trainable}"
        return s + (", zero_init=True" if self.zero_init else "")


def insert_smoothing_block(model: nn.Module, after: str, block: nn.Module) -> nn.Module:
    """Insert ``block`` right after the child module named ``after``, in place; return ``model``.

    The child is replaced by ``nn.Sequential(child, block)``, so it keeps its name (``model.block1`` now
    outputs the smoothed map, and a checkpoint's keys gain ``.0.`` / ``.1.``). ``after`` may be a dotted
    path (``"block1.0"``) to reach a child of a submodule. Works for any module that calls the child by
    attribute (``nn.Sequential``, a ResNet's ``layer1``), not only for the project's ``nn.Sequential`` models.

    Raises:
        ValueError: ``after`` is not a child; the message lists the valid names.

    Example:
        >>> from collections import OrderedDict
        >>> m = nn.Sequential(OrderedDict(block1=nn.Conv2d(1, 4, 3), head=nn.Flatten()))
        >>> m = insert_smoothing_block(m, "block1", SmoothingBlock(4, "mean"))
        >>> type(m.block1[1]).__name__
        'SmoothingBlock'
    """
    prefix, _, name = after.rpartition(".")
    try:
        parent = model.get_submodule(prefix)  # "" is the model itself
    except AttributeError:
        parent, prefix, name = model, "", after
    children = dict(parent.named_children())
    if name not in children:
        valid = ", ".join(f"{prefix}.{n}" if prefix else n for n in children) or "(none)"
        raise UserError(f"no child module {after!r} to insert a smoothing block after; valid: {valid}")
    setattr(parent, name, nn.Sequential(children[name], block))
    return model
