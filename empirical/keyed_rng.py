r"""Counter-based random numbers: each value a hash of (seed, image id, position), batched on the device.

Why not ``torch.Generator``: a generator gives a stream, so the value an image gets depends on where it sits
in the batch, unless each image (and each noise draw) gets its own reseeded generator, one small kernel
launch per (image, draw): the per-sample Python loop our hot paths must not have (SmoothGrad of 500 images
with 100 draws is 50,000 launches per network and σ). Here every value is a pure function of its key and
position (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3", the counter-based idea; the
mixing function is Wellons' lowbias32 integer hash), computed for all positions at once, so results do not
depend on batch size, batch composition or ``max_batch``, and a CPU and a CUDA run draw the same numbers.

Resolution: uniforms have 24 bits, in (0, 1) exclusive; normals come from Box–Muller on two of them, so
|z| <= sqrt(-2 ln 2^-25) ≈ 5.9 (the tail beyond has probability 4e-9, immaterial for Monte-Carlo means).
"""
from __future__ import annotations

import math

import torch

from empirical.errors import UserError

_M32 = 0xFFFFFFFF
SALIENCY_STREAM = 0x5A11E7C1  # xor-ed into the seed of SmoothGrad noise, so it is not the metrics' stream


def _i32(x: torch.Tensor) -> torch.Tensor:
    """int32 tensor with the low 32 bits of the integer tensor ``x`` (two's complement bit pattern)."""
    x = x.to(torch.int64) & _M32
    return (x - ((x >> 31) << 32)).to(torch.int32)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int32 bit patterns (torch's >> on int32 is arithmetic)."""
    return (x >> k) & ((1 << (32 - k)) - 1)


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 integer hash of int32 bit patterns: products and sums wrap modulo 2^32, so one
    int32 multiply is the 32-bit product (half the memory and a tenth of the operations of an int64
    emulation; bit for bit the same, tested)."""
    x = x ^ _shr(x, 16)
    x = x * 2146121005  # 0x7FEB352D
    x = x ^ _shr(x, 15)
    x = x * -2073254261  # 0x846CA68B as a signed int32
    return x ^ _shr(x, 16)


def keyed_uniform(seed: int, ids: torch.Tensor, offset, count: int, dtype=torch.float32) -> torch.Tensor:
    """Uniform numbers in (0, 1), shape ``(len(ids), count)``: entry j of row i is a function of (seed, ids[i], offset + j).

    A counter-based generator (hash of the key and the position), so each image's stream depends only on
    its id: results do not change with batch size, batch composition or device. 24-bit resolution.
    ``offset``: one int for all rows, or one per row (a ``(len(ids),)`` integer tensor). Positions are taken
    modulo 2^32.
    """
    dev = ids.device
    k1 = _hash32(_i32(ids) ^ _hash32(_i32(torch.tensor(int(seed), device=dev))))
    k2 = _hash32(k1 + _i32(torch.tensor(0x9E3779B9, device=dev)))
    off = _i32(torch.as_tensor(offset, device=dev)).reshape(-1, 1)
    ctr = off + torch.arange(count, device=dev, dtype=torch.int32)[None, :]  # wraps modulo 2^32
    h = _hash32(_hash32(ctr ^ k1[:, None]) + k2[:, None])
    return (_shr(h, 8).to(torch.float64) + 0.5).div(2.0**24).to(dtype)


def keyed_normal(seed: int, ids: torch.Tensor, offset, count: int, dtype=torch.float32) -> torch.Tensor:
    """Standard normal numbers, shape ``(len(ids), count)``: Box–Muller on positions 2·(offset + j), 2·(offset + j) + 1
    of :func:`keyed_uniform`."""
    u = keyed_uniform(seed, ids, 2 * torch.as_tensor(offset, dtype=torch.int64), 2 * count, torch.float64)
    u = u.view(len(ids), count, 2)
    return (torch.sqrt(-2 * torch.log(u[..., 0])) * torch.cos(2 * math.pi * u[..., 1])).to(dtype)


def noise_draws(seed: int, ids: torch.Tensor, draws: torch.Tensor, numel: int, dtype, device) -> torch.Tensor:
    """Standard normal draws ``(len(ids), numel)``: row r is draw ``draws[r]`` of image ``ids[r]`` under ``seed``.

    Draw d of an image occupies positions [d·numel, (d + 1)·numel) of that image's normal stream, so the first
    m draws do not change when more are asked for.
    """
    ids = torch.as_tensor(ids, dtype=torch.int64, device=device)
    draws = torch.as_tensor(draws, dtype=torch.int64, device=device)
    if len(draws) and (int(draws.max()) + 1) * numel * 2 > 1 << 32:
        raise UserError(f"{int(draws.max()) + 1} noise draws of {numel} values exceed the generator's 2^31 "
                        "normal numbers per image; ask for fewer draws")
    return keyed_normal(int(seed) ^ SALIENCY_STREAM, ids, draws * numel, numel, dtype)
