"""Lockstep training (empirical.training.lockstep) is train() with a PGD perturbation, model by model, bit for bit on the
CPU; it resumes from its own and from train()'s epoch snapshots; on a GPU its CUDA graphs match eager steps."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from empirical.attacks import pgd as attacks
from empirical.errors import UserError
from empirical.nets.smoothing import SmoothingBlock
from empirical.training.lockstep import AttackSpec, train_lockstep, train_many_or_load
from empirical.training.trainer import TrainConfig, train, train_or_load

CFG = TrainConfig(optimizer="adam", lr=1e-2, batch_size=16, epochs=3, seed=3)
SPECS = (None, AttackSpec(eps=0.1, step_size=0.02, steps=4),  # natural; PGD keeping the best iterate
         AttackSpec(eps=0.1, step_size=0.125, steps=1, use_best=False),  # FGSM with random start
         AttackSpec(eps=0.05, step_size=0.01, steps=3, use_best=True, random_start=False))


def _data():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    y = (x.float()[:, :, 2:6, 2:6].mean((1, 2, 3)) > x.float().mean((1, 2, 3))).long()
    return x, y


def _net(filter_name="median"):
    return nn.Sequential(OrderedDict(
        block1=nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        smooth=SmoothingBlock(4, filter_name),
        head=nn.Sequential(nn.Flatten(), nn.Linear(64, 2))))


def _build(k):
    torch.manual_seed(CFG.seed)
    return _net(("median", "mean", "nonlocal_gaussian", "embedded_gaussian")[k % 4])


def _perturb(spec):
    if spec is None:
        return None

    def perturb(model, xb, yb):
        return attacks.pgd_linf(model, NORM, xb, yb, spec.eps, spec.step_size, spec.steps,
                                random_start=spec.random_start, use_best=spec.use_best)
    return perturb


def NORM(v):
    return (v - 0.3) / 0.4


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_lockstep_equals_train_model_by_model():
    x, y = _data()
    alone = []
    for k, spec in enumerate(SPECS):
        m = _build(k)
        rec = train(m, x, y, NORM, CFG, perturb=_perturb(spec), progress=False)
        alone.append((m, rec))
    together = [_build(k) for k in range(len(SPECS))]
    recs = train_lockstep(together, SPECS, x, y, NORM, CFG, progress=False)
    for (m, rec), m2, rec2 in zip(alone, together, recs):
        assert _same(m, m2)
        assert rec2["final_loss"] == rec["final_loss"] and rec2["T"] == rec["T"] == 12
        assert rec2["lockstep"]["models"] == 4 and rec2["lockstep"]["cuda_graphs"] is False
    # the models did train: the adversarially trained ones moved away from the natural one
    assert not _same(alone[0][0], _build(0))


def _stop_after(model, n):
    """Make `model` raise KeyboardInterrupt at its n-th forward call (an interrupted run); a hook, so the
    state dict keeps its keys."""
    calls = {"n": 0}

    def hook(module, args):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
    model.register_forward_pre_hook(hook)


def test_interrupted_lockstep_resumes_bit_for_bit(tmp_path):
    x, y = _data()
    whole = [_build(k) for k in range(3)]
    train_lockstep(whole, SPECS[:3], x, y, NORM, CFG, progress=False)
    parts = [tmp_path / f"{k}.partial.pt" for k in range(3)]
    stopped = [_build(k) for k in range(3)]
    _stop_after(stopped[2], 19)  # FGSM: 2 forwards per step, so model 2 dies in step 10, in epoch 3
    with pytest.raises(KeyboardInterrupt):
        train_lockstep(stopped, SPECS[:3], x, y, NORM, CFG, resumes=parts, progress=False)
    assert all(torch.load(p, weights_only=False)["t"] == 8 for p in parts)  # epochs start at steps 1, 5, 9
    resumed = [_build(k) for k in range(3)]
    for k in range(3):
        resumed[k].load_state_dict(torch.load(parts[k], weights_only=False)["model"])  # any start: state wins
    torch.manual_seed(99)
    recs = train_lockstep(resumed, SPECS[:3], x, y, NORM, CFG, resumes=parts, progress=False)
    assert all(r["resumed_after_step"] == 8 for r in recs)
    assert all(_same(a, b) for a, b in zip(whole, resumed))


def test_a_run_killed_while_writing_its_snapshots_resumes_from_the_last_common_boundary(tmp_path, monkeypatch):
    """Killed after model 0 saved its step-8 snapshot but before model 1 did: every model goes back to step 4
    (each keeps its previous snapshot), and the result is still bit-identical to an uninterrupted run."""
    import empirical.training.lockstep as ls
    x, y = _data()
    whole = [_build(k) for k in range(3)]
    train_lockstep(whole, SPECS[:3], x, y, NORM, CFG, progress=False)
    parts = [tmp_path / f"{k}.partial.pt" for k in range(3)]
    real, calls = ls.atomic_save, {"n": 0}

    def dying_save(obj, path):
        calls["n"] += 1
        if calls["n"] == 5:  # boundary t=4: saves 1-3; boundary t=8: model 0 saves (4), model 1 dies (5)
            raise KeyboardInterrupt
        real(obj, path)
    monkeypatch.setattr(ls, "atomic_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train_lockstep([_build(k) for k in range(3)], SPECS[:3], x, y, NORM, CFG, resumes=parts, progress=False)
    monkeypatch.setattr(ls, "atomic_save", real)
    assert torch.load(parts[0], weights_only=False)["t"] == 8 and not parts[1].exists()
    resumed = [_build(k) for k in range(3)]
    recs = train_lockstep(resumed, SPECS[:3], x, y, NORM, CFG, resumes=parts, progress=False)
    assert all(r["resumed_after_step"] == 4 for r in recs)
    assert all(_same(a, b) for a, b in zip(whole, resumed))


def test_lockstep_resumes_a_snapshot_written_by_train(tmp_path):
    """The snapshot formats agree: train() stopped mid-run, lockstep finishes it, same weights as train() alone."""
    x, y = _data()
    spec = SPECS[1]
    whole = _build(1)
    train(whole, x, y, NORM, CFG, perturb=_perturb(spec), progress=False)
    part = tmp_path / "p.partial.pt"
    calls = {"n": 0}

    def stop(model, xb, yb):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return _perturb(spec)(model, xb, yb)
    with pytest.raises(KeyboardInterrupt):
        train(_build(1), x, y, NORM, CFG, perturb=stop, progress=False, resume=part)
    m = _build(1)
    (rec,) = train_lockstep([m], [spec], x, y, NORM, CFG, resumes=[part], progress=False)
    assert rec["resumed_after_step"] == 8 and _same(whole, m)


def test_train_many_or_load_shares_checkpoints_with_train_or_load(tmp_path):
    x, y = _data()
    kw = dict(x_uint8=x, y=y, normalize=NORM, cfg=CFG, progress=False)
    parts = [{"k": k} for k in range(3)]
    builds = [lambda k=k: _net(("median", "mean", "nonlocal_gaussian")[k]) for k in range(3)]
    first = train_many_or_load(builds, parts, SPECS[:3], tmp_path, kw)
    assert [r for _, _, r in first] == [False] * 3 and list(tmp_path.glob("*.partial.pt*")) == []
    again = train_many_or_load(builds, parts, SPECS[:3], tmp_path, kw)
    assert [r for _, _, r in again] == [True] * 3
    assert all(_same(a[0], b[0]) for a, b in zip(first, again))
    m, rec, reused = train_or_load(builds[1], parts[1], tmp_path, dict(kw, perturb=_perturb(SPECS[1])))
    assert reused and _same(m, first[1][0]) and rec["key"] == first[1][1]["key"]


def test_train_many_or_load_trains_only_the_missing_models_and_says_how_many(tmp_path, monkeypatch):
    from empirical.training import lockstep
    x, y = _data()
    kw = dict(x_uint8=x, y=y, normalize=NORM, cfg=CFG, progress=False, desc="train {n} of 3 models")
    parts = [{"k": k} for k in range(3)]
    builds = [lambda k=k: _net(("median", "mean", "nonlocal_gaussian")[k]) for k in range(3)]
    train_many_or_load(builds[1:2], parts[1:2], SPECS[1:2], tmp_path, kw)
    seen = []
    real = lockstep.train_lockstep

    def spy(models, *a, **k):
        seen.append((len(models), k["desc"]))
        return real(models, *a, **k)
    monkeypatch.setattr(lockstep, "train_lockstep", spy)
    out = train_many_or_load(builds, parts, SPECS[:3], tmp_path, kw)
    assert [r for _, _, r in out] == [False, True, False] and seen == [(2, "train 2 of 3 models")]


def test_bad_input_is_refused_before_training():
    x, y = _data()
    with pytest.raises(UserError, match="adam"):
        train_lockstep([_build(0)], [None], x, y, NORM, TrainConfig(optimizer="sgd_ct"), progress=False)
    with pytest.raises(UserError, match="one attack"):
        train_lockstep([_build(0), _build(1)], [None], x, y, NORM, CFG, progress=False)
    with pytest.raises(UserError, match="bad training attack"):
        train_lockstep([_build(0)], [AttackSpec(eps=2.0, step_size=0.1, steps=3)], x, y, NORM, CFG, progress=False)
    with pytest.raises(UserError, match="CUDA graphs need"):
        train_lockstep([_build(0)], [None], x, y, NORM, CFG, graphs=True, progress=False)
    with pytest.raises(UserError, match="exceeds"):
        train_lockstep([_build(0)], [None], x[:8], y[:8], NORM, CFG, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_graphs_match_eager_steps(tmp_path):
    """Graph replays compute what the eager steps compute (same capturable Adam); IEEE float32 so that TF32
    rounding does not blur the comparison. The warm-up before capture leaves no trace in the weights."""
    from empirical.cli import resolve_device
    dev = resolve_device("cuda")
    x, y = _data()
    eager = [_build(k) for k in range(len(SPECS))]
    r_e = train_lockstep(eager, SPECS, x, y, NORM, CFG, device=dev, graphs=False, progress=False)
    graphed = [_build(k) for k in range(len(SPECS))]
    parts = [tmp_path / f"{k}.pt" for k in range(len(SPECS))]
    r_g = train_lockstep(graphed, SPECS, x, y, NORM, CFG, device=dev, graphs=True, resumes=parts, progress=False)
    assert all(r["lockstep"]["cuda_graphs"] for r in r_g)
    for a, b, re_, rg in zip(eager, graphed, r_e, r_g):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
        assert rg["final_loss"] == pytest.approx(re_["final_loss"], rel=1e-4)
    # and a graphed run resumes from its snapshots (written at epoch boundaries) to the same weights
    again = [_build(k) for k in range(len(SPECS))]
    r_a = train_lockstep(again, SPECS, x, y, NORM, CFG, device=dev, graphs=True, resumes=parts, progress=False)
    assert all(r["resumed_after_step"] == 8 for r in r_a)
    for a, b in zip(graphed, again):
        for p, q in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)
