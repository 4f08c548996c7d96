"""One σ unit at every door (issue 16 part 4, issue 15's σ bullet): σ is a fraction of the pixel range in the
library, the configs and the CLI; the absolute value goes by Captum's name ``stdevs``; past 1 of the range is
a one-line error naming the value. Also: clipping of RIS/ROS/RRS perturbations is off unless asked, counted
when on."""
import math

import pytest
import torch
from torch import nn

from empirical import data as data_mod
from empirical.attribution import draw_noise, input_x_gradient, sigma_abs, sigma_rel, smoothgrad
from empirical.errors import UserError
from empirical.experiments.loo.config import LooConfig
from empirical.experiments.smoothing.config import SmoothingStudyConfig
from empirical.experiments.split.config import SplitStabilityConfig
from empirical.measures import linf_ball_perturbations, relative_input_stability

F32_EPS = torch.finfo(torch.float32).eps
X = torch.tensor([[1.5, 2.0, 1.3], [0.5, 0.1, 2.3], [1.5, 2.0, 1.3]], dtype=torch.float64)


def test_sigma_abs_and_sigma_rel_are_inverse_for_every_range_form():
    assert sigma_abs(0.1, 255.0) == pytest.approx(25.5, rel=1e-15)
    assert sigma_abs(0.25, (-1.0, 1.0)) == 0.5
    assert sigma_rel(sigma_abs(0.15, 4.0), 4.0) == pytest.approx(0.15, rel=1e-15)
    w = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert torch.allclose(sigma_rel(sigma_abs(0.2, w), w), torch.full((3,), 0.2, dtype=torch.float64))
    for bad, text in ((1.5, "sigma = 1.5 is more than 1"), (-0.1, "-0.1"), (float("nan"), "nan")):
        with pytest.raises(UserError, match=text):
            sigma_abs(bad, 1.0)
    for rng, text in ((0.0, "got 0.0"), ((1.0, 1.0), r"\(1.0, 1.0\)"), ("wide", "'wide'")):
        with pytest.raises(UserError, match=text):
            sigma_abs(0.1, rng)
    x = torch.zeros(2, 3)
    with pytest.raises(UserError, match=r"sigma for a single input is a number or a tensor \[C\].*\(0.1, 0.2\)"):
        smoothgrad(nn.Linear(3, 2), x, 0, sigma=(0.1, 0.2), nt_samples=2)
    with pytest.raises(UserError, match="exactly one of sigma .* and stdevs"):
        smoothgrad(nn.Linear(3, 2), x, 0, sigma=0.1, stdevs=0.1, nt_samples=2)


def test_dataset_pixel_range_gives_the_dataset_sigma():
    """spec.sigma_abs(s) = s·(x_max − x_min)/std and s · spec.pixel_range() = s · ((x_max − x_min)/std) differ
    only by float32 rounding of the division order: relative 2 eps32."""
    spec = data_mod.CIFAR10
    assert torch.allclose(sigma_abs(0.15, spec.pixel_range()), spec.sigma_abs(0.15), rtol=2 * F32_EPS, atol=0)
    with pytest.raises(UserError, match="got 38"):
        spec.sigma_abs(38)


def test_relative_sigma_with_a_per_channel_range_adds_the_absolute_noise():
    """sigma=s with pixel_range=w is stdevs = s·w, per channel: the model sees x + s·w_c·ε (checked on the
    points themselves, with explicit draws). Tolerance: x + z is one float64 addition, then the check subtracts
    x again: 2 roundings of size eps64 · (|x| + |z|); s·w_c is exact here (0.1 · 1, 0.1 · 8) up to one more."""
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4))

        def forward(self, v):
            seen.append(v.detach().clone())
            return self.net(v)

    torch.manual_seed(0)
    model, x = Recorder().double(), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    w = torch.tensor([1.0, 8.0], dtype=torch.float64)
    eps = draw_noise(x, 3, seed=2)
    smoothgrad(model, x, 1, sigma=0.1, pixel_range=w, nt_samples=3, noise=eps)
    z = torch.cat(seen).view(2, 3, 2, 3, 3) - x[:, None]
    want = eps * torch.tensor([0.1, 0.8], dtype=torch.float64).view(1, 1, 2, 1, 1)
    tol = 3 * torch.finfo(torch.float64).eps * (x[:, None].abs() + want.abs())
    assert bool(((z - want).abs() <= tol).all())
    assert not bool(((z - want * 1.01).abs() <= tol).all())  # a 1 % different σ would fail


@pytest.mark.parametrize("make", [
    lambda: SplitStabilityConfig(sigmas=(0.1, 38.0)),
    lambda: SmoothingStudyConfig(sg_sigma=38.0),
    lambda: LooConfig(sigmas=(38.0,)),
])
def test_study_configs_refuse_sigma_past_the_pixel_range(make):
    with pytest.raises(UserError, match="fraction of the pixel range.*38"):
        make().validate()


def test_ris_perturbations_are_not_clipped_unless_asked_and_counted_when_clipped():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 2 - 0.5  # partly outside [0, 1], as normalised inputs are
    explain = lambda v, t: v * 2  # noqa: E731  (any map)
    off = relative_input_stability(explain, model, x, radius=0.1, n_samples=4, seed=3)
    assert off.n_clipped is None
    on = relative_input_stability(explain, model, x, radius=0.1, n_samples=4, seed=3, clip=(0.0, 1.0))
    xp = linf_ball_perturbations(x, 0.1, 0, 4, seed=3)
    assert torch.equal(on.n_clipped, ((xp < 0) | (xp > 1)).flatten(2).sum((0, 2)))
    assert int(on.n_clipped.sum()) > 0 and not math.isnan(float(off.score.sum()))


# --------------------------------------------------------------------------- the library's door
def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()


@pytest.mark.parametrize("bad", [38.0, 1e6, 1.5])
def test_relative_sigma_past_the_whole_range_is_an_error_naming_it(bad):
    with pytest.raises(UserError, match=f"sigma = {bad!r} is more than 1 of the pixel range"):
        smoothgrad(_net(), X, 1, sigma=bad, nt_samples=2)
    with pytest.raises(UserError, match="stdevs / pixel_range"):
        smoothgrad(_net(), X, 1, stdevs=bad * 2.0, pixel_range=2.0, nt_samples=2)


def test_clipping_is_off_by_default_and_counted_when_on():
    """Off: the model sees x + σε exactly (values far outside [0, 1] kept). On: each noisy value outside the
    range is clamped and counted once per (image, draw), not once per IG path step."""
    model = _net()
    eps = draw_noise(X, 4, seed=1)
    off = smoothgrad(model, X, 1, stdevs=0.5, nt_samples=4, noise=eps, base="ixg")
    manual = sum(input_x_gradient(model, X + 0.5 * eps[:, d], 1) for d in range(4)) / 4
    assert torch.allclose(off, manual, rtol=0, atol=1e-12)
    lo, hi = 0.0, 2.0
    _, clipped = smoothgrad(model, X, 1, stdevs=0.5, nt_samples=4, noise=eps, base="ig", n_steps=3,
                            clip=(lo, hi), return_clipped=True)
    noisy = X[:, None] + 0.5 * eps
    assert torch.equal(clipped, ((noisy < lo) | (noisy > hi)).flatten(1).sum(1))
    assert int(clipped.sum()) > 0
    on = smoothgrad(model, X, 1, stdevs=0.5, nt_samples=4, noise=eps, base="ixg", clip=(lo, hi))
    manual = sum(input_x_gradient(model, (X + 0.5 * eps[:, d]).clamp(lo, hi), 1) for d in range(4)) / 4
    assert torch.allclose(on, manual, rtol=0, atol=1e-12)
