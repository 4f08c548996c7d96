"""Input-Hessian norm against closed forms and a dense Hessian."""
import torch

from empirical.measures.curvature import input_hessian_norm


class Quadratic(torch.nn.Module):
    """f_k(x) = ½ xᵀ A_k x: the Hessian of logit k is A_k exactly."""

    def __init__(self, A):
        super().__init__()
        self.A = A

    def forward(self, x):
        return 0.5 * torch.einsum("ni,kij,nj->nk", x, self.A, x)


def test_quadratic_model_closed_form():
    torch.manual_seed(0)
    M = torch.randn(3, 5, 5, dtype=torch.float64)
    A = M + M.transpose(1, 2)
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1])
    est = input_hessian_norm(Quadratic(A), x, t, iters=300)
    exact = torch.linalg.eigvalsh(A).abs().max(dim=1).values[t]
    assert torch.allclose(est, exact, rtol=1e-6)


def test_smooth_net_against_dense_hessian():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    t = torch.tensor([2, 0, 1])
    est = input_hessian_norm(net, x, t, iters=500)
    for i in range(3):
        H = torch.autograd.functional.hessian(lambda z: net(z.unsqueeze(0))[0, t[i]], x[i])
        assert abs(est[i].item() - torch.linalg.eigvalsh(H).abs().max().item()) < 1e-6 * max(1.0, est[i].item())


def test_relu_net_is_zero():
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    assert torch.all(input_hessian_norm(net, torch.randn(3, 4), torch.tensor([0, 1, 0]), iters=3) == 0)


# --------------------------------------------------------------------------- finite-radius measures and the surrogate
import math  # noqa: E402

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from empirical.errors import UserError  # noqa: E402
from empirical.measures.curvature import (  # noqa: E402
    cure_curvature,
    gradient_variation,
    linf_matched_l2_radius,
    softplus_hessian_norm,
    softplus_surrogate,
    sphere_directions,
)

EPS64 = torch.finfo(torch.float64).eps


def _tanh_net(d=6, k=7, c=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, k), nn.Tanh(), nn.Linear(k, c)).double().eval()


def _tanh_derivatives(net, x):
    """z = W1 x + b1 and tanh', tanh'', tanh''' at z (closed forms in t = tanh z)."""
    z = x @ net[0].weight.T + net[0].bias
    t = torch.tanh(z)
    return z, 1 - t**2, -2 * t * (1 - t**2), -2 * (1 - t**2) * (1 - 3 * t**2)


def test_gradient_variation_tends_to_the_exact_hessian_action():
    """V_h(x) → ‖∇²f(x) u‖ as h → 0, on f = w2ᵀ tanh(W1 x + b1) + b2 (float64).

    Taylor: ∇f(x+hu) − ∇f(x) = h·Hu + (h²/2)·T[u,u] + R, ‖R‖ ≤ (h³/6)·B4, with T[u,u] = W1ᵀ(w2 ⊙ tanh'''(z) ⊙
    (W1u)²) exact and B4 = max|tanh''''| (< 4.1) · Σ_k |w2_k|·‖W1_k‖⁴. So |V_h − ‖Hu‖| ≤ (h/2)‖T[u,u]‖ + (h²/6)B4,
    plus rounding: two float64 gradients of norm G, each off by a few ε·G, divided by h: 64·ε·G/h."""
    net = _tanh_net()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([2, 0, 1])
    h, s = 1e-4, 5
    res = gradient_variation(net, x, t, [h], n_draws=s, seed=4)
    u = sphere_directions(x, s, seed=4)  # (S, N, d): the same draws
    W1, w2 = net[0].weight.detach(), net[2].weight.detach()
    _, d1, _, d3 = _tanh_derivatives(net, x)
    b4 = 4.1 * (w2.abs() * W1.norm(dim=1).pow(4)).sum(-1)  # (C,)
    for i in range(3):
        H = torch.autograd.functional.hessian(lambda z: net(z.unsqueeze(0))[0, t[i]], x[i])
        exact = (u[:, i] @ H).norm(dim=1)  # (S,) ‖H u_s‖ (H symmetric)
        third = ((w2[t[i]] * d3[i]) * (u[:, i] @ W1.T) ** 2) @ W1  # (S, d) T[u_s, u_s]
        grad_norm = (W1.T @ (w2[t[i]] * d1[i])).norm()
        tol = h / 2 * third.norm(dim=1) + h**2 / 6 * b4[t[i]] + 64 * EPS64 * grad_norm / h
        assert torch.all((res.values[0, :, i] - exact).abs() <= tol), (res.values[0, :, i], exact, tol)
    assert torch.equal(res.mean, res.values.mean(1)) and torch.equal(res.max, res.values.amax(1))


def test_cure_tends_to_the_exact_hessian_action_and_is_its_definition_at_finite_h():
    """C_h/h → ‖∇²ℓ(x) z‖ (ℓ the cross-entropy, z = sign ∇ℓ / ‖sign ∇ℓ‖) with error (h/2)‖T[z,z]‖ + O(h²); T[z,z]
    by forward-over-reverse autodiff of the exact Hessian. Tolerance h·‖T[z,z]‖: twice the first-order term, the
    second half for the O(h²) term, which at h = 1e-5 is below it unless ℓ's fourth derivative exceeds 1e5 times
    its third (not for unit-scale weights); plus float64 rounding 64·ε·‖∇ℓ‖/h. At h = 0.5 the value is checked
    against a plain per-image loop."""
    net = _tanh_net(seed=2)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 1])
    h = 1e-5
    res = cure_curvature(net, x, y, [h, 0.5])
    for i in range(4):
        loss = lambda v: F.cross_entropy(net(v.unsqueeze(0)), y[i:i + 1])  # noqa: E731
        g = torch.autograd.functional.jacobian(loss, x[i])
        z = torch.sign(g) / torch.sign(g).norm()
        H = torch.autograd.functional.hessian(loss, x[i])
        hz = lambda v: torch.autograd.functional.hessian(loss, v, create_graph=True) @ z  # noqa: E731
        _, third = torch.autograd.functional.jvp(hz, x[i], z)
        tol = h * third.norm() + 64 * EPS64 * g.norm() / h
        assert abs(res.per_step[0, i] - (H @ z).norm()) <= tol
        direct = (torch.autograd.functional.jacobian(loss, x[i] + 0.5 * z) - g).norm()
        assert res.values[1, i].item() == pytest.approx(direct.item(), rel=1e-12, abs=1e-14)  # same float64 ops
        assert res.loss_gradient_norm[i].item() == pytest.approx(g.norm().item(), rel=1e-12)


def _relu_convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 3)).eval()


def test_relu_network_measures_are_positive_and_finite_where_its_hessian_is_zero():
    net = _relu_convnet()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = net(x).argmax(1)
    assert torch.all(input_hessian_norm(net, x, t, iters=2) == 0)
    gv = gradient_variation(net, x, t, [1.0, 3.0], n_draws=6)
    cure = cure_curvature(net, x, t, [1.0, 3.0])
    for v in (gv.mean, gv.max, cure.values, cure.per_step):
        assert torch.all(torch.isfinite(v)) and torch.all(v > 0), v
    # piecewise linear in float64: a step too short to cross an activation or max-pool boundary leaves the
    # gradient bit for bit the same (no rounding: the backward pass depends on x only through the masks)
    gv0 = gradient_variation(net.double(), x.double(), t, [1e-12], n_draws=3)
    assert torch.all(gv0.values == 0)


def test_gradient_variation_is_batch_and_chunk_invariant():
    net = _relu_convnet(1)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0, 1, 2, 0, 1])
    full = gradient_variation(net, x, t, [0.5, 2.0], n_draws=3, seed=7)
    part = gradient_variation(net, x[2:4], t[2:4], [0.5, 2.0], n_draws=3, seed=7, ids=[2, 3], max_batch=2)
    # the same rows through other batch shapes: each float32 gradient may round differently, by at most
    # ~γ_n·‖g‖ with n ≈ 64 + 9 (the longest reduction: the 64-input linear, the 3×3 conv), for g at x and x + hu;
    # V_h = ‖Δg‖/h moves by at most twice that over h (a constant 4 for the few chained layers)
    g = torch.autograd.grad(net(x.requires_grad_(True)).gather(1, t.view(-1, 1)).sum(), x)[0]
    gamma = 73 * torch.finfo(torch.float32).eps
    atol = 4 * 2 * gamma * g.flatten(1).norm(dim=1).max() / torch.tensor([0.5, 2.0]).view(2, 1, 1)
    assert torch.all((part.values - full.values[:, :, 2:4]).abs() <= atol)
    assert torch.allclose(sphere_directions(x, 3).flatten(2).norm(dim=2), torch.ones(3, 5))
    assert linf_matched_l2_radius(0.05, x) == pytest.approx(0.05 * math.sqrt(64 / 3))


def _one_hidden_relu(d=5, k=6, c=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, k), nn.ReLU(), nn.Linear(k, c)).double().eval()


def _softplus_second(z, beta):
    """softplus_β'' = β σ(βz)(1 − σ(βz)); 0 above torch's threshold βz > 20, where nn.Softplus returns z."""
    s = torch.sigmoid(beta * z)
    return torch.where(beta * z > 20, torch.zeros_like(z), beta * s * (1 - s))


def test_softplus_surrogate_hessian_is_the_closed_form():
    """f = w2ᵀ softplus_β(W1 x + b1) + b2 has ∇²f = W1ᵀ diag(w2 ⊙ softplus_β''(z)) W1: the power iteration and
    torch's dense Hessian agree with it. Power iteration tolerance 1e-6 relative: 500 iterations shrink the other
    eigenvalues' share by (λ2/λ1)^500, far below it for this seed's spectrum (checked by the dense eigvals)."""
    net = _one_hidden_relu()
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([1, 2, 0])
    beta = 2.0
    res = softplus_hessian_norm(net, x, t, beta=beta, iters=500)
    assert res.beta == beta and res.n_replaced == 1 and isinstance(net[1], nn.ReLU)  # the original untouched
    surrogate, _ = softplus_surrogate(net, beta)
    W1, w2 = net[0].weight.detach(), net[2].weight.detach()
    z = x @ W1.T + net[0].bias.detach()
    for i in range(3):
        closed = W1.T @ torch.diag(w2[t[i]] * _softplus_second(z[i], beta)) @ W1
        dense = torch.autograd.functional.hessian(lambda v: surrogate(v.unsqueeze(0))[0, t[i]], x[i])
        assert torch.allclose(dense, closed, rtol=1e-12, atol=1e-14)
        eig = torch.linalg.eigvalsh(closed).abs().sort().values
        assert eig[-2] < 0.99 * eig[-1]  # a gap for the power iteration
        assert res.norm[i].item() == pytest.approx(eig[-1].item(), rel=1e-6)


def test_softplus_surrogate_tends_to_the_relu_network_as_beta_grows():
    """0 < softplus_β(z) − relu(z) ≤ log(2)/β, so the logits differ by at most Σ_k |w2_k|·log(2)/β; where every
    pre-activation has |z_k| ≥ m, softplus_β'' ≤ β e^{−βm} and ‖∇²f‖ ≤ ‖W1‖₂²·max_k|w2_k|·β e^{−βm} → 0."""
    net = _one_hidden_relu(seed=3)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    t = torch.tensor([0, 1, 2, 0])
    W1, w2 = net[0].weight.detach(), net[2].weight.detach()
    m = (x @ W1.T + net[0].bias.detach()).abs().min().item()
    assert m > 0.01  # this seed keeps every pre-activation away from the kink
    w1_sq = torch.linalg.matrix_norm(W1, 2).item() ** 2
    for beta in (1.0, 10.0, 1e2, 1e3, 1e4):
        surrogate, _ = softplus_surrogate(net, beta)
        gap = (surrogate(x) - net(x)).abs().max().item()
        assert gap <= w2.abs().sum(1).max().item() * math.log(2) / beta * (1 + 1e-12)
        # power iteration returns ‖Hv‖ for a unit v, never above ‖H‖₂: the bound applies to the estimate as is
        bound = w1_sq * w2.abs().max().item() * beta * math.exp(-beta * m)
        assert softplus_hessian_norm(net, x, t, beta=beta, iters=50).norm.max().item() <= bound * (1 + 1e-9)
    assert bound < 1e-30  # at β = 1e4 the surrogate is flat here: ReLU's Hessian (0) recovered
    assert softplus_hessian_norm(net, x, t, beta=1.0, iters=50).norm.min().item() > 1e-3  # and not before


def test_curvature_measures_reject_bad_arguments():
    net = _one_hidden_relu()
    x, t = torch.rand(2, 5, dtype=torch.float64), torch.tensor([0, 1])
    for call, word in ((lambda: gradient_variation(net, x, t, [0.0]), "radii"),
                       (lambda: gradient_variation(net, x, t, [math.nan]), "radii"),
                       (lambda: gradient_variation(net, x, t, [0.1], n_draws=0), "n_draws"),
                       (lambda: gradient_variation(net, x, t[:1], [0.1]), "target"),
                       (lambda: cure_curvature(net, x, t, [0.1], max_batch=0), "max_batch"),
                       (lambda: softplus_hessian_norm(net, x, t, beta=-1.0), "beta"),
                       (lambda: softplus_surrogate(nn.Sequential(nn.Linear(5, 2), nn.Tanh()), 2.0), "nn.ReLU")):
        with pytest.raises(UserError, match=word):
            call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_curvature_measures_on_cuda_match_cpu():
    """float64 on both: the kernels sum in other orders (relative ~1e-15 per gradient entry), and at h = 0.5 the
    gradient differences are of the gradients' own size, so 1e-9 relative leaves a wide margin."""
    net = _tanh_net(seed=5)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    t = torch.tensor([0, 1, 2, 0])
    dev = torch.device("cuda")
    netc, xc, tc = _tanh_net(seed=5).to(dev), x.to(dev), t.to(dev)
    gv, gvc = gradient_variation(net, x, t, [0.5], n_draws=3), gradient_variation(netc, xc, tc, [0.5], n_draws=3)
    assert gvc.values.device.type == "cuda" and torch.allclose(gvc.values.cpu(), gv.values, rtol=1e-9, atol=0)
    cu, cuc = cure_curvature(net, x, t, [0.5]), cure_curvature(netc, xc, tc, [0.5])
    assert torch.allclose(cuc.values.cpu(), cu.values, rtol=1e-9, atol=0)
    relu = _one_hidden_relu()
    sp = softplus_hessian_norm(relu, x[:, :5], t, beta=3.0, iters=30).norm
    spc = softplus_hessian_norm(_one_hidden_relu().to(dev), xc[:, :5], tc, beta=3.0, iters=30).norm
    assert torch.allclose(spc.cpu(), sp, rtol=1e-9, atol=0)


def test_cure_is_nan_where_the_loss_gradient_vanishes():
    net = nn.Linear(4, 3).double()
    with torch.no_grad():
        net.weight[1:] = 0  # only logit 0 depends on x: through the softmax, ℓ still does for every label
    x = torch.rand(2, 4, dtype=torch.float64)
    flat = nn.Linear(4, 3).double()
    with torch.no_grad():
        flat.weight.zero_()  # logits independent of x: ∇ℓ = 0, no CURE direction
    res = cure_curvature(flat, x, torch.tensor([0, 1]), [0.1])
    assert torch.isnan(res.values).all() and torch.all(res.loss_gradient_norm == 0)
    ok = cure_curvature(net, x, torch.tensor([0, 1]), [0.1])
    assert torch.isfinite(ok.values).all() and torch.all(ok.loss_gradient_norm > 0)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.floats(1e-3, 10.0))
def test_gradient_variation_of_a_quadratic_is_exact_at_every_radius(seed, h):
    """f_k = ½xᵀA_k x has ∇f(x + hu) − ∇f(x) = h·A_k u exactly, so V_h = ‖A_k u‖ whatever h (no Taylor remainder).
    Rounding (Higham, γ_n = nε/(1 − nε)): autograd's gradient entry is ½(Ax)_j + ½(Aᵀx)_j, d products and a sum,
    off by ≤ γ_{d+1}(|A||x'|)_j; the difference of two, divided by h, by ≤ 2γ_{d+1}‖|A|(|x| + h|u|)‖/h. The
    reference ‖Au‖ is itself off by ≤ γ_d‖|A||u|‖, and each 2-norm by ≤ dε relative."""
    g = torch.Generator().manual_seed(seed)
    d = 5
    M = torch.randn(2, d, d, dtype=torch.float64, generator=g)
    A = M + M.transpose(1, 2)
    x = torch.randn(3, d, dtype=torch.float64, generator=g)
    t = torch.tensor([0, 1, 1])
    res = gradient_variation(Quadratic(A), x, t, [h], n_draws=4, seed=seed)
    u = sphere_directions(x, 4, seed=seed)  # (S, N, d)
    exact = torch.einsum("nij,snj->sni", A[t], u).norm(dim=-1)
    def gamma(n):
        return n * EPS64 / (1 - n * EPS64)

    absA = A[t].abs()
    tol = (2 * gamma(d + 1) * torch.einsum("nij,snj->sni", absA, x.abs().unsqueeze(0) + h * u.abs()).norm(dim=-1) / h
           + gamma(d) * torch.einsum("nij,snj->sni", absA, u.abs()).norm(dim=-1) + 2 * d * EPS64 * exact)
    assert torch.all((res.values[0] - exact).abs() <= tol)
