"""Feature-map smoothing: kernels, agreement with kornia and scipy, non-local weights, gradients, insertion."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from torch import nn

from empirical.nets import (
    FILTERS,
    SmoothingBlock,
    embedded_gaussian,
    gaussian_filter2d,
    gaussian_kernel2d,
    insert_smoothing_block,
    mean_filter2d,
    median_filter2d,
    nonlocal_gaussian,
    nonlocal_weights,
)

kornia = pytest.importorskip("kornia")

odd_k = st.sampled_from([1, 3, 5])
sizes = st.integers(3, 8)


def _rand(shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@given(k=odd_k, sigma=st.floats(0.05, 20.0))
def test_gaussian_kernel_sums_to_one_and_is_symmetric(k, sigma):
    g = gaussian_kernel2d(k, sigma, dtype=torch.float64)
    assert g.shape == (k, k)
    assert g.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(g, g.T) and torch.equal(g, g.flip(0)) and torch.equal(g, g.flip(1))
    assert g[k // 2, k // 2] == g.max()


def test_gaussian_sigma_to_zero_is_the_delta_and_large_sigma_the_mean():
    delta = torch.zeros(5, 5, dtype=torch.float64)
    delta[2, 2] = 1.0
    assert torch.equal(gaussian_kernel2d(5, 1e-2, dtype=torch.float64), delta)
    x = _rand((2, 3, 6, 7))
    assert torch.allclose(gaussian_filter2d(x, 5, 1e-2), x)
    box = torch.full((3, 3), 1 / 9, dtype=torch.float64)
    assert torch.allclose(gaussian_kernel2d(3, 1e4, dtype=torch.float64), box)


@settings(max_examples=25)
@given(k=st.sampled_from([3, 5]), sigma=st.floats(0.3, 5.0), h=st.integers(5, 9), w=st.integers(5, 9),
       border=st.sampled_from(["reflect", "replicate", "circular", "constant"]), seed=st.integers(0, 99))
def test_local_filters_match_kornia(k, sigma, h, w, border, seed):
    x = _rand((2, 3, h, w), seed)
    ref = kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type=border)
    assert torch.allclose(gaussian_filter2d(x, k, sigma, border), ref, atol=1e-5)
    ref = kornia.filters.box_blur(x, (k, k), border_type=border)
    assert torch.allclose(mean_filter2d(x, k, border), ref, atol=1e-5)
    assert torch.equal(median_filter2d(x, k, border), kornia.filters.median_blur(x, (k, k), border_type=border))


@settings(max_examples=25)
@given(k=st.sampled_from([3, 5]), h=st.integers(5, 9), w=st.integers(5, 9), seed=st.integers(0, 99))
def test_median_matches_scipy_on_interior_and_everywhere_in_reflect_mode(k, h, w, seed):
    x = _rand((1, 2, h, w), seed, torch.float64)
    ours = median_filter2d(x, k).numpy()
    p = k // 2
    for c in range(2):
        ref = ndimage.median_filter(x[0, c].numpy(), size=k, mode="nearest")
        np.testing.assert_array_equal(ours[0, c, p:h - p, p:w - p], ref[p:h - p, p:w - p])
        # torch's "reflect" (d c b | a b c d) is scipy's "mirror"; scipy's "reflect" repeats the edge.
        np.testing.assert_array_equal(ours[0, c], ndimage.median_filter(x[0, c].numpy(), size=k, mode="mirror"))


def test_median_gradient_goes_to_the_median_element():
    x = _rand((1, 1, 5, 6), 3, torch.float64).requires_grad_(True)
    out = median_filter2d(x, 3)
    for (i, j) in [(0, 0), (2, 3), (4, 5)]:
        (g,) = torch.autograd.grad(out[0, 0, i, j], x, retain_graph=True)
        assert g.sum().item() == 1.0 and (g != 0).sum().item() == 1
        assert x[g != 0].item() == out[0, 0, i, j].item()


def test_median_removes_an_isolated_spike_that_the_mean_spreads():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 9.0
    assert median_filter2d(x, 3).abs().max() == 0
    assert mean_filter2d(x, 3)[0, 0, 1:4, 1:4].eq(1.0).all()


@settings(max_examples=25)
@given(c=st.integers(1, 4), h=sizes, w=sizes, seed=st.integers(0, 99), scale=st.floats(0.01, 2.0))
def test_nonlocal_rows_are_a_softmax_and_constants_are_fixed(c, h, w, seed, scale):
    x = _rand((2, c, h, w), seed)
    wts = nonlocal_weights(x, x, scale)
    assert wts.shape == (2, h * w, h * w)
    assert (wts >= 0).all() and torch.allclose(wts.sum(-1), torch.ones(2, h * w))
    const = torch.full((2, c, h, w), 0.7)
    assert torch.allclose(nonlocal_gaussian(const, scale), const)
    theta, phi = _rand((3, c, 1, 1), seed + 1), _rand((3, c, 1, 1), seed + 2)
    assert torch.allclose(embedded_gaussian(const, theta, phi), const)


def test_nonlocal_gaussian_matches_a_loop_over_positions():
    x = _rand((1, 3, 3, 4), 7, torch.float64)
    f = x[0].flatten(1)  # (C, L)
    out = torch.stack([(torch.softmax(f[:, i] @ f, 0) * f).sum(1) for i in range(f.shape[1])], 1)
    assert torch.allclose(nonlocal_gaussian(x)[0].flatten(1), out)


def test_paper_sigma_rule_would_make_the_gaussian_a_mean_filter():
    # Appendix B.1's σ from a 32-wide map: a 3×3 kernel within 3 % of 1/9 (why σ is explicit here).
    sigma = 0.3 * ((32 - 1) * 0.5 - 1) + 0.8
    assert torch.allclose(gaussian_kernel2d(3, sigma), torch.full((3, 3), 1 / 9), rtol=0.03)
    assert not torch.allclose(gaussian_kernel2d(3, 1.0), torch.full((3, 3), 1 / 9), rtol=0.3)


@pytest.mark.parametrize("fn", [lambda x: mean_filter2d(x, 3), lambda x: gaussian_filter2d(x, 3, 0.8),
                                lambda x: mean_filter2d(x, 3, "replicate"), lambda x: nonlocal_gaussian(x, 0.5)],
                         ids=["mean", "gaussian", "mean-replicate", "nonlocal"])
def test_gradcheck_float64(fn):
    x = _rand((1, 2, 4, 5), 11, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,))


def test_gradcheck_embedded_gaussian_in_all_arguments():
    x = _rand((1, 2, 3, 4), 12, torch.float64).requires_grad_(True)
    th = _rand((2, 2, 1, 1), 13, torch.float64).requires_grad_(True)
    ph = _rand((2, 2, 1, 1), 14, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: embedded_gaussian(a, b, c, scale=0.5), (x, th, ph))


@pytest.mark.parametrize("name", FILTERS)
def test_block_shapes_and_gradients_reach_input_and_parameters(name):
    torch.manual_seed(0)
    block = SmoothingBlock(4, name, kernel_size=3, sigma=1.0).double()
    x = _rand((2, 4, 5, 6), 21, torch.float64).requires_grad_(True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    trainable = [(n, p) for n, p in block.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in trainable), trainable
    if name == "random_conv":  # frozen by default: present in the checkpoint, not trained
        assert not block.random_conv.weight.requires_grad and "random_conv.weight" in block.state_dict()
        assert SmoothingBlock(4, name, random_conv_trainable=True).random_conv.weight.requires_grad
    if name == "gaussian":
        assert "kernel" in dict(block.named_buffers())


@pytest.mark.parametrize("name", FILTERS)
def test_block_is_the_residual_of_the_filter(name):
    torch.manual_seed(0)
    block = SmoothingBlock(3, name).double()
    x = _rand((1, 3, 5, 5), 22, torch.float64)
    assert torch.allclose(block(x), x + block.conv(block.smooth(x)))
    reference = {"mean": mean_filter2d(x, 3), "median": median_filter2d(x, 3), "gaussian": gaussian_filter2d(x, 3, 1.0),
                 "nonlocal_gaussian": nonlocal_gaussian(x), "identity": x}
    if name in reference:
        assert torch.allclose(block.smooth(x), reference[name])
    zero = SmoothingBlock(3, name, zero_init=True).double()
    assert torch.equal(zero(x), x)


def test_gradcheck_block_parameters_mean():
    block = SmoothingBlock(2, "mean").double()
    x = _rand((1, 2, 4, 4), 23, torch.float64).requires_grad_(True)
    w = block.conv.weight.detach().clone().requires_grad_(True)
    b = block.conv.bias.detach().clone().requires_grad_(True)
    fn = lambda x, w, b: x + nn.functional.conv2d(mean_filter2d(x, 3), w, b)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.allclose(fn(x, w, b), block(x))


def test_insert_smoothing_block_changes_the_forward_as_intended():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(block1=nn.Conv2d(1, 4, 3, padding=1), block2=nn.ReLU(),
                                      head=nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 2))))
    x = torch.randn(3, 1, 6, 6)
    block = SmoothingBlock(4, "median")
    expected = model.head(model.block2(block(model.block1(x))))
    before = model(x)
    assert insert_smoothing_block(model, "block1", block) is model
    assert isinstance(model.block1, nn.Sequential) and model.block1[1] is block
    after = model(x)
    assert torch.allclose(after, expected) and not torch.allclose(after, before)
    # dotted path into a submodule
    insert_smoothing_block(model, "head.0", nn.Identity())
    assert torch.allclose(model(x), expected)


def test_insert_smoothing_block_bad_name_lists_valid_children():
    model = nn.Sequential(OrderedDict(block1=nn.Identity(), head=nn.Identity()))
    with pytest.raises(ValueError, match="valid: block1, head"):
        insert_smoothing_block(model, "block9", nn.Identity())
    with pytest.raises(ValueError, match="valid: block1, head"):
        insert_smoothing_block(model, "nope.0", nn.Identity())


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="valid: mean, median, gaussian, nonlocal_gaussian, embedded_gaussian"):
        SmoothingBlock(4, "bilateral")
    with pytest.raises(ValueError, match="odd"):
        SmoothingBlock(4, "mean", kernel_size=4)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel2d(3, 0.0)
    with pytest.raises(ValueError, match="channels"):
        SmoothingBlock(4, "mean")(torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        mean_filter2d(torch.zeros(3, 5, 5))
    with pytest.raises(ValueError, match="H, W > 2"):
        mean_filter2d(torch.zeros(1, 1, 2, 8), 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", FILTERS)
def test_block_runs_on_cuda_and_matches_cpu(name):
    torch.manual_seed(0)
    block = SmoothingBlock(4, name)
    x = _rand((2, 4, 6, 6), 31)
    out = block.cuda()(x.cuda())
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), block.cpu()(x), atol=1e-4)
