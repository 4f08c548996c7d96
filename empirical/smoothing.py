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

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from empirical.errors import UserError

FILTERS = ("mean", "median", "gaussian", "nonlocal_gaussian", "embedded_gaussian", "identity", "random_conv")
BORDERS = ("reflect", "replicate", "circular", "constant")


def _check_feature_map(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise UserError(f"expected a feature map of shape (B, C, H, W), got {getattr(x, 'shape', type(x))}")


def _check_kernel_size(kernel_size: int) -> None:
    if not isinstance(kernel_size, numbers.Integral) or kernel_size < 1 or kernel_size % 2 == 0:
        raise UserError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")


def _check_border(border_type: str) -> None:
    if border_type not in BORDERS:
        raise UserError(f"unknown border_type {border_type!r}; valid: {', '.join(BORDERS)}")


def _pad(x: torch.Tensor, kernel_size: int, border_type: str) -> torch.Tensor:
    p = kernel_size // 2
    if p == 0:
        return x
    if border_type == "reflect" and min(x.shape[-2:]) <= p:
        # F.pad's own message ("Padding size should be less than ...") does not say which filter asked.
        raise UserError(f"reflect padding of a {kernel_size}×{kernel_size} filter needs H, W > {p}, "
                        f"got {tuple(x.shape[-2:])}")
    return F.pad(x, (p, p, p, p), mode=border_type)


def filter2d_depthwise(x: torch.Tensor, kernel: torch.Tensor, border_type: str = "reflect") -> torch.Tensor:
    """Correlate every channel of ``x`` with the same odd k×k ``kernel``, padding the border.

    Args:
        x: feature map :math:`(B, C, H, W)`.
        kernel: :math:`(k, k)`, cast to ``x``'s dtype and device.
        border_type: one of :data:`BORDERS`.

    Returns:
        :math:`(B, C, H, W)`.

    Example:
        >>> filter2d_depthwise(torch.ones(1, 2, 4, 4), torch.full((3, 3), 1 / 9)).shape
        torch.Size([1, 2, 4, 4])
    """
    _check_feature_map(x)
    _check_border(border_type)
    k = kernel.shape[-1]
    if kernel.dim() != 2 or kernel.shape[0] != k:
        raise UserError(f"kernel must be square (k, k), got {tuple(kernel.shape)}")
    _check_kernel_size(k)
    c = x.shape[1]
    weight = kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, k, k)
    return F.conv2d(_pad(x, k, border_type), weight, groups=c)


def mean_filter2d(x: torch.Tensor, kernel_size: int = 3, border_type: str = "reflect") -> torch.Tensor:
    r"""k×k mean (box) filter, per channel (appendix B.1, eq. 9), output the size of the input.

    :math:`O(u, v) = k^{-2} \sum_{|i|, |j| \le k/2} I(u + i, v + j)` on the ``border_type``-padded input (eq. 9 is
    the same sum written without padding).

    Args:
        x: :math:`(B, C, H, W)`.
        kernel_size: odd k.
        border_type: one of :data:`BORDERS`.

    Returns:
        :math:`(B, C, H, W)`.

    Example:
        >>> mean_filter2d(torch.arange(9.).view(1, 1, 3, 3))[0, 0, 1, 1]
        tensor(4.)
    """
    _check_feature_map(x)
    _check_kernel_size(kernel_size)
    _check_border(border_type)
    return F.avg_pool2d(_pad(x, kernel_size, border_type), kernel_size, stride=1)


def median_filter2d(x: torch.Tensor, kernel_size: int = 3, border_type: str = "reflect") -> torch.Tensor:
    r"""k×k median filter, per channel (appendix B.1, eq. 10), differentiable almost everywhere.

    Reflect-pad, gather each k×k window, take ``torch.median``. The backward pass sends each output pixel's
    gradient to the one window element that is its median (a sub-gradient at ties). Equal in value to
    ``kornia.filters.median_blur(x, k, border_type)``.

    Args:
        x: :math:`(B, C, H, W)`.
        kernel_size: odd k (the median of k² values is then one of them).
        border_type: one of :data:`BORDERS`.

    Returns:
        :math:`(B, C, H, W)`.

    Example:
        >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 9.0  # an isolated spike is removed
        >>> median_filter2d(x).abs().max()
        tensor(0.)
    """
    _check_feature_map(x)
    _check_kernel_size(kernel_size)
    _check_border(border_type)
    if kernel_size == 1:
        return x.clone()
    k = kernel_size
    windows = _pad(x, k, border_type).unfold(2, k, 1).unfold(3, k, 1)  # (B, C, H, W, k, k), a view
    return windows.reshape(*x.shape, k * k).median(dim=-1).values


def gaussian_kernel2d(kernel_size: int, sigma: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""Isotropic k×k Gaussian kernel (appendix B.1, eq. 12), normalised to sum 1.

    :math:`K(u, v) \propto e^{-(u^2 + v^2) / 2\sigma^2}` at integer offsets :math:`|u|, |v| \le k/2`; the outer
    product of the 1-D kernel of ``kornia.filters.get_gaussian_kernel1d``. As σ → 0 it tends to the delta
    kernel (the identity filter); as σ → ∞ to the mean filter.

    Args:
        kernel_size: odd k.
        sigma: standard deviation in feature-map pixels, > 0.

    Returns:
        :math:`(k, k)`.

    Example:
        >>> gaussian_kernel2d(3, 1.0).sum()
        tensor(1.)
    """
    _check_kernel_size(kernel_size)
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise UserError(f"sigma must be a positive finite number of feature-map pixels, got {sigma!r}")
    # Computed in float64: for tiny σ the off-centre taps underflow to exactly 0 and the kernel is the delta.
    n = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    g = torch.exp(-n.square() / (2.0 * float(sigma) ** 2))
    g = g / g.sum()
    return torch.outer(g, g).to(device=device, dtype=dtype)


def gaussian_filter2d(x: torch.Tensor, kernel_size: int = 3, sigma: float = 1.0,
                      border_type: str = "reflect") -> torch.Tensor:
    """k×k Gaussian filter, per channel (appendix B.1, eq. 11): ``x`` correlated with :func:`gaussian_kernel2d`.

    Equals ``kornia.filters.gaussian_blur2d(x, k, (sigma, sigma), border_type)``.

    Args:
        x: :math:`(B, C, H, W)`.
        kernel_size: odd k.
        sigma: standard deviation in feature-map pixels.
        border_type: one of :data:`BORDERS`.

    Returns:
        :math:`(B, C, H, W)`.

    Example:
        >>> torch.allclose(gaussian_filter2d(torch.ones(1, 2, 5, 5), 3, 1.0), torch.ones(1, 2, 5, 5))
        True
    """
    return filter2d_depthwise(x, gaussian_kernel2d(kernel_size, sigma, device=x.device, dtype=x.dtype), border_type)


def nonlocal_weights(query: torch.Tensor, key: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r"""Non-local weights :math:`w_{ij} = f(q_i, k_j) / \sum_j f(q_i, k_j)` with :math:`f = e^{s\,q_i^\top k_j}`.

    The normalisation :math:`\mathcal{C}(x)` of eqs. 13-15 makes each row a softmax over the :math:`HW` positions.

    Args:
        query: :math:`(B, D, H, W)`.
        key: :math:`(B, D, H, W)`.
        scale: s, multiplies the dot products (1 in the paper).

    Returns:
        :math:`(B, HW, HW)`, rows summing to 1; row i is position i = h·W + w.

    Example:
        >>> nonlocal_weights(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)).sum(-1).allclose(torch.ones(2, 20))
        True
    """
    _check_feature_map(query)
    if key.shape != query.shape:
        raise UserError(f"query and key must have the same shape, got {tuple(query.shape)} and {tuple(key.shape)}")
    q = query.flatten(2)  # (B, D, L)
    k = key.flatten(2)
    return torch.softmax(scale * q.transpose(1, 2) @ k, dim=-1)


def nonlocal_mean(x: torch.Tensor, query: torch.Tensor, key: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r"""Eq. 13: :math:`m_i = \sum_j w_{ij} x_j` with the weights of :func:`nonlocal_weights`.

    Args:
        x: :math:`(B, C, H, W)`, the features averaged.
        query, key: :math:`(B, D, H, W)`, the features compared.
        scale: multiplies the dot products.

    Returns:
        :math:`(B, C, H, W)`.
    """
    _check_feature_map(x)
    if query.shape[0] != x.shape[0] or query.shape[2:] != x.shape[2:]:
        raise UserError(f"query {tuple(query.shape)} does not match the batch and grid of x {tuple(x.shape)}")
    w = nonlocal_weights(query, key, scale)  # (B, L, L)
    return (x.flatten(2) @ w.transpose(1, 2)).view_as(x)


def nonlocal_gaussian(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r"""Non-local Gaussian filter (eq. 14; Wang et al. 2018).

    :math:`m_i = \sum_j \mathrm{softmax}_j(x_i^\top x_j)\, x_j`, the softmax over all :math:`HW` positions j.

    Args:
        x: :math:`(B, C, H, W)`.
        scale: multiplies the dot products (1 in the paper).

    Returns:
        :math:`(B, C, H, W)`. A constant feature map is returned unchanged.

    Example:
        >>> nonlocal_gaussian(torch.full((1, 3, 4, 4), 0.5)).unique()
        tensor([0.5000])
    """
    return nonlocal_mean(x, x, x, scale)


def embedded_gaussian(x: torch.Tensor, theta_weight: torch.Tensor, phi_weight: torch.Tensor,
                      theta_bias: torch.Tensor | None = None, phi_bias: torch.Tensor | None = None,
                      scale: float = 1.0) -> torch.Tensor:
    r"""Embedded Gaussian filter (eq. 15): :math:`m_i = \sum_j \mathrm{softmax}_j(\theta(x_i)^\top \phi(x_j))\, x_j`.

    :math:`\theta(x) = W_\theta x + b_\theta`, :math:`\phi(x) = W_\phi x + b_\phi` are 1×1 convolutions.

    Args:
        x: :math:`(B, C, H, W)`.
        theta_weight, phi_weight: :math:`(D, C, 1, 1)` (``nn.Conv2d`` weights).
        theta_bias, phi_bias: :math:`(D,)` or None.
        scale: multiplies the dot products (1 in the paper).

    Returns:
        :math:`(B, C, H, W)`.

    Example:
        >>> w = torch.randn(2, 4, 1, 1)
        >>> embedded_gaussian(torch.randn(1, 4, 3, 3), w, w).shape
        torch.Size([1, 4, 3, 3])
    """
    _check_feature_map(x)
    return nonlocal_mean(x, F.conv2d(x, theta_weight, theta_bias), F.conv2d(x, phi_weight, phi_bias), scale)


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

