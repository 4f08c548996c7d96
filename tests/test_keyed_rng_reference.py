"""The int32 counter-based generator is bit for bit the int64 reference it replaced (the committed results'
noise), on random keys, offsets near 2^32 and every device here."""
import torch

from empirical.keyed_rng import keyed_normal, keyed_uniform

_M32 = 0xFFFFFFFF


def _mul32(x, c):
    return ((x & 0xFFFF) * c + ((((x >> 16) * c) & 0xFFFF) << 16)) & _M32


def _hash32(x):
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def reference_uniform(seed, ids, offset, count, dtype=torch.float32):
    """keyed_uniform as first written (int64 arithmetic, 16-bit half products)."""
    ids = ids.to(torch.int64)
    k1 = _hash32((ids ^ _hash32(torch.tensor(int(seed) & _M32, device=ids.device))) & _M32)
    k2 = _hash32((k1 + 0x9E3779B9) & _M32)
    off = torch.as_tensor(offset, device=ids.device, dtype=torch.int64).reshape(-1, 1)
    ctr = off + torch.arange(count, device=ids.device, dtype=torch.int64)[None, :]
    h = _hash32((_hash32((ctr ^ k1[:, None]) & _M32) + k2[:, None]) & _M32)
    return ((h >> 8).to(torch.float64) + 0.5).div(2.0**24).to(dtype)


def test_int32_generator_equals_the_int64_reference():
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.randint(0, 1 << 31, (60,), generator=g), torch.tensor([0, 1, (1 << 31) - 1])])
    for seed in (0, 1, 0x5A11E7C1, (1 << 32) - 1, 123456789):
        for offset in (0, 7, (1 << 32) - 100, torch.randint(0, 1 << 32, (len(ids),), generator=g)):
            a = keyed_uniform(seed, ids, offset, 300, torch.float64)
            b = reference_uniform(seed, ids, offset, 300, torch.float64)
            assert torch.equal(a, b), (seed, offset)
    big = keyed_normal(3, torch.arange(50), torch.arange(50) * 1000, 1000, torch.float64)
    u = reference_uniform(3, torch.arange(50), 2 * torch.arange(50) * 1000, 2000, torch.float64).view(50, 1000, 2)
    ref = torch.sqrt(-2 * torch.log(u[..., 0])) * torch.cos(2 * torch.pi * u[..., 1])
    assert torch.equal(big, ref)
