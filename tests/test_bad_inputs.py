"""Issue 15: bad inputs that used to give a plausible number or a deep traceback. Each case either raises a
one-line error naming the value (and what is valid) or returns a documented, flagged value. Sizes are tiny."""
from __future__ import annotations

import pytest
import torch

from empirical import data
from empirical.errors import UserError
from empirical.nets import models
from empirical.training.trainer import TrainConfig, train


def _images(n=32, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, side, side, generator=g) * 255).to(torch.uint8)
    y = (x.float().mean((1, 2, 3)) > 127).long()
    return x, y


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- 1. float images are not divided twice
def test_float01_images_are_taken_as_given_and_left_unchanged():
    x, _ = _images()
    x01 = x.float() / 255
    keep = x01.clone()
    a = data.to_model_input(data.FASHION_MNIST, x01, "cpu")
    assert torch.equal(x01, keep)  # the caller's tensor is not written into
    b = data.to_model_input(data.FASHION_MNIST, x, "cpu")
    # uint8/255 computed the same way on both paths: identical float32 operations, so exact equality
    assert torch.equal(a, b)
    assert a.std() > 0.5  # the spread the network should see (0.003 when divided by 255 twice)


@pytest.mark.parametrize("scale, named", [(255.0, "[0, 255]"), (-1.0, "[-1, 0]")])
def test_float_images_outside_the_declared_range_are_an_error(scale, named):
    x, _ = _images()
    xf = x.float() / 255 * scale
    xf.view(-1)[0], xf.view(-1)[1] = 0.0, scale  # pin the range the message must name
    with pytest.raises(UserError) as e:
        data.to_model_input(data.FASHION_MNIST, xf, "cpu")
    msg = _one_line(e)
    assert named in msg and "[0, 1]" in msg


@pytest.mark.parametrize("dtype", [torch.int64, torch.int16, torch.bool])
def test_signed_integer_images_are_an_error_naming_the_dtype(dtype):
    x, _ = _images()
    with pytest.raises(UserError) as e:
        data.to_model_input(data.FASHION_MNIST, x.to(dtype), "cpu")
    assert str(dtype) in _one_line(e)


def test_nan_images_are_an_error():
    x = torch.full((2, 1, 8, 8), 0.5)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(UserError) as e:
        data.to_model_input(data.FASHION_MNIST, x, "cpu")
    assert "1 NaN/inf" in _one_line(e)


def test_training_on_float01_images_equals_training_on_uint8_and_leaves_them_unchanged():
    x, y = _images()
    x01 = x.float() / 255
    keep = x01.clone()
    cfg = TrainConfig(epochs=1, batch_size=8)
    ws = []
    for xi in (x, x01):
        torch.manual_seed(0)
        m = models.build("mlp", 1, 8, 2, "tanh")
        train(m, xi, y, lambda v: (v - 0.5) / 0.25, cfg, progress=False)
        ws.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.equal(x01, keep)
    assert torch.equal(ws[0], ws[1])  # same float32 batches bit for bit, so the same weights


def test_training_on_0_255_floats_is_an_error():
    x, y = _images()
    with pytest.raises(UserError) as e:
        train(models.build("mlp", 1, 8, 2, "tanh"), x.float(), y, lambda v: v, TrainConfig(epochs=1), progress=False)
    msg = _one_line(e)
    assert "training images" in msg and "[0, 1]" in msg and "255" in msg


# --------------------------------------------------------------------------- 2. NaN/Inf maps are an error, never a score
def _metric_calls():
    from empirical.measures import agreement as M
    from empirical.measures import faithfulness, sparsity

    return {
        "gini": lambda a, b: sparsity.gini(a),
        "ssim": lambda a, b: M.ssim(a, b),
        "stability_error": lambda a, b: M.stability_error(a, b),
        "stability_error_unit": lambda a, b: M.stability_error(a, b, normalize=True),
        "fidelity_error": lambda a, b: M.fidelity_error(a, b),
        "topk_iou": lambda a, b: M.topk_iou(a, b, 10),
        "topk_intersection": lambda a, b: M.topk_intersection(a, b, 10),
        "topk_indices": lambda a, b: M.topk_indices(a, 10),
        "removal_order": lambda a, b: faithfulness.removal_order(a),
    }


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("metric", sorted(_metric_calls()))
def test_a_non_finite_map_is_an_error_in_every_metric(metric, bad):
    fn = _metric_calls()[metric]
    good = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    broken = good.clone()
    broken[2, 0, 3, 4] = bad  # image 2: the message names it
    fn(good, good.flip(0))  # the finite pair scores
    with pytest.raises(UserError) as e:
        fn(broken, good)
    msg = _one_line(e)
    assert "1 NaN/inf" in msg and "image 2" in msg
    if metric not in ("gini", "topk_indices", "removal_order"):  # the second argument is checked too
        with pytest.raises(UserError, match="map b hold 1 NaN/inf"):
            fn(good, broken)


def test_all_nan_maps_no_longer_score_as_a_perfect_match():
    from empirical.measures import agreement as M

    nan = torch.full((1, 1, 8, 8), float("nan"))
    with pytest.raises(UserError, match="64 NaN/inf value"):
        M.ssim(nan, nan)
    with pytest.raises(UserError, match="64 NaN/inf value"):
        M.topk_iou(nan, nan, 10)


# --------------------------------------------------------------------------- 3. RIS/ROS/RRS of an all-zero explanation
def _stability(explain):
    from empirical.measures import relative_stabilities

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    rep = lambda v: v.flatten(1) * 2 + 1  # noqa: E731 (a representation with no zero entries)
    return relative_stabilities(explain, net, x, representation=rep, radius=0.01, n_samples=4), x


def test_an_all_zero_explanation_is_excluded_and_counted_not_scored_stable():
    calls = []

    def explain(v, target):
        # image 1 has an all-zero map at x and an exploding one (randn * 100) at every x'
        first = not calls
        calls.append(1)
        g = torch.Generator().manual_seed(len(calls))
        m = torch.randn(v.shape, generator=g)
        if first:
            m[1] = 0.0
        else:
            m.view(-1, 3, *v.shape[1:])[:, 1] *= 100
        return m

    res, _ = _stability(explain)
    for kind, r in res.items():
        assert torch.isnan(r.score[1]), kind  # documented: NaN, never 0.0 ("perfectly stable")
        assert int(r.n_excluded[1]) == r.n_samples == 4, kind
        assert torch.isfinite(r.score[[0, 2]]).all(), kind  # the other images still score


@pytest.mark.parametrize("where", ["x", "x'"])
def test_a_nan_explanation_is_an_error_in_relative_stability(where):
    calls = []

    def explain(v, target):
        calls.append(1)
        m = torch.rand(v.shape)
        if (where == "x") == (len(calls) == 1):
            m[0, 0, 0, 0] = float("nan")
        return m

    with pytest.raises(UserError) as e:
        _stability(explain)
    msg = _one_line(e)
    assert "1 NaN/inf" in msg and ("perturbed" in msg) == (where == "x'")
