"""Issue-4 quality metrics (Gini, RIS/ROS/RRS, ROAD) against closed forms, scipy, and Quantus 0.6.

Where our definition follows the paper and Quantus differs, the difference itself is pinned.

Length (>400 lines): one test module for the quality metrics of the feature-map paper (Gini, RIS/ROS/RRS,
ROAD), each against Quantus and a closed form, sharing the fixtures at the top.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import lil_matrix
from scipy.sparse.linalg import spsolve
from torch import nn

from empirical.errors import UserError
from empirical.keyed_rng import keyed_uniform
from empirical.measures.agreement import ssim, topk_iou
from empirical.measures.faithfulness import noisy_linear_imputation, removal_order, road, road_auc
from empirical.measures.relative_stability import (
    aggregate_stability,
    linf_ball_perturbations,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
    relative_stabilities,
)
from empirical.measures.sparsity import gini
from empirical.runtime.rounding import ratio_of_norms_rtol

quantus = pytest.importorskip("quantus")
seeds = st.integers(0, 10_000)


def _rand(shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# --------------------------------------------------------------------------- Gini
def _gini_eq39(v: np.ndarray) -> float:
    a = np.sort(np.abs(v.ravel()))
    d = a.size
    k = np.arange(1, d + 1)
    return 1 - 2 * np.sum(a / a.sum() * (d - k + 0.5) / d)


@settings(max_examples=40)
@given(seed=seeds, scale=st.floats(1e-3, 1e3))
def test_gini_is_eq39_and_scale_invariant(seed, scale):
    m = _rand((3, 2, 4, 5), seed)
    g = gini(m)
    for i in range(3):
        assert g[i].item() == pytest.approx(_gini_eq39(m[i].numpy()), abs=1e-12)
    assert torch.allclose(gini(m * scale), g, atol=1e-12) and torch.allclose(gini(-m), g)


def test_gini_extremes():
    one_hot = torch.zeros(1, 1, 4, 4)
    one_hot[0, 0, 1, 2] = -3.0
    assert gini(one_hot).item() == pytest.approx(15 / 16)  # (d − 1)/d: eq. 39 never reaches 1
    assert gini(torch.full((1, 3, 2, 2), 0.7)).item() == pytest.approx(0.0, abs=1e-7)
    assert gini(torch.zeros(2, 5)).tolist() == [0.0, 0.0]


def test_gini_matches_quantus_sparseness_up_to_its_1e7_offset():
    m = _rand((4, 1, 6, 6), 1).numpy().astype(np.float32)
    x = np.zeros_like(m)
    y = np.zeros(4, dtype=int)
    q = np.array(_quiet(quantus.Sparseness(disable_warnings=True), model=None, x_batch=x, y_batch=y, a_batch=m.copy()))
    ours = gini(torch.tensor(m, dtype=torch.float64)).numpy()
    assert np.allclose(q, ours, atol=1e-5)
    # Quantus = eq. 39 on |m|/max|m| + 1e-7: reproduce it exactly, then pin the one-hot closed form
    shifted = np.abs(m) / np.abs(m).reshape(4, -1).max(1).reshape(4, 1, 1, 1) + 1e-7
    assert np.allclose(q, gini(torch.tensor(shifted, dtype=torch.float64)).numpy(), atol=1e-6)
    hot = np.zeros((1, 1, 6, 6), dtype=np.float64)
    hot[0, 0, 0, 0] = 1.0
    q_hot = _quiet(quantus.Sparseness(disable_warnings=True), model=None, x_batch=hot, y_batch=np.zeros(1, int),
                   a_batch=hot.copy())[0]
    d = 36
    assert q_hot == pytest.approx((d - 1) / (d * (1 + d * 1e-7)), rel=1e-9)
    assert gini(torch.tensor(hot)).item() == pytest.approx((d - 1) / d, rel=1e-12) != pytest.approx(q_hot, rel=1e-7)


# --------------------------------------------------------------------------- relative stability
def _model(seed=0, d=16, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 6), nn.Tanh(), nn.Linear(6, k)).eval()  # float32: Quantus casts inputs to float32


def _explainer(model):
    """Vanilla gradient of the target logit: never exactly 0 for a tanh network with random weights."""
    def explain(x, target):
        x = x.detach().clone().requires_grad_(True)
        out = model(x).gather(1, target.view(-1, 1)).sum()
        return torch.autograd.grad(out, x)[0]
    return explain


def _quantus_explain(explain):
    def qexp(model, inputs, targets, **kw):
        return explain(torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets)).numpy()
    return qexp


def _replay(xp: torch.Tensor):
    """A Quantus perturb_func that hands back our perturbations, one sample per call (Quantus's loop order)."""
    calls = iter(range(xp.shape[0]))

    def perturb(arr, indices, **kw):
        return xp[next(calls)].reshape(arr.shape).numpy().copy()
    return perturb


def _images(n=5, seed=0, lo=0.1, hi=0.9):
    return lo + (hi - lo) * torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def _quantus_stability(metric_cls, model, x, y, xp, explain, eps_min=1e-6, **kw):
    metric = metric_cls(nr_samples=xp.shape[0], perturb_func=_replay(xp), eps_min=eps_min, disable_warnings=True,
                        **kw)
    return np.array(_quiet(metric, model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
                           explain_func=_quantus_explain(explain), batch_size=len(x), device="cpu"))


def test_stability_matches_quantus_when_definitions_agree():
    model = _model(0)
    explain = _explainer(model)
    x = _images(5, 0)
    y = model(x).argmax(-1)
    kw = dict(radius=0.02, n_samples=6, seed=3)
    xp = linf_ball_perturbations(x, 0.02, 0, 6, seed=3)
    rep = lambda v: model[:3](v)
    ris = relative_input_stability(explain, model, x, **kw)
    ros = relative_output_stability(explain, model, x, **kw)
    rrs = relative_representation_stability(explain, model, rep, x, **kw)
    assert all(int(r.n_excluded.sum()) == 0 for r in (ris, ros, rrs))  # no flips at this radius
    q_ris = _quantus_stability(quantus.RelativeInputStability, model, x, y, xp, explain)
    q_ros = _quantus_stability(quantus.RelativeOutputStability, model, x, y, xp, explain)
    q_rrs = _quantus_stability(quantus.RelativeRepresentationStability, model, x, y, xp, explain, layer_names=["2"])
    np.testing.assert_allclose(ris.score.numpy(), q_ris, rtol=1e-4)
    np.testing.assert_allclose(ros.score.numpy(), q_ros, rtol=1e-4)
    np.testing.assert_allclose(rrs.score.numpy(), q_rrs, rtol=1e-4)


def test_aggregations_match_quantus_return_aggregate_and_the_smoothing_study():
    """Quantus's batch number (return_aggregate=True, np.mean of the per-image max ratios) is our "mean" and,
    logged, our "log10_mean"; "mean_log10" is the smoothing study's log10_ris (mean of per-image log10), below
    log10_mean by Jensen. rtol 1e-4: Quantus runs the explanations in float32 (as in the per-image test above)."""
    model = _model(0)
    explain = _explainer(model)
    x = _images(6, 1)
    y = model(x).argmax(-1)
    xp = linf_ball_perturbations(x, 0.02, 0, 5, seed=2)
    res = relative_input_stability(explain, model, x, radius=0.02, n_samples=5, seed=2)
    assert int(res.n_excluded.sum()) == 0
    q = _quantus_stability(quantus.RelativeInputStability, model, x, y, xp, explain, return_aggregate=True)
    assert q.shape == (1,)
    assert aggregate_stability(res.score, "mean") == pytest.approx(float(q[0]), rel=1e-4)
    assert aggregate_stability(res.score, "log10_mean") == pytest.approx(math.log10(q[0]), abs=1e-4 / math.log(10))
    v = res.score.double()
    assert aggregate_stability(res.score) == pytest.approx(v.log10().mean().item(), rel=1e-12)
    assert aggregate_stability(res.score, "log10_mean") > aggregate_stability(res.score, "mean_log10")  # spread > 0


def test_aggregation_nan_policy_and_bad_arguments():
    s = torch.tensor([1.0, 100.0, math.nan])
    assert aggregate_stability(s, "mean_log10") == pytest.approx(1.0)  # NaN image omitted
    assert aggregate_stability(s, "log10_mean") == pytest.approx(math.log10(50.5))
    assert math.isnan(aggregate_stability(s, "mean", nan_policy="propagate"))  # as np.mean in Quantus
    assert math.isnan(aggregate_stability(torch.tensor([math.nan]), "mean"))
    for kw, word in ((dict(how="median"), "aggregation"), (dict(nan_policy="drop"), "nan_policy")):
        with pytest.raises(UserError, match=word):
            aggregate_stability(s, **kw)
    with pytest.raises(UserError, match=">= 0"):
        aggregate_stability(torch.tensor([1.0, -1.0]))


def test_stability_against_a_direct_loop():
    model = _model(1).double()
    explain = _explainer(model)
    x = _images(3, 1).double()
    res = relative_output_stability(explain, model, x, radius=0.05, n_samples=4, p=math.inf, output="probs",
                                    eps_min=1e-9)
    xp = linf_ball_perturbations(x, 0.05, 0, 4)
    for i in range(3):
        e0 = explain(x[i:i + 1], model(x[i:i + 1]).argmax(-1)).flatten()
        vals = []
        for s in range(4):
            ep = explain(xp[s, i:i + 1], model(x[i:i + 1]).argmax(-1)).flatten()
            h = (model(x[i:i + 1]).softmax(-1) - model(xp[s, i:i + 1]).softmax(-1)).abs().max()
            vals.append(((e0 - ep) / e0).abs().max() / max(h.item(), 1e-9))
        assert res.score[i].item() == pytest.approx(max(v.item() for v in vals), rel=1e-5)


def test_perturbations_are_uniform_in_the_clipped_linf_ball_and_keyed_by_image_id():
    x = torch.cat([torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)]).double()
    xp = linf_ball_perturbations(x, 0.1, 0, 200, seed=1, clip=(0.0, 1.0))
    assert linf_ball_perturbations(x, 0.1, 0, 200, seed=1).min() < 0  # no clipping unless asked for
    d = xp - x
    assert d.abs().max() <= 0.1 and xp.min() >= 0 and xp.max() <= 1
    assert d[:, 2].mean().abs() < 0.01 and d[:, 2].min() < -0.09 and d[:, 2].max() > 0.09  # two-sided
    # a sample depends on (seed, id, sample index) only
    assert torch.equal(linf_ball_perturbations(x[2:], 0.1, 5, 3, seed=1, ids=[2], clip=(0.0, 1.0)), xp[5:8, 2:])
    assert not torch.equal(xp[:, 0], linf_ball_perturbations(x[:1], 0.1, 0, 200, seed=2, clip=(0.0, 1.0))[:, 0])
    u = keyed_uniform(0, torch.arange(4), 0, 20000, torch.float64)
    assert 0 < u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005
    assert abs(np.corrcoef(u[0].numpy(), u[1].numpy())[0, 1]) < 0.03


def test_stability_is_invariant_to_batch_size_and_composition():
    model = _model(2)
    explain = _explainer(model)
    x = _images(6, 2, 0.0, 1.0)
    full = relative_input_stability(explain, model, x, radius=0.3, n_samples=7, seed=5, batch_size=1000)
    small = relative_input_stability(explain, model, x, radius=0.3, n_samples=7, seed=5, batch_size=5)
    perm = torch.tensor([4, 1, 5])
    part = relative_input_stability(explain, model, x[perm], radius=0.3, n_samples=7, seed=5, ids=perm, batch_size=7)
    assert torch.allclose(full.score, small.score, equal_nan=True) and torch.equal(full.n_excluded, small.n_excluded)
    assert torch.allclose(full.score[perm], part.score, equal_nan=True)


def test_smoothgrad_stability_with_image_ids_uses_common_noise_and_is_batch_invariant():
    from empirical.attribution.noise_tunnel import smoothgrad
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Softplus(), nn.Linear(8, 3)).eval()
    x = _images(4, 3)
    y = model(x).argmax(1)

    def sg(v, t, ids=None):  # seeded SmoothGrad: draw d of image id i is fixed by (seed, i, d)
        return smoothgrad(model, v, t, sigma=0.3, n_draws=4, seed=1, ids=ids)
    kw = dict(radius=0.01, n_samples=4, seed=2)
    by_id = [relative_input_stability(sg, model, x, y, batch_size=b, explain_ids=True, **kw).score for b in (4, 8, 16)]
    assert torch.equal(by_id[0], by_id[1]) and torch.equal(by_id[0], by_id[2])
    # composition: a subset, reordered, with its ids, scores as in the full batch
    perm = torch.tensor([3, 0])
    sub = relative_input_stability(sg, model, x[perm], y[perm], ids=perm, explain_ids=True, **kw).score
    assert torch.allclose(sub, by_id[0][perm], rtol=1e-5)
    # x' under the id of x is the smoothed map's own change: the same as explaining x and x' one by one
    xp = linf_ball_perturbations(x, 0.01, 0, 4, seed=2)
    for i in range(4):
        e0 = sg(x[i:i + 1], y[i:i + 1], torch.tensor([i])).flatten()
        r = [((e0 - sg(xp[k, i:i + 1], y[i:i + 1], torch.tensor([i])).flatten()) / e0).norm()
             / ((x[i] - xp[k, i]).flatten() / x[i].flatten()).norm() for k in range(4)]
        assert by_id[0][i].item() == pytest.approx(max(v.item() for v in r), rel=1e-4)
    # without ids, SmoothGrad keyed by row position gives x' the draws of x (one perturbation per call) or
    # fresh ones (four per call): fresh noise does not shrink with the radius and inflates the score
    rows = [relative_input_stability(lambda v, t: sg(v, t), model, x, y, batch_size=b, **kw).score for b in (4, 16)]
    assert torch.allclose(rows[0], by_id[0], rtol=1e-5)  # one perturbation per call: row i is image i here
    assert (rows[1] / rows[0]).min() > 10


def test_prediction_flips_are_excluded_and_counted_where_quantus_returns_nan():
    model = _model(0)
    explain = _explainer(model)
    x = _images(8, 0)
    y = model(x).argmax(-1)
    res = relative_input_stability(explain, model, x, radius=0.4, n_samples=10, seed=0)
    xp = linf_ball_perturbations(x, 0.4, 0, 10, seed=0)
    flips = (torch.stack([model(xp[s]).argmax(-1) for s in range(10)]) != y).sum(0)
    assert torch.equal(res.n_excluded, flips) and 0 < int(flips.sum())
    q = _quantus_stability(quantus.RelativeInputStability, model, x, y, xp, explain)
    assert np.array_equal(np.isnan(q), (flips > 0).numpy())
    partial = (flips > 0) & (flips < 10)
    assert partial.any() and torch.isfinite(res.score).all()


def test_an_image_whose_every_perturbation_flips_scores_nan():
    x = _images(2, 0)
    x0 = x[:1]

    def model(v):  # class 0 exactly at image 0, class 1 anywhere else
        away = (v - x0).flatten(1).abs().sum(1)
        return torch.stack([-1e6 * away, -torch.ones_like(away)], 1)

    res = relative_input_stability(lambda v, t: v.clone(), model, x, radius=0.05, n_samples=4)
    assert res.n_excluded.tolist() == [4, 0] and math.isnan(res.score[0].item()) and math.isfinite(res.score[1].item())


def test_zero_pixels_swamp_quantus_ris_but_not_ours():
    model = _model(4)
    explain = _explainer(model)
    x = _images(4, 4)
    x[:, :, :2] = 0.0  # black rows, as in an MNIST background
    y = model(x).argmax(-1)
    res = relative_input_stability(explain, model, x, radius=0.02, n_samples=5, seed=1)
    assert int(res.n_excluded.sum()) == 0
    xp = linf_ball_perturbations(x, 0.02, 0, 5, seed=1)
    q = _quantus_stability(quantus.RelativeInputStability, model, x, y, xp, explain)
    # Quantus divides the ~0.01 changes of the zero pixels by eps_min = 1e-6: the denominator grows ~1e4-fold.
    assert (q < res.score.numpy() * 1e-3).all()
    # Our relative change skips the zero pixels: RIS equals the ratio on the non-zero pixels alone.
    e0 = explain(x, y).flatten(1)
    best = torch.full((4,), -math.inf)
    for s in range(5):
        ep = explain(xp[s], y).flatten(1)
        num = ((e0 - ep) / e0).norm(dim=1)
        nz = x.flatten(1) != 0
        den = torch.where(nz, (x - xp[s]).flatten(1) / torch.where(nz, x.flatten(1), 1.0), 0.0).norm(dim=1)
        best = torch.maximum(best, num / den)
    assert torch.allclose(res.score, best, rtol=1e-5)


def test_eps_min_enters_as_a_max_not_as_an_offset_at_zero():
    model = _model(5)
    explain = _explainer(model)
    x = _images(3, 5)
    y = model(x).argmax(-1)
    big = 10.0  # above every ||h(x) − h(x')||: the paper's max() binds, Quantus's "+eps if == 0" does not
    ros = relative_output_stability(explain, model, x, radius=0.02, n_samples=4, eps_min=big)
    ros_small = relative_output_stability(explain, model, x, radius=0.02, n_samples=4)
    xp = linf_ball_perturbations(x, 0.02, 0, 4)
    q = _quantus_stability(quantus.RelativeOutputStability, model, x, y, xp, explain, eps_min=big)
    np.testing.assert_allclose(q, ros_small.score.numpy(), rtol=1e-4)
    assert (ros.score < ros_small.score).all()
    e0 = explain(x, y).flatten(1)
    num = torch.stack([((e0 - explain(xp[s], y).flatten(1)) / e0).norm(dim=1) for s in range(4)]).amax(0)
    assert torch.allclose(ros.score, num / big)


def test_quantus_default_perturbation_is_a_one_sided_shift():
    metric = quantus.RelativeInputStability(nr_samples=1, disable_warnings=True)
    arr = np.full((2, 50), 0.5)
    shift = metric.perturb_func(arr=arr.copy(), indices=np.tile(np.arange(50), (2, 1))) - arr
    assert shift.min() >= 0.02 and shift.max() <= 0.2


def _row_by_row(f):
    """``f`` applied to one row at a time: a row's bits no longer depend on the batch it arrives in (the
    kernel, hence the summation order, is picked per batch size and CPU; see empirical/runtime/rounding.py)."""
    return lambda v, *a: torch.cat([f(v[i:i + 1], *(t[i:i + 1] for t in a)) for i in range(v.shape[0])])


def test_rrs_without_division_is_eq41_as_printed():
    model = _model(6)
    # Row by row, so the library (which batches all perturbations) and this reference see the same map and
    # representation bits: eq. 41 divides map changes by map entries and representation *differences*, which
    # amplify batch-dependent rounding far past any fixed rtol (1e-5 failed under ATEN_CPU_CAPABILITY=default).
    explain = _row_by_row(_explainer(model))
    rep = _row_by_row(lambda v: model[:3](v))
    x = _images(3, 6)
    a = relative_representation_stability(explain, model, rep, x, radius=0.02, n_samples=3, relative=False)
    xp = linf_ball_perturbations(x, 0.02, 0, 3)
    y = model(x).argmax(-1)
    e0 = explain(x, y).flatten(1)

    def eq41(wrong=False):
        return torch.stack([((e0 - explain(xp[s], y).flatten(1)) / (explain(xp[s], y).flatten(1) if wrong else e0))
                            .norm(dim=1) / (rep(x) - rep(xp[s])).norm(dim=1).clamp_min(1e-6) for s in range(3)]
                           ).amax(0).detach()
    # Same entries in both paths; only the two 2-norms (16 map entries, 6 representation entries) may be summed
    # in another order: tolerance from the float32 rounding model, not a tuned number.
    tol = ratio_of_norms_rtol(16, 6)
    assert torch.allclose(a.score, eq41(), rtol=tol, atol=0)
    # ... and it is tight enough to catch a real bug: dividing by e(x') instead of e(x) fails it
    assert not torch.allclose(a.score, eq41(wrong=True), rtol=tol, atol=0)


def test_all_three_stabilities_from_one_pass_equal_the_separate_calls():
    """relative_stabilities explains each perturbation once and shares the maps: the same numbers, bit for bit,
    as RIS, ROS and RRS computed one by one (flips included), with a third of the explain calls."""
    model = _model(1)
    calls = {"rows": 0}
    base = _explainer(model)

    def explain(x, target):
        calls["rows"] += x.shape[0]
        return base(x, target)
    rep = lambda v: model[:3](v)  # noqa: E731
    x = _images(7, 1, 0.0, 1.0)
    kw = dict(radius=0.3, n_samples=6, seed=2, batch_size=14)
    together = relative_stabilities(explain, model, x, representation=rep, **kw)
    rows_together, calls["rows"] = calls["rows"], 0
    alone = {"input": relative_input_stability(explain, model, x, **kw),
             "output": relative_output_stability(explain, model, x, **kw),
             "representation": relative_representation_stability(explain, model, rep, x, **kw)}
    assert 3 * rows_together == calls["rows"]
    assert int(together["input"].n_excluded.sum()) > 0  # the flip exclusion is exercised
    for k, r in alone.items():
        assert torch.equal(r.score.isnan(), together[k].score.isnan())
        assert torch.equal(r.score.nan_to_num(), together[k].score.nan_to_num())
        assert torch.equal(r.n_excluded, together[k].n_excluded)
    assert set(relative_stabilities(explain, model, x, kinds=("output",), **kw)) == {"output"}
    with pytest.raises(ValueError, match="unknown stability kind"):
        relative_stabilities(explain, model, x, kinds=("inputs",))
    with pytest.raises(ValueError, match="representation must be a callable"):
        relative_stabilities(explain, model, x)


def test_stability_rejects_bad_arguments():
    model = _model(0)
    explain = _explainer(model)
    x = _images(2)
    with pytest.raises(ValueError, match="radius must be a finite number >= 0.*-0.1"):
        relative_input_stability(explain, model, x, radius=-0.1)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        relative_output_stability(explain, model, x, n_samples=0)
    with pytest.raises(ValueError, match="eps_min must be > 0"):
        relative_input_stability(explain, model, x, eps_min=0.0)
    with pytest.raises(ValueError, match="unknown output 'softmax'"):
        relative_output_stability(explain, model, x, output="softmax")
    with pytest.raises(ValueError, match=r"ids must have shape \(2,\)"):
        relative_input_stability(explain, model, x, ids=[0, 1, 2])


# --------------------------------------------------------------------------- ROAD
def _spsolve_imputation(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The same linear system, assembled pixel by pixel with scipy.sparse and solved by spsolve."""
    c, h, w = img.shape
    idx = np.flatnonzero(removed.ravel())
    var = {p: i for i, p in enumerate(idx)}
    a = lil_matrix((len(idx), len(idx)))
    b = np.zeros((len(idx), c))
    for i, p in enumerate(idx):
        r, q = divmod(p, w)
        total = 0.0
        for dr in (-1, 0, 1):
            for dq in (-1, 0, 1):
                if (dr, dq) == (0, 0) or not (0 <= r + dr < h and 0 <= q + dq < w):
                    continue
                wt = 1 / 12 if dr and dq else 1 / 6
                total += wt
                nb = (r + dr) * w + q + dq
                if nb in var:
                    a[i, var[nb]] -= wt
                else:
                    b[i] += wt * img[:, r + dr, q + dq]
        a[i, i] = total
    out = img.reshape(c, -1).copy()
    if len(idx):
        out[:, idx] = spsolve(a.tocsc(), b).reshape(len(idx), c).T
    return out.reshape(c, h, w)


@settings(max_examples=15)
@given(seed=seeds, frac=st.floats(0.0, 0.97), c=st.integers(1, 3), h=st.integers(3, 9), w=st.integers(3, 9))
def test_imputation_solves_the_spsolve_system(seed, frac, c, h, w):
    x = _rand((2, c, h, w), seed)
    removed = torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed)) < frac
    removed[:, 0, 0] = False  # keep one pixel
    ours = noisy_linear_imputation(x, removed, noise=0.0)
    for i in range(2):
        ref = _spsolve_imputation(x[i].numpy(), removed[i].numpy())
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-8)


def test_imputation_matches_quantus_and_adds_noise_only_where_removed():
    x = _rand((1, 1, 8, 8), 7)
    removed = torch.zeros(1, 8, 8, dtype=torch.bool)
    removed[0, 2:6, 1:7] = True
    removed[0, 7, 7] = True
    idx = np.flatnonzero(removed[0].numpy().ravel())
    q = quantus.functions.perturb_func.noisy_linear_imputation(x[0].numpy(), idx, noise=0.0)
    np.testing.assert_allclose(noisy_linear_imputation(x, removed, 0.0)[0].numpy(), q, atol=1e-9)
    noisy = noisy_linear_imputation(x, removed, 0.5, seed=3)
    clean = noisy_linear_imputation(x, removed, 0.0)
    assert torch.equal(noisy[:, :, ~removed[0]], x[:, :, ~removed[0]])
    d = (noisy - clean)[:, :, removed[0]]
    assert (d != 0).all() and 0.2 < d.std().item() < 0.9


def test_removal_order_ties_and_exact_counts():
    m = torch.tensor([[3.0, 1.0, 3.0], [0.0, 1.0, 3.0], [-5.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    assert removal_order(m, "morf").view(-1).tolist() == [1, 4, 2, 7, 5, 3, 0, 6, 8]
    assert removal_order(m, "lerf").view(-1).tolist() == [5, 2, 6, 0, 3, 7, 8, 4, 1]
    assert removal_order(m, "morf", "none", signed=True).view(-1).tolist() == [0, 3, 1, 6, 4, 2, 8, 5, 7]
    model = _model(0, d=9)
    x = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    res = road(model, x, torch.ones(2, 1, 3, 3), percentages=[0.0, 0.29, 1 / 3, 0.5, 0.99], noise=0.0)
    assert res.n_removed == (0, 2, 3, 4, 8)
    assert torch.allclose(res.probs[:, 0], res.base_prob)  # nothing removed: the image itself


def test_road_against_a_direct_computation_and_the_auc_formula():
    model = _model(1, d=36, k=4)
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    maps = _rand((3, 1, 6, 6), 2)
    pcts = [0.1, 0.25, 0.5]
    for order in ("morf", "lerf"):
        res = road(model, x, maps, percentages=pcts, order=order, noise=0.05, seed=4)
        y = model(x).argmax(-1)
        rank = removal_order(maps, order)
        for li, p in enumerate(pcts):
            rem = (rank < math.floor(p * 36)).view(3, 6, 6)
            assert int(rem[0].sum()) == math.floor(p * 36)
            xr = noisy_linear_imputation(x, rem, 0.05, seed=4, stream=li)
            assert torch.allclose(res.probs[:, li], model(xr).softmax(-1)[torch.arange(3), y].detach())
        auc = ((res.base_prob[:, None] - res.probs).sum(1) / 4)
        assert torch.allclose(res.auc, auc) and torch.allclose(road_auc(res.base_prob, res.probs), auc)
    # seeded per image id: a sub-batch reproduces its rows
    sub = road(model, x[1:], maps[1:], percentages=pcts, noise=0.05, seed=4, ids=[1, 2])
    assert torch.allclose(sub.probs, road(model, x, maps, percentages=pcts, noise=0.05, seed=4).probs[1:])
    # levels and images are solved in chunks: one system per chunk, 4 per chunk, all at once agree
    whole = road(model, x, maps, percentages=pcts, noise=0.05, seed=4)
    for max_elems in (36, 4 * 36):
        part = road(model, x, maps, percentages=pcts, noise=0.05, seed=4, max_elems=max_elems)
        assert torch.allclose(part.probs, whole.probs, atol=1e-6) and torch.equal(part.correct, whole.correct)


def test_imputation_streams_per_image_equal_separate_calls():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    rem = torch.zeros(2, 5, 5, dtype=torch.bool)
    rem[:, 1:3, 2:4] = True
    both = noisy_linear_imputation(x, rem, 0.1, seed=1, ids=[7, 8], stream=torch.tensor([0, 5]))
    assert torch.allclose(both[0], noisy_linear_imputation(x[:1], rem[:1], 0.1, seed=1, ids=[7], stream=0)[0])
    assert torch.allclose(both[1], noisy_linear_imputation(x[1:], rem[1:], 0.1, seed=1, ids=[8], stream=5)[0])
    with pytest.raises(UserError, match="stream must be"):
        noisy_linear_imputation(x, rem, 0.1, stream=torch.tensor([0, 1, 2]))


def _quantus_road(model, x, maps, y, pcts, batch_size):
    metric = quantus.ROAD(percentages=pcts, noise=0.0, disable_warnings=True, abs=False, normalise=False)
    out = _quiet(metric, model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=maps.numpy(),
                 batch_size=batch_size, device="cpu")
    return np.array([out[p] for p in pcts])


def test_road_accuracy_curve_matches_quantus_on_one_channel_without_ties():
    model = _model(2, d=36, k=3)
    x = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    maps = _rand((6, 1, 6, 6), 3)  # continuous: no ties
    y = model(x).argmax(-1)
    pcts = [5, 20, 40, 60, 80, 95]
    res = road(model, x, maps, target=y, percentages=[p / 100 for p in pcts], noise=0.0, reduce_channels="none",
               signed=True)
    q = _quantus_road(model, x, maps, y, pcts, batch_size=6)
    np.testing.assert_allclose(res.correct.double().mean(0).numpy(), q, atol=1e-12)
    assert 0 < q.min() < 1  # the curve is informative, not all ones
    # Quantus averages only the first batch when the data span several
    q_first = _quantus_road(model, x, maps, y, pcts, batch_size=2)
    np.testing.assert_allclose(res.correct[:2].double().mean(0).numpy(), q_first, atol=1e-12)


def test_quantus_road_fails_on_three_channels_where_ours_runs():
    model = _model(3, d=3 * 36, k=3)
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    maps = _rand((2, 3, 6, 6), 4)
    y = model(x).argmax(-1)
    with pytest.raises(Exception):
        _quantus_road(model, x, maps, y, [50], batch_size=2)
    res = road(model, x, maps, percentages=[0.5], noise=0.0)
    assert res.probs.shape == (2, 1) and torch.isfinite(res.probs).all()


def test_road_rejects_bad_arguments():
    model = _model(0, d=9)
    x = torch.rand(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"percentages must be fractions in \[0, 1\).*1.0"):
        road(model, x, x, percentages=[0.5, 1.0])
    with pytest.raises(ValueError, match="unknown order 'random'; valid: morf, lerf"):
        road(model, x, x, order="random")
    with pytest.raises(ValueError, match=r"maps must be shaped \(1, C', 3, 3\)"):
        road(model, x, torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        road(model, x, x, noise=-1.0)
    with pytest.raises(ValueError, match="reduce to one channel"):
        road(model, x.expand(1, 2, 3, 3), x.expand(1, 2, 3, 3), reduce_channels="none")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu():
    dev = torch.device("cuda")
    ids = torch.arange(5)
    assert torch.equal(keyed_uniform(1, ids, 7, 100), keyed_uniform(1, ids.to(dev), 7, 100).cpu())
    model = _model(2, d=36, k=3)
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    maps = _rand((4, 1, 6, 6), 3).float()
    cpu = road(model, x, maps, percentages=[0.2, 0.6])
    gpu = road(model.to(dev), x.to(dev), maps.to(dev), percentages=[0.2, 0.6])
    assert gpu.probs.device.type == "cuda" and torch.allclose(gpu.probs.cpu(), cpu.probs, atol=1e-5)
    explain = _explainer(model)
    ris = relative_input_stability(explain, model, x.to(dev), radius=0.05, n_samples=3)
    assert ris.score.device.type == "cuda" and torch.isfinite(ris.score).all()
    assert torch.allclose(gini(maps.to(dev)).cpu(), gini(maps))
    a, b = _rand((4, 1, 9, 9), 4).float(), _rand((4, 1, 9, 9), 5).float()  # SSIM's 7×7 window needs >= 7×7
    assert torch.allclose(ssim(a.to(dev), b.to(dev)).cpu(), ssim(a, b), atol=1e-5)
    assert torch.equal(topk_iou(maps.to(dev), x.to(dev), 5).cpu(), topk_iou(maps, x, 5))
