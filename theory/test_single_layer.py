"""Focused tests for the single-layer relations (feature-map-smoothing paper, sec. 3.1, app. F, H) and the
curvature view (later version's abstract).

Property tests run hypothesis on small shapes; every counterexample recorded in the ledger is pinned as
a regression test that fails if the claim it refutes starts to hold at those numbers.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import claims_curvature as cv
from theory import claims_single_layer as sl

FLOAT_RTOL = 1e-9  # float64 closed forms vs quadrature
ACTS = ("sigmoid", "tanh", "softplus")

coord = st.floats(-3.0, 3.0, allow_nan=False)
vec3 = st.lists(coord, min_size=3, max_size=3).map(np.array)
act = st.sampled_from(ACTS)


# ---------------------------------------------------------------- closed forms (eqs. 1-5, 20-38)


@settings(max_examples=40)
@given(w=vec3, x=vec3, a=act)
def test_vg_matches_autograd(w, x, a):
    """eq. 1/21: VG = H'(<w,x>) w, against torch autograd in float64."""
    H = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": cv.ACTS["softplus"]}[a]
    xt = torch.tensor(x, requires_grad=True)
    H(torch.tensor(w) @ xt).backward()
    np.testing.assert_allclose(sl.vg(w, x, a), xt.grad.numpy(), rtol=FLOAT_RTOL, atol=1e-15)


@settings(max_examples=40)
@given(w=vec3, x=vec3, u=vec3, a=act)
def test_ig_closed_form_matches_definition(w, x, u, a):
    """eq. 4/35 (and its c → 0 limit) equals eq. 3/28 by quadrature; completeness sums to F(x) - F(u)."""
    quad = sl.ig_quadrature(w, x, u, a)
    np.testing.assert_allclose(sl.ig_stable(w, x, u, a), quad, rtol=FLOAT_RTOL, atol=1e-13)
    if abs(np.dot(x - u, w)) > 1e-3:  # float64 eq. 35 is only accurate away from the 0/0 point
        np.testing.assert_allclose(sl.ig_closed(w, x, u, a), quad, rtol=1e-7, atol=1e-12)
    assert quad.sum() == pytest.approx(float(sl.F(w, x, a) - sl.F(w, u, a)), abs=1e-12)


@settings(max_examples=30)
@given(w=vec3, x=vec3, t=coord, a=act)
def test_ig_degenerate_limit(w, x, t, a):
    """<x - u, w> = 0: IG is (x - u) ⊙ w H'(<w,u>), the limit of eq. 35 (sl-ig-degenerate, corrected)."""
    if np.dot(w, w) < 1e-6:
        return
    r = np.array([1.0, -2.0, 0.5])
    r = r - np.dot(r, w) / np.dot(w, w) * w  # component of r orthogonal to w
    u = x + t * r
    quad = sl.ig_quadrature(w, x, u, a)
    limit = (x - u) * w * sl.ACTIVATIONS[a][1](np.dot(w, u))  # <x-u, w> is 0 up to rounding
    np.testing.assert_allclose(limit, quad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sl.ig_stable(w, x, u, a), quad, rtol=1e-8, atol=1e-12)


@settings(max_examples=30)
@given(w=vec3, x=vec3, noise=st.lists(vec3, min_size=1, max_size=4))
def test_sg_is_mean_of_vg(w, x, noise):
    """eq. 5/38 with fixed draws: SG = mean_k VG(x + n_k) = mean_k F(1 - F)(x + n_k) w (sigmoid)."""
    noise = np.array(noise)
    got = sl.sg(w, x, noise)
    np.testing.assert_allclose(got, np.mean([sl.vg(w, x + n) for n in noise], axis=0), rtol=FLOAT_RTOL, atol=1e-15)
    Fk = np.array([sl.F(w, x + n) for n in noise])
    np.testing.assert_allclose(got, np.mean(Fk * (1 - Fk)) * w, rtol=1e-7, atol=1e-15)


# ---------------------------------------------------------------- VG stability (eqs. 6, 26, 27; app. F)


@settings(max_examples=60)
@given(w=vec3, x=vec3, xp=vec3, a=act)
def test_eq27_with_activation_constant(w, x, xp, a):
    """Δ_VG ≤ C_H |F(x') - F(x)| ||w||_1 with C_H = 1, 2, 1 (sl-vg-eq27, sl-appF-eq27-tanh corrected)."""
    lhs = sl.delta_vg(w, x, xp, a)
    rhs = sl.EQ27_CONSTANTS[a] * abs(float(sl.F(w, xp, a) - sl.F(w, x, a))) * sl.l1(w)
    assert lhs <= rhs * (1 + 1e-9) + 1e-15


@settings(max_examples=60)
@given(w=vec3, x=vec3, xp=vec3, a=act)
def test_input_side_vg_bound(w, x, xp, a):
    """Δ_VG ≤ sup|H''| |<w, x'-x>| ||w||_1 with sup|H''| = √3/18, 4√3/9, 1/4 (sl-appF-input-side)."""
    c = float(sl.INPUT_SIDE_CONSTANTS[a])
    assert sl.delta_vg(w, x, xp, a) <= c * abs(np.dot(w, xp - x)) * sl.l1(w) * (1 + 1e-9) + 1e-15


@pytest.mark.parametrize("a", ACTS)
def test_eq27_constants_are_sharp(a):
    """The eq.-27 ratio gets within 1e-3 of C_H deep in a tail (so no smaller constant works)."""
    tail = {"sigmoid": (-30.0, -31.0), "tanh": (15.0, 15.5), "softplus": (-30.0, -31.0)}[a]
    assert sl.eq27_ratio(a, *tail) == pytest.approx(sl.EQ27_CONSTANTS[a], abs=1e-3)


def test_eq6_signed_reading_fails():
    """eq. 6 with a signed right side (no |·|) fails as soon as F(x') < F(x)."""
    ce = sl.EQ6_SIGNED_CE
    signed_rhs = (sl.F(ce["w"], ce["x_prime"]) - sl.F(ce["w"], ce["x"])) * sl.l1(ce["w"])
    assert sl.delta_vg(ce["w"], ce["x"], ce["x_prime"]) > signed_rhs


def test_regression_tanh_eq27_constant_one_fails():
    ce = sl.TANH_EQ27_CE
    lhs = sl.delta_vg(ce["w"], ce["x"], ce["x_prime"], "tanh")
    rhs = abs(float(sl.F(ce["w"], ce["x_prime"], "tanh") - sl.F(ce["w"], ce["x"], "tanh"))) * sl.l1(ce["w"])
    assert lhs > 1.5 * rhs  # ratio tanh(1) + tanh(1.5) ≈ 1.667


def test_regression_silu_no_constant():
    """Bounded H' (SiLU) but equal outputs with different gradients: no eq.-27 constant exists."""
    ce = sl.SILU_CE
    dF = abs(float(sl.F(ce["w"], ce["x_prime"], "silu") - sl.F(ce["w"], ce["x"], "silu")))
    assert dF < 1e-15 and sl.delta_vg(ce["w"], ce["x"], ce["x_prime"], "silu") > 0.4


# ---------------------------------------------------------------- IG stability (eqs. 7, 36-37)


def test_regression_ig_eq37_not_path_additive():
    n = sl._ig_eq7_numbers()
    assert n["delta_ig"] > 1000 * n["ig_xprime_x"]


def test_regression_ig_no_output_side_bound():
    n = sl._ig_eq7_numbers()
    assert n["dF"] == 0.0 and n["delta_ig"] > 1e-2


def test_regression_ig_degenerate_printed_is_nan():
    ce = sl.IG_DEGENERATE_CE
    assert np.all(np.isnan(sl.ig_closed(ce["w"], ce["x"], ce["u"], degenerate="printed")))
    quad = sl.ig_quadrature(ce["w"], ce["x"], ce["u"])
    assert sl.l1(quad) > 0.39
    np.testing.assert_allclose(sl.ig_closed(ce["w"], ce["x"], ce["u"], degenerate="limit"), quad, rtol=1e-12)


@settings(max_examples=40)
@given(w=st.lists(coord, min_size=2, max_size=2).map(np.array), x=st.lists(coord, min_size=2, max_size=2).map(np.array),
       d=st.lists(st.floats(-0.5, 0.5), min_size=2, max_size=2).map(np.array),
       u=st.lists(coord, min_size=2, max_size=2).map(np.array), a=act)
def test_ig_input_side_and_completeness_bounds(w, x, d, u, a):
    """|F(x') - F(x)| ≤ Δ_IG ≤ input-side bound (sl-ig-eq37-path and sl-ig-eq7-sensitivity corrected)."""
    xp = x + d
    dig = sl.delta_ig(w, x, xp, u, a)
    assert abs(float(sl.F(w, xp, a) - sl.F(w, x, a))) <= dig * (1 + 1e-9) + 1e-14
    assert dig <= sl._ig_input_side_rhs(w, x, xp, u, a) * (1 + 1e-9) + 1e-14


# ---------------------------------------------------------------- SG stability (eq. 8)


def test_regression_sg_eq8_fails():
    ce = sl.SG_EQ8_CE
    lhs = sl.l1(sl.sg(ce["w"], ce["x_prime"], ce["noise"]) - sl.sg(ce["w"], ce["x"], ce["noise"]))
    rhs = abs(float(sl.F(ce["w"], ce["x_prime"]) - sl.F(ce["w"], ce["x"]))) * sl.l1(ce["w"]) / len(ce["noise"])
    assert lhs > 1000 * rhs


@settings(max_examples=40)
@given(w=vec3, x=vec3, xp=vec3, noise=st.lists(vec3, min_size=1, max_size=4))
def test_sg_per_sample_bound(w, x, xp, noise):
    """||SG(x') - SG(x)||_1 ≤ (1/N) Σ_k |F(x'+n_k) - F(x+n_k)| ||w||_1 (sl-sg-eq8 corrected)."""
    noise = np.array(noise)
    lhs = sl.l1(sl.sg(w, xp, noise) - sl.sg(w, x, noise))
    rhs = np.mean([abs(float(sl.F(w, xp + n) - sl.F(w, x + n))) for n in noise]) * sl.l1(w)
    assert lhs <= rhs * (1 + 1e-9) + 1e-15


# ---------------------------------------------------------------- curvature view (later abstract)


@settings(max_examples=15)
@given(x=vec3, d=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3).map(np.array), k=st.integers(0, 2))
def test_mean_value_inequality(x, d, k):
    """||∇F(x+δ) - ∇F(x)|| ≤ ∫||∇²F|| dt ||δ|| ≤ sup||∇²F|| ||δ||, small nets (cv-mean-value)."""
    if np.linalg.norm(d) < 1e-6:
        return
    with cv.single_thread():
        m = cv.mean_value_terms(cv.NETS[k], torch.tensor(x), torch.tensor(d))
    assert float(m["lhs"]) == pytest.approx(float(m["identity"]), rel=1e-6, abs=1e-12)
    assert float(m["lhs"]) <= float(m["mean"] * m["dnorm"]) * (1 + 1e-7)
    assert float(m["mean"]) <= float(m["sup"]) * (1 + 1e-6) + 1e-12


def test_regression_ig_not_controlled_by_curvature():
    """Linear F: zero Hessian, yet IG moves with x (cv-ig-curvature)."""
    ce = cv.IG_LINEAR_CE
    w = torch.tensor(ce["w"], dtype=cv.DTYPE)
    f = lambda z: w @ z  # noqa: E731
    x, d, u = (torch.tensor(ce[k], dtype=cv.DTYPE) for k in ("x", "delta", "u"))
    change = cv.ig_torch(f, x + d, u) - cv.ig_torch(f, x, u)
    assert torch.allclose(change, d * w) and float(change.abs().sum()) > 0.09


def test_ig_curvature_bound_on_a_net():
    rng = np.random.default_rng(5)
    f = cv.NETS[1]
    with cv.single_thread():
        _ig_bound_cases(f, rng)


def _ig_bound_cases(f, rng):
    for _ in range(5):
        x, u = (torch.tensor(rng.normal(0, 1.5, 3), dtype=cv.DTYPE) for _ in range(2))
        d = torch.tensor(rng.normal(0, 0.3, 3), dtype=cv.DTYPE)
        lhs = float(torch.linalg.vector_norm(cv.ig_torch(f, x + d, u) - cv.ig_torch(f, x, u)))
        assert lhs <= cv.ig_curvature_bound(f, x, d, u)


def test_output_side_gap_witness():
    """Equal outputs, different gradients (cv-output-side-gap)."""
    f = lambda z: torch.tanh(z).sum()  # noqa: E731
    x, xp = (torch.tensor(cv.OUTPUT_SIDE_CE[k], dtype=cv.DTYPE) for k in ("x", "x_prime"))
    g = torch.func.grad(f)
    assert float(f(xp) - f(x)) == 0.0
    assert float((g(xp) - g(x)).abs().sum()) == pytest.approx(2 * np.tanh(1.0) ** 2, rel=1e-12)
