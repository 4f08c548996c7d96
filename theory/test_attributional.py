"""Focused tests for the attributional-robustness regularisers (Sarkar et al., AAAI 2021): CACR eq. 6 vs
eq. 11, IG differences (eq. 8), and the WACR properties (eq. 9). Counterexamples are regression tests."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from theory import claims_attributional as ar
from theory import claims_single_layer as sl

# Attribution values with exact zeros mixed in, since the WACR pixel sets turn on signs; nonzero values
# kept away from 0 so that A_p ∇A_p cannot underflow to 0 in float64.
attr = st.one_of(st.just(0.0), st.floats(1e-3, 3.0), st.floats(-3.0, -1e-3))
pixels = st.integers(1, 6)


@st.composite
def attribution_pair(draw):
    n = draw(pixels)
    return (np.array(draw(st.lists(attr, min_size=n, max_size=n))),
            np.array(draw(st.lists(attr, min_size=n, max_size=n))))


# ---------------------------------------------------------------- WACR (eq. 9)


@settings(max_examples=80)
@given(pair=attribution_pair(), reading=st.sampled_from(["printed", "complement"]))
def test_wacr_nonnegative(pair, reading):
    assert ar.wacr(*pair, p1=reading) >= 0.0


@settings(max_examples=80)
@given(pair=attribution_pair())
def test_wacr_zero_sets(pair):
    """Printed sets: zero iff A ⊙ ∇A = 0; complement reading: zero iff ∇A = 0 (ar-wacr-zero-iff corrected)."""
    A, dA = pair
    assert (ar.wacr(A, dA) == 0.0) == bool(np.all(A * dA == 0))
    assert (ar.wacr(A, dA, p1="complement") == 0.0) == bool(np.all(dA == 0))


def test_regression_wacr_zero_with_change():
    ce = ar.WACR_ZERO_CE
    assert ar.wacr(ce["A"], ce["dA"]) == 0.0 and np.any(np.asarray(ce["dA"]) != 0)


def test_regression_wacr_jump_at_zero_attribution():
    ce = ar.WACR_JUMP_CE
    for reading in ("printed", "complement"):
        jump = ar.wacr(ce["A_minus"], ce["dA"], reading) - ar.wacr(ce["A_plus"], ce["dA"], reading)
        assert jump == pytest.approx(abs(ce["dA"][0]), abs=1e-8)


def test_regression_wacr_reinforcing_costs_more():
    ce = ar.WACR_ORDER_CE
    assert ar.wacr([ce["A_p"]], [ce["dA_reinforcing"]]) > ar.wacr([ce["A_p"]], [ce["dA_opposing"]])
    r = ce["realised_by"]
    A = ar.ig_softmax_linear(r["W"], r["b"], r["x"], r["x0"], r["class"])
    assert np.max(np.abs(A)) > 1.0  # |A_p| > 1 from IG of a softmax output


@settings(max_examples=60)
@given(a=st.floats(-1.0, 1.0), d=st.floats(0.01, 3.0))
def test_wacr_order_holds_for_small_base(a, d):
    """|A_p| ≤ 1: a reinforcing change costs at most the opposing one (ar-wacr-sign-order corrected)."""
    if a == 0.0:
        return
    s = np.sign(a)
    assert ar.wacr([a], [s * d]) <= ar.wacr([a], [-s * d]) + 1e-15


# ---------------------------------------------------------------- CACR (eqs. 4-6, 11)


@settings(max_examples=60)
@given(n=st.integers(2, 6), data=st.data())
def test_eq11_equals_eq6_with_softmax_ig(n, data):
    vals = st.lists(st.floats(-5.0, 5.0), min_size=n, max_size=n)
    ig_t, ig_n = np.array(data.draw(vals)), np.array(data.draw(vals))
    me = np.full(n, 1.0 / n)
    assert ar.cacr_eq11(me, softmax(ig_n), softmax(ig_t)) == pytest.approx(ar.cacr_eq6(ig_t, ig_n), abs=1e-12)


def test_regression_eq11_gradient_gloss_differs():
    nums = ar.cacr_gloss_numbers()
    assert all(n["ranks_ok"] and n["grads_positive"] for n in nums)
    offsets = [n["eq11_gloss"] - n["eq6"] for n in nums]
    assert min(abs(o) for o in offsets) > 1e-2  # different values
    assert abs(offsets[0] - offsets[1]) > 1e-2  # and not by a constant


def test_regression_eq11_gloss_undefined_binary():
    """Binary softmax: ∂f_N = -∂f_T, so the gloss's log(P_ME/P_NCA) or log(P_ME/P_TCA) is undefined."""
    g = [ar.grad_softmax_linear([[1.0, -0.5], [0.2, 0.3]], [0.0, 0.0], [0.4, 0.9], c) for c in (0, 1)]
    np.testing.assert_allclose(g[0], -g[1], rtol=1e-12)
    assert np.isnan(ar.cacr_eq11(np.full(2, 0.5), g[1], g[0]))


# ---------------------------------------------------------------- eq. 8


def test_regression_eq8_ig_difference():
    ce = ar.IG_DIFF_CE
    direct = sl.ig_stable(ce["w"], ce["x_prime"], ce["x"])
    diff = sl.ig_stable(ce["w"], ce["x_prime"], ce["x0"]) - sl.ig_stable(ce["w"], ce["x"], ce["x0"])
    assert sl.l1(diff - direct) > 1000 * sl.l1(direct)
    assert diff.sum() == pytest.approx(direct.sum(), abs=1e-12)  # completeness still ties the sums


@settings(max_examples=40)
@given(st.data())
def test_eq8_exact_for_linear_softmax_free_model(data):
    """For linear f = <w,x>, IG(b, y) = (y - b) ⊙ w, so IG(x, x') = IG(x0, x') - IG(x0, x)."""
    v = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3).map(np.array)
    w, x0, x, xp = (data.draw(v) for _ in range(4))
    ig = lambda b, y: (y - b) * w  # noqa: E731
    np.testing.assert_allclose(ig(x, xp), ig(x0, xp) - ig(x0, x), atol=1e-12)
