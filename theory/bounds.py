"""Evaluators of Ye & Farnia's bounds (AISTATS 2025, `gaussian-smoothing-stability-fidelity.md`).

The empirical side calls these to print a bound next to a measurement. Every bound comes twice:

- a float64 version (`theorem5_simplegrad_bound`, ...) that follows the printed formula literally, and
- a ``log10_`` version computed in log space (log-sum-exp for the sums inside Γ_{t,i}), because on a
  real network the products of layer norms overflow float64 (20 layers with B_i = 1e20 give 1e400).

Network constants follow sec. 3.2 of the paper: ``B`` is the sequence of ℓ2 operator norms B_1..B_k
(input layer first), ``C`` bounds ||x||₂, ``sigma`` is the SmoothGrad standard deviation in input units
(absolute, not a fraction of the pixel range), ``m`` the input dimension.

Where the ledger (`theory/claims_gaussian.py`) found a printed constant wrong, a ``variant="corrected"``
gives the constant that survives the checks; the printed one stays the default so that a reader can
compare with the paper:

- Remark 4(2): β ≤ (3k+1)Γ_{k,1}²C² fails for small C or B_i (a Hessian cross term is linear in C);
  corrected: β ≤ Γ_{k,1}²C² + C² Σ_{l=1}^{k-1} Γ_{l,1}² Π_{j>l} B_j + C Γ_{k,2}.
- Theorem 5: the saliency-loss Lipschitz constant L' = 2Γ_{k,0}Σ_{i=1}^{k-1}Γ_{i,1}C misses the
  C-free term of ∂(∇_x f)/∂W_i; corrected L' = Γ_{k,1} + Γ_{k,0} C Σ_{i=1}^{k-1}Γ_{i,1}.
- Theorem 6: SmoothGrad's Lipschitz constant in W is √(2/π)Γ_{k,1}C/σ (the paper's implied
  Γ_{k,1}C/σ without √(2/π)); and since Theorem 5 also holds for SmoothGrad, the factor is min(1, ·).

Length (~430 lines): every bound of one paper in its two forms (float64 and log space) side by side, so a
reader checks each log-space version against its literal twin on the same screen.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

LN10 = math.log(10.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

Variant = Literal["printed", "corrected"]


# --------------------------------------------------------------------------------------------------
# Argument checks: messages name the offending value.
# --------------------------------------------------------------------------------------------------


def _norms(B: Sequence[float], *, positive: bool = False) -> np.ndarray:
    b = np.asarray(B, dtype=np.float64).ravel()
    if b.size == 0:
        raise ValueError("B (the layer norms B_1..B_k) is empty; need at least one layer")
    bad = ~np.isfinite(b) | (b <= 0 if positive else b < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        need = "positive" if positive else "nonnegative"
        raise ValueError(f"B[{i}] = {float(b[i])!r}: layer norms must be finite and {need}")
    return b


def _nonneg(name: str, v: float) -> float:
    v = float(v)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} = {v!r} must be finite and nonnegative")
    return v


def _pos(name: str, v: float) -> float:
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} = {v!r} must be finite and positive")
    return v


def _sgd_args(L: float, beta: float, c: float, T: int, n: int) -> tuple[float, float, float, float, float]:
    if int(n) != n or n < 2:
        raise ValueError(f"n = {n!r}: the number of training samples must be an integer >= 2 (the bound has 1/(n-1))")
    if int(T) != T or T < 1:
        raise ValueError(f"T = {T!r}: the number of SGD steps must be an integer >= 1")
    return _pos("L", L), _pos("beta", beta), _pos("c", c), float(T), float(n)


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def _ln_sum(terms: Sequence[float]) -> float:
    """log Σ exp(terms), -inf for an empty or all -inf sum."""
    a = np.asarray(terms, dtype=np.float64)
    if a.size == 0 or np.all(a == -np.inf):
        return -math.inf
    m = float(a.max())
    return m + math.log(float(np.exp(a - m).sum()))


# --------------------------------------------------------------------------------------------------
# Γ_{t,i} (sec. 3.2): sum over the (t−i)-subsets of {B_1..B_t} of their products, i.e. the elementary
# symmetric polynomial e_{t−i}(B_1, ..., B_t). Γ_{t,0} = ΠB_i, Γ_{t,1} = Σ_i Π_{j≠i} B_j, Γ_{t,t} = 1.
# Recursion (e_j of t variables from t−1): Γ_{t,i} = B_t Γ_{t−1,i} + Γ_{t−1,i−1}.
# --------------------------------------------------------------------------------------------------


def gamma_sets(B: Sequence[float]) -> np.ndarray:
    """Table G with G[t, i] = Γ_{t,i} for 0 ≤ i ≤ t ≤ k (zero above the diagonal; sec. 3.2).

    >>> gamma_sets([2.0, 3.0])[2, :3].tolist()   # Γ_{2,0} = 6, Γ_{2,1} = 2 + 3, Γ_{2,2} = 1
    [6.0, 5.0, 1.0]
    """
    b = _norms(B)
    k = b.size
    G = np.zeros((k + 1, k + 1))
    G[0, 0] = 1.0
    for t in range(1, k + 1):
        G[t, t] = 1.0
        for i in range(t - 1, -1, -1):
            G[t, i] = b[t - 1] * G[t - 1, i] + (G[t - 1, i - 1] if i >= 1 else 0.0)
    return G


def log_gamma_sets(B: Sequence[float]) -> np.ndarray:
    """log10 Γ_{t,i} (same layout as `gamma_sets`, -inf where Γ = 0), by the recursion in log space."""
    b = _norms(B)
    k = b.size
    with np.errstate(divide="ignore"):
        lb = np.log(b)
    lG = np.full((k + 1, k + 1), -np.inf)
    lG[0, 0] = 0.0
    for t in range(1, k + 1):
        lG[t, t] = 0.0
        for i in range(t - 1, -1, -1):
            prev = lG[t - 1, i - 1] if i >= 1 else -np.inf
            lG[t, i] = np.logaddexp(lb[t - 1] + lG[t - 1, i], prev)
    return lG / LN10


def gamma_t_i(B: Sequence[float], t: int, i: int) -> float:
    """Γ_{t,i} for the first t layers (sec. 3.2)."""
    k = len(B)
    if not (0 <= i <= t <= k):
        raise ValueError(f"need 0 <= i <= t <= k = {k}, got t = {t}, i = {i}")
    return float(gamma_sets(B)[t, i])


def log10_gamma_t_i(B: Sequence[float], t: int, i: int) -> float:
    k = len(B)
    if not (0 <= i <= t <= k):
        raise ValueError(f"need 0 <= i <= t <= k = {k}, got t = {t}, i = {i}")
    return float(log_gamma_sets(B)[t, i])


def _sum_gamma_i1(G: np.ndarray, k: int) -> float:
    """Σ_{i=1}^{k-1} Γ_{i,1} (Theorems 5-6)."""
    return float(sum(G[i, 1] for i in range(1, k)))


def _log_sum_gamma_i1(lG: np.ndarray, k: int) -> float:
    return _ln_sum([lG[i, 1] * LN10 for i in range(1, k)]) / LN10


# --------------------------------------------------------------------------------------------------
# Remark 4 and Proposition 1: L and β of the training loss.
# --------------------------------------------------------------------------------------------------


def lipschitz_L_bound(B: Sequence[float], C: float, sharp: bool = False) -> float:
    """Remark 4(1): L ≤ Γ_{k,1} C for ℓ(f_W(x), y) with a 1-Lipschitz loss (in the logits).

    ``sharp=True``: C·sqrt(Σ_i Π_{j≠i} B_j²), the ℓ2 norm of the per-layer bounds instead of their sum
    (∂ℓ/∂W_i has Frobenius norm ≤ Π_{j≠i}B_j C; attained by a linear scalar chain).
    """
    b, C = _norms(B), _nonneg("C", C)
    if not sharp:
        return float(gamma_sets(b)[-1, 1] * C)
    per = np.array([np.prod(np.delete(b, i)) for i in range(b.size)])
    return float(np.sqrt(np.sum(per**2)) * C)


def log10_lipschitz_L_bound(B: Sequence[float], C: float, sharp: bool = False) -> float:
    b, C = _norms(B), _nonneg("C", C)
    if not sharp:
        return float(log_gamma_sets(b)[-1, 1]) + _log10(C)
    with np.errstate(divide="ignore"):
        lb = np.log(b)
    per = np.array([np.delete(lb, i).sum() for i in range(b.size)])
    return 0.5 * _ln_sum(2 * per) / LN10 + _log10(C)


def smoothness_beta_noisy(L: float, sigma: float, sharp: bool = False) -> float:
    """Proposition 1 / Remark 4(2): the Gaussian-smoothed loss E_V ℓ(W+V), V ~ N(0, σ²I), is (L/σ)-smooth.

    ``sharp=True``: √(2/π) L/σ, the best constant (attained by L|w| at w = 0; see the ledger).
    ``sigma`` here is the training-noise σ of noisy SGD (eq. 3), not the SmoothGrad σ.
    """
    L, sigma = _nonneg("L", L), _pos("sigma", sigma)
    return (SQRT_2_OVER_PI if sharp else 1.0) * L / sigma


def smoothness_beta_sgd(B: Sequence[float], C: float, variant: Variant = "printed") -> float:
    """Remark 4(2): β of ℓ(f_W(x), y) when φ and the loss are 1-smooth (and 1-Lipschitz).

    printed: (3k+1) Γ_{k,1}² C². It fails for small C or B_i: the Hessian of the loss in W has the
    term ℓ'(f)·∂²f/∂W_i∂W_l, linear in C (ledger: rem4-beta-sgd).
    corrected: Γ_{k,1}²C² + C² Σ_{l=1}^{k-1} Γ_{l,1}² Π_{j>l}B_j + C Γ_{k,2} (Γ_{k,2} = 0 for k = 1).
    """
    b, C = _norms(B), _nonneg("C", C)
    k, G = b.size, gamma_sets(b)
    if variant == "printed":
        return float((3 * k + 1) * G[k, 1] ** 2 * C**2)
    if variant != "corrected":
        raise ValueError(f"variant = {variant!r}: expected 'printed' or 'corrected'")
    quad = sum(G[l, 1] ** 2 * np.prod(b[l:]) for l in range(1, k))
    cross = G[k, 2] if k >= 2 else 0.0
    return float(G[k, 1] ** 2 * C**2 + C**2 * quad + C * cross)


def log10_smoothness_beta_sgd(B: Sequence[float], C: float, variant: Variant = "printed") -> float:
    b, C = _norms(B), _nonneg("C", C)
    k, lG = b.size, log_gamma_sets(b) * LN10
    lC = math.log(C) if C > 0 else -math.inf
    if variant == "printed":
        return (math.log(3 * k + 1) + 2 * lG[k, 1] + 2 * lC) / LN10
    if variant != "corrected":
        raise ValueError(f"variant = {variant!r}: expected 'printed' or 'corrected'")
    with np.errstate(divide="ignore"):
        lb = np.log(b)
    terms = [2 * lG[k, 1] + 2 * lC]
    terms += [2 * lC + 2 * lG[l, 1] + lb[l:].sum() for l in range(1, k)]
    if k >= 2:
        terms.append(lC + lG[k, 2])
    return _ln_sum(terms) / LN10


# --------------------------------------------------------------------------------------------------
# Constants of the saliency loss ℓ'(W; x, y) = ||Sal_W(x, y) − Sal_ref(x, y)|| (eq. 7)
# --------------------------------------------------------------------------------------------------


def saliency_bound_M(B: Sequence[float]) -> float:
    """M = 2Γ_{k,0}: ||∇_x f_y|| ≤ Γ_{k,0}, so ℓ' ∈ [0, 2Γ_{k,0}] (Theorem 5's second factor of γ)."""
    return float(2.0 * gamma_sets(B)[-1, 0])


def saliency_lipschitz(B: Sequence[float], C: float, variant: Variant = "printed") -> float:
    """Lipschitz constant L' of W ↦ ℓ'(W; x, y) used in Theorem 5 (needs φ' 1-Lipschitz).

    printed (implied by γ of Theorem 5): 2Γ_{k,0} Σ_{i=1}^{k-1} Γ_{i,1} C.
    corrected: Γ_{k,1} + Γ_{k,0} C Σ_{i=1}^{k-1} Γ_{i,1}; the first term is ∂(∇_x f)/∂W_i through W_i
    itself, which does not vanish at x = 0 (ledger: thm5-saliency-lipschitz).
    """
    b, C = _norms(B), _nonneg("C", C)
    k, G = b.size, gamma_sets(b)
    s = _sum_gamma_i1(G, k)
    if variant == "printed":
        return float(2.0 * G[k, 0] * s * C)
    if variant != "corrected":
        raise ValueError(f"variant = {variant!r}: expected 'printed' or 'corrected'")
    return float(G[k, 1] + G[k, 0] * C * s)


def log10_saliency_lipschitz(B: Sequence[float], C: float, variant: Variant = "printed") -> float:
    b, C = _norms(B), _nonneg("C", C)
    k, lG = b.size, log_gamma_sets(b)
    ls = _log_sum_gamma_i1(lG, k)
    if variant == "printed":
        return math.log10(2.0) + lG[k, 0] + ls + _log10(C)
    if variant != "corrected":
        raise ValueError(f"variant = {variant!r}: expected 'printed' or 'corrected'")
    return _ln_sum([lG[k, 1] * LN10, (lG[k, 0] + ls + _log10(C)) * LN10]) / LN10


def smoothgrad_lipschitz(B: Sequence[float], C: float, sigma: float, variant: Variant = "printed") -> float:
    """Lipschitz constant in W of the SmoothGrad map with inputs normalised to ||x+z|| ≤ C (Theorem 6).

    From ∇_x E f(x+z) = E[f(x+z) z]/σ² and |Δf| ≤ Γ_{k,1} C ||ΔW||:
    printed (implied by Theorem 6's factor): Γ_{k,1}C/σ; corrected (sharp in the constant): √(2/π)Γ_{k,1}C/σ,
    from E|<u,z>| = σ√(2/π).
    """
    b, C, sigma = _norms(B), _nonneg("C", C), _pos("sigma", sigma)
    base = gamma_sets(b)[-1, 1] * C / sigma
    if variant == "printed":
        return float(base)
    if variant != "corrected":
        raise ValueError(f"variant = {variant!r}: expected 'printed' or 'corrected'")
    return float(SQRT_2_OVER_PI * base)


# --------------------------------------------------------------------------------------------------
# Theorem 5 (SimpleGrad) and Theorem 6 (SmoothGrad): SGD with α_t ≤ c/t for T steps, n samples.
# Up = (1 + 1/(βc))/(n−1) · (2cL)^{1/(βc+1)} · T^{βc/(βc+1)} · L'^{1/(βc+1)} · M^{βc/(βc+1)},
# the minimum over the burn-in t0 of t0 M/n + L'·2L/(β(n−1))(T/t0)^{βc} (Hardt et al. 2016, Thm 3.12),
# with n^{-βc/(βc+1)} relaxed to (n−1)^{-βc/(βc+1)}. Printed γ = L'^{1/(βc+1)} M^{βc/(βc+1)}.
# --------------------------------------------------------------------------------------------------


def _up(L: float, beta: float, c: float, T: float, n: float, Lp: float, M: float) -> float:
    q = beta * c
    return (1.0 + 1.0 / q) / (n - 1.0) * (2 * c * L) ** (1 / (q + 1)) * T ** (q / (q + 1)) \
        * Lp ** (1 / (q + 1)) * M ** (q / (q + 1))


def _log10_up(L: float, beta: float, c: float, T: float, n: float, lLp: float, lM: float) -> float:
    q = beta * c
    return (math.log10(1.0 + 1.0 / q) - math.log10(n - 1.0) + math.log10(2 * c * L) / (q + 1)
            + q / (q + 1) * math.log10(T) + lLp / (q + 1) + q / (q + 1) * lM)


def theorem5_simplegrad_bound(B: Sequence[float], C: float, L: float, beta: float, c: float, T: int, n: int,
                              variant: Variant = "printed") -> float:
    """Theorem 5: ε_stability(SimpleGrad) ≤ Up(SimpleGrad) (float64; overflows on real networks).

    ``variant="corrected"`` uses the corrected saliency Lipschitz constant (see `saliency_lipschitz`).
    """
    L, beta, c, T, n = _sgd_args(L, beta, c, T, n)
    return _up(L, beta, c, T, n, saliency_lipschitz(B, C, variant), saliency_bound_M(B))


def log10_theorem5_simplegrad_bound(B: Sequence[float], C: float, L: float, beta: float, c: float, T: int,
                                    n: int, variant: Variant = "printed") -> float:
    """log10 of `theorem5_simplegrad_bound`, finite where the float64 version overflows."""
    L, beta, c, T, n = _sgd_args(L, beta, c, T, n)
    lM = math.log10(2.0) + float(log_gamma_sets(B)[-1, 0])
    return _log10_up(L, beta, c, T, n, log10_saliency_lipschitz(B, C, variant), lM)


def smoothgrad_factor(B: Sequence[float], sigma: float, beta: float, c: float) -> float:
    """Theorem 6's factor (Γ_{k,1}/(2σΓ_{k,0}Σ_{i=1}^{k-1}Γ_{i,1}))^{1/(βc+1)}: Up(SG)/Up(SimpleGrad).

    It is < 1 only for σ > Γ_{k,1}/(2Γ_{k,0}ΣΓ_{i,1}) (ledger: thm6-factor-below-one). inf for k = 1.
    """
    b, sigma, q = _norms(B), _pos("sigma", sigma), _pos("beta", beta) * _pos("c", c)
    G = gamma_sets(b)
    den = 2 * sigma * G[-1, 0] * _sum_gamma_i1(G, b.size)
    return math.inf if den == 0 else float((G[-1, 1] / den) ** (1 / (q + 1)))


def smoothgrad_sigma_threshold(B: Sequence[float]) -> float:
    """σ above which Theorem 6's factor is < 1: Γ_{k,1}/(2Γ_{k,0}Σ_{i=1}^{k-1}Γ_{i,1})."""
    b = _norms(B)
    G = gamma_sets(b)
    den = 2 * G[-1, 0] * _sum_gamma_i1(G, b.size)
    return math.inf if den == 0 else float(G[-1, 1] / den)


def theorem6_smoothgrad_bound(B: Sequence[float], C: float, L: float, beta: float, c: float, T: int, n: int,
                              sigma: float, variant: Variant = "printed") -> float:
    """Theorem 6: ε_stability(SmoothGrad) ≤ Up(SimpleGrad)·(Γ_{k,1}/(2σΓ_{k,0}ΣΓ_{i,1}))^{1/(βc+1)}.

    printed: the formula as printed (equivalently Up with L' = Γ_{k,1}C/σ).
    corrected: Up with L' = min(√(2/π)Γ_{k,1}C/σ, corrected SimpleGrad L'), i.e. never above Theorem 5
    (SmoothGrad averages SimpleGrad maps of the normalised inputs, so Theorem 5's constant applies too).
    """
    L, beta, c, T, n = _sgd_args(L, beta, c, T, n)
    sigma = _pos("sigma", sigma)
    if variant == "printed":
        return theorem5_simplegrad_bound(B, C, L, beta, c, int(T), int(n)) * smoothgrad_factor(B, sigma, beta, c)
    Lp = min(smoothgrad_lipschitz(B, C, sigma, "corrected"), saliency_lipschitz(B, C, "corrected"))
    return _up(L, beta, c, T, n, Lp, saliency_bound_M(B))


def log10_theorem6_smoothgrad_bound(B: Sequence[float], C: float, L: float, beta: float, c: float, T: int,
                                    n: int, sigma: float, variant: Variant = "printed") -> float:
    L, beta, c, T, n = _sgd_args(L, beta, c, T, n)
    sigma = _pos("sigma", sigma)
    b, C = _norms(B), _nonneg("C", C)
    lG = log_gamma_sets(b)
    lM = math.log10(2.0) + float(lG[-1, 0])
    lC = _log10(C)
    if variant == "printed":
        lLp = float(lG[-1, 1]) + lC - math.log10(sigma)
    elif variant == "corrected":
        lLp = min(math.log10(SQRT_2_OVER_PI) + float(lG[-1, 1]) + lC - math.log10(sigma),
                  log10_saliency_lipschitz(b, C, "corrected"))
    else:
        raise ValueError(f"variant = {variant!r}: expected 'printed' or 'corrected'")
    return _log10_up(L, beta, c, T, n, lLp, lM)


# --------------------------------------------------------------------------------------------------
# Proposition 7 (fidelity, eq. 11). ρ = Γ_{k,0} Σ_{i=1}^{k-1} Γ_{i,0}: Lipschitz constant of x ↦ ∇_x f
# when φ' is 1-Lipschitz (there is none for ReLU: ledger prop7-rho-relu).
# --------------------------------------------------------------------------------------------------


def gaussian_norm_mean(sigma: float, m: int) -> float:
    """E||z|| for z ~ N(0, σ² I_m): σ√2 Γ((m+1)/2)/Γ(m/2) ≤ σ√m (Jensen)."""
    sigma = _nonneg("sigma", sigma)
    if int(m) != m or m < 1:
        raise ValueError(f"m = {m!r}: the input dimension must be an integer >= 1")
    return sigma * math.sqrt(2.0) * math.exp(math.lgamma((m + 1) / 2) - math.lgamma(m / 2))


def _gauss_factor(sigma: float, m: int, sharp: bool) -> float:
    if int(m) != m or m < 1:
        raise ValueError(f"m = {m!r}: the input dimension must be an integer >= 1")
    sigma = _nonneg("sigma", sigma)
    return gaussian_norm_mean(sigma, m) if sharp else sigma * math.sqrt(m)


def prop7_rho(B: Sequence[float]) -> float:
    """ρ = Γ_{k,0} Σ_{i=1}^{k-1} Γ_{i,0} (Proposition 7)."""
    b = _norms(B)
    G = gamma_sets(b)
    return float(G[-1, 0] * sum(G[i, 0] for i in range(1, b.size)))


def log10_prop7_rho(B: Sequence[float]) -> float:
    b = _norms(B)
    lG = log_gamma_sets(b)
    return float(lG[-1, 0]) + _ln_sum([lG[i, 0] * LN10 for i in range(1, b.size)]) / LN10


def prop7_fidelity_simplegrad(B: Sequence[float], sigma: float, m: int, sharp: bool = False) -> float:
    """Proposition 7: ε_fidelity(SimpleGrad, σ) ≤ ρσ√m; ``sharp=True`` uses E||z|| instead of σ√m."""
    return prop7_rho(B) * _gauss_factor(sigma, m, sharp)


def log10_prop7_fidelity_simplegrad(B: Sequence[float], sigma: float, m: int, sharp: bool = False) -> float:
    return log10_prop7_rho(B) + _log10(_gauss_factor(sigma, m, sharp))


def prop7_fidelity_ig(B: Sequence[float], C: float, sigma: float, m: int, sharp: bool = False) -> float:
    """Proposition 7: ε_fidelity(IntegratedGrad, σ) ≤ ρ(3C+1)σ√m (baseline 0); ``sharp`` as above."""
    C = _nonneg("C", C)
    return prop7_rho(B) * (3 * C + 1) * _gauss_factor(sigma, m, sharp)


def log10_prop7_fidelity_ig(B: Sequence[float], C: float, sigma: float, m: int, sharp: bool = False) -> float:
    C = _nonneg("C", C)
    return log10_prop7_rho(B) + math.log10(3 * C + 1) + _log10(_gauss_factor(sigma, m, sharp))


# --------------------------------------------------------------------------------------------------
# Predicted scaling laws (slopes on log-log axes) for the experiments of sec. 5.
# --------------------------------------------------------------------------------------------------


def predicted_laws(beta: float, c: float) -> dict[str, float]:
    """Exponents the bounds predict: Up ∝ T^{βc/(βc+1)} (Thm 5-6), ∝ n^{-1} (Thm 5-6),
    Up(SmoothGrad) ∝ σ^{-1/(βc+1)} (Thm 6), ε_fidelity ∝ σ^{1} (Prop. 7)."""
    q = _pos("beta", beta) * _pos("c", c)
    return {"T": q / (q + 1), "n": -1.0, "sigma_smoothgrad": -1.0 / (q + 1), "sigma_fidelity": 1.0}
