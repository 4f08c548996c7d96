"""Models build with each activation; training is reproducible; checkpoints are reused; step sizes obey c/t."""
import pytest
import torch

from empirical.errors import UserError
from empirical.nets import constants as bounds
from empirical.nets import models
from empirical.training.trainer import TrainConfig, step_size, train, train_or_load


@pytest.mark.parametrize("name", ["lenet", "mlp"])
@pytest.mark.parametrize("act", sorted(models.ACTIVATIONS))
def test_small_models_forward(name, act):
    m = models.build(name, 1, 28, 10, act)
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_resnet_and_wrn_shapes():
    for name in ("resnet18", "wrn28_10"):
        m = models.build(name, 3, 32, 10).eval()
        assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)
        assert models.gradcam_layer(m, name) is not None


def test_bad_model_and_activation():
    with pytest.raises(UserError, match="valid: lenet"):
        models.build("vgg", 1, 28, 10)
    with pytest.raises(UserError, match="valid: relu"):
        models.build("lenet", 1, 28, 10, "swish")


def test_sgd_ct_obeys_the_theorem_step_size():
    cfg = TrainConfig(optimizer="sgd_ct", lr=0.1, c=2.0)
    for t in range(1, 200):
        assert step_size(cfg, t, 200) <= cfg.c / t + 1e-15
    assert step_size(cfg, 1, 200) == 0.1 and step_size(cfg, 100, 200) == pytest.approx(0.02)


def _toy():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    y = (x.float().mean((1, 2, 3)) > 127).long()
    return x, y


@pytest.mark.parametrize("opt", ["sgd_ct", "noisy_sgd", "sgd", "adam"])
def test_training_is_reproducible(opt):
    x, y = _toy()
    cfg = TrainConfig(optimizer=opt, epochs=2, batch_size=16, lr=0.05, weight_noise=0.01 if opt == "noisy_sgd" else 0.0)
    ws = []
    for _ in range(2):
        torch.manual_seed(0)  # the caller fixes the initialisation (train_or_load does)
        m = models.build("mlp", 1, 8, 2, "tanh")
        rec = train(m, x, y, lambda v: v - 0.5, cfg, progress=False)
        ws.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert rec["T"] == 8
    assert torch.equal(ws[0], ws[1])


def test_checkpoint_reused(tmp_path):
    x, y = _toy()
    cfg = TrainConfig(epochs=1, batch_size=16)
    kw = dict(x_uint8=x, y=y, normalize=lambda v: v - 0.5, cfg=cfg, progress=False)
    build = lambda: models.build("mlp", 1, 8, 2, "tanh")  # noqa: E731
    m1, r1, reused1 = train_or_load(build, {"k": 1}, tmp_path, kw)
    m2, r2, reused2 = train_or_load(build, {"k": 1}, tmp_path, kw)
    assert (reused1, reused2) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    m3, _, reused3 = train_or_load(build, {"k": 2}, tmp_path, kw)
    assert reused3 is False
    # same seed → same weights even when trained afresh under another key
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m3.state_dict().values()))


def test_conv_power_iteration_matches_dense_svd():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False).double()
    shape = (1, 2, 6, 6)
    A = torch.func.jacrev(lambda z: conv(z))(torch.zeros(shape, dtype=torch.float64)).reshape(3 * 36, 2 * 36)
    exact = torch.linalg.matrix_norm(A, 2).item()
    est = bounds.operator_norm(lambda z: torch.nn.functional.conv2d(z, conv.weight, None, 1, 1), shape, iters=300)
    assert est == pytest.approx(exact, rel=1e-3)
    assert est <= exact * (1 + 1e-9)  # power iteration approaches from below


def test_layer_norms_fold_batchnorm():
    m = torch.nn.Sequential(torch.nn.Linear(4, 5, bias=False), torch.nn.BatchNorm1d(5), torch.nn.Tanh(),
                            torch.nn.Linear(5, 2)).eval()
    with torch.no_grad():
        m[1].weight.fill_(3.0)
    rec = bounds.layer_norms(m, torch.randn(1, 4))
    assert len(rec) == 2
    plain = torch.linalg.matrix_norm(m[0].weight.double(), 2).item()
    assert rec[0]["B"] == pytest.approx(plain * 3.0 / (1 + 1e-5) ** 0.5, rel=1e-4)


@pytest.mark.parametrize("opt", ["noisy_sgd", "adam"])
def test_interrupted_training_resumes_bit_for_bit(opt, tmp_path):
    """Stopped in its third epoch, a training resumes from the last epoch boundary and ends with exactly the
    weights of a run that was never stopped (batch order, optimiser state, weight noise and the global RNG
    that a random perturbation draws from, all restored)."""
    x, y = _toy()
    cfg = TrainConfig(optimizer=opt, epochs=3, batch_size=16, lr=0.05, weight_noise=0.01 if opt == "noisy_sgd" else 0.0)

    def jitter(stop_at=None):
        calls = {"n": 0}

        def perturb(model, xb, yb):
            calls["n"] += 1
            if calls["n"] == stop_at:
                raise KeyboardInterrupt
            return (xb + 0.05 * torch.randn_like(xb)).clamp(0, 1)  # the global RNG, as the attacks use it
        return perturb

    def run(perturb, resume):
        torch.manual_seed(0)
        m = models.build("mlp", 1, 8, 2, "tanh")
        rec = train(m, x, y, lambda v: v - 0.5, cfg, perturb=perturb, progress=False, resume=resume)
        return m, rec

    whole, rec_whole = run(jitter(), None)
    state = tmp_path / "partial.pt"
    with pytest.raises(KeyboardInterrupt):
        run(jitter(stop_at=11), state)  # step 11 of 12: epochs start at steps 1, 5, 9
    assert state.exists() and torch.load(state, weights_only=False)["t"] == 8
    torch.manual_seed(123)  # whatever the global RNG holds now, the resumed run restores its own
    resumed, rec = run(jitter(), state)
    assert rec["resumed_after_step"] == 8 and rec["T"] == rec_whole["T"] == 12
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    assert rec["final_loss"] == rec_whole["final_loss"]


def test_train_or_load_resumes_and_cleans_up(tmp_path):
    x, y = _toy()
    cfg = TrainConfig(epochs=3, batch_size=16)
    build = lambda: models.build("mlp", 1, 8, 2, "tanh")  # noqa: E731
    calls = {"n": 0}

    def stop_once(model, xb, yb):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return xb
    kw = dict(x_uint8=x, y=y, normalize=lambda v: v - 0.5, cfg=cfg, progress=False, perturb=stop_once)
    with pytest.raises(KeyboardInterrupt):
        train_or_load(build, {"k": 1}, tmp_path, kw)
    assert len(list(tmp_path.glob("*.partial.pt"))) == 1
    m, rec, reused = train_or_load(build, {"k": 1}, tmp_path, kw)
    assert not reused and rec["resumed_after_step"] == 8
    assert list(tmp_path.glob("*.partial.pt")) == [] and len(list(tmp_path.glob("*.pt"))) == 1
    fresh, _, _ = train_or_load(build, {"k": 2}, tmp_path, dict(kw, perturb=lambda m_, xb, yb: xb))
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), fresh.state_dict().values()))
