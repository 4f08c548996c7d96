"""Saliency engine: each method against an independent implementation (Captum, a closed form, or a loop).

Tolerances: float64 throughout, so agreement with Captum is to rounding (atol 1e-12 for gradients, 1e-10
for sums over path steps and draws); Monte-Carlo statements use margins of several standard errors.

Length (>400 lines): one test module per engine (every attribution method against its oracle), so a
method's tests and its Captum cross-checks sit together.
"""
import doctest
import importlib
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirical.attribution.cam import gradcam
from empirical.attribution.dispatch import METHODS, saliency
from empirical.attribution.engine import draw_noise
from empirical.attribution.gradient import vanilla_gradient
from empirical.attribution.integrated_gradients import RULES, ig_quadrature, integrated_gradients
from empirical.attribution.memory import max_batch_for_memory, shrink_to_fit
from empirical.attribution.noise_tunnel import smoothed, smoothgrad

pytest.importorskip("captum.attr")
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency  # noqa: E402
from captum.attr._utils.approximation_methods import approximation_parameters  # noqa: E402

D64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: intra-op threads only contend with each other (and with other jobs on shared
    cores, where runtimes went from 2 s to 16 s), so run this module single-threaded and restore afterwards."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def convnet(seed=0, c=2, size=6, k=3, bn=False):
    """Smooth (tanh) conv net; `cam` is the Grad-CAM layer, [N, 4, size, size]."""
    torch.manual_seed(seed)
    layers = [("conv1", nn.Conv2d(c, 4, 3, padding=1))]
    if bn:
        layers.append(("bn", nn.BatchNorm2d(4)))
    layers += [("act1", nn.Tanh()), ("cam", nn.Conv2d(4, 4, 3, padding=1)), ("act2", nn.Tanh()),
               ("flat", nn.Flatten()), ("fc", nn.Linear(4 * size * size, k))]
    return nn.Sequential(OrderedDict(layers)).double()


def images(n=3, c=2, size=6, seed=1):
    return torch.randn(n, c, size, size, generator=_gen(seed), dtype=D64)


def targets(n=3, k=3, seed=2):
    return torch.randint(0, k, (n,), generator=_gen(seed))


class Recorder(nn.Module):
    """Wraps a model and keeps every input batch it is evaluated on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.model(x)


# --------------------------------------------------------------------------- vanilla gradient
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_vanilla_gradient_matches_captum_saliency_and_captum_default_is_abs(dtype, tol):
    model, x, t = convnet().to(dtype), images().to(dtype), targets()
    ours = vanilla_gradient(model, x, t)
    assert ours.dtype == dtype
    signed = Saliency(model).attribute(x.clone().requires_grad_(), target=t, abs=False)
    assert torch.allclose(ours, signed, rtol=0, atol=tol)
    assert (ours < 0).any()  # signed maps: the comparison below is not vacuous
    default = Saliency(model).attribute(x.clone().requires_grad_(), target=t)  # abs=True by default
    assert torch.allclose(default, ours.abs(), rtol=0, atol=tol)


def test_eval_mode_is_used_and_restored_so_samples_do_not_interact():
    model = convnet(bn=True)
    model.bn.running_mean.uniform_(-1, 1)
    model.train()
    model.act1.eval()  # mixed modes must come back exactly as they were
    x, t = images(4), targets(4)
    together = vanilla_gradient(model, x, t)
    alone = torch.cat([vanilla_gradient(model, x[i:i + 1], t[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, rtol=0, atol=1e-12)
    assert model.training and model.bn.training and not model.act1.training
    model.eval()
    assert torch.allclose(vanilla_gradient(model, x, t), together, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- integrated gradients
@pytest.mark.parametrize("rule", RULES)
def test_quadrature_weights_sum_to_one_and_nodes_lie_in_unit_interval(rule):
    for n in (2, 3, 8, 50):
        a, w = ig_quadrature(n, rule)
        assert a.shape == w.shape == (n,)
        assert w.sum().item() == pytest.approx(1.0, abs=1e-14)
        assert (a >= 0).all() and (a <= 1).all() and (w > 0).all()


@settings(max_examples=40)
@given(rule=st.sampled_from(RULES), steps=st.integers(2, 12), d=st.integers(1, 6), seed=st.integers(0, 999))
def test_ig_on_a_linear_model_is_the_closed_form_with_zero_residual(rule, steps, d, seed):
    """f(x) = Wx + c: IG = W_y ⊙ (x − b) and completeness holds to rounding (float64, 1e-12)."""
    torch.manual_seed(seed)
    lin = nn.Linear(d, 3).double()
    x = torch.randn(4, d, dtype=D64)
    b = torch.randn(4, d, dtype=D64)
    t = torch.randint(0, 3, (4,))
    ig, res = integrated_gradients(lin, x, t, baseline=b, steps=steps, rule=rule, return_residual=True)
    assert torch.allclose(ig, lin.weight[t].detach() * (x - b), rtol=1e-12, atol=1e-12)
    assert res.abs().max() < 1e-12


def test_captum_trapezoid_weights_sum_to_n_minus_one_over_n_and_ours_to_one():
    """Pins a Captum defect: its riemann_trapezoid uses step 1/n on n nodes spanning [0, 1] (n − 1 intervals),
    so on a linear model its IG is (n − 1)/n of the exact one; ours is exact."""
    step_sizes, _ = approximation_parameters("riemann_trapezoid")
    lin = nn.Linear(5, 2).double()
    x, t = torch.randn(3, 5, generator=_gen(0), dtype=D64), torch.tensor([0, 1, 1])
    exact = lin.weight[t].detach() * x
    for n in (2, 5, 10):
        assert sum(step_sizes(n)) == pytest.approx((n - 1) / n, abs=1e-15)
        theirs = IntegratedGradients(lin).attribute(x, target=t, n_steps=n, method="riemann_trapezoid")
        assert torch.allclose(theirs, (n - 1) / n * exact, atol=1e-12)
        assert torch.allclose(integrated_gradients(lin, x, t, steps=n, rule="riemann_trapezoid"), exact, atol=1e-12)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_ig_matches_captum_on_a_conv_net(rule):
    """Same nodes and weights as Captum for these rules (GL: numpy's leggauss mapped to [0, 1]). Captum casts
    its step sizes to float32 (`torch.tensor(step_sizes).float()`), so agreement is to ~1e-8 relative, not 1e-16."""
    model, x, t = convnet(), images(), targets()
    base = 0.3 * images(seed=5)
    ours, res = integrated_gradients(model, x, t, baseline=base, steps=20, rule=rule, return_residual=True)
    theirs, delta = IntegratedGradients(model).attribute(x, baselines=base, target=t, n_steps=20, method=rule,
                                                         return_convergence_delta=True)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-7 * theirs.abs().max())
    assert torch.allclose(res, delta, rtol=0, atol=1e-7 * theirs.abs().sum((1, 2, 3)).max())


def _sigmoid_neuron(w):
    lin = nn.Linear(len(w), 1, bias=False).double()
    lin.weight.data = w[None].clone()
    return nn.Sequential(lin, nn.Sigmoid())


def test_ig_matches_the_single_layer_closed_form():
    """F(x) = H(<w, x>), H = sigmoid: IG = (x − u) ⊙ w · (H(<w,x>) − H(<w,u>)) / <x − u, w>
    (feature-map smoothing paper, appendix H, eqs. 28-35), to 1e-6 with 32 Gauss-Legendre steps."""
    g = _gen(3)
    w = torch.randn(7, generator=g, dtype=D64)
    x, u = 2 * torch.randn(5, 7, generator=g, dtype=D64), torch.randn(5, 7, generator=g, dtype=D64)
    t = torch.zeros(5, dtype=torch.long)
    s_x, s_u = torch.sigmoid(x @ w), torch.sigmoid(u @ w)
    closed = (x - u) * w * ((s_x - s_u) / ((x - u) @ w))[:, None]
    ig = integrated_gradients(_sigmoid_neuron(w), x, t, baseline=u, steps=32)
    assert torch.allclose(ig, closed, rtol=0, atol=1e-6)
    # The composite trapezoid rule converges at O(1/n²): doubling n divides the error by about 4.
    err = [(integrated_gradients(_sigmoid_neuron(w), x, t, baseline=u, steps=n, rule="riemann_trapezoid")
            - closed).abs().max().item() for n in (17, 33)]
    assert 3.5 < err[0] / err[1] < 4.5


# --------------------------------------------------------------------------- SmoothGrad
def _captum_with_our_noise(monkeypatch, eps_scaled):
    """Make NoiseTunnel add OUR perturbations instead of drawing from torch's global RNG.

    Captum draws with `torch.normal` in an order that depends on nt_samples_batch_size, so its noise cannot
    be reproduced by seeding; it repeats each input n times image-major (`repeat_interleave`), the same
    [N, n_draws, ...] layout as ours, so we patch its `_add_noise_to_input` to add `eps_scaled` reshaped.
    """
    def add(input, stdev, nt_samples_partition):
        assert nt_samples_partition == eps_scaled.shape[1]
        return input.repeat_interleave(nt_samples_partition, dim=0) + eps_scaled.reshape(-1, *input.shape[1:])
    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))


def test_smoothgrad_matches_captum_noise_tunnel_on_identical_noise(monkeypatch):
    model, x, t = convnet(), images(), targets()
    n, sigma = 6, 0.4
    eps = draw_noise(x, n, seed=11)
    _captum_with_our_noise(monkeypatch, sigma * eps)
    ours, se = smoothgrad(model, x, t, sigma=sigma, n_draws=n, noise=eps, return_stderr=True)
    nt = NoiseTunnel(Saliency(model))
    kw = dict(target=t, abs=False, nt_samples=n, stdevs=sigma)
    theirs = nt.attribute(x.clone().requires_grad_(), nt_type="smoothgrad", **kw)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)
    # Captum's vargrad is the population variance E[a²] − E[a]²; ours is sqrt(var_{ddof=1} / n).
    var = nt.attribute(x.clone().requires_grad_(), nt_type="vargrad", **kw)
    assert torch.allclose(se, (var / (n - 1)).sqrt(), rtol=1e-8, atol=1e-12)
    # Our default draws are the same as passing draw_noise explicitly.
    assert torch.equal(smoothgrad(model, x, t, sigma=sigma, n_draws=n, seed=11), ours)


def test_smoothed_ig_matches_captum_noise_tunnel_over_integrated_gradients(monkeypatch):
    """Smoothed IG = E_z[IG(x + z)] with the baseline unchanged, which is what Captum computes."""
    model, x, t = convnet(), images(2), targets(2)
    n, sigma, base = 4, 0.3, 0.2 * images(2, seed=9)
    eps = draw_noise(x, n, seed=4)
    _captum_with_our_noise(monkeypatch, sigma * eps)
    ours = smoothgrad(model, x, t, sigma=sigma, n_draws=n, noise=eps, base="ig", ig_steps=8, baseline=base)
    theirs = NoiseTunnel(IntegratedGradients(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=n, stdevs=sigma, target=t, baselines=base, n_steps=8,
        method="gausslegendre")
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-7 * theirs.abs().max())  # Captum's float32 step sizes


def test_sigma_zero_is_the_unsmoothed_map_exactly():
    model, x, t = convnet(), images(), targets()
    sg, se = smoothgrad(model, x, t, sigma=0.0, n_draws=5, return_stderr=True)
    assert torch.equal(sg, vanilla_gradient(model, x, t)) and torch.equal(se, torch.zeros_like(se))
    sgig = smoothgrad(model, x, t, sigma=torch.zeros(2), n_draws=5, base="ig", ig_steps=7)
    assert torch.equal(sgig, integrated_gradients(model, x, t, steps=7))


def test_per_channel_sigma_is_applied_per_channel():
    """The inputs the model sees are x + σ_c ε: empirical std per channel within 3 % of σ_c
    (7 200 samples per channel and image, relative standard error of a std ≈ 0.8 %); σ_c = 0 adds nothing."""
    rec = Recorder(convnet(c=3))
    x, t = images(2, c=3), targets(2)
    sigma = torch.tensor([0.1, 2.0, 0.0])
    smoothgrad(rec, x, t, stdevs=sigma, n_draws=200)  # absolute σ_c: 2.0 is past the relative ceiling
    seen = torch.cat(rec.seen)  # every batch the model saw: only the noisy points (no probe forward)
    z = (seen.view(2, 200, 3, 6, 6) - x[:, None]).transpose(1, 2).reshape(2, 3, -1)
    assert torch.allclose(z[:, :2].std(-1), sigma[:2].double().expand(2, 2), rtol=0.03)
    assert torch.equal(z[:, 2], torch.zeros_like(z[:, 2]))


def test_noise_is_common_across_batches_networks_and_draw_counts():
    x, t = images(4), targets(4)
    a, b = Recorder(convnet(seed=0)), Recorder(convnet(seed=7))
    whole = smoothgrad(a, x, t, sigma=0.5, n_draws=3, seed=5, ids=torch.tensor([10, 11, 12, 13]))
    smoothgrad(b, x, t, sigma=0.5, n_draws=3, seed=5, ids=torch.tensor([10, 11, 12, 13]), max_batch=2)
    assert torch.equal(torch.cat(a.seen), torch.cat(b.seen))  # common random numbers
    # image 2 alone, same id: the same draws, hence the same map
    alone = smoothgrad(a, x[2:3], t[2:3], sigma=0.5, n_draws=3, seed=5, ids=[12])
    assert torch.allclose(alone[0], whole[2], rtol=0, atol=1e-13)
    assert not torch.allclose(smoothgrad(a, x[2:3], t[2:3], sigma=0.5, n_draws=3, seed=5, ids=[13]), alone)
    # more draws extend the old ones; a different seed changes them
    assert torch.equal(draw_noise(x, 8, seed=5)[:, :3], draw_noise(x, 3, seed=5))
    assert not torch.equal(draw_noise(x, 3, seed=6), draw_noise(x, 3, seed=5))


def test_stderr_shrinks_like_one_over_sqrt_n():
    model, x, t = convnet(), images(2), targets(2)
    se = [smoothgrad(model, x, t, sigma=1.0, n_draws=n, return_stderr=True)[1].mean().item() for n in (16, 256)]
    assert 3.0 < se[0] / se[1] < 5.3  # sqrt(256 / 16) = 4
    one = smoothgrad(model, x, t, sigma=1.0, n_draws=1, return_stderr=True)[1]
    assert torch.isnan(one).all()  # a single draw gives no error estimate


def test_generic_smoother_uses_the_same_noise():
    model, x, t = convnet(), images(), targets()
    sigma = torch.tensor([0.2, 0.5])
    via_fn = smoothed(lambda xx, yy: vanilla_gradient(model, xx, yy), x, t, sigma=sigma, n_draws=5, seed=3,
                      max_batch=4)
    assert torch.allclose(via_fn, smoothgrad(model, x, t, sigma=sigma, n_draws=5, seed=3), rtol=0, atol=1e-13)
    cam, se = smoothed(lambda xx, yy: gradcam(model, xx, yy, model.cam), x, t, sigma=0.0, n_draws=5,
                       return_stderr=True)
    assert torch.equal(cam, gradcam(model, x, t, model.cam)) and cam.shape == (3, 1, 6, 6)


# --------------------------------------------------------------------------- batching
@settings(max_examples=12)
@given(method=st.sampled_from(METHODS), max_batch=st.integers(1, 40))
def test_results_do_not_depend_on_max_batch(method, max_batch):
    model, x, t = convnet(), images(), targets()
    kw = {"vg": {}, "ixg": {}, "ig": dict(steps=5), "sg": dict(sigma=0.3, n_draws=4, return_stderr=True),
          "sg_ig": dict(sigma=0.3, n_draws=3, ig_steps=4, return_stderr=True),
          "gradcam": dict(layer=model.cam), "gradcampp": dict(layer=model.cam)}[method]
    ref = saliency(method, model, x, t, **kw)
    got = saliency(method, model, x, t, max_batch=max_batch, **kw)
    for r, g in zip(ref if isinstance(ref, tuple) else (ref,), got if isinstance(got, tuple) else (got,)):
        assert torch.allclose(r, g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("max_batch", [1, 5, 7, 13])
def test_chunks_that_split_paths_and_draws_give_the_same_smoothed_ig(max_batch):
    """4 steps × 3 draws × 3 images: these chunk sizes cut through path steps, draws and images."""
    model, x, t = convnet(), images(), targets()
    kw = dict(sigma=torch.tensor([0.3, 0.1]), n_draws=3, base="ig", ig_steps=4, return_stderr=True)
    ref, ref_se = smoothgrad(model, x, t, **kw)
    got, got_se = smoothgrad(model, x, t, max_batch=max_batch, **kw)
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-13) and torch.allclose(got_se, ref_se, rtol=1e-8, atol=1e-13)


def test_dispatcher_routes_to_the_functions():
    model, x, t = convnet(), images(), targets()
    assert torch.equal(saliency("vg", model, x, t), vanilla_gradient(model, x, t))
    assert torch.equal(saliency("sg", model, x, t, sigma=0.1, n_draws=2),
                       smoothgrad(model, x, t, sigma=0.1, n_draws=2))
    assert torch.equal(saliency("gradcampp", model, x, t, layer=model.cam),
                       gradcam(model, x, t, model.cam, plus=True))


# --------------------------------------------------------------------------- Grad-CAM
def test_gradcam_matches_captum_layer_gradcam_with_relu():
    model, x, t = convnet(), images(), targets()
    ours = gradcam(model, x, t, model.cam, upsample=None)
    lgc = LayerGradCam(model, model.cam)
    theirs = lgc.attribute(x, target=t, relu_attributions=True)
    assert ours.shape == theirs.shape == (3, 1, 6, 6)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)
    # Captum's default has no ReLU: same map before clamping, with negative values kept.
    raw = lgc.attribute(x, target=t)
    assert (raw < 0).any() and torch.allclose(raw.clamp_min(0), ours, rtol=0, atol=1e-12)


def test_gradcam_upsampling_modes():
    """Bilinear (align_corners=False) by default; Captum's LayerAttribution.interpolate is nearest."""
    model = nn.Sequential(OrderedDict([("cam", nn.Conv2d(2, 3, 3, stride=2, padding=1)), ("act", nn.Tanh()),
                                       ("flat", nn.Flatten()), ("fc", nn.Linear(3 * 4 * 4, 3))])).double()
    x, t = images(size=8), targets()
    low = gradcam(model, x, t, model.cam, upsample=None)
    assert low.shape == (3, 1, 4, 4)
    bil = gradcam(model, x, t, model.cam)
    assert torch.allclose(bil, nn.functional.interpolate(low, size=(8, 8), mode="bilinear", align_corners=False))
    near = gradcam(model, x, t, model.cam, upsample="nearest")
    assert torch.allclose(near, LayerAttribution.interpolate(low, (8, 8)))
    assert not torch.allclose(near, bil)


def _gradcampp_loop(acts, grads):
    """Grad-CAM++ written out one channel and pixel at a time (numpy), eq. 19 of Chattopadhay et al."""
    a, g = acts.numpy(), grads.numpy()
    n, k, h, w = a.shape
    cam = np.zeros((n, 1, h, w))
    for i in range(n):
        for c in range(k):
            total = a[i, c].sum()
            weight = 0.0
            for p in range(h):
                for q in range(w):
                    num = g[i, c, p, q] ** 2
                    den = 2 * num + total * g[i, c, p, q] ** 3
                    alpha = num / den if den != 0 else 0.0
                    weight += alpha * max(g[i, c, p, q], 0.0)
            cam[i, 0] += weight * a[i, c]
    return torch.from_numpy(np.maximum(cam, 0))


def test_gradcampp_matches_a_loop_reference():
    model, x, t = convnet(), images(), targets()
    acts = []
    h = model.cam.register_forward_hook(lambda m, i, o: acts.append(o))
    score = model(x).gather(1, t[:, None]).sum()
    h.remove()
    (grads,) = torch.autograd.grad(score, acts[0])
    ref = _gradcampp_loop(acts[0].detach(), grads)
    assert torch.allclose(gradcam(model, x, t, model.cam, plus=True, upsample=None), ref, rtol=0, atol=1e-12)


def test_gradcam_and_gradcampp_closed_forms_on_a_global_average_pooling_head():
    """f_y = Σ_c V_yc mean_ij A_cij: g_c = V_yc / hw everywhere, so Grad-CAM is CAM (Zhou et al. 2016),
    ReLU(Σ_c V_yc A_c / hw), and Grad-CAM++'s weights are w_c = hw ReLU(g_c) / (2 + S_c g_c), S_c = Σ_ij A_cij."""
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("cam", nn.Conv2d(2, 4, 3, padding=1)), ("pool", nn.AdaptiveAvgPool2d(1)),
                                       ("flat", nn.Flatten()), ("fc", nn.Linear(4, 3, bias=False))])).double()
    x, t = images(), targets()
    acts = model.cam(x).detach()
    g = model.fc.weight[t].detach() / 36  # [N, 4]
    cam = (g[:, :, None, None] * 36 * acts).sum(1, keepdim=True).clamp_min(0) / 36
    assert torch.allclose(gradcam(model, x, t, model.cam, upsample=None), cam, rtol=0, atol=1e-12)
    w = 36 * g.clamp_min(0) / (2 + acts.sum((2, 3)) * g)
    campp = (w[:, :, None, None] * acts).sum(1, keepdim=True).clamp_min(0)
    assert torch.allclose(gradcam(model, x, t, model.cam, plus=True, upsample=None), campp, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- errors, memory, docs
def _bad_calls():
    model, x, t = convnet(), images(), targets()
    return [
        (lambda: saliency("smoothgrad", model, x, t), "'smoothgrad'"),
        (lambda: smoothgrad(model, x, t, sigma=-0.1, n_draws=2), "-0.1"),
        (lambda: smoothgrad(model, x, t, sigma=float("nan"), n_draws=2), "nan"),
        (lambda: smoothgrad(model, x, t, sigma=torch.tensor([0.1, -2.0]), n_draws=2), "-2.0"),
        (lambda: smoothgrad(model, x, t, sigma=torch.tensor([0.1, 0.2, 0.3]), n_draws=2), r"\[2\]"),
        (lambda: smoothgrad(model, x, t, sigma=0.1, n_draws=0), "got 0"),
        (lambda: smoothgrad(model, x, t, sigma=0.1, n_draws=2, base="gradcam"), "'gradcam'"),
        (lambda: smoothgrad(model, x, t, sigma=0.1, n_draws=2, noise=torch.zeros(2, 3, 2, 6, 6)), r"\[2, 3, 2"),
        (lambda: integrated_gradients(model, x, t, steps=0), "got 0"),
        (lambda: integrated_gradients(model, x, t, steps=1, rule="riemann_trapezoid"), "got 1"),
        (lambda: integrated_gradients(model, x, t, rule="simpson"), "'simpson'"),
        (lambda: integrated_gradients(model, x, t, baseline=torch.zeros(2, 2, 6, 6)), r"\[2, 2, 6, 6\]"),
        (lambda: vanilla_gradient(model, x, torch.tensor([0, 1, 3])), "got 3"),
        (lambda: vanilla_gradient(model, x, torch.tensor([0, -1, 2])), "got -1"),
        (lambda: vanilla_gradient(model, x, torch.tensor([0, 1])), r"\[3\]"),
        (lambda: vanilla_gradient(model, x, t, max_batch=0), "got 0"),
        (lambda: vanilla_gradient(model, x[0, 0, 0], t), r"\[6\]"),
        (lambda: gradcam(model, x, t, nn.Conv2d(4, 4, 3)), "Conv2d"),
        (lambda: gradcam(model, x, t, model.cam, upsample="bicubic"), "'bicubic'"),
        (lambda: gradcam(model, x, t, model.fc), r"\[3, 3\]"),
    ]


@pytest.mark.parametrize("i", range(len(_bad_calls())))
def test_bad_inputs_raise_value_errors_naming_the_value(i):
    call, pattern = _bad_calls()[i]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_bad_inputs_fail_before_the_model_runs():
    rec = Recorder(convnet())
    x, t = images(), targets()
    for call in (lambda: smoothgrad(rec, x, t, sigma=-1.0, n_draws=2),
                 lambda: integrated_gradients(rec, x, t, steps=0),
                 lambda: smoothgrad(rec, x, t, sigma=0.1, n_draws=2, base="x")):
        with pytest.raises(ValueError):
            call()
    assert rec.seen == []
    # An out-of-range target is caught on the first chunk's logits, before its backward and before any
    # other chunk (no separate probe forward: that cost every call a forward).
    with pytest.raises(ValueError, match="got 9"):
        vanilla_gradient(rec, x, torch.tensor([0, 1, 9]), max_batch=1)
    assert [s.shape[0] for s in rec.seen] == [1]
    with pytest.raises(ValueError, match="got 9"):
        smoothgrad(rec, x, torch.tensor([0, 1, 9]), sigma=0.1, n_draws=4, base="ig", ig_steps=3, max_batch=2)
    assert [s.shape[0] for s in rec.seen] == [1, 2]


def test_max_batch_for_memory_on_cpu_scales_with_the_budget():
    model = convnet().float()
    small = max_batch_for_memory(model, (2, 6, 6), 1.0)
    big = max_batch_for_memory(model, (2, 6, 6), 64.0)
    assert 1 <= small and 64 * small <= big < 64 * (small + 1)
    # 3 × (input + conv1, act1, cam, act2, flat (a view, counted anyway) and fc outputs) float32 bytes per sample
    per = 3 * 4 * (72 + 5 * 144 + 3)
    assert big == (64 * 2 ** 20) // per
    assert max_batch_for_memory(model, (2, 6, 6), 1e-9) == 1


@settings(max_examples=200)
@given(st.floats(1e3, 1e6), st.floats(1.0, 1.5), st.floats(0.0, 1e7), st.floats(1.0, 4.0), st.floats(1e7, 1e10))
def test_shrink_to_fit_ends_inside_the_budget_and_near_the_largest_fit(c, p, fixed, overshoot, budget):
    """Memory that grows faster than linearly in the batch (a workspace) and an estimate up to 4x too large:
    the batch found fits, and is at least 0.4 of the largest that fits (less one)."""
    def peak(b):
        return fixed + c * b ** p
    if peak(1) > budget:
        assert shrink_to_fit(100, peak, budget) == 1
        return
    true = 1
    while peak(true * 2) <= budget:
        true *= 2
    lo, hi = true, true * 2  # bisect the largest fitting batch
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if peak(mid) <= budget else (lo, mid)
    start = max(lo, int(lo * overshoot))
    got = shrink_to_fit(start, peak, budget)
    assert peak(got) <= budget and got >= 0.4 * lo - 1  # (- 1: integer rounding at tiny batches)


def test_shrink_to_fit_halves_after_out_of_memory():
    calls = []

    def peak(b):
        calls.append(b)
        return math.inf if b > 10 else 1.0
    assert shrink_to_fit(1000, peak, 100.0) == 7 and calls[:3] == [1000, 500, 250]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_results_stay_on_device_and_match_cpu():
    model, x, t = convnet(), images(), targets()
    cm, cx, ct = convnet().cuda(), x.cuda(), t.cuda()
    for m in ("vg", "ig", "gradcam", "gradcampp"):
        kw = {"layer": cm.cam} if m.startswith("gradcam") else {}
        kc = {"layer": model.cam} if m.startswith("gradcam") else {}
        got = saliency(m, cm, cx, ct, max_batch=2, **kw)
        assert got.device == cx.device
        assert torch.allclose(got.cpu(), saliency(m, model, x, t, **kc), atol=1e-10)
    eps = draw_noise(x, 3)
    sg = smoothgrad(cm, cx, ct, sigma=torch.tensor([0.1, 0.2], device="cuda"), n_draws=3, noise=eps.cuda())
    assert torch.allclose(sg.cpu(), smoothgrad(model, x, t, sigma=torch.tensor([0.1, 0.2]), n_draws=3, noise=eps),
                          atol=1e-10)
    assert max_batch_for_memory(cm, (2, 6, 6), 64.0, device="cuda") >= 1


def _modules_with_examples() -> list[str]:
    root = Path(__file__).resolve().parent.parent
    return sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in (root / "empirical").rglob("*.py")
                  if ">>> " in p.read_text())


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    res = doctest.testmod(mod, extraglobs={"torch": torch, "nn": nn})
    assert res.attempted > 0 and res.failed == 0
