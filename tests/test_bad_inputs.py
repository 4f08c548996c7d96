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
