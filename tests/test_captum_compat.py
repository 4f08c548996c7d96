"""Captum compatibility: our engine against Captum 0.9 (the oracle) on Captum's own test models and inputs.

Mirrors Captum's tests (github.com/pytorch/captum, tests/attr/): test_integrated_gradients_basic.py (IG on
batched single, tuple and multi-argument inputs, every approximation method, multiply_by_inputs, and
NoiseTunnel's smoothgrad / smoothgrad_sq / vargrad), test_saliency.py (abs both ways, under NoiseTunnel too),
test_input_x_gradient.py, layer/test_grad_cam.py (a conv layer and a non-conv layer, relu_attributions).
Expected values copied from those files as data: the basic config's gradients [0, 0, 0, 1, 1, 0] on inputs
[1, 2, 3, 0, −1, 7] (test_saliency.py, test_input_x_gradient.py), IG [1.5], [−0.5] on Sundararajan et al.'s
two example models (test_integrated_gradients_basic.py), Grad-CAM [[400.0]] and [[11.25, 13.5],
[20.25, 22.5]] (layer/test_grad_cam.py); every other expectation is Captum's output. The models are
Captum's, from ``captum.testing.helpers.basic_models`` (the module those tests import), in float64; the
inputs follow those tests' batched inputs. Expected maps are computed by Captum in the test, with every
target form (int, 0-d tensor, list, [N] tensor), tuple inputs and ``additional_forward_args``.

Noise: Captum draws with ``torch.normal`` and cannot be seeded to our counter-based draws, so its
``NoiseTunnel._add_noise_to_input`` is patched to add OUR draws σ·ε (the same [N, nt_samples, ...]
image-major layout); both sides then average the same points and must agree to rounding.

Tolerance (all comparisons): both sides in float64. A map element is a sum of at most K = n_steps ·
nt_samples ≤ 32 products, accumulated in different orders; each order errs by at most K · eps64 · Σ|terms|,
and on these O(1)-weight models Σ|terms| stays within 10³ of the largest map value (a generous cancellation
allowance), so atol = 2 · 32 · 2.2e-16 · 10³ · max|map| ≈ 1.4e-11 · max|map|, written below as
1e-10 · (1 + max|map|). A wrong map (a missing (x − x0) factor, a wrong target, another draw) differs at
O(1) relative. Two additions where Captum rounds: (1) Captum casts IG's step sizes to float32
(``torch.tensor(step_sizes).float()`` in captum/attr/_core/integrated_gradients.py), so its IG is off by
Σ_s |w_s − fl32(w_s)| · |∇f(path_s) ⊙ (x − x0)| per element, which the test computes exactly
(:func:`captum_weight_error`); its Riemann nodes come from a float32 ``torch.linspace``
(captum/attr/_utils/approximation_methods.py), so the Riemann cases use 4 or 8 steps, whose nodes k/8,
(k + 1/2)/8 and weights 1/4, 1/8 are exact in float32 (the bound is then 0); (2) VarGrad: Captum forms E[a²] − E[a]², which cancels:
its error is up to 4 · K · eps64 · max E[a²], added to the atol there.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirical.attribution import (
    draw_noise,
    gradcam,
    ig_quadrature,
    input_x_gradient,
    integrated_gradients,
    saliency,
    smoothed,
    smoothgrad,
    vanilla_gradient,
)
from empirical.errors import UserError
from empirical.nets.models import build

pytest.importorskip("captum.attr")
from captum.attr import InputXGradient, IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency  # noqa: E402
from captum.testing.helpers.basic_models import (  # noqa: E402
    BasicModel,
    BasicModel2,
    BasicModel3,
    BasicModel4_MultiArgs,
    BasicModel_ConvNet_One_Conv,
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)

D64 = torch.float64
EPS64 = torch.finfo(D64).eps


@pytest.fixture(autouse=True)
def _one_thread():  # tiny models: intra-op threads only contend (as in tests/test_saliency.py)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _tuple(v):
    return v if isinstance(v, tuple) else (v,)


def assert_close(ours, theirs, extra=0.0, bound=None):
    """|ours − theirs| ≤ 1e-10 · (1 + max|theirs|) + extra (+ the elementwise ``bound``): module docstring."""
    ours, theirs = _tuple(ours), _tuple(theirs)
    bound = _tuple(bound) if bound is not None else (0.0,) * len(ours)
    assert len(ours) == len(theirs) == len(bound)
    for a, b, e in zip(ours, theirs, bound):
        b = b.detach()
        assert a.shape == b.shape and a.dtype == b.dtype
        atol = 1e-10 * (1 + float(b.abs().max())) + extra
        assert bool(((a - b).abs() <= atol + e).all()), float(((a - b).abs() - e).max())


def captum_weight_error(model, inputs, target, baselines, n_steps, method, extra, multiply_by_inputs):
    """Per element, Σ_s |w_s − fl32(w_s)| · |∇f(x0 + α_s (x − x0))| (⊙ |x − x0| when multiplying by
    inputs):
    what Captum's float32 step sizes change in IG (a tuple, per input)."""
    alphas, w = ig_quadrature(n_steps, method)
    dw = (w - w.float().double()).abs()
    parts, bases = _tuple(inputs), _tuple(baselines)
    bases = tuple(torch.as_tensor(b, dtype=D64).expand_as(p) for p, b in zip(parts, bases * len(parts)))
    total = [torch.zeros_like(p) for p in parts]
    for a, e in zip(alphas.tolist(), dw.tolist()):
        if e == 0:
            continue
        pts = tuple(b + a * (p - b) for p, b in zip(parts, bases))
        g = _tuple(vanilla_gradient(model, pts if isinstance(inputs, tuple) else pts[0], target, abs=True,
                                    additional_forward_args=extra))
        for i, (p, b) in enumerate(zip(parts, bases)):
            total[i] += e * g[i] * ((p - b).abs() if multiply_by_inputs else 1)
    return tuple(total)


# --------------------------------------------------------------------------- Captum's models and inputs
def multilayer():
    return BasicModel_MultiLayer().double()


# test_integrated_gradients_basic.py's batched inputs (three samples, three features)
X = torch.tensor([[1.5, 2.0, 1.3], [0.5, 0.1, 2.3], [1.5, 2.0, 1.3]], dtype=D64)
X1 = torch.tensor([[1.5, 2.1, 1.9], [0.5, 0.0, 0.7], [1.5, 2.1, 1.1]], dtype=D64)
X2 = torch.tensor([[0.3, 1.9, 2.4], [0.5, 0.6, 2.1], [1.2, 2.1, 0.2]], dtype=D64)
X3 = torch.tensor([[0.0, 1.7, 2.3], [3.0, 0.4, 0.3], [0.1, 0.2, 1.0]], dtype=D64)
ADD = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -0.1], [0.2, 0.2, 0.2]], dtype=D64)

# (model, inputs, additional_forward_args): one tensor; a tuple with a non-tensor extra argument (Captum's
# `scale`); one tensor with a per-sample tensor extra argument (Captum repeats it per step / draw).
CASES = {
    "single": lambda: (multilayer(), X, None),
    "tuple+scale": lambda: (BasicModel_MultiLayer_MultiInput().double(), (X1, X2, X3), (2,)),
    "per-sample-arg": lambda: (multilayer(), X, (ADD,)),
    "smooth": lambda: (smooth_net(), X, None),  # curved (tanh): gradients vary across draws, so VarGrad is not 0
}


def smooth_net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
TARGETS = {"int": 1, "0-d": torch.tensor(1), "list": [0, 1, 1], "[N]": torch.tensor([0, 1, 0])}


def _clone(inputs):
    """Captum marks its inputs as requiring grad (and warns if they do not): give it fresh copies that do."""
    if isinstance(inputs, tuple):
        return tuple(t.clone().requires_grad_() for t in inputs)
    return inputs.clone().requires_grad_()


# --------------------------------------------------------------------------- Saliency, InputXGradient
def test_saliency_and_input_x_gradient_on_captums_basic_config():
    """test_saliency.py / test_input_x_gradient.py `_get_basic_config`: BasicModel f(x) = 1 − ReLU(1 − x) on six
    scalar samples [1, 2, 3, 0, −1, 7] (a 1-D batch, target None: one output per example); Captum's expected
    gradients [0, 0, 0, 1, 1, 0] (1 where x < 1), and InputXGradient their product with the input."""
    x = torch.tensor([1.0, 2.0, 3.0, 0.0, -1.0, 7.0])
    grads = torch.tensor([-0.0, -0.0, -0.0, 1.0, 1.0, -0.0])
    for abs_ in (True, False):
        assert torch.equal(vanilla_gradient(BasicModel(), x, abs=abs_), grads.abs() if abs_ else grads)
    assert torch.equal(input_x_gradient(BasicModel(), x), grads * x)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_matches_captum(case, target, abs_):
    model, inputs, extra = CASES[case]()
    t = TARGETS[target]
    theirs = Saliency(model).attribute(_clone(inputs), target=t, abs=abs_, additional_forward_args=extra)
    ours = vanilla_gradient(model, inputs, t, abs=abs_, additional_forward_args=extra)
    assert_close(ours, theirs)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", TARGETS)
def test_input_x_gradient_matches_captum(case, target):
    model, inputs, extra = CASES[case]()
    t = TARGETS[target]
    theirs = InputXGradient(model).attribute(_clone(inputs), target=t, additional_forward_args=extra)
    assert_close(input_x_gradient(model, inputs, t, additional_forward_args=extra), theirs)


# --------------------------------------------------------------------------- Integrated Gradients
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_integrated_gradients_matches_captum(case, method, multiply_by_inputs):
    model, inputs, extra = CASES[case]()
    base = tuple(0.1 * torch.ones_like(t[:1]) for t in inputs) if isinstance(inputs, tuple) else 0.25
    # Captum's Riemann nodes come from a float32 torch.linspace: with 8 steps they are k/8 or (k + 1/2)/8, exact
    # in float32, as are the weights 1/8; Gauss-Legendre's nodes are float64 (numpy), its weights float32-rounded.
    steps = 7 if method == "gausslegendre" else 8
    kw = dict(baselines=base, n_steps=steps, method=method, additional_forward_args=extra,
              return_convergence_delta=True)
    for t in TARGETS.values():
        theirs, d_theirs = IntegratedGradients(model, multiply_by_inputs=multiply_by_inputs).attribute(
            _clone(inputs), target=t, **kw)
        ours, d_ours = integrated_gradients(model, inputs, t, multiply_by_inputs=multiply_by_inputs, **kw)
        err = captum_weight_error(model, inputs, t, base, steps, method, extra, multiply_by_inputs)
        assert_close(ours, theirs, bound=err)
        assert_close(d_ours, d_theirs, bound=sum(e.flatten(1).sum(1) for e in err))


@pytest.mark.parametrize("model_cls", [BasicModel2, BasicModel3])
def test_ig_multi_variable_expected_values_from_captum(model_cls):
    """test_integrated_gradients_basic.py `_assert_multi_variable`: Sundararajan et al.'s two example models at
    (x1, x2) = (3, 1) from the baseline (0, 0), one scalar sample per input, give IG [1.5] and [−0.5] (both
    paths cross their kink at α = 1/2, so the integrals run over [1/2, 1]: 3 · 1/2 and −1 · 1/2). With the
    midpoint rule on 4 steps (nodes 1/8, 3/8, 5/8, 7/8, weights 1/4: two nodes past the kink) the quadrature
    is exact; Gauss-Legendre on 50 steps is within Captum's delta 0.05 of them and equals Captum's IG."""
    inputs = (torch.tensor([3.0], dtype=D64), torch.tensor([1.0], dtype=D64))
    a1, a2 = integrated_gradients(model_cls(), inputs, None, baselines=(0.0, 0.0), n_steps=4, method="riemann_middle")
    assert a1.tolist() == [1.5] and a2.tolist() == [-0.5]
    kw = dict(baselines=(0.0, 0.0), n_steps=50, method="gausslegendre")
    ours = integrated_gradients(model_cls(), inputs, **kw)
    assert abs(float(ours[0]) - 1.5) < 0.05 and abs(float(ours[1]) + 0.5) < 0.05
    theirs = IntegratedGradients(model_cls()).attribute(_clone(inputs), **kw)
    assert_close(ours, theirs, bound=captum_weight_error(model_cls(), inputs, None, (0.0, 0.0), 50, "gausslegendre",
                                                         None, True))


def test_ig_broadcasts_baselines_as_captum():
    """A [1, ...] baseline, a scalar and the full tensor give the same IG, as in Captum."""
    model = multilayer()
    b1 = torch.tensor([[0.2, -0.1, 0.4]], dtype=D64)
    kw = dict(target=1, n_steps=8, method="riemann_middle")  # weights 1/8: exact in Captum's float32
    theirs = IntegratedGradients(model).attribute(_clone(X), baselines=b1, **kw)
    assert_close(integrated_gradients(model, X, baselines=b1, **kw), theirs)
    assert_close(integrated_gradients(model, X, baselines=b1.expand(3, 3), **kw), theirs)
    assert_close(integrated_gradients(model, X, baselines=b1[0], **kw), theirs)
    theirs = IntegratedGradients(model).attribute(_clone(X), baselines=0.3, **kw)
    assert_close(integrated_gradients(model, X, baselines=0.3, **kw), theirs)


def test_target_none_on_a_one_output_model_with_extra_args():
    """BasicModel4_MultiArgs returns one value per example (Captum's test_integrated_gradients_basic
    multi-argument case): target None, a tensor and an int as additional_forward_args."""
    model = BasicModel4_MultiArgs().double()
    a = torch.tensor([[10.0, 20.0, 3.0], [3.0, 2.0, 14.0]], dtype=D64)
    b = torch.tensor([[2.0, 1.0, 7.0], [0.5, 4.0, 1.0]], dtype=D64)
    extra = (torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=D64), 1)
    kw = dict(additional_forward_args=extra, n_steps=8, method="riemann_left")  # exact float32 weights
    theirs = IntegratedGradients(model).attribute(_clone((a, b)), **kw)
    assert_close(integrated_gradients(model, (a, b), **kw), theirs)
    with pytest.raises(UserError, match=r"target=None needs a model with one output per example.*\[3, 2\]"):
        vanilla_gradient(multilayer(), X, None)


# --------------------------------------------------------------------------- NoiseTunnel
def _inject(monkeypatch, scaled_noise):
    """Captum adds our draws: one [N, n, ...] tensor per input, in input order."""
    queue = list(scaled_noise)

    def add(input, stdev, nt_samples_partition):
        z = queue.pop(0)
        queue.append(z)  # cycle, in case Captum calls again
        return input.repeat_interleave(nt_samples_partition, dim=0) + z.reshape(-1, *input.shape[1:])
    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))


BASES = {  # ours (base, kwargs) and Captum's method and its kwargs
    "saliency_abs": ("vg", dict(abs=True), Saliency, dict(abs=True)),
    "saliency_signed": ("vg", dict(abs=False), Saliency, dict(abs=False)),
    "ig": ("ig", dict(n_steps=4, baselines=0.2, method="riemann_middle"), IntegratedGradients,
           dict(n_steps=4, baselines=0.2, method="riemann_middle")),  # weights 1/4: exact in float32
    "ixg": ("ixg", {}, InputXGradient, {}),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("base", BASES)
def test_noise_tunnel_matches_captum_on_identical_noise(monkeypatch, case, nt_type, base):
    model, inputs, extra = CASES[case]()
    ours_base, ours_kw, captum_cls, captum_kw = BASES[base]
    if base == "ig" and isinstance(inputs, tuple):
        captum_kw = dict(captum_kw, baselines=(0.2,) * 3)
    n, sd = 8, 0.3
    parts = inputs if isinstance(inputs, tuple) else (inputs,)
    eps = tuple(draw_noise(p, n, seed=5 + i) for i, p in enumerate(parts))
    noise = eps if isinstance(inputs, tuple) else eps[0]
    for t in TARGETS.values():
        _inject(monkeypatch, [sd * e for e in eps])
        theirs = NoiseTunnel(captum_cls(model)).attribute(
            _clone(inputs), nt_type=nt_type, nt_samples=n, stdevs=sd, target=t, additional_forward_args=extra,
            **captum_kw)
        ours = smoothgrad(model, inputs, t, stdevs=sd, nt_samples=n, noise=noise, nt_type=nt_type, base=ours_base,
                          additional_forward_args=extra, nt_samples_batch_size=3, **ours_kw)  # batching: any
        sq = max(float((o.detach() ** 2).max()) for o in _tuple(theirs))
        extra_tol = 4 * 32 * EPS64 * (sq + 1) if nt_type == "vargrad" else 0.0
        assert_close(ours, theirs, extra_tol)


def test_noise_tunnel_accepts_an_int_target_and_the_relative_sigma():
    """sigma (fraction of the pixel range) with pixel_range w is stdevs = sigma · w; an int target is every
    image's class; smoothed() takes the same forms."""
    model = multilayer()
    a = smoothgrad(model, X, 1, sigma=0.1, pixel_range=4.0, nt_samples=6, seed=3)
    b = smoothgrad(model, X, torch.tensor([1, 1, 1]), stdevs=0.4, nt_samples=6, seed=3)
    assert torch.equal(a, b)
    c = smoothed(lambda p, t: vanilla_gradient(model, p, t), X, 1, stdevs=0.4, n_draws=6, seed=3)
    assert torch.allclose(c, b, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- LayerGradCam
def conv_input(n=3):
    return torch.arange(16 * n, dtype=D64).view(n, 1, 4, 4) / 4 - 3


def test_layer_gradcam_reproduces_captums_expected_values():
    """layer/test_grad_cam.py: test_simple_input_non_conv and test_simple_input_conv."""
    net = BasicModel_MultiLayer()
    got = gradcam(net, torch.tensor([[0.0, 100.0, 0.0]]), 0, net.linear0, upsample=None, relu_attributions=False)
    assert torch.equal(got, torch.tensor([[400.0]]))
    net = BasicModel_ConvNet_One_Conv()
    got = gradcam(net, torch.arange(16, dtype=torch.float).view(1, 1, 4, 4), 0, net.conv1, upsample=None,
                  relu_attributions=False)
    assert torch.allclose(got, torch.tensor([[[[11.25, 13.5], [20.25, 22.5]]]]), rtol=0, atol=1e-5)  # float32


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["conv", "conv_tuple", "tanh_conv", "non_conv"])
def test_layer_gradcam_matches_captum(relu, target, kind):
    t = TARGETS[target]
    if kind == "non_conv":  # the middle row's features sum into (−1, 0): a negative Grad-CAM before the ReLU
        model, inputs = multilayer(), torch.tensor([[1.5, 2.0, 1.3], [0.2, -0.9, 0.1], [1.5, 2.0, 1.3]], dtype=D64)
        layer = model.linear0
    elif kind == "tanh_conv":  # signed activations and gradients: maps of both signs before the ReLU
        torch.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(48, 3)).double()
        layer, inputs = model[0], conv_input() / 4
    else:
        model = BasicModel_ConvNet_One_Conv().double()
        layer = model.conv1
        inputs = conv_input() if kind == "conv" else (conv_input(), 0.5 * conv_input().flip(-1))
    theirs = LayerGradCam(model, layer).attribute(_clone(inputs), target=t, relu_attributions=relu)
    ours = gradcam(model, inputs, t, layer, upsample=None, relu_attributions=relu)
    assert_close(ours, theirs)
    if kind in ("non_conv", "tanh_conv"):  # the switch is exercised: Captum's map has negative values unless ReLU'd
        assert bool((theirs < 0).any()) != relu


# --------------------------------------------------------------------------- the door: names, ranks, σ, clip
def test_old_names_are_aliases_and_both_at_once_is_an_error():
    model = multilayer()
    new = integrated_gradients(model, X, 1, baselines=0.1, n_steps=6, method="riemann_left", internal_batch_size=4)
    old = integrated_gradients(model, X, 1, baseline=0.1, steps=6, rule="riemann_left", max_batch=4)
    assert torch.equal(new, old)
    with pytest.raises(UserError, match="pass n_steps or its alias steps, not both"):
        integrated_gradients(model, X, 1, n_steps=6, steps=6)
    assert torch.equal(smoothgrad(model, X, 1, sigma=0.2, nt_samples=3), smoothgrad(model, X, 1, sigma=0.2, n_draws=3))


def test_rank_and_batch_errors_name_the_shape():
    """Issue 15: one image without its batch dimension gave a torch shape error 16 frames deep."""
    conv = BasicModel_ConvNet_One_Conv().double()
    failed = r"the model failed on inputs of shape \[3, 4, 4\]: RuntimeError: .*batch first"
    with pytest.raises(UserError, match=failed) as e:
        vanilla_gradient(conv, conv_input()[:, 0], [0, 1, 1])  # the channel dim dropped
    assert "\n" not in str(e.value)
    model = multilayer()
    with pytest.raises(UserError, match=r"logits \[N, K\]; on 3 image\(s\) it returned \[3, 1, 2\]"):
        vanilla_gradient(model, X[:, None], [0, 1, 1])
    with pytest.raises(UserError, match=r"x must be a floating tensor \[N, \.\.\.\].*got \[\] torch.float64"):
        vanilla_gradient(model, X[0, 0], 0)
    with pytest.raises(UserError, match=r"x must be a floating tensor \[N, \.\.\.\].*got \[3, 3\] torch.int64"):
        vanilla_gradient(model, X.long(), 0)
    with pytest.raises(UserError, match=r"logits \[N, K\]; on 3 image\(s\) it returned \[2\]"):
        vanilla_gradient(model, X[0], 0)  # one sample without its batch dim: 3 scalars to a 3-feature model
    with pytest.raises(UserError, match=r"batch size.*\[3, 3\], \[2, 3\]"):
        vanilla_gradient(BasicModel_MultiLayer_MultiInput().double(), (X1, X2[:2], X3), 0,
                         additional_forward_args=(1,))
    with pytest.raises(UserError, match=r"list must hold one class per image \(3\), got 2"):
        vanilla_gradient(model, X, [0, 1])
    # issue 15's case: one Fashion-MNIST image without its batch dim, to the project's LeNet
    lenet = build("lenet", 1, 28, 10)
    with pytest.raises(UserError, match=r"inputs of shape \[1, 28, 28\]: RuntimeError: .*x\[None\]"):
        vanilla_gradient(lenet, torch.rand(4, 1, 28, 28)[0], torch.tensor([1]))


# --------------------------------------------------------------------------- tuple packing, a property
@settings(max_examples=15, deadline=None, derandomize=True)
@given(cut=st.integers(1, 7), method=st.sampled_from(["vg", "ixg", "ig", "sg", "sg_ig"]),
       max_batch=st.one_of(st.none(), st.integers(1, 20)))
def test_a_tuple_input_is_the_concatenated_input_split(cut, method, max_batch):
    """Inputs (x[:, :cut], x[:, cut:]) to a model that concatenates them give the maps of x itself, split at cut:
    the same points, the same keyed noise (draws are keyed by position in the packed sample), any batching.
    Tolerance: the same float64 operations up to summation order over ≤ 3·4 terms: 1e-12 · (1 + max|map|)."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=D64)
    t = [0, 2, 1, 1]
    kw = {"vg": {}, "ixg": {}, "ig": dict(n_steps=3), "sg": dict(sigma=0.3, nt_samples=4, seed=2),
          "sg_ig": dict(sigma=0.3, nt_samples=2, n_steps=3, seed=2)}[method]
    whole = saliency(method, lin, x, t, max_batch=max_batch, **kw)
    parts = saliency(method, lambda a, b: lin(torch.cat([a, b], 1)), (x[:, :cut], x[:, cut:]), t, max_batch=max_batch,
                     **kw)
    assert isinstance(parts, tuple) and parts[0].shape == (4, cut)
    atol = 1e-12 * (1 + float(whole.abs().max()))
    assert torch.allclose(torch.cat(parts, 1), whole, rtol=0, atol=atol)
