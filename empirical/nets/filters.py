r"""The smoothing filters of the feature-map smoothing block, as plain functions on feature maps [B, C, H, W]
(Bhusal et al., appendix B): mean, median, Gaussian, non-local Gaussian and embedded Gaussian. The choices
the paper leaves open are listed in :mod:`empirical.nets.smoothing`.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from empirical.errors import UserError

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
