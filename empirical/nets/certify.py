"""Which printed bound is a certificate: Remark 4's constants in the parameters SGD actually updates, and the
named assumptions of Theorems 5, 6 and Proposition 7 that a network, an algorithm or a measurement lacks.

One function assembles the constants for every study (`remark4_constants`), and one lists what a bound
row lacks (`row_gaps`); a row is "certified" only when that list is empty (`annotate`).

Why each ingredient (Ye & Farnia, `gaussian-smoothing-stability-fidelity.md`, sec. 3.2 and Remark 4):

- √2: Remark 4(1)'s L = Γ_{k,1}C assumes a 1-Lipschitz loss in the logits; cross-entropy is √2-Lipschitz
  in ℓ2 (‖softmax − e_y‖ ≤ √2; ledger gs-sec31-ce-lipschitz), so L = √2·Γ_{k,1}C for the loss we train.
- param_gain γ: Remark 4's derivations bound every directional derivative of ℓ (and of ∇_x f) through
  the operator norms ‖ΔW_i‖₂ of the layer perturbations, each ≤ ‖ΔW‖. When SGD updates θ (a conv's
  kernel) with W_i = A_i(θ_i), ‖ΔW_i‖₂ ≤ γ_i‖Δθ_i‖ ≤ γ‖Δθ‖ (`constants.conv_param_gain`), so a bound of
  order r in ΔW holds in θ with γ^r: L and L′ (order 1) scale by γ, the SGD β (order 2) by γ². Using
  the largest γ_i for every layer is conservative and keeps one formula for all terms.
- β for SGD: the corrected Remark 4(2) assumes a 1-Lipschitz, 1-smooth loss. Its Γ_{k,1}²C² term carries
  the loss's curvature (cross-entropy's Hessian in the logits, diag(p) − ppᵀ, has norm ≤ 1/2) and its
  other terms the loss's gradient (≤ √2), so √2 × the corrected β bounds cross-entropy's.
- noisy SGD: β = √(2/π)L/s (Proposition 1, sharp) is the smoothness of E_V ℓ(W + V); L already in θ.
"""
from __future__ import annotations

import math
from typing import Iterable

from theory import bounds as tb

CE_LIPSCHITZ = math.sqrt(2.0)  # ‖∇_logits cross-entropy‖₂ ≤ √2 (ledger gs-sec31-ce-lipschitz)

# The named assumptions a row can lack (the text is what the results and the rendered docs show).
NOISY_ONE_DRAW = ("noisy SGD takes one weight-noise draw per step, not eq. 3's expectation E_V ∇ℓ(W+V): "
                  "Remark 4's β = √(2/π)L/s is the smoothness of the expected loss, not of the update run")
SMOOTHGRAD_UNNORMALISED = ("SmoothGrad inputs not normalised: Theorem 6 assumes ‖x + z‖ ≤ C, and x + z "
                           "with Gaussian z is not bounded by C")
EMPIRICAL_CONSTANTS = "L, β measured at the trained weights: local lower estimates, not the theorem's global constants"
UNBOUNDED_TRAJECTORY = ("B_i measured on the evaluated weights only: Remark 4's L and β must hold at every SGD "
                        "iterate (Hardt et al.'s argument uses them at each step), and the run did not bound the "
                        "iterates' layer norms")
SPLIT_PROXY = ("measured quantity is the disjoint-split proxy (eq. 12), not the leave-one-out stability "
               "(eq. 10) that Theorems 5-6 bound")


def network_gain(layers: Iterable[dict]) -> float:
    """γ = the largest per-layer gain of `constants.layer_norms` records (1 for a dense chain)."""
    return max((float(r.get("gain", 1.0)) for r in layers), default=1.0)


def remark4_constants(B: list[float], C: float, optimizer: str, weight_noise: float = 0.0,
                      param_gain: float = 1.0) -> dict:
    """L, β of the cross-entropy training loss in the trained parameters (Remark 4, corrected β).

    B: layer norms B_1..B_k (folded as `layer_norms` does); C: max ‖x‖₂; optimizer ``noisy_sgd`` takes
    β from Proposition 1 with the weight-noise std s = weight_noise; every other optimizer gets the
    corrected Remark 4(2) β (the printed (3k+1)Γ²C² fails for small C, ledger rem4-beta-sgd).
    Returns {"L", "beta", "param_gain", "ce_lipschitz"}; pass param_gain on to the Theorem 5/6 evaluators.
    """
    if not (math.isfinite(param_gain) and param_gain > 0):
        raise ValueError(f"param_gain = {param_gain!r} must be finite and positive")
    L = CE_LIPSCHITZ * param_gain * tb.lipschitz_L_bound(B, C)
    if optimizer == "noisy_sgd":
        beta = tb.smoothness_beta_noisy(L, weight_noise, sharp=True)
    else:
        beta = param_gain ** 2 * CE_LIPSCHITZ * tb.smoothness_beta_sgd(B, C, variant="corrected")
    return {"L": L, "beta": beta, "param_gain": param_gain, "ce_lipschitz": CE_LIPSCHITZ}


def algorithm_gaps(optimizer: str) -> list[str]:
    """Where the training algorithm departs from Theorems 5-6 (SGD with α_t ≤ c/t on the loss itself)."""
    if optimizer == "sgd_ct":
        return []
    if optimizer == "noisy_sgd":
        return [NOISY_ONE_DRAW]
    return [f"optimizer {optimizer!r} is not SGD with step α_t ≤ c/t (Theorems 5-6)"]


def row_gaps(bound: str, network_gaps: Iterable[str], optimizer: str | None, constants: str,
             split_proxy: bool = False, trajectory_bounded: bool = False) -> list[str]:
    """Every named assumption a bound row lacks, for the network, the algorithm run and the measurement.

    bound: "Theorem 5 …", "Theorem 6 …" or "Proposition 7 …" (Proposition 7 is about one fixed network:
    no training assumption); constants: "remark4", "layer-norms" or "empirical"; trajectory_bounded: the
    B_i used bound the layer norms of every iterate (the leave-one-out trainer records such B_i).
    """
    gaps = list(network_gaps)
    if bound.startswith("Theorem"):
        gaps += algorithm_gaps(optimizer or "")
        if constants == "remark4" and not trajectory_bounded:
            gaps.append(UNBOUNDED_TRAJECTORY)
        if split_proxy:
            gaps.append(SPLIT_PROXY)
    if bound.startswith("Theorem 6"):
        gaps.append(SMOOTHGRAD_UNNORMALISED)
    if constants == "empirical":
        gaps.append(EMPIRICAL_CONSTANTS)
    return gaps


def annotate(row: dict, gaps: list[str]) -> dict:
    """The row with `lacks` (the named assumptions, "; "-joined, "" when none) and `certified`."""
    return dict(row, lacks="; ".join(gaps), certified=not gaps)


def theorem6_sigma(spec, sigma_rel: float) -> float:
    """SmoothGrad's σ for Theorem 6, in network-input units: the smallest over channels.

    σ_rel is a fraction of the pixel range; normalising by a per-channel std makes σ per channel, and
    Theorem 6's factor 1/σ (the Lipschitz constant of SmoothGrad in W) is largest, i.e. valid, for the
    smallest channel σ. `spec`: an `empirical.data.DatasetSpec`.
    """
    return float(spec.sigma_abs(sigma_rel).min()) if sigma_rel > 0 else 0.0
