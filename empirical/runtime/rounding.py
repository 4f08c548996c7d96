"""Float32 tolerances derived from what is compared, for tests and benchmark checks that compare two code paths.

Two paths that compute the same float32 quantity differ only in the order of their reductions: PyTorch
and MKL pick kernels (and with them the summation order and blocking) by instruction set (default, AVX2,
AVX-512, AMX), CPU vendor, batch size and thread count. The rounding model, from Higham, *Accuracy and
Stability of Numerical Algorithms* (2nd ed., 2002), §2.2 and eq. (4.4): any summation order of n terms
computes ŝ with |ŝ − s| ≤ γ_{n−1} Σ|x_i|, γ_n = n·u / (1 − n·u), u = 2⁻²⁴ the float32 unit roundoff.
Two orders therefore differ by at most 2·γ_{n−1}·Σ|x_i| — a bound that holds for *every* kernel path,
which is what makes a test portable. Elementwise operations (+, −, ×, ÷, sqrt) are correctly rounded in
every kernel and agree bit for bit; only reductions (sums, norms, matrix products) move.

Bit-equality (``torch.equal``) is asserted in this suite only between runs of the *same* kernel path:
the same function on the same shapes, device and thread count (e.g. a resumed run against an
uninterrupted one in one process). Across batch sizes or code paths use the bounds below.
"""
from __future__ import annotations

U = 2.0 ** -24  # float32 unit roundoff (half an ulp at 1.0)


def gamma(n: int) -> float:
    """Higham's γ_n = n·u / (1 − n·u): the relative error bound of n float32 roundings in sequence."""
    if n * U >= 1:
        raise ValueError(f"gamma({n}) undefined in float32 (n·u ≥ 1)")
    return n * U / (1 - n * U)


def sum_atol(n: int, abs_sum: float) -> float:
    """Largest difference between two summation orders of n terms whose absolute values sum to abs_sum."""
    return 2 * gamma(max(n - 1, 1)) * abs_sum


def norm_rtol(n: int) -> float:
    """Relative difference between two paths' 2-norms of the same n float32 entries.

    ‖v‖ = sqrt(Σ v_i²): each square one rounding, the sum of positive terms γ_{n−1} relative (no
    cancellation: Σ|x_i| = Σ x_i), the sqrt halves a relative error and adds one rounding. Per path
    (γ_n + u)/2 + u ≤ γ_{n+2}; two paths differ by at most twice that."""
    return 2 * gamma(n + 2)


def ratio_of_norms_rtol(*lengths: int) -> float:
    """Relative difference between two paths' products/quotients of 2-norms over the given lengths,
    the entries being bit-identical in both paths (elementwise ops are correctly rounded everywhere):
    relative errors of factors add to first order, and the quotient itself is one more rounding."""
    return sum(norm_rtol(n) for n in lengths) + 2 * U
