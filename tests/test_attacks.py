"""L∞ attacks: the constraint set holds in pixel space, PGD finds the linear optimum, losses are ordered."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirical.attacks.pgd import fgsm_rs, pgd_linf, project, random_perturb, robust_accuracy, step


def _images(n=16, shape=(1, 4, 4), seed=0, dtype=torch.float32):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _small_model(seed=0, k=3, d=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, k))


@settings(max_examples=30)
@given(eps=st.floats(0.0, 0.3), steps=st.integers(1, 5), step_size=st.floats(0.0, 0.2), random_start=st.booleans(),
       targeted=st.booleans(), use_best=st.booleans(), seed=st.integers(0, 50),
       mean=st.floats(-1.0, 1.0), std=st.floats(0.01, 2.0))
def test_result_stays_in_the_eps_ball_and_the_image_box(eps, steps, step_size, random_start, targeted, use_best,
                                                         seed, mean, std):
    model = _small_model(seed)
    x = _images(6, seed=seed)
    x[0] = 0.0  # corners of the box, where the ball and [0, 1] intersect
    x[1] = 1.0
    y = torch.arange(6) % 3
    x_adv = pgd_linf(model, lambda v: (v - mean) / std, x, y, eps, step_size, steps, random_start=random_start,
                     targeted=targeted, use_best=use_best, generator=torch.Generator().manual_seed(seed))
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    x_fast = fgsm_rs(model, None, x, y, eps, generator=torch.Generator().manual_seed(seed))
    assert (x_fast - x).abs().max().item() <= eps + 1e-6 and x_fast.min() >= 0.0 and x_fast.max() <= 1.0


def test_building_blocks():
    x = torch.tensor([0.02, 0.5, 0.97])
    assert torch.allclose(project(torch.tensor([-1.0, 0.9, 0.5]), x, 0.1), torch.tensor([0.0, 0.6, 0.87]))
    assert torch.equal(step(torch.zeros(3), torch.tensor([3.0, -1e-9, 0.0]), 0.25), torch.tensor([0.25, -0.25, 0.0]))
    g = torch.Generator().manual_seed(0)
    r = random_perturb(torch.full((10000,), 0.5), 0.1, g)
    assert (r - 0.5).abs().max() <= 0.1 + 1e-7 and abs((r - 0.5).mean().item()) < 0.005  # uniform, centred
    assert torch.equal(random_perturb(x, 0.0), x)


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_reaches_the_closed_form_optimum_on_a_linear_binary_model(random_start, targeted):
    # For logits Wx + b with two classes, CE(·, y) grows along w_other − w_y everywhere, so the maximiser over
    # the ball ∩ [0, 1]^d is the clipped corner x − ε sign(w_y − w_other), coordinate by coordinate.
    g = torch.Generator().manual_seed(1)
    d, eps = 12, 0.1
    lin = nn.Linear(d, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, d, generator=g, dtype=torch.float64) * 0.3)
    x = torch.rand(5, d, generator=g, dtype=torch.float64)
    x[0, :3] = torch.tensor([0.0, 1.0, 0.05])  # some coordinates get clipped by the box
    y = torch.tensor([0, 1, 0, 1, 1])
    other = 1 - y
    w = lin.weight.detach()
    optimum = (x - eps * torch.sign(w[y] - w[other])).clamp(0, 1)
    x_adv = pgd_linf(lin, None, x, other if targeted else y, eps, eps / 4, 20, random_start=random_start,
                     targeted=targeted, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(x_adv, optimum, atol=1e-12)


def _trained_model():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, :8].mean(1) > x.flatten(1)[:, 8:].mean(1)).long() + (x[:, 0, 0, 0] > 0.8).long()
    model = _small_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x[:128], y[:128]


def test_pgd_loss_at_least_fgsm_loss_at_least_clean_loss():
    model, x, y = _trained_model()
    eps = 0.05
    g = torch.Generator().manual_seed(3)

    def loss(v):
        with torch.no_grad():
            return F.cross_entropy(model(v), y).item()

    clean, fast = loss(x), loss(fgsm_rs(model, None, x, y, eps, generator=g))
    strong = loss(pgd_linf(model, None, x, y, eps, eps / 4, 10, generator=g))
    assert strong >= fast >= clean
    assert strong > 1.2 * clean
    acc_clean = robust_accuracy(model, None, x, y, 0.0, steps=1)
    assert acc_clean > 0.8
    assert robust_accuracy(model, None, x, y, eps, steps=10, generator=g) < acc_clean
    # targeted: descending the loss of a target label raises its probability
    t = (y + 1) % 3
    x_t = pgd_linf(model, None, x, t, eps, eps / 4, 10, targeted=True, generator=g)
    with torch.no_grad():
        assert F.cross_entropy(model(x_t), t) < F.cross_entropy(model(x), t)


def test_eps_ball_is_in_pixel_space_whatever_the_normalisation():
    model, x, y = _trained_model()
    x = x.expand(-1, 3, -1, -1).contiguous()[:32]
    y = y[:32]
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.05, 0.2, 1.0]).view(1, 3, 1, 1)
    normalize = lambda v: (v - mean) / std  # noqa: E731
    net = nn.Sequential(nn.Conv2d(3, 1, 1), model)
    eps = 0.03
    x_adv = pgd_linf(net, normalize, x, y, eps, eps / 3, 6, random_start=False)
    delta = (x_adv - x).abs()
    assert delta.max() <= eps + 1e-6
    # sign steps reach the boundary in PIXEL units in every channel, however small or large its std
    for c in range(3):
        assert delta[:, c].max() > eps - 1e-6 and delta[:, c].mean() > eps / 2
    # the same attack on the model with the normalisation built in gives the same images
    folded = pgd_linf(nn.Sequential(_Lambda(normalize), net), None, x, y, eps, eps / 3, 6, random_start=False)
    assert torch.allclose(folded, x_adv)


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, v):
        return self.fn(v)


def test_training_state_restored_and_batch_norm_statistics_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(64, 3))
    x, y = _images(8), torch.arange(8) % 3
    model.train()
    model[1].eval()  # a mixed state comes back as it was
    before = {n: m.training for n, m in model.named_modules()}
    stats = model[1].running_mean.clone()
    pgd_linf(model, None, x, y, 0.1, 0.02, 3)
    fgsm_rs(model, None, x, y, 0.1)
    robust_accuracy(model, None, x, y, 0.1, steps=2)
    assert {n: m.training for n, m in model.named_modules()} == before
    assert torch.equal(model[1].running_mean, stats)
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    pgd_linf(model, None, x, y, 0.1, 0.02, 3)
    assert not any(m.training for m in model.modules())


def test_attack_runs_under_no_grad_and_is_deterministic_given_a_generator():
    model, x, y = _small_model(), _images(), torch.arange(16) % 3
    with torch.no_grad():
        a = pgd_linf(model, None, x, y, 0.1, 0.03, 4, generator=torch.Generator().manual_seed(5))
    b = pgd_linf(model, None, x, y, 0.1, 0.03, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_robust_accuracy_does_not_depend_on_the_batch_size():
    model, x, y = _small_model(), _images(20), torch.arange(20) % 3
    accs = {robust_accuracy(model, None, x, y, 0.05, steps=5, random_start=False, batch_size=b) for b in (3, 7, 100)}
    assert len(accs) == 1


def test_bad_arguments_raise_value_error():
    model, x, y = _small_model(), _images(4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="eps"):
        pgd_linf(model, None, x, y, -0.1, 0.01, 5)
    with pytest.raises(ValueError, match="steps"):
        pgd_linf(model, None, x, y, 0.1, 0.01, 0)
    with pytest.raises(ValueError, match="step_size"):
        pgd_linf(model, None, x, y, 0.1, -0.01, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd_linf(model, None, x * 2 - 0.5, y, 0.1, 0.01, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robust_accuracy(model, None, x * 255, y, 0.1)
    with pytest.raises(ValueError, match="one label per image"):
        fgsm_rs(model, None, x, y[:3], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        pgd_linf(model, None, torch.full_like(x, float("nan")), y, 0.1, 0.01, 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_attack_stays_on_cuda():
    model, x, y = _small_model().cuda(), _images().cuda(), (torch.arange(16) % 3).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    x_adv = pgd_linf(model, lambda v: (v - 0.5) / 0.25, x, y, 0.1, 0.03, 4, generator=g)
    assert x_adv.device.type == "cuda" and (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert 0.0 <= robust_accuracy(model, None, x, y, 0.1, steps=3) <= 1.0
