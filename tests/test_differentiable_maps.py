"""The differentiable path of the attribution methods (engine.differentiable): the gradient of a map with respect to
the input, against finite differences, for every method the IFIA attack can target."""
import pytest
import torch
from torch import nn

from empirical.attribution import differentiable, saliency, vanilla_gradient


def _net():
    torch.manual_seed(0)
    # Softplus: a smooth net, so the map's Jacobian exists everywhere and finite differences converge.
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).double()


KW = {"vg": {}, "ig": {"steps": 3}, "sg": {"sigma": 0.3, "n_draws": 2},
      "sg_ig": {"sigma": 0.3, "n_draws": 2, "ig_steps": 2}, "gradcam": {}}


@pytest.mark.parametrize("method", list(KW))
def test_map_jacobian_matches_finite_differences(method):
    net = _net()
    kw = dict(KW[method])
    if method == "gradcam":
        kw["layer"] = net[1]
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 2])

    def f(v):
        with differentiable():
            return saliency(method, net, v, t, **kw)

    # float64 central differences (gradcheck's eps 1e-6): truncation O(eps²·f''') ~ 1e-12 and rounding
    # ~ 1e-16/1e-6 = 1e-10 per entry, far inside gradcheck's atol 1e-5 / rtol 1e-3.
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_maps_are_detached_outside_the_context():
    net = _net()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert not vanilla_gradient(net, x, torch.tensor([0, 1])).requires_grad
    with differentiable():
        assert vanilla_gradient(net, x, torch.tensor([0, 1])).requires_grad
    assert not vanilla_gradient(net, x, torch.tensor([0, 1])).requires_grad


def test_chunked_engine_gives_the_same_input_gradient():
    # max_batch splits images × IG steps across chunks (partial sums carried over borders); the double
    # backward through those in-place merges must equal the one-chunk result. Same float64 sums in a
    # different grouping: a few ulps times the 3·5 terms summed.
    net = _net()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2])
    grads = []
    for mb in (None, 4):
        with differentiable():
            m = saliency("ig", net, x, t, steps=5, max_batch=mb)
        grads.append(torch.autograd.grad(m.square().sum(), x)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)
