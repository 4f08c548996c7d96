"""Focused tests for Ye & Farnia (Gaussian smoothing): the counterexamples of the ledger pinned as
regression tests (each fails if the refuted claim starts to hold at those numbers), and property tests of
the corrected or sharper constants on random small networks (hypothesis, float64)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm as _normal

from theory import bounds as tb
from theory import claims_gaussian as gs

DT = torch.float64
seeds = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------- counterexamples (regressions)


def test_ce_not_1_lipschitz():
    """sec. 3.1: cross-entropy is not 1-Lipschitz in ℓ2; the gradient norm tends to √2."""
    assert gs.ce_grad_norm(**gs.CE_CE) > 1.414
    assert gs.ce_grad_norm([0.0, 40.0], 0) <= math.sqrt(2)


def test_rem4_beta_counterexample():
    """Remark 4(2) fails at f = w2 tanh(w1 x), w = 0, x = C = 0.1, B = (0.1, 0.1); the corrected bound holds."""
    ce = gs.REM4_BETA_CE
    Ws = [torch.tensor([[ce["W1"]]], dtype=DT), torch.tensor([[ce["W2"]]], dtype=DT)]
    h = gs.hessian_norm(Ws, torch.tensor([ce["x"]], dtype=DT), ce["act"], ce["loss"])
    assert h == pytest.approx(0.5 * ce["x"], rel=1e-12)  # |ℓ'(0)|·x, the term linear in C
    assert h > tb.smoothness_beta_sgd(ce["B"], ce["C"])
    assert h <= tb.smoothness_beta_sgd(ce["B"], ce["C"], "corrected")


def test_thm5_saliency_lipschitz_counterexample():
    """Theorem 5's L' = 2Γ_{k,0}ΣΓ_{i,1}C is no Lipschitz constant of W ↦ ∇_x f_W(x) at x = 0."""
    ce = gs.THM5_LIP_CE
    r = gs.saliency_pair_ratio_scalar(ce)
    assert r > tb.saliency_lipschitz(ce["B"], ce["C"])
    assert r > tb.saliency_lipschitz(ce["B"], 1.0) / 2  # even L'/2 at C = 1
    assert r <= tb.saliency_lipschitz(ce["B"], ce["C"], "corrected")


def test_thm6_factor_above_one():
    ce = gs.THM6_FACTOR_CE
    assert tb.smoothgrad_factor(ce["B"], ce["sigma"], ce["beta_c"], 1.0) > 1
    thr = tb.smoothgrad_sigma_threshold(ce["B"])
    assert thr == pytest.approx(1.0)
    assert tb.smoothgrad_factor(ce["B"], 1.01 * thr, 1.0, 1.0) < 1 < tb.smoothgrad_factor(ce["B"], 0.99 * thr, 1.0, 1.0)


def test_prop7_relu_counterexample():
    """ReLU: the input gradient jumps (no ρ) and the fidelity error stays near 1/2 as σ → 0."""
    ce = gs.PROP7_RELU_CE
    Ws = [torch.tensor([[w]], dtype=DT) for w in ce["W"]]
    g = [float(gs.input_grad(Ws, torch.tensor([v], dtype=DT), "relu", False)) for v in (ce["x"], ce["x_prime"])]
    assert abs(g[0] - g[1]) / abs(ce["x"] - ce["x_prime"]) > tb.prop7_rho(ce["W"])
    assert gs.relu_fidelity_1d(ce["x_fid"], ce["sigma"]) > tb.prop7_fidelity_simplegrad(ce["W"], ce["sigma"], 1)


def test_hrs_index_convention():
    """With α_t on the step from δ_t to δ_{t+1} (the other indexing), the printed HRS bound is exceeded at t0 = 1."""
    L, c, n, q, T, t0 = 1.3, 0.7, 1000, 0.5, 2000, 1
    beta = q / c
    d = 0.0
    for t in range(t0, T):
        d = (1 - 1 / n) * (1 + c * beta / t) * d + (d + 2 * c * L / t) / n
    assert d > 2 * L / (beta * (n - 1)) * (T / t0) ** q
    assert gs.hrs_delta(L, beta, c, n, t0, T) <= 2 * L / (beta * (n - 1)) * (T / t0) ** q


# ---------------------------------------------------------------- properties


def test_prop1_closed_form_matches_quadrature():
    """d²/dw² E L|w+V| = 2Lφ_σ(w), by finite differences of the folded-normal mean."""
    L, sigma, w, h = 1.7, 0.6, 0.3, 1e-4

    def sm(u):  # E L|u + V| in closed form (folded normal mean)
        return L * (sigma * math.sqrt(2 / math.pi) * math.exp(-u * u / (2 * sigma**2))
                    + u * (1 - 2 * _normal.cdf(-u / sigma)))

    fd = (sm(w + h) - 2 * sm(w) + sm(w - h)) / h**2
    assert fd == pytest.approx(gs.smoothed_abs_hessian_1d(L, w, sigma), rel=1e-3)
    assert gs.smoothed_abs_hessian_1d(L, 0.0, sigma) == pytest.approx(tb.smoothness_beta_noisy(L, sigma, sharp=True))


def test_thm2_exact_small_instance():
    """Theorem 2 on one exact instance; the identity is exact in fractions."""
    from fractions import Fraction as F

    r = gs.sgd_saliency_model([(F(1), F(1)), (F(2), F(-1, 2))], [F(1, 3), F(2, 3)], n=2, T=2, eta=F(1, 2))
    assert r["gen"] == r["sym"]
    assert r["gen"] <= r["eps_repl"] <= r["eps_full"] == r["eps_abs"]


@settings(max_examples=25, deadline=None)
@given(seed=seeds, k=st.sampled_from([2, 3]), act=st.sampled_from(["tanh", "sin"]))
def test_corrected_beta_on_random_nets(seed, k, act):
    c = gs._random_case(seed, k)
    h = gs.hessian_norm(gs._at_boundary(c), gs._inp(c).detach(), act, "sin")
    assert h <= tb.smoothness_beta_sgd(c["B"], c["C"], "corrected") * (1 + 1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, k=st.sampled_from([1, 2, 3]), act=st.sampled_from(["tanh", "sin"]))
def test_saliency_constants_on_random_nets(seed, k, act):
    """||∇_x f|| ≤ Γ_{k,0} and W ↦ ∇_x f is Lipschitz with the corrected L'."""
    c = gs._random_case(seed, k)
    assert gs._sal_M_ratio(c, act).item() <= 1 + 1e-9
    assert gs._sal_lip_ratio(c, act).item() <= 1 + 1e-9


@settings(max_examples=25, deadline=None)
@given(seed=seeds, k=st.sampled_from([2, 3]), act=st.sampled_from(["tanh", "sin"]))
def test_rho_on_random_nets(seed, k, act):
    assert gs._rho_pair_ratio(gs._random_case(seed, k), act).item() <= 1 + 1e-9


def test_gauss_hermite_matches_monte_carlo():
    """The Gauss-Hermite SmoothGrad used by the fidelity checks agrees with a large Monte-Carlo average."""
    c = gs._random_case(3, 2, m=2)
    Ws = [W.detach() for W in gs._weights(c)]
    x = gs._inp(c).detach()
    gh_z, gh_w = gs.gauss_nodes(2, 0.7, 40)
    gh = (gh_w[:, None] * gs.input_grad(Ws, x + gh_z, "tanh", False)).sum(0)
    z = torch.randn(400_000, 2, dtype=DT, generator=torch.Generator().manual_seed(0)) * 0.7
    mc = gs.input_grad(Ws, x + z, "tanh", False).mean(0)
    assert torch.allclose(gh, mc, atol=5e-3 * float(tb.gamma_sets(c["B"])[-1, 0]) + 1e-6)


def test_line_nodes_integrate_kinked_function():
    """The composite rule for SmoothGrad integrates E[Π_C(x+z) z]/σ² (the k = 1 closed form) accurately."""
    for C, sigma, x in [(0.3, 1.0, 0.0), (0.01, 2.0, 0.0), (1.0, 0.2, 0.5)]:
        z, w = gs.line_nodes(sigma, C, x, 1.0)
        got = float((w * gs._normalise(x + z, C)[:, 0] * z[:, 0]).sum()) / sigma**2
        if x == 0.0:
            want = gs.k1_smoothgrad_lipschitz_ratio(C, sigma) * gs.SQ2PI * C / sigma
            assert got == pytest.approx(want, rel=1e-10)
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
