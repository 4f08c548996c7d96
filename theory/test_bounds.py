"""theory.bounds: hand-computed values, float64 and log10 versions agree where both are finite, the log10
versions stay finite where float64 overflows, and bad arguments raise ValueError naming the value."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import bounds as tb

Bs = st.lists(st.floats(0.05, 20.0), min_size=1, max_size=6)
pos = st.floats(0.01, 10.0)


def test_gamma_hand_values():
    G = tb.gamma_sets([2.0, 3.0, 5.0])
    assert G[3, 0] == 30 and G[3, 1] == 6 + 10 + 15 and G[3, 2] == 10 and G[3, 3] == 1
    assert G[1, 1] == 1 and G[2, 1] == 5 and G[2, 0] == 6
    assert tb.gamma_t_i([2.0, 3.0, 5.0], 3, 1) == 31


def test_hand_values():
    B, C = [2.0, 3.0], 0.5
    assert tb.lipschitz_L_bound(B, C) == 2.5
    assert tb.lipschitz_L_bound(B, C, sharp=True) == pytest.approx(0.5 * math.sqrt(13))
    assert tb.smoothness_beta_sgd(B, C) == pytest.approx(7 * 25 * 0.25)
    # corrected: Γ_{2,1}²C² + C²Γ_{1,1}²B_2 + CΓ_{2,2} = 6.25 + 0.75 + 0.5
    assert tb.smoothness_beta_sgd(B, C, "corrected") == pytest.approx(7.5)
    assert tb.smoothness_beta_noisy(2.0, 4.0) == 0.5
    assert tb.smoothness_beta_noisy(2.0, 4.0, sharp=True) == pytest.approx(0.5 * math.sqrt(2 / math.pi))
    assert tb.saliency_lipschitz(B, C) == pytest.approx(2 * 6 * 1 * 0.5)
    assert tb.saliency_lipschitz(B, C, "corrected") == pytest.approx(5 + 6 * 0.5)
    assert tb.saliency_bound_M(B) == 12
    assert tb.prop7_rho(B) == 12  # Γ_{2,0}Γ_{1,0}
    assert tb.prop7_fidelity_simplegrad(B, 0.1, 4) == pytest.approx(12 * 0.1 * 2)
    assert tb.prop7_fidelity_ig(B, C, 0.1, 4) == pytest.approx(12 * 2.5 * 0.1 * 2)
    assert tb.gaussian_norm_mean(1.0, 1) == pytest.approx(math.sqrt(2 / math.pi))
    assert tb.gaussian_norm_mean(1.0, 2) == pytest.approx(math.sqrt(math.pi / 2))
    assert tb.smoothgrad_factor(B, 1.0, 1.0, 1.0) == pytest.approx((5 / 12) ** 0.5)


def test_theorem5_hand_value():
    # βc = 1: Up = 2/(n−1)·(2cL)^{1/2}·T^{1/2}·(L')^{1/2}·M^{1/2}
    B, C, L, beta, c, T, n = [2.0, 3.0], 0.5, 1.0, 2.0, 0.5, 100, 11
    want = 2 / 10 * math.sqrt(2 * 0.5 * 1.0) * 10 * math.sqrt(6.0) * math.sqrt(12.0)
    assert tb.theorem5_simplegrad_bound(B, C, L, beta, c, T, n) == pytest.approx(want)
    sg = tb.theorem6_smoothgrad_bound(B, C, L, beta, c, T, n, sigma=2.0)
    assert sg == pytest.approx(want * tb.smoothgrad_factor(B, 2.0, beta, c))
    # printed Theorem 6 = Up with L' = Γ_{k,1}C/σ
    assert sg == pytest.approx(2 / 10 * 10 * math.sqrt(5 * 0.5 / 2.0) * math.sqrt(12.0))


@settings(max_examples=60, deadline=None)
@given(B=Bs, C=pos, L=pos, beta=pos, c=st.floats(0.01, 2.0), T=st.integers(1, 10**6), n=st.integers(2, 10**6),
       sigma=pos, m=st.integers(1, 10**5), variant=st.sampled_from(["printed", "corrected"]))
def test_log_versions_agree(B, C, L, beta, c, T, n, sigma, m, variant):
    pairs = [
        (tb.gamma_sets(B)[-1, 1], 10 ** tb.log_gamma_sets(B)[-1, 1]),
        (tb.lipschitz_L_bound(B, C), 10 ** tb.log10_lipschitz_L_bound(B, C)),
        (tb.lipschitz_L_bound(B, C, True), 10 ** tb.log10_lipschitz_L_bound(B, C, True)),
        (tb.smoothness_beta_sgd(B, C, variant), 10 ** tb.log10_smoothness_beta_sgd(B, C, variant)),
        (tb.saliency_lipschitz(B, C, variant), 10 ** tb.log10_saliency_lipschitz(B, C, variant)),
        (tb.theorem5_simplegrad_bound(B, C, L, beta, c, T, n, variant),
         10 ** tb.log10_theorem5_simplegrad_bound(B, C, L, beta, c, T, n, variant)),
        (tb.prop7_fidelity_simplegrad(B, sigma, m), 10 ** tb.log10_prop7_fidelity_simplegrad(B, sigma, m)),
        (tb.prop7_fidelity_ig(B, C, sigma, m, True), 10 ** tb.log10_prop7_fidelity_ig(B, C, sigma, m, True)),
    ]
    if len(B) >= 2:
        pairs.append((tb.theorem6_smoothgrad_bound(B, C, L, beta, c, T, n, sigma, variant),
                      10 ** tb.log10_theorem6_smoothgrad_bound(B, C, L, beta, c, T, n, sigma, variant)))
    for a, b in pairs:
        if math.isfinite(a) and a > 0:
            assert b == pytest.approx(a, rel=1e-9)


def test_log_finite_where_float_overflows():
    B, C = [1e20] * 20, 10.0
    with np.errstate(over="ignore"):
        assert not math.isfinite(tb.theorem5_simplegrad_bound(B, C, 1.0, 1.0, 0.5, 1000, 100)) or \
            not math.isfinite(tb.gamma_sets(B)[-1, 0])
    for v in (tb.log_gamma_sets(B)[-1, 0], tb.log10_theorem5_simplegrad_bound(B, C, 1.0, 1.0, 0.5, 1000, 100),
              tb.log10_theorem6_smoothgrad_bound(B, C, 1.0, 1.0, 0.5, 1000, 100, 0.1, "corrected"),
              tb.log10_prop7_fidelity_ig(B, C, 0.1, 3072), tb.log10_smoothness_beta_sgd(B, C, "corrected")):
        assert math.isfinite(v)
    assert tb.log_gamma_sets(B)[-1, 0] == pytest.approx(400.0)
    assert tb.log_gamma_sets(B)[-1, 1] == pytest.approx(380 + math.log10(20))


def test_predicted_laws():
    laws = tb.predicted_laws(beta=2.0, c=0.5)
    assert laws == {"T": 0.5, "n": -1.0, "sigma_smoothgrad": -0.5, "sigma_fidelity": 1.0}


@pytest.mark.parametrize("call, word", [
    (lambda: tb.gamma_sets([]), "empty"),
    (lambda: tb.gamma_sets([1.0, -2.0]), "B[1] = -2.0"),
    (lambda: tb.smoothness_beta_noisy(1.0, -0.1), "sigma = -0.1"),
    (lambda: tb.theorem5_simplegrad_bound([1.0], 1.0, 1.0, 1.0, 1.0, 10, 1), "n = 1"),
    (lambda: tb.theorem5_simplegrad_bound([1.0], 1.0, 1.0, 1.0, 1.0, 0, 5), "T = 0"),
    (lambda: tb.prop7_fidelity_simplegrad([1.0], 0.1, 0), "m = 0"),
    (lambda: tb.lipschitz_L_bound([1.0], -1.0), "C = -1.0"),
    (lambda: tb.saliency_lipschitz([1.0], 1.0, "nope"), "variant"),
])
def test_errors_name_the_value(call, word):
    with pytest.raises(ValueError, match=word.replace("[", r"\[").replace("]", r"\]")):
        call()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.05, 20.0), min_size=2, max_size=6), pos, st.floats(1.0, 25.0))
def test_param_gain_scales_only_the_saliency_lipschitz_constant(B, C, gain):  # k = 1: the printed L′ is 0
    """L′ is first order in ΔW, so a parameter gain γ multiplies it; Up ∝ L′^{1/(βc+1)} (Theorems 5-6)."""
    L, beta, c, T, n = 2.0, 0.5, 1.0, 100, 50
    q = beta * c
    for f, extra in ((tb.log10_theorem5_simplegrad_bound, ()), (tb.log10_theorem6_smoothgrad_bound, (0.3,))):
        for variant in ("printed", "corrected"):
            base = f(B, C, L, beta, c, T, n, *extra, variant=variant)
            scaled = f(B, C, L, beta, c, T, n, *extra, variant=variant, param_gain=gain)
            assert scaled - base == pytest.approx(math.log10(gain) / (q + 1), abs=1e-12)
    with pytest.raises(ValueError, match="param_gain"):
        tb.log10_theorem5_simplegrad_bound(B, C, L, beta, c, T, n, param_gain=0.0)
