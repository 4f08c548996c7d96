"""The batching engine every gradient method runs on: images x noise draws x path steps flattened into one index,
evaluated ``max_batch`` points per forward/backward, with per-image Monte-Carlo statistics merged across
chunks (see :mod:`empirical.attribution` for the choices).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Callable, Iterator

import torch
from torch import nn

from empirical.attribution._checks import _check_ids, _check_x, _logits_at, _positive_int
from empirical.keyed_rng import noise_draws


def draw_noise(x: torch.Tensor, n_draws: int, seed: int = 0, ids=None) -> torch.Tensor:
    r"""The standard normal draws :math:`\varepsilon` that :func:`smoothgrad` uses, [N, n_draws, *x.shape[1:]].

    Draw d of image i is a pure function of (seed, ids[i], d) (:func:`empirical.keyed_rng.noise_draws`),
    in ``x``'s dtype, the same on every device; ``ids`` defaults to ``arange(N)``.

    Example:
        >>> x = torch.zeros(2, 3)
        >>> torch.equal(draw_noise(x, 4, ids=[7, 8])[1], draw_noise(x[1:], 4, ids=[8])[0])
        True
    """
    _check_x(x)
    n_draws = _positive_int("n_draws", n_draws)
    ids = torch.as_tensor(_check_ids(ids, x.shape[0]), dtype=torch.int64, device=x.device)
    n = x.shape[0]
    eps = noise_draws(seed, ids.repeat_interleave(n_draws), torch.arange(n_draws, device=x.device).repeat(n),
                      x[0].numel(), x.dtype, x.device)
    return eps.view(n, n_draws, *x.shape[1:])


_DIFFERENTIABLE = contextvars.ContextVar("differentiable_maps", default=False)


@contextlib.contextmanager
def differentiable() -> Iterator[None]:
    """Maps computed inside keep their autograd graph to the input (``create_graph=True``), so that a loss on a
    map can be differentiated with respect to ``x``: the double backward of an attribution attack (IFIA,
    Ghorbani et al. 2019) or of an attribution regulariser. Outside it, maps are detached (the default).

    Covers every method of :data:`~empirical.attribution.METHODS` (gradient methods via :func:`_target_grad`,
    Grad-CAM in :mod:`~empirical.attribution.cam`). Memory: the whole graph of every chunk is kept until the
    caller's backward, so ``max_batch`` no longer bounds it; chunk the images instead.

    Example:
        >>> lin = nn.Linear(3, 1)
        >>> x = torch.rand(2, 3, requires_grad=True)
        >>> from empirical.attribution import integrated_gradients
        >>> with differentiable():
        ...     ig = integrated_gradients(lin, x, 0, steps=4)
        >>> (g,) = torch.autograd.grad(ig.sum(), x)  # IG = x * w on a linear model, so d/dx = w
        >>> torch.allclose(g, lin.weight.detach().expand(2, 3))
        True
    """
    token = _DIFFERENTIABLE.set(True)
    try:
        yield
    finally:
        _DIFFERENTIABLE.reset(token)


def keeps_graph() -> bool:
    """True inside :func:`differentiable`."""
    return _DIFFERENTIABLE.get()


def _target_grad(model: nn.Module, points: torch.Tensor, target: torch.Tensor, hi: int | None = None) -> torch.Tensor:
    """∇ of f_{target[i]} at points[i], for all i in one backward of Σ_i f_{target[i]}(points[i]); ``hi``: the
    largest class any call asks for, checked against the logits (None: not checked). Inside
    :func:`differentiable` the gradient keeps its graph to ``points`` (and whatever ``points`` came from)."""
    keep = _DIFFERENTIABLE.get()
    with torch.enable_grad():
        if not (keep and points.requires_grad):
            points = points.detach().requires_grad_(True)
        score = _logits_at(model(points), points.shape[0], hi, target).sum()
        (grad,) = torch.autograd.grad(score, points, create_graph=keep)
    return grad


def _target_logits(packed, x: torch.Tensor, target: torch.Tensor, max_batch: int | None,
                   hi: int | None = None) -> torch.Tensor:
    """f_{target[i]}(x[i]) for packed points x [N, ...] (``packed``: an ``inputs.Packed``)."""
    step, n = max_batch or x.shape[0], x.shape[0]
    out = []
    with torch.no_grad():
        for lo in range(0, n, step):
            rows = torch.arange(lo, min(lo + step, n), device=x.device)
            out.append(_logits_at(packed.forward(x[lo:lo + step], rows), len(rows), hi, target[lo:lo + step]))
    return torch.cat(out)


def _fold(v: torch.Tensor, start: int, width: int) -> torch.Tensor:
    """Rows of ``v`` are flat indices start, start + 1, ...: zero-pad to whole blocks, view [m, width, ...]."""
    front, back = start % width, (-(start + v.shape[0])) % width
    if front or back:
        v = torch.cat([v.new_zeros((front,) + v.shape[1:]), v, v.new_zeros((back,) + v.shape[1:])])
    return v.view((-1, width) + v.shape[1:])


def _engine(x: torch.Tensor, evaluate: Callable, n_draws: int, steps: int,
            max_batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and M2 (sum of squared deviations) over draws of :math:`M_{nd} = \sum_s c(n, d, s)`, per image.

    The flat index e = (n · n_draws + d) · steps + s runs over images × draws × steps; each chunk of at most
    ``max_batch`` indices is one call ``evaluate(n, d, s)`` returning contributions [k, *map_shape]. Sums over
    s are carried across chunk borders; per-image statistics over d are merged chunk by chunk (Chan, Golub &
    LeVeque 1979), so memory stays O(max_batch + N) maps whatever n_draws and steps are. Reductions are
    reshapes and sums, not scatter-adds, so they are deterministic on CUDA too.
    """
    n_img, dev = x.shape[0], x.device
    total = n_img * n_draws * steps
    chunk = max_batch or total
    mean = m2 = None
    carry = None
    for lo in range(0, total, chunk):
        hi = min(total, lo + chunk)
        idx = torch.arange(lo, hi, device=dev)
        gid = idx // steps
        c = evaluate(gid // n_draws, gid % n_draws, idx % steps)
        g_lo, g_hi = lo // steps, (hi - 1) // steps
        sums = c if steps == 1 else _fold(c, lo, steps).sum(1)
        if carry is not None:
            sums[0] += carry
        if hi % steps:  # the last group continues in the next chunk
            carry, sums = sums[-1].clone(), sums[:-1]
            g_hi -= 1
        else:
            carry = None
        if sums.shape[0] == 0:
            continue
        if mean is None:
            mean = c.new_zeros((n_img,) + c.shape[1:])
            m2 = torch.zeros_like(mean)
        # Completed groups g_lo..g_hi belong to images n_lo..n_hi; groups complete in order, so image n had
        # na of its draws merged before this chunk and gets nb more now.
        n_lo, n_hi = g_lo // n_draws, g_hi // n_draws
        sl = slice(n_lo, n_hi + 1)
        first_g = torch.arange(n_lo, n_hi + 1, device=dev, dtype=c.dtype) * n_draws
        na = (first_g.clamp_min(g_lo) - first_g)
        nb = (first_g + n_draws - 1).clamp_max(g_hi) - first_g.clamp_min(g_lo) + 1
        bshape = (-1,) + (1,) * (c.dim() - 1)
        mask = _fold(torch.ones(sums.shape[0], device=dev, dtype=c.dtype), g_lo, n_draws)
        folded = _fold(sums, g_lo, n_draws)
        mean_b = folded.sum(1) / nb.view(bshape)
        dev_b = (folded - mean_b[:, None]) * mask.view(mask.shape + (1,) * (c.dim() - 1))
        m2_b = (dev_b ** 2).sum(1)
        first = (na == 0).view(bshape)
        ntot = (na + nb).view(bshape)
        delta = mean_b - mean[sl]
        # The first batch of an image is taken as is, so a one-chunk run is not perturbed by the merge.
        mean[sl] = torch.where(first, mean_b, mean[sl] + delta * nb.view(bshape) / ntot)
        m2[sl] = torch.where(first, m2_b, m2[sl] + m2_b + delta ** 2 * (na * nb).view(bshape) / ntot)
    return mean, m2


def _stderr(m2: torch.Tensor, n_draws: int) -> torch.Tensor:
    if n_draws == 1:
        return torch.full_like(m2, float("nan"))
    return (m2 / (n_draws - 1)).sqrt() / math.sqrt(n_draws)


def _perturb(x, sig, n, d, noise, seed, ids) -> torch.Tensor:
    """x[n] + σ ε_{n,d} for index tensors n, d of one chunk."""
    if noise is not None:
        eps = noise[n, d].to(device=x.device, dtype=x.dtype)
    else:
        # Path steps repeat an (image, draw) pair on consecutive rows: draw each pair once, then expand.
        new = torch.cat([n.new_ones(1, dtype=torch.bool), (n[1:] != n[:-1]) | (d[1:] != d[:-1])])
        eps = noise_draws(seed, ids[n[new]], d[new], x[0].numel(), x.dtype, x.device).view(-1, *x.shape[1:])
        eps = eps[torch.cumsum(new.long(), 0) - 1]
    return x[n] + sig * eps
