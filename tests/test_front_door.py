"""The front door (issue 16 part 1): ``import empirical as es`` on a model defined here, not one of ours.

The README's "Use it on your own model" snippet is extracted from README.md and run as is, in a fresh
interpreter with only the working tree on the path (as from a fresh clone). The calls are then checked
against the library functions they wrap (same maps, same per-image errors, the interval from
empirical.stats), and their bad inputs against one-line errors.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import empirical as es
from empirical import stats
from empirical.attribution import gradcam, integrated_gradients, smoothed, smoothgrad, vanilla_gradient
from empirical.errors import UserError
from empirical.measures import agreement, relative_input_stability, sparsity

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it on your own model"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds exactly one python snippet"
    return blocks[0]


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # a fresh interpreter (not a numerics check: kept out of make test-portable)
def test_readme_snippet_runs_on_a_model_it_defines():
    code = readme_snippet()
    assert "nn.Sequential(" in code and "empirical.nets" not in code  # the user's model, not one of ours
    assert len(code.strip().splitlines()) <= 16
    res = _run(code)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["stability error (vg, sigma=0.1)", "fidelity error (vg, sigma=0.1)",
                                                  "gini"]
    assert all("95% CI" in ln and "over 64 images" in ln for ln in lines)


@pytest.mark.slow
def test_import_is_light_and_the_front_door_loads_on_first_use():
    res = _run("import sys, empirical as es; assert 'torch' not in sys.modules; es.attribute; "
               "assert 'empirical.api' in sys.modules; print(sorted(es.FRONT_DOOR))")
    assert res.returncode == 0, res.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        es.nope  # noqa: B018


# --------------------------------------------------------------------------- the calls against the library
def user_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 36, 3)).double()


def data(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_attribute_is_the_library_function():
    net, (x, y) = user_net(), data()
    assert torch.equal(es.attribute(net, x, y, "vg"), vanilla_gradient(net, x, y))
    assert torch.equal(es.attribute(net, x, y, "saliency", abs=True), vanilla_gradient(net, x, y).abs())
    assert torch.equal(es.attribute(net, x, y, "ig", n_steps=6, rule="riemann_middle"),
                       integrated_gradients(net, x, y, n_steps=6, method="riemann_middle"))
    assert torch.equal(es.attribute(net, x, y, "ig", sigma=0.2, nt_samples=3, n_steps=4, seed=7),
                       smoothgrad(net, x, y, sigma=0.2, n_draws=3, base="ig", ig_steps=4, seed=7))
    assert torch.equal(es.attribute(net, x, y, "sg", sigma=0.2, nt_samples=3), smoothgrad(net, x, y, sigma=0.2,
                                                                                         n_draws=3))
    assert torch.equal(es.attribute(net, x, y, "gradcam", layer=net[0]), gradcam(net, x, y, net[0]))
    cam = es.attribute(net, x, y, "gradcampp", layer=net[0], sigma=0.1, nt_samples=2)
    ref = smoothed(lambda p, t: gradcam(net, p, t, net[0], plus=True), x, y, sigma=0.1, n_draws=2)
    assert torch.equal(cam, ref)


def test_stability_is_eq_12_per_image_with_the_stats_interval_and_common_noise():
    a, b, (x, y) = user_net(0), user_net(1), data()
    res = es.stability(a, b, x, y, method="vg", sigma=0.15, nt_samples=4)
    ma = smoothgrad(a, x, y, sigma=0.15, n_draws=4)
    mb = smoothgrad(b, x, y, sigma=0.15, n_draws=4)
    per = agreement.stability_error(ma, mb)
    assert torch.equal(res.per_image, per)
    ref = stats.bootstrap(per.numpy(), unit="image")
    assert res.summary == ref and res.estimate == pytest.approx(float(per.mean()), rel=1e-12)
    # the same network twice sees the same noise draws: zero error exactly, not Monte-Carlo noise
    assert float(es.stability(a, a, x, y, method="ig", sigma=0.3, nt_samples=3, n_steps=4).per_image.abs().max()) == 0
    assert "stability error (vg, sigma=0.15)" in str(res) and "over 6 images" in str(res)
    on_ds = es.stability(a, b, torch.utils.data.TensorDataset(x, y), method="vg", sigma=0.15, nt_samples=4)
    assert torch.equal(on_ds.per_image, per)


def test_fidelity_is_eq_13_and_needs_noise():
    net, (x, y) = user_net(), data()
    res = es.fidelity(net, x, y, method="vg", sigma=0.2, nt_samples=5)
    per = agreement.fidelity_error(smoothgrad(net, x, y, sigma=0.2, n_draws=5), vanilla_gradient(net, x, y))
    assert torch.equal(res.per_image, per)
    with pytest.raises(UserError, match="needs sigma > 0, got 0"):
        es.fidelity(net, x, y, sigma=0)


def test_quality_metrics_are_the_measures():
    net, (x, y) = user_net(), data()
    q = es.quality(net, x, y, metrics=["gini", "ris"], method="vg", n_samples=3, radius=0.02)
    maps = vanilla_gradient(net, x, y)
    assert torch.equal(q["gini"].per_image, sparsity.gini(maps))
    ris = relative_input_stability(lambda v, t: vanilla_gradient(net, v, t), net, x, y, radius=0.02, n_samples=3)
    assert torch.allclose(q["ris"].per_image, ris.score, equal_nan=True, rtol=0, atol=0)
    assert q["ris"].n_undefined == int(ris.score.isnan().sum())


def test_train_disjoint_pair_on_tensors_and_on_a_dataset():
    x, y = torch.rand(40, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (40,))
    a, b, (ia, ib) = es.train_disjoint_pair(lambda: user_net(), x, y, epochs=1, batch_size=8)
    assert len(ia) == len(ib) == 20 and not set(ia.tolist()) & set(ib.tolist())
    assert not a.training and not torch.equal(a[0].weight, b[0].weight)
    ds = torch.utils.data.TensorDataset(x, y)
    a2, b2, _ = es.train_disjoint_pair(lambda: user_net(), ds, epochs=1, batch_size=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), a2.parameters()))  # same seed, same result
    untrained = user_net()
    assert not torch.equal(untrained[0].weight, a[0].weight)  # it trained
    assert np.isfinite([float(p.detach().sum()) for p in b2.parameters()]).all()


@pytest.mark.parametrize("call,pattern", [
    (lambda n, x, y: es.attribute(n, x, y, "deeplift"), "unknown method 'deeplift'; valid: vg, ixg, ig"),
    (lambda n, x, y: es.attribute(n, x, y, "gradcam"), "needs layer="),
    (lambda n, x, y: es.attribute(n, x, y, "sg"), "method 'sg' is smoothed: give sigma > 0"),
    (lambda n, x, y: es.attribute(n, x, y, "vg", nt_type="vargrad"), "'vargrad' is a statistic over noise draws"),
    (lambda n, x, y: es.attribute(n, x, y, "vg", sigma=38, nt_samples=2), "sigma = 38.0 is more than 1"),
    (lambda n, x, y: es.quality(n, x, y, metrics=["faithfulness"]), "unknown quality metric.*'faithfulness'"),
    (lambda n, x, y: es.quality(n, x, y, metrics=["rrs"]), "needs representation="),
    (lambda n, x, y: es.train_disjoint_pair(lambda: n, x, y[:3]), r"targets must be an integer tensor of shape \[6\]"),
    (lambda n, x, y: es.train_disjoint_pair(lambda: n, x, y, lr=float("nan")), "lr"),
    (lambda n, x, y: es.train_disjoint_pair(lambda: n, x, y, n=4), "2 disjoint splits of n=4"),
    (lambda n, x, y: es.train_disjoint_pair(lambda: nn.Sequential(nn.Flatten(), nn.Linear(72, 3)), x.float() * 1e20,
                                            y, lr=1e30, c=1e30, batch_size=2),  # float32 weights overflow
     r"training diverged at epoch \d+, step \d+ \(loss = [^)]+\); lower --lr"),
])
def test_bad_input_is_a_one_line_error(call, pattern):
    net, (x, y) = user_net(), data()
    with pytest.raises(UserError, match=pattern) as e:
        call(net, x, y)
    assert "\n" not in str(e.value)


def test_tuple_inputs_keep_their_graph_inside_differentiable():
    """engine.differentiable() through the Captum-style packing: IG of a linear model on inputs (a, b) is
    (a·w_a, b·w_b) from a zero baseline, so d/da Σ IG = w_a and d/db Σ IG = w_b (one float64 product each)."""
    from empirical.attribution import differentiable

    lin = nn.Linear(5, 1).double()
    a = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    with differentiable():
        ia, ib = es.attribute(lambda u, v: lin(torch.cat([u, v], 1)), (a, b), 0, "ig", n_steps=4)
    ga, gb = torch.autograd.grad(ia.sum() + ib.sum(), (a, b))
    w = lin.weight.detach()[0]
    assert torch.allclose(ga, w[:2].expand(3, 2), rtol=1e-12) and torch.allclose(gb, w[2:].expand(3, 3), rtol=1e-12)
