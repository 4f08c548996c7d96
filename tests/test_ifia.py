"""IFIA (empirical/attacks/ifia.py): the constraint set and the label hold (property tests), the effect on a linear
model matches its closed form, and the attack beats random noise of the same ε."""
import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirical.attacks.ifia import IFIAConfig, ifia_attack, softplus_surrogate
from empirical.errors import UserError
from empirical.measures.rank_agreement import agreement_metrics


def _relu_net(seed=0, c=3, side=4, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(c * (side // 2) ** 2, k))


# --------------------------------------------------------------------------- constraint set and label
@settings(deadline=None, max_examples=25)
@given(eps=st.floats(0.0, 0.5), step_size=st.floats(0.0, 0.3), steps=st.integers(1, 3), restarts=st.integers(1, 3),
       random_start=st.booleans(), on_label_change=st.sampled_from(["skip", "reject"]),
       method=st.sampled_from(["vg", "ig"]), seed=st.integers(0, 20), mean=st.floats(-0.5, 0.5),
       std=st.floats(0.2, 2.0), select_by=st.sampled_from(["kendall", "spearman", "topk", "kendall_topk"]))
def test_never_leaves_the_ball_or_the_box_and_never_changes_the_label(eps, step_size, steps, restarts, random_start,
                                                                      on_label_change, method, seed, mean, std,
                                                                      select_by):
    net = _relu_net(seed)
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    x[0] = 0.0  # box corners: the ball is cut by [0, 1]
    x[1] = 1.0
    normalize = lambda v: (v - mean) / std  # noqa: E731
    with torch.no_grad():
        pred = net(normalize(x)).argmax(1)
    y = pred.clone()
    y[2] = (y[2] + 1) % 3  # one misclassified image: not attacked, not counted
    cfg = IFIAConfig(epsilon=eps, step_size=step_size, steps=steps, k=3, restarts=restarts, random_start=random_start,
                     method=method, ig_steps=3, on_label_change=on_label_change, seed=seed, select_by=select_by)
    res = ifia_attack(net, x, y, cfg, normalize)
    assert res.n_images == 5 and res.n_correct == 4 and res.correct.tolist() == [True, True, False, True, True]
    xs = x[res.correct]
    # project() returns fl(x + clamp(d, -ε, ε)): one float32 rounding of a number <= 1 + ε < 2, so
    # |x_adv - x| <= ε + ulp(1)/2·2 = ε + 2^-23 (and fl32(ε) - ε <= 2^-25 for ε < 0.5).
    assert (res.x_adv.double() - xs.double()).abs().max().item() <= eps + 2.0 ** -23
    assert res.x_adv.min().item() >= 0.0 and res.x_adv.max().item() <= 1.0
    with torch.no_grad():
        assert torch.equal(net(normalize(res.x_adv)).argmax(1), y[res.correct])
    if on_label_change == "reject":  # a rejected step is undone, so even the last iterate keeps the label
        with torch.no_grad():
            assert torch.equal(net(normalize(res.x_last)).argmax(1), y[res.correct])
    for name, v in res.metrics.items():
        assert v.shape == (4,) and bool(((v >= -1) & (v <= 1) | v.isnan()).all()), name
    assert res.restart.shape == (4,) and res.label_changes.shape == (4, restarts)


@pytest.mark.parametrize("on_label_change", ["skip", "reject"])
def test_label_changing_steps_occur_and_are_never_kept(on_label_change):
    # A large ε on a small net: some steps flip the label (counted), and the kept images still keep it.
    net = _relu_net(2)
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = net(x).argmax(1)
    res = ifia_attack(net, x, y, IFIAConfig(epsilon=0.5, step_size=0.3, steps=3, k=3, restarts=2, ig_steps=3,
                                     on_label_change=on_label_change))
    assert res.label_changes.sum().item() > 0
    with torch.no_grad():
        assert torch.equal(net(res.x_adv).argmax(1), y)


# --------------------------------------------------------------------------- linear model: closed form
def _linear(w: torch.Tensor) -> nn.Module:
    lin = nn.Linear(w.numel(), 2).double()
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0] = w
        lin.bias.copy_(torch.tensor([100.0, 0.0]))  # class 0 wins on all of [0, 1]^d: no label can change
    return nn.Sequential(nn.Flatten(), lin)


def _closed_form_path(x, w, k, eps, alpha, steps):
    r"""IG with a black baseline on f_0(x) = w·x + b is exactly x ⊙ w, so ŝ = |x w| / Σ|x w| and the attack loss is
    L = A/(A + B), A the mass on K = topk(|x w|), B the rest. With x > 0, the signed step moves every pixel of K
    down and every other pixel up by α, so the iterates are x_t = clip(x + d·min(tα, ε), 0, 1), d = -1 on K, +1
    off K. That end point x* is also the exact maximiser of eq. 3's surrogate over S(x): L increases with A and
    decreases with B, and A, B depend on disjoint pixels each pushed to its bound."""
    s0 = np.abs(x * w)
    top = np.argsort(-s0, kind="stable")[:k]
    d = np.ones_like(x)
    d[top] = -1.0
    return s0, top, [np.clip(x + d * min(t * alpha, eps), 0.0, 1.0) for t in range(1, steps + 1)]


def _objective(x, w, top):
    s = np.abs(x * w)
    return s[top].sum() / s.sum()


@pytest.mark.parametrize("eps, alpha, steps", [(0.05, 0.05, 1), (0.05, 0.01, 8), (0.2, 0.03, 12)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_model_matches_the_closed_form(eps, alpha, steps, seed):
    g = np.random.default_rng(seed)
    side, k = 4, 5
    x = g.uniform(0.02, 0.98, (3, side * side))
    w = g.uniform(0.2, 1.0, side * side) * g.choice([-1.0, 1.0], side * side)
    net = _linear(torch.tensor(w))
    cfg = IFIAConfig(epsilon=eps, step_size=alpha, steps=steps, k=k, restarts=1, ig_steps=4)
    res = ifia_attack(net, torch.tensor(x).view(3, 1, side, side), torch.zeros(3, dtype=torch.long), cfg)
    assert res.n_correct == 3 and res.surrogate_relus == 0
    for i in range(3):
        s0, top, path = _closed_form_path(x[i], w, k, eps, alpha, steps)
        taus = [scipy.stats.kendalltau(s0, np.abs(p * w))[0] for p in path]
        t_best = int(np.argmin(taus))
        expect = path[t_best] if taus[t_best] < 1 else x[i]  # RAR keeps x unless some iterate scores below 1
        # The attack's iterates accumulate α steps with float64 roundings (~1e-16 per step) before the clamp at
        # ε makes them exact; 1e-12 leaves room for 12 steps and stays far below any rank gap of these maps.
        np.testing.assert_allclose(res.x_adv[i].flatten().numpy(), expect, rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.x_last[i].flatten().numpy(), path[-1], rtol=0, atol=1e-12)
        s1 = np.abs(expect * w)
        assert res.metrics["kendall"][i].item() == pytest.approx(scipy.stats.kendalltau(s0, s1)[0], abs=1e-12)
        assert res.metrics["spearman"][i].item() == pytest.approx(scipy.stats.spearmanr(s0, s1)[0], abs=1e-12)
        top1 = np.argsort(-s1, kind="stable")[:k]
        assert res.metrics["topk_intersection"][i].item() == len(np.intersect1d(top, top1)) / k
        if steps * alpha >= eps:  # the path reached x*: check it is the optimum over S(x) (eq. 3's surrogate)
            lo, hi = np.clip(x[i] - eps, 0, 1), np.clip(x[i] + eps, 0, 1)
            others = g.uniform(lo, hi, (500, x.shape[1]))
            corners = np.where(g.random((500, x.shape[1])) < 0.5, lo, hi)
            best = _objective(path[-1], w, top)
            assert best <= min(_objective(o, w, top) for o in np.concatenate([others, corners])) + 1e-15
            assert best < _objective(x[i], w, top)


# --------------------------------------------------------------------------- effectiveness
def test_attack_lowers_topk_intersection_more_than_random_noise():
    net = _relu_net(3, c=6, side=8, k=3)
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = net(x).argmax(1)
    cfg = IFIAConfig(epsilon=0.1, step_size=0.01, steps=20, k=10, restarts=1, ig_steps=8, select_by="topk")
    res = ifia_attack(net, x, y, cfg)
    assert res.n_correct == 12 and res.surrogate_relus == 1
    # The same-ε baseline: uniform noise in S(x), the best of 20 draws per image for fairness (as many tries
    # as the attack has steps), scored with the same maps and metric.
    from empirical.attribution import integrated_gradients
    from empirical.attacks.pgd import random_perturb
    gen = torch.Generator().manual_seed(0)
    m0 = integrated_gradients(net, x, y, steps=8, rule="riemann_right")
    noise = torch.stack([agreement_metrics(m0, integrated_gradients(net, random_perturb(x, 0.1, gen), y, steps=8,
                                                                  rule="riemann_right"), 10)["topk_intersection"]
                         for _ in range(20)]).amin(0)
    attacked = res.metrics["topk_intersection"]
    assert attacked.mean() < noise.mean() - 0.1, (attacked.mean(), noise.mean())
    assert (attacked <= noise).float().mean() >= 0.75


@pytest.mark.parametrize("method, kw", [("sg", {"method_kwargs": (("sigma", 0.2), ("n_draws", 3))}),
                                        ("sg_ig", {"method_kwargs": (("sigma", 0.2), ("n_draws", 2)), "ig_steps": 3}),
                                        ("gradcam", {"gradcam_layer": "1"}), ("vg", {})])
def test_every_method_is_attacked_by_name(method, kw):
    net = _relu_net(4, c=4, side=8, k=3)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = net(x).argmax(1)
    res = ifia_attack(net, x, y, IFIAConfig(method=method, epsilon=0.2, step_size=0.05, steps=4, k=8, restarts=2, **kw))
    assert res.n_correct == 4 and (res.x_adv - x).abs().max() <= 0.2 + 2.0 ** -23
    assert (res.metrics["topk_intersection"] < 1).any()  # the attack moved some map


def test_softplus_surrogate_swaps_relus_in_a_copy_only():
    net = _relu_net()
    sur, n = softplus_surrogate(net, 10.0)
    assert n == 1 and isinstance(net[1], nn.ReLU) and isinstance(sur[1], nn.Softplus) and sur[1].beta == 10.0
    assert not any(p.requires_grad for p in sur.parameters()) and all(p.requires_grad for p in net.parameters())


def test_only_correct_images_enter_and_none_correct_is_fine():
    net = _relu_net(5)
    x = torch.rand(3, 1, 4, 4)
    with torch.no_grad():
        y = (net(x).argmax(1) + 1) % 3
    res = ifia_attack(net, x, y, IFIAConfig(steps=2, ig_steps=2, k=3))
    assert res.n_correct == 0 and res.metrics == {} and res.summary(resamples=10)["natural_accuracy"] == 0.0


@pytest.mark.parametrize("field, value, match", [
    ("epsilon", -0.1, "epsilon"), ("steps", 0, "steps"), ("restarts", 1.5, "restarts"), ("method", "lrp", "method"),
    ("select_by", "ssim", "select_by"), ("on_label_change", "undo", "on_label_change"), ("k", 0, "k must"),
    ("softplus_beta", 0.0, "softplus_beta"), ("reduce_channels", "mean", "reduce_channels"),
    ("method_kwargs", (("steps", 5),), "may not set"), ("baseline", 2.0, "baseline")])
def test_bad_config_is_one_clear_error(field, value, match):
    with pytest.raises(UserError, match=match):
        IFIAConfig(**{field: value})
    with pytest.raises(UserError, match="sigma and n_draws"):
        IFIAConfig(method="sg")
    with pytest.raises(UserError, match="gradcam_layer"):
        IFIAConfig(method="gradcam")


def test_bad_inputs_are_rejected_before_work():
    net = _relu_net()
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        ifia_attack(net, torch.full((2, 1, 4, 4), 2.0), torch.zeros(2, dtype=torch.long))
    with pytest.raises(UserError, match="labels"):
        ifia_attack(net, torch.rand(2, 1, 4, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(UserError, match="no images"):
        ifia_attack(net, torch.rand(0, 1, 4, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(UserError, match="k must be in"):
        ifia_attack(net, torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), IFIAConfig(k=17))


def test_evaluate_reports_natural_and_pgd_accuracy_beside_the_attack():
    from empirical.attacks.ifia import PGDEvalConfig, evaluate
    from empirical.attacks.pgd import robust_accuracy
    net = _relu_net(6, k=3)
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    y = torch.arange(8) % 3
    with torch.no_grad():
        natural = (net(x).argmax(1) == y).float().mean().item()
    rec, res = evaluate(net, x, y, IFIAConfig(steps=2, ig_steps=2, k=3), PGDEvalConfig(epsilon=0.2, steps=3), None,
                        resamples=200)
    assert rec["natural_accuracy"] == natural == res.n_correct / 8
    # the same PGD run, same generator seed: the same number
    assert rec["pgd_accuracy"] == robust_accuracy(net, None, x, y, 0.2, 3, 0.01, True,
                                                  generator=torch.Generator().manual_seed(0))
    rec0, _ = evaluate(net, x, y, IFIAConfig(steps=1, ig_steps=2, k=3), PGDEvalConfig(epsilon=0.0), resamples=200)
    assert rec0["pgd_accuracy"] == natural  # ε = 0: PGD cannot move the images
    assert set(rec["metrics"]) == {"topk_intersection", "kendall", "spearman", "kendall_topk", "spearman_topk"}
    assert rec["k_pixels"] == 3 and rec["k_fraction"] == 3 / 16
    import json
    json.dumps(rec)  # a result record: plain numbers and strings only


def test_attack_gradient_is_the_gradient_of_the_topk_mass_share():
    # On a smooth float64 net the attack's gradient (a double backward through IG) must equal central finite
    # differences of L(x) = Σ_{i∈K} s_i / Σ_j s_j. Step 1e-6: truncation ~1e-12 times L's third derivative,
    # rounding ~1e-16/1e-6; both far below the 1e-6 tolerance on entries of size ~1e-2.
    import empirical.attacks.ifia as m
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(48, 3)).double()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 2])
    cfg = IFIAConfig(k=5, ig_steps=3)
    ids = torch.arange(2)
    mask = torch.zeros(2, 16, dtype=torch.float64)
    mask[:, [0, 3, 5, 9, 15]] = 1.0

    def loss(v):
        r = m._reduced(m._maps(net, m._identity, v, y, ids, cfg), cfg)
        return ((r / r.sum(1, keepdim=True)) * mask).sum()

    g = m._loss_grad(net, m._identity, x, y, ids, mask, cfg)
    fd = torch.zeros_like(x).flatten()
    for j in range(fd.numel()):
        e = torch.zeros_like(fd)
        e[j] = 1e-6
        fd[j] = (loss(x + e.view_as(x)) - loss(x - e.view_as(x))) / 2e-6
    torch.testing.assert_close(g.flatten(), fd, rtol=0, atol=1e-6)
    assert g.abs().max() > 1e-3  # not vacuous


def test_chunking_rows_does_not_change_the_attack():
    # Rows (image × restart) are independent, so max_rows only regroups them. On the float64 linear model every
    # gradient entry is far from 0 (|w_i| >= 0.2, x_i >= 0.02), so regrouping's ~1e-16 roundings cannot flip a
    # sign step; the paths agree to the same 1e-12 as the closed-form test.
    g = np.random.default_rng(5)
    x = torch.tensor(g.uniform(0.02, 0.98, (3, 1, 4, 4)))
    w = torch.tensor(g.uniform(0.2, 1.0, 16) * g.choice([-1.0, 1.0], 16))
    net, y = _linear(w), torch.zeros(3, dtype=torch.long)
    base = IFIAConfig(epsilon=0.1, step_size=0.02, steps=6, k=5, restarts=3, ig_steps=4)
    a = ifia_attack(net, x, y, base)
    b = ifia_attack(net, x, y, IFIAConfig(**{**base.__dict__, "max_rows": 2}))
    torch.testing.assert_close(a.x_adv, b.x_adv, rtol=0, atol=1e-12)
    assert torch.equal(a.restart, b.restart)
    for name in a.metrics:
        torch.testing.assert_close(a.metrics[name], b.metrics[name], rtol=0, atol=1e-12)


def test_more_restarts_never_score_worse_than_the_first():
    # Restart 0 runs from x in both calls (the same path: rows are independent, float64 keeps the batched
    # roundings ~1e-16 far from flipping a sign step here), so the kept restart's Kendall can only be lower
    # with restarts 1 and 2 added from random starts.
    net = _relu_net(8, c=4, side=8).double()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with torch.no_grad():
        y = net(x).argmax(1)
    kw = dict(epsilon=0.1, step_size=0.02, steps=5, k=10, ig_steps=4)
    one = ifia_attack(net, x, y, IFIAConfig(restarts=1, **kw))
    three = ifia_attack(net, x, y, IFIAConfig(restarts=3, **kw))
    assert bool((three.metrics["kendall"] <= one.metrics["kendall"] + 1e-12).all())
    assert set(three.restart.tolist()) - {0}  # some image kept a random restart


@pytest.mark.parametrize("select_by, metric", [("topk", "topk_intersection"), ("spearman", "spearman"),
                                               ("kendall_topk", "kendall_topk")])
def test_selection_measure_is_the_one_minimised(select_by, metric):
    # With one restart and selection by a metric, the kept iterate's value of that metric is the lowest over the
    # path: no lower than the last iterate's (when it keeps the label, as on this linear model) or x's (1).
    g = np.random.default_rng(9)
    x = torch.tensor(g.uniform(0.02, 0.98, (3, 1, 4, 4)))
    w = torch.tensor(g.uniform(0.2, 1.0, 16) * g.choice([-1.0, 1.0], 16))
    net, y = _linear(w), torch.zeros(3, dtype=torch.long)
    res = ifia_attack(net, x, y, IFIAConfig(epsilon=0.1, step_size=0.02, steps=6, k=5, restarts=1, ig_steps=4,
                                            select_by=select_by))
    import empirical.attacks.ifia as m
    cfg = res.config
    r0 = m._real_maps(net, m._identity, x, y, torch.arange(3), cfg)
    last = agreement_metrics(r0, m._real_maps(net, m._identity, res.x_last, y, torch.arange(3), cfg), 5, "none")
    assert bool((res.metrics[metric] <= last[metric] + 1e-12).all()) and bool((res.metrics[metric] <= 1).all())
    if metric != "kendall_topk":  # on a linear model the attack shrinks every top-k pixel alike: their order may stay
        assert bool((res.metrics[metric] < 1).any())
