"""B_i, the layer norms the theorems' bounds are built from, must bound ||W_i|| from ABOVE.

Oracle: the dense Jacobian of each layer on its input shape and its exact SVD. Power iteration must
come from below, the Fourier bound (`conv_norm_upper`) from above, for every stride, padding, dilation
and group count; on a circular convolution the Fourier value is exact (Sedghi et al. 2019, Thm. 6).
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.nets import constants as bounds
from empirical.nets import models


def dense_norm(fn, shape) -> float:
    x = torch.zeros(shape, dtype=torch.float64)
    J = torch.func.jacrev(fn)(x)
    return torch.linalg.matrix_norm(J.reshape(-1, x.numel()), 2).item()


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 5))
    dilation = draw(st.integers(1, 2))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, k))
    size = draw(st.integers(dilation * (k - 1) + 1, 9))
    return c_in, c_out, k, stride, padding, dilation, groups, size, draw(st.integers(0, 2**16))


@settings(max_examples=40)
@given(conv_configs())
def test_conv_norm_brackets_the_dense_svd(cfg):
    c_in, c_out, k, stride, padding, dilation, groups, size, seed = cfg
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(c_in, c_out, k, stride, padding, dilation, groups, bias=False).double()
    shape = (1, c_in, size, size)
    exact = dense_norm(conv, shape)
    upper = bounds.conv_norm_upper(conv.weight, (size, size), stride, padding, dilation, groups)
    assert upper >= exact * (1 - 1e-9), (upper, exact)
    fn = lambda z: torch.nn.functional.conv2d(z, conv.weight, None, stride, padding, dilation, groups)  # noqa: E731
    lower = bounds.operator_norm(fn, shape, iters=50)
    assert lower <= exact * (1 + 1e-9)


@pytest.mark.parametrize("k,n", [(3, 8), (5, 9), (1, 4)])
def test_fourier_value_is_exact_for_circular_convolution(k, n):
    torch.manual_seed(k)
    conv = torch.nn.Conv2d(3, 4, k, padding=k // 2, padding_mode="circular", bias=False).double()
    exact = dense_norm(conv, (1, 3, n, n))
    # the bound's grid is (in + k − 1); an input of n − k + 1 puts it on the n×n circle
    assert bounds.conv_norm_upper(conv.weight, (n - k + 1, n - k + 1)) == pytest.approx(exact, rel=1e-9)
    assert bounds.conv_norm_upper(conv.weight, (n, n), padding_mode="circular") is None  # not certified: no claim


def test_linear_norm_is_exact():
    W = torch.randn(7, 19, dtype=torch.float64)
    assert bounds.linear_norm(W) == pytest.approx(torch.linalg.matrix_norm(W, 2).item(), rel=1e-12)
    assert bounds.linear_norm(W.T) == pytest.approx(torch.linalg.matrix_norm(W, 2).item(), rel=1e-12)


def test_lenet_layer_norms_are_certified_and_tight():
    torch.manual_seed(0)
    net = models.build("lenet", 1, 28, 10, "tanh").eval().double()
    recs = bounds.layer_norms(net, torch.randn(1, 1, 28, 28, dtype=torch.float64))
    assert [r["kind"] for r in recs] == ["conv2d", "conv2d", "linear", "linear"]
    conv1 = net.block1[0]
    exact = dense_norm(lambda z: torch.nn.functional.conv2d(z, conv1.weight, None, 1, 2), (1, 1, 28, 28))
    r = recs[0]
    assert r["B"] == r["B_upper"] and r["B_method"] == "fourier-upper"
    assert r["B_power"] <= exact * (1 + 1e-9) <= r["B_upper"] * (1 + 1e-9)
    assert r["B_upper"] <= 1.05 * exact  # the boundary effect on 28×28 is small
    assert recs[2]["B"] == pytest.approx(torch.linalg.matrix_norm(net.block3[1].weight, 2).item(), rel=1e-10)


def test_strided_resnet_conv_bound_is_tighter_than_ignoring_the_stride():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, 2, 1, bias=False).double()
    exact = dense_norm(conv, (1, 4, 8, 8))
    strided = bounds.conv_norm_upper(conv.weight, (8, 8), stride=2, padding=1)
    unstrided = bounds.conv_norm_upper(conv.weight, (8, 8))
    assert exact * (1 - 1e-9) <= strided < unstrided
