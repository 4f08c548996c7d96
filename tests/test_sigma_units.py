"""One σ unit at every door (issue 16 part 4, issue 15's σ bullet): σ is a fraction of the pixel range in the
library, the configs and the CLI; the absolute value goes by Captum's name ``stdevs``; past 1 of the range is
a one-line error naming the value. Also: clipping of RIS/ROS/RRS perturbations is off unless asked, counted
when on."""
import math

import pytest
import torch
from torch import nn

from empirical import data as data_mod
from empirical.attribution import draw_noise, sigma_abs, sigma_rel, smoothgrad
from empirical.errors import UserError
from empirical.experiments.loo.config import LooConfig
from empirical.experiments.smoothing.config import SmoothingStudyConfig
from empirical.experiments.split.config import SplitStabilityConfig
from empirical.measures import linf_ball_perturbations, relative_input_stability

F32_EPS = torch.finfo(torch.float32).eps


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


def test_dataset_pixel_range_gives_the_dataset_sigma():
    """spec.sigma_abs(s) = s·(x_max − x_min)/std and s · spec.pixel_range() = s · ((x_max − x_min)/std) differ
    only by float32 rounding of the division order: relative 2 eps32."""
    spec = data_mod.CIFAR10
    assert torch.allclose(sigma_abs(0.15, spec.pixel_range()), spec.sigma_abs(0.15), rtol=2 * F32_EPS, atol=0)
    with pytest.raises(UserError, match="got 38"):
        spec.sigma_abs(38)


def test_relative_sigma_with_a_per_channel_range_adds_the_absolute_noise():
    """sigma=s with pixel_range=w is stdevs = s·w, per channel: the model sees x + s·w_c·ε (checked on the
    points themselves, exactly, with explicit draws)."""
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
    z = (torch.cat(seen).view(2, 3, 2, 3, 3) - x[:, None]) / eps
    assert torch.allclose(z[:, :, 0], torch.full_like(z[:, :, 0], 0.1), rtol=1e-12)
    assert torch.allclose(z[:, :, 1], torch.full_like(z[:, :, 1], 0.8), rtol=1e-12)


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
