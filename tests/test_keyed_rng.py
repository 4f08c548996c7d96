"""The counter-based noise of SmoothGrad (empirical/keyed_rng.py): distribution and keying."""
import math

import torch

from empirical import attribution as saliency
from empirical.keyed_rng import SALIENCY_STREAM, keyed_normal, keyed_uniform, noise_draws


def test_normals_have_mean_0_variance_1_and_no_lag_correlation():
    z = keyed_normal(0, torch.arange(8), 0, 50000, torch.float64).flatten()
    n = z.numel()
    se = 1 / math.sqrt(n)
    assert abs(z.mean().item()) < 5 * se
    assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z ** 4).mean().item() - 3) < 0.1  # kurtosis of a normal
    lag = (z[1:] * z[:-1]).mean().item()
    assert abs(lag) < 5 * se


def test_draws_are_a_function_of_image_id_and_draw_only():
    x = torch.zeros(5, 1, 4, 4)
    ids = [10, 11, 12, 13, 14]
    full = saliency.draw_noise(x, 6, seed=3, ids=ids)
    assert torch.equal(full[2], saliency.draw_noise(x[2:3], 6, seed=3, ids=[12])[0])  # batch composition
    assert torch.equal(full[:, :4], saliency.draw_noise(x, 4, seed=3, ids=ids))  # more draws keep the first
    assert not torch.equal(full, saliency.draw_noise(x, 6, seed=4, ids=ids))  # the seed matters
    assert not torch.equal(full[0, 0], full[0, 1]) and not torch.equal(full[0, 0], full[1, 0])
    rows = noise_draws(3, torch.tensor([13, 10]), torch.tensor([5, 0]), 16, torch.float32, "cpu")
    assert torch.equal(rows[0], full[3, 5].flatten()) and torch.equal(rows[1], full[0, 0].flatten())


def test_saliency_noise_is_not_the_metrics_stream():
    ids = torch.arange(4)
    a = noise_draws(0, ids, torch.zeros(4, dtype=torch.int64), 32, torch.float64, "cpu")
    b = keyed_normal(0, ids, 0, 32, torch.float64)
    assert not torch.allclose(a, b)
    assert torch.equal(a, keyed_normal(SALIENCY_STREAM, ids, 0, 32, torch.float64))
    u = keyed_uniform(0, ids, 0, 64, torch.float64)
    assert bool(((u > 0) & (u < 1)).all())


def test_smoothgrad_noise_does_not_depend_on_max_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3))
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    a = saliency.smoothgrad(model, x, y, sigma=0.2, n_draws=7, ids=[5, 6, 7], base="ig", ig_steps=3, max_batch=5)
    b = saliency.smoothgrad(model, x, y, sigma=0.2, n_draws=7, ids=[5, 6, 7], base="ig", ig_steps=3, max_batch=None)
    noise = saliency.draw_noise(x, 7, ids=[5, 6, 7])
    c = saliency.smoothgrad(model, x, y, sigma=0.2, n_draws=7, noise=noise, base="ig", ig_steps=3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-7)
