"""Map-agreement metrics and statistics: L2 errors, SSIM against a scipy reference, top-k on known maps, CIs."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy import stats as sstats

from empirical.measures.agreement import (
    collapse_channels,
    fidelity_error,
    fit_power_law,
    ssim,
    stability_error,
    summarize,
    topk_indices,
    topk_intersection,
    topk_iou,
)

seeds = st.integers(0, 10_000)


def _rand(shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# --------------------------------------------------------------------------- L2 errors
@settings(max_examples=40)
@given(seed=seeds, n=st.integers(1, 4), c=st.integers(1, 3), scale=st.floats(1e-3, 1e3))
def test_stability_error_is_the_per_image_l2_norm(seed, n, c, scale):
    a, b = _rand((n, c, 5, 6), seed) * scale, _rand((n, c, 5, 6), seed + 1)
    ref = np.linalg.norm((a - b).reshape(n, -1).numpy(), axis=1)
    np.testing.assert_allclose(stability_error(a, b).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(fidelity_error(a, b).numpy(), ref, rtol=1e-12)
    # normalised: invariant to positive rescaling of each map, bounded by 2, symmetric
    u = stability_error(a, b, normalize=True)
    np.testing.assert_allclose(u.numpy(), stability_error(a * 7.0, b / 3.0, normalize=True).numpy(), rtol=1e-10)
    assert (u <= 2 + 1e-12).all() and torch.equal(u, stability_error(b, a, normalize=True))


def test_normalized_error_keeps_zero_maps_zero_and_is_batch_independent():
    a = _rand((3, 2, 4, 4))
    b = a.clone()
    b[1] = 0.0
    b[2] = -a[2]
    u = stability_error(a, b, normalize=True)
    assert u[0].item() == 0.0
    assert u[1].item() == pytest.approx(1.0)  # a unit map against the zero map
    assert u[2].item() == pytest.approx(2.0)  # opposite directions
    z = torch.zeros(2, 3)
    assert torch.equal(stability_error(z, z, normalize=True), torch.zeros(2))
    assert torch.allclose(stability_error(a[1:], b[1:], normalize=True), u[1:])


def test_error_bad_shapes():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\).*\(2, 4\)"):
        stability_error(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fidelity_error(torch.zeros(3), torch.zeros(3))


# --------------------------------------------------------------------------- SSIM
def _ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float, gaussian: bool, win: int) -> float:
    """skimage's structural_similarity written out with scipy.ndimage (filter, then crop the border)."""
    if gaussian:
        filt = lambda v: ndimage.gaussian_filter(v, sigma=1.5, truncate=((win - 1) / 2) / 1.5, mode="reflect")
        cov_norm = 1.0
    else:
        filt = lambda v: ndimage.uniform_filter(v, size=win)
        cov_norm = win * win / (win * win - 1)
    ux, uy = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - ux * ux)
    vy = cov_norm * (filt(y * y) - uy * uy)
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    p = (win - 1) // 2
    return float(s[p:-p, p:-p].mean())


def _normalise_np(m, mode):
    if mode == "minmax":
        return (m - m.min()) / (m.max() - m.min())
    if mode == "maxabs":
        return m / np.abs(m).max()
    return m


@settings(max_examples=30)
@given(seed=seeds, h=st.integers(11, 14), w=st.integers(11, 15), c=st.integers(1, 3),
       normalize=st.sampled_from(["minmax", "maxabs", "none"]), gaussian=st.booleans(),
       reduce=st.sampled_from(["sum_abs", "abs_max", "mean", "none"]))
def test_ssim_matches_a_scipy_reference(seed, h, w, c, normalize, gaussian, reduce):
    a, b = _rand((2, c, h, w), seed), _rand((2, c, h, w), seed + 1)
    b = 0.6 * a + 0.4 * b  # correlated maps, so SSIM is not near 0
    win = 11 if gaussian else 7
    dr = 4.0 if normalize == "none" else None
    ours = ssim(a, b, normalize=normalize, data_range=dr, reduce_channels=reduce,
                window="gaussian" if gaussian else "uniform")
    assert ours.shape == (2,)
    red = {"sum_abs": lambda m: np.abs(m).sum(0, keepdims=True), "abs_max": lambda m: np.abs(m).max(0, keepdims=True),
           "mean": lambda m: m.mean(0, keepdims=True), "none": lambda m: m}[reduce]
    data_range = {"minmax": 1.0, "maxabs": 2.0, "none": 4.0}[normalize]
    for i in range(2):
        ra, rb = red(a[i].numpy()), red(b[i].numpy())
        ref = np.mean([_ssim_reference(_normalise_np(ra[j], normalize), _normalise_np(rb[j], normalize), data_range,
                                       gaussian, win) for j in range(ra.shape[0])])
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)


@settings(max_examples=40)
@given(seed=seeds, normalize=st.sampled_from(["minmax", "maxabs"]), scale=st.floats(1e-4, 1e4),
       reduce=st.sampled_from(["sum_abs", "abs_max", "mean", "none"]), gaussian=st.booleans())
def test_ssim_properties_identity_symmetry_range_and_scale_invariance(seed, normalize, scale, reduce, gaussian):
    a, b = _rand((3, 2, 12, 12), seed), _rand((3, 2, 12, 12), seed + 1)
    kw = dict(normalize=normalize, reduce_channels=reduce, window="gaussian" if gaussian else "uniform")
    s = ssim(a, b, **kw)
    assert torch.allclose(ssim(a, a, **kw), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(s, ssim(b, a, **kw), atol=1e-12)
    assert (s >= -1 - 1e-12).all() and (s <= 1 + 1e-12).all()
    # Under a normalisation, SSIM cannot see the scale of a map (the published code could).
    assert torch.allclose(ssim(a * scale, b, **kw), s, atol=1e-9)
    assert torch.allclose(ssim(a, b / scale, **kw), s, atol=1e-9)


def test_ssim_without_normalisation_depends_on_scale_and_drifts_to_one_for_tiny_maps():
    # The published setting: raw gradient maps (~1e-3) with data_range 2. C1, C2 swamp the statistics.
    a, b = _rand((2, 1, 12, 12), 0), _rand((2, 1, 12, 12), 1)
    raw = ssim(a * 1e-3, b * 1e-3, normalize="none", data_range=2.0, reduce_channels="none")
    assert (raw > 0.99).all()
    assert (ssim(a, b, normalize="maxabs", reduce_channels="none") < 0.5).all()
    assert not torch.allclose(ssim(a, b, normalize="none", data_range=2.0), raw)


def test_ssim_negatively_correlated_and_constant_maps():
    a = _rand((1, 1, 9, 9), 3)
    # minmax(−a) = 1 − minmax(a): positive means, opposite structure. (Under maxabs the two luminance and
    # structure factors would both be ≈ −1 and their product positive: SSIM is not an anti-correlation score.)
    assert ssim(a, -a, normalize="minmax", reduce_channels="none").item() < -0.5
    z = torch.zeros(2, 1, 8, 8)
    assert torch.allclose(ssim(z, z), torch.ones(2))  # constant maps normalise to zeros: equal maps


def test_ssim_float32_agrees_with_float64():
    a, b = _rand((2, 3, 10, 10), 5), _rand((2, 3, 10, 10), 6)
    s32 = ssim(a.float(), b.float())
    assert s32.dtype == torch.float32 and torch.allclose(s32.double(), ssim(a, b), atol=1e-5)


def test_ssim_rejects_bad_arguments_before_work():
    a = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown normalize 'zscore'; valid: minmax, maxabs, none"):
        ssim(a, a, normalize="zscore")
    with pytest.raises(ValueError, match="needs a positive finite data_range"):
        ssim(a, a, normalize="none")
    with pytest.raises(ValueError, match="data_range 2.0 contradicts normalize='minmax'"):
        ssim(a, a, normalize="minmax", data_range=2.0)
    with pytest.raises(ValueError, match="at least that size, got 8×8"):
        ssim(a, a, window="gaussian")
    with pytest.raises(ValueError, match="unknown reduce_channels 'max'"):
        ssim(a, a, reduce_channels="max")
    with pytest.raises(ValueError, match="unknown window"):
        ssim(a, a, window="box")
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, torch.zeros(1, 1, 8, 9))


# --------------------------------------------------------------------------- top-k
def _map(values):
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 2, -1)


def test_topk_on_hand_made_maps():
    a = _map([[5.0, -4.0, 0.1, 3.0], [0.0, 0.2, 1.0, -2.0]])  # |a| ranks: 0, 1, 3, 7, 6, ...
    b = _map([[4.0, 0.0, 0.0, 3.5], [9.0, 0.0, 0.0, 0.0]])  # ranks: 4, 0, 3, ...
    assert topk_indices(a, 4).tolist() == [[0, 1, 3, 7]]
    assert topk_intersection(a, b, 3).item() == pytest.approx(2 / 3)  # {0,1,3} ∩ {4,0,3}
    assert topk_iou(a, b, 3).item() == pytest.approx(2 / 4)
    assert topk_intersection(a, b, 1).item() == 0.0 and topk_iou(a, b, 1).item() == 0.0
    assert topk_intersection(a, b, 8).item() == 1.0 and topk_iou(a, b, 8).item() == 1.0
    # signed ranks by value: -4 and -2 drop to the bottom (a signed reduction is needed: sum_abs is >= 0)
    assert topk_indices(a, 4, "none", signed=True).tolist() == [[0, 3, 6, 5]]
    assert topk_intersection(a, b, 2, "mean", signed=True).item() == pytest.approx(0.5)  # {0,3} ∩ {4,0}
    assert torch.equal(topk_indices(a, 4, signed=True), topk_indices(a, 4))


def test_topk_ties_go_to_the_lower_flat_index_and_exactly_k_are_taken():
    m = torch.tensor([[1.0, 2.0, 2.0, 1.0, 2.0, 0.0]]).view(1, 1, 2, 3)
    assert topk_indices(m, 2).tolist() == [[1, 2]]
    assert topk_indices(m, 4).tolist() == [[1, 2, 4, 0]]
    z = torch.zeros(2, 1, 3, 3)
    assert topk_indices(z, 3).tolist() == [[0, 1, 2]] * 2
    assert torch.equal(topk_iou(z, z, 3), torch.ones(2))


def test_topk_channel_granularity():
    # Two channels that cancel in the mean but not in sum_abs; "none" ranks the 2·H·W elements.
    a = torch.zeros(1, 2, 2, 2)
    a[0, 0, 0, 0], a[0, 1, 0, 0] = 3.0, -3.0
    a[0, 0, 1, 1] = 1.0
    b = torch.zeros(1, 2, 2, 2)
    b[0, 0, 1, 1] = 5.0
    assert topk_indices(a, 1, "sum_abs").tolist() == [[0]]
    assert topk_indices(a, 1, "mean").tolist() == [[3]]
    assert topk_indices(a, 2, "none").tolist() == [[0, 4]]
    assert topk_intersection(a, b, 1, "mean").item() == 1.0
    assert topk_intersection(a, b, 1, "sum_abs").item() == 0.0
    assert collapse_channels(a, "abs_max").shape == (1, 1, 2, 2)


@settings(max_examples=40)
@given(seed=seeds, k=st.integers(1, 20), reduce=st.sampled_from(["sum_abs", "abs_max", "mean", "none"]),
       signed=st.booleans())
def test_topk_matches_sets_and_is_symmetric_and_batch_independent(seed, k, reduce, signed):
    a, b = _rand((3, 2, 4, 5), seed).round(decimals=1), _rand((3, 2, 4, 5), seed + 1).round(decimals=1)
    inter, iou = topk_intersection(a, b, k, reduce, signed), topk_iou(a, b, k, reduce, signed)
    for i in range(3):
        sa = set(topk_indices(a[i:i + 1], k, reduce, signed)[0].tolist())
        sb = set(topk_indices(b[i:i + 1], k, reduce, signed)[0].tolist())
        assert len(sa) == len(sb) == k
        assert inter[i].item() == pytest.approx(len(sa & sb) / k)
        assert iou[i].item() == pytest.approx(len(sa & sb) / len(sa | sb))
    assert torch.equal(inter, topk_intersection(b, a, k, reduce, signed))
    assert (iou <= inter + 1e-7).all()


def test_topk_rejects_bad_k():
    a = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\].*got 5"):
        topk_iou(a, a, 5)
    with pytest.raises(ValueError, match=r"\[1, 12\].*got 0"):
        topk_intersection(a, a, 0, reduce_channels="none")
    with pytest.raises(ValueError, match="unknown reduce_channels"):
        topk_iou(a, a, 1, reduce_channels="l2")


# --------------------------------------------------------------------------- statistics
def test_summarize_is_the_project_bootstrap_over_units():
    # 12 units: BCa, the very draw scipy.stats.bootstrap makes with the same generator (empirical.stats)
    v = [1.0, 2.0, 4.0, 7.0, 3.5, 0.5, 9.0, 2.5, 3.0, 1.5, 6.0, 2.2]
    s = summarize(v, 0.9, unit="model pair")
    ref = sstats.bootstrap((np.array(v),), np.mean, confidence_level=0.9, n_resamples=10_000, method="BCa",
                           rng=np.random.default_rng(0)).confidence_interval
    assert s["n"] == 12 and s["mean"] == pytest.approx(np.mean(v)) and s["std"] == pytest.approx(np.std(v, ddof=1))
    # same resamples; scipy and we may order the quantile interpolation differently: 1e-9 of the spread
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))
    assert s["method"] == "bootstrap BCa" and s["unit"] == "model pair"
    # 5 units: the expanded percentile interval, wider than the plain percentile one (which undercovers)
    few = summarize(v[:5])
    plain = sstats.bootstrap((np.array(v[:5]),), np.mean, n_resamples=10_000, method="percentile",
                             rng=np.random.default_rng(0)).confidence_interval
    assert few["method"] == "bootstrap expanded percentile"
    assert few["ci_low"] < plain.low and few["ci_high"] > plain.high
    assert all(isinstance(s[k], float) for k in ("mean", "std", "ci_low", "ci_high"))
    one = summarize(torch.tensor([2.0]))
    assert one["mean"] == 2.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        summarize(v, 95)


@settings(max_examples=30)
@given(beta=st.floats(-3, 3), c=st.floats(0.01, 100), seed=seeds)
def test_power_law_recovers_the_exponent_and_drops_x_zero(beta, c, seed):
    rng = np.random.default_rng(seed)
    x = np.repeat([0.0, 0.05, 0.1, 0.2, 0.4, 0.8], 3)
    y = c * np.where(x > 0, x, 1.0) ** beta
    exact = fit_power_law(x, y)
    assert exact["exponent"] == pytest.approx(beta, abs=1e-9) and exact["prefactor"] == pytest.approx(c, rel=1e-9)
    assert exact["n"] == 15 and exact["n_dropped"] == 3
    noisy = fit_power_law(x, y * np.exp(0.1 * rng.standard_normal(x.size)))
    assert noisy["ci_low"] < noisy["exponent"] < noisy["ci_high"] and noisy["stderr"] > 0


def test_power_law_stderr_matches_linregress_and_rejects_bad_points():
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.9])
    y = np.array([9.0, 1.0, 1.7, 2.2, 3.1, 5.5])
    f = fit_power_law(x, y)
    r = sstats.linregress(np.log(x[1:]), np.log(y[1:]))
    assert f["exponent"] == pytest.approx(r.slope) and f["stderr"] == pytest.approx(r.stderr)
    assert f["r2"] == pytest.approx(r.rvalue**2)
    half = sstats.t.ppf(0.975, 3) * r.stderr
    assert (f["ci_low"], f["ci_high"]) == (pytest.approx(r.slope - half), pytest.approx(r.slope + half))
    assert math.isnan(fit_power_law([1.0, 2.0], [1.0, 4.0])["stderr"])
    with pytest.raises(ValueError, match="y must be > 0"):
        fit_power_law([0.1, 0.2], [1.0, 0.0])
    with pytest.raises(ValueError, match="x must be >= 0"):
        fit_power_law([-0.1, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError, match="2 distinct positive x"):
        fit_power_law([0.0, 0.2, 0.2], [1.0, 1.0, 2.0])
