"""Issue 15: bad inputs that used to give a plausible number or a deep traceback. Each case either raises a
one-line error naming the value (and what is valid) or returns a documented, flagged value. Sizes are tiny.

Length (>400 lines): one test per case of the issue's list, grouped as the issue groups them, so the list and
its tests read side by side."""
from __future__ import annotations

import re
from pathlib import Path

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


@pytest.mark.parametrize("scale", [1e25, 1e-25])
def test_huge_or_tiny_finite_maps_are_scored_not_overflowed(scale):
    """Input gradients of a network with blown-up weights reach 1e20+: squaring them overflows float32, and a plain
    norm read inf (stability) and normalised the map to 0 (unit-norm stability 0.0, "perfectly stable")."""
    from empirical.measures import agreement as M
    from empirical.measures import sparsity

    a64 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b64 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a, b = (a64 * scale).float(), (b64 * scale).float()
    # references in float64 on the unscaled maps; float32 rounding of 64 terms: rtol 1e-5 (eps 6e-8 × 64 × margin)
    ref = (a64 - b64).flatten(1).norm(dim=1) * scale
    torch.testing.assert_close(M.stability_error(a, b).double(), ref, rtol=1e-5, atol=0)
    unit = lambda v: v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # noqa: E731
    torch.testing.assert_close(M.stability_error(a, b, normalize=True).double(),
                               (unit(a64) - unit(b64)).flatten(1).norm(dim=1), rtol=1e-5, atol=0)
    torch.testing.assert_close(sparsity.gini(a).double(), sparsity.gini(a64), rtol=1e-5, atol=0)


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
            m[-1, 0, 0, 0] = float("nan")  # the last row: image 2 (at x', of the last perturbation in the chunk)
        return m

    with pytest.raises(UserError) as e:
        _stability(explain)
    msg = _one_line(e)
    assert "1 NaN/inf" in msg and "image 2" in msg and ("perturbed" in msg) == (where == "x'")


# --------------------------------------------------------------------------- 4. a diverging training is an error
SPLIT_TINY = ["--pairs", "1", "--n", "64", "--epochs", "1", "--test-images", "2", "--draws", "2", "--ig-steps", "2",
              "--methods", "vg", "--no-progress", "--device", "cpu", "--batch-size", "32"]


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    from tests.fakedata import fake_fashion_mnist

    return fake_fashion_mnist(tmp_path_factory.mktemp("fm"), n_train=160, n_test=20)


def _exit_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse-level errors exit from cli.Parser
        return e.code


def test_divergence_names_epoch_step_and_loss_and_saves_nothing(tmp_path):
    from empirical.errors import TrainingDiverged
    from empirical.training.trainer import train_or_load

    x, y = _images(64)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e6, c=1e6)
    kw = dict(x_uint8=x, y=y, normalize=lambda v: (v - 0.5) * 40, cfg=cfg, progress=False)
    build = lambda: models.build("mlp", 1, 8, 2, "relu")  # noqa: E731
    for _ in range(2):  # the rerun meets the same clear error, not a cached NaN network
        with pytest.raises(TrainingDiverged) as e:
            train_or_load(build, {"k": 1}, tmp_path, kw)
        msg = _one_line(e)
        assert re.search(r"training diverged at epoch 1, step \d+ \(loss = (nan|inf|[0-9.]+e\+\d+)\); "
                         r"lower --lr \(now 1e\+06\)$", msg), msg
        assert list(tmp_path.iterdir()) == []  # no checkpoint, no epoch snapshot


def test_a_single_step_that_blows_the_weights_up_is_caught_after_its_update():
    """T = 1 (the issue's `--n 64 --epochs 1` at batch 64): the one training loss is computed before the update,
    so only the loss after it shows the explosion (weights of ~1e5 here, loss ~1e20, NaN a step later)."""
    from empirical.errors import TrainingDiverged

    x, y = _images(64)
    torch.manual_seed(0)
    net = models.build("lenet", 1, 8, 2, "relu")
    with pytest.raises(TrainingDiverged) as e:
        train(net, x, y, lambda v: (v - 0.3) / 0.35, TrainConfig(epochs=1, batch_size=64, lr=1e6, c=1e6),
              progress=False)
    assert re.search(r"diverged at epoch 1, step 1 \(loss after its update = .*\); lower --lr", _one_line(e))
    torch.manual_seed(0)
    net = models.build("lenet", 1, 8, 2, "relu")
    train(net, x, y, lambda v: (v - 0.3) / 0.35, TrainConfig(epochs=1, batch_size=64), progress=False)  # lr 0.05: fine


def test_a_cached_nan_checkpoint_is_retrained_not_trusted(tmp_path):
    from empirical.training.checkpoints import atomic_save, config_digest
    from empirical.training.trainer import train_or_load

    x, y = _images(16)
    build = lambda: models.build("mlp", 1, 8, 2, "tanh")  # noqa: E731
    bad = build()
    with torch.no_grad():
        bad[-1].weight.fill_(float("nan"))
    atomic_save({"state_dict": bad.state_dict(), "record": {"final_loss": None}}, tmp_path / f"{config_digest({'k': 1})}.pt")
    kw = dict(x_uint8=x, y=y, normalize=lambda v: v, cfg=TrainConfig(epochs=1, batch_size=8), progress=False)
    model, _, reused = train_or_load(build, {"k": 1}, tmp_path, kw)
    assert not reused and all(torch.isfinite(p).all() for p in model.parameters())


def test_lockstep_divergence_names_the_model(tmp_path):
    from empirical.errors import TrainingDiverged
    from empirical.training.lockstep import train_lockstep

    x, y = _images(32)
    torch.manual_seed(0)
    nets = [models.build("mlp", 1, 8, 2, "relu") for _ in range(2)]
    with pytest.raises(TrainingDiverged) as e:
        # inputs of ~1e38: the first layer's sums overflow float32 (max 3.4e38), so the loss is NaN at once
        train_lockstep(nets, [None, None], x, y, lambda v: v * 1e38,
                       TrainConfig(optimizer="adam", epochs=2, batch_size=8, lr=1e9), progress=False,
                       resumes=[tmp_path / "a.pt", tmp_path / "b.pt"])
    msg = _one_line(e)
    assert "of 2 diverged at epoch" in msg and "lower --lr (now 1e+09)" in msg
    assert not (tmp_path / "a.pt").exists()


def test_split_cli_divergence_is_one_line_and_the_rerun_says_the_same(fm, tmp_path, capsys):
    from empirical import split_stability

    argv = ["--data-root", str(fm), "--out", str(tmp_path / "o"), "--lr", "1e6", "--c", "1e6"] + SPLIT_TINY
    errs = []
    for _ in range(2):
        assert _exit_code(split_stability.main, argv) == 2
        errs.append(capsys.readouterr().err.strip())
    assert errs[0] == errs[1] and "\n" not in errs[0], errs
    # on these tiny fake images the loss stays finite while the weights (~lr) make the input gradient overflow:
    # caught where the maps are made, named as a divergence, and the network's checkpoint removed
    assert errs[0].startswith("error: training diverged") and "lower --lr (now 1e+06)" in errs[0]
    assert len(list((tmp_path / "o").rglob("*.pt"))) < 2  # the pair's other network may have trained fine
    assert not list((tmp_path / "o").rglob("*.partial.pt")) and not (tmp_path / "o" / "results.json").exists()


@pytest.mark.parametrize("flag", ["--weight-noise", "--lr", "--c", "--epochs"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_float_flags_reject_nan_and_inf(flag, value, capsys):
    from empirical import split_stability

    assert _exit_code(split_stability.main, [f"{flag}={value}", "--optimizer", "noisy_sgd"] + SPLIT_TINY) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"got {value!r}" in err and flag in err, err


def test_loo_cli_weight_noise_nan(capsys):
    from empirical import loo_stability

    assert _exit_code(loo_stability.main, ["--weight-noise", "nan"]) == 2
    assert "got 'nan'" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["weight_noise", "lr", "momentum", "weight_decay", "epochs"])
def test_train_config_rejects_nan(field):
    with pytest.raises(UserError) as e:
        TrainConfig(**{field: float("nan")}).validate()
    assert f"{field} must be a finite number, got nan" in _one_line(e)


def test_loo_training_divergence_names_the_step():
    from empirical.errors import TrainingDiverged
    from empirical.experiments.loo import replicas

    params = replicas.init_params([16, 8, 3], [0, 1])
    x = torch.randn(10, 16) * 10
    idx = torch.arange(6).repeat(2, 1)
    lab = torch.tensor([0, 1, 2, 0, 1, 2]).repeat(2, 1)
    order = replicas.sample_orders([0, 1], 6, 40)
    with pytest.raises(TrainingDiverged) as e:
        replicas.train(params, x, idx, lab, order, TrainConfig(lr=1e12, c=1e12, batch_size=1), "relu", (20, 40))
    assert "diverged at step " in _one_line(e) and "lower --lr (now 1e+12)" in str(e.value)


# --------------------------------------------------------------------------- 5. tracebacks → one-line errors
def test_idx_files_of_32x32_images_are_named_at_load(tmp_path, capsys):
    import numpy as np

    from empirical import split_stability
    from tests.fakedata import write_idx

    for prefix, n in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", np.zeros((n, 32, 32)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    with pytest.raises(UserError) as e:
        data.load("fashion-mnist", tmp_path)
    assert "32×32" in _one_line(e) and "28×28" in str(e.value)
    assert _exit_code(split_stability.main, ["--data-root", str(tmp_path), "--out", str(tmp_path / "o")]
                      + SPLIT_TINY) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "32×32" in err


def _entry_points():
    from empirical import loo_stability, smoothing_study, split_stability

    return {"split": split_stability.main, "smoothing": smoothing_study.main, "loo": loo_stability.main}


def _unwritable(kind: str, tmp_path):
    import os

    if kind == "file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f", "is a file"
    if kind == "under_a_file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f" / "run", "not a writable folder"
    # read-only: a folder of /proc, which not even root can write into (chmod does not stop root)
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o555)
        return tmp_path / "ro", "not a writable folder"
    return Path("/proc/self"), "not a writable folder"


@pytest.mark.parametrize("kind", ["file", "under_a_file", "read_only"])
@pytest.mark.parametrize("entry", ["split", "smoothing", "loo"])
def test_out_that_cannot_hold_results_is_one_line_before_any_work(entry, kind, tmp_path, capsys):
    import time

    out, needle = _unwritable(kind, tmp_path)
    t0 = time.time()
    assert _exit_code(_entry_points()[entry], ["--out", str(out), "--device", "cpu", "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1]  # the smoothing study's default preset is preceded by its GPU-sized note
    assert err.startswith(f"error: --out {out} ") and needle in err and sum("error" in x for x in lines) == 1, lines
    assert time.time() - t0 < 30  # before loading data or training (the default presets train for minutes)


def test_loo_report_prints_a_measured_zero(fm, tmp_path, capsys):
    """n = 16, T = 1: the replaced sample is drawn at the single step with chance 1/16, so (with this seed) A(S)
    and A(S') are the same network and the leave-one-out difference is exactly 0, a valid measurement."""
    from empirical import loo_stability

    argv = ["--n", "16", "--steps", "1", "--replicas", "2", "--sigma", "0.1", "--test-images", "3", "--draws", "2",
            "--ig-steps", "2", "--width", "8", "--downsample", "4", "--outlier-pool", "16", "--kinds", "random",
            "--optimizers", "sgd_ct", "--device", "cpu", "--no-progress", "--data-root", str(fm),
            "--out", str(tmp_path / "o")]
    assert loo_stability.main(argv) == 0
    out = capsys.readouterr().out
    res = __import__("json").loads((tmp_path / "o" / "results.json").read_text())
    assert any(b["measured_worst"] == 0 for b in res["bounds"])  # the case this test is about occurred
    assert "measured   -inf  consistent True" in out


def test_a_split_unit_holding_nulls_is_not_read_back():
    """An older run cached NaN measurements as null; reading them crashed the summary ("Could not infer dtype of
    NoneType"). Such a unit is invalid, so it is recomputed."""
    from empirical.experiments.split.run import _valid_unit

    good = {"pair": 0, "sigma": 0.0, "method": "vg", "per_image": {"stability": [0.1, 0.2]}, "mc_rel_stderr": [None]}
    assert _valid_unit(good)
    assert not _valid_unit(dict(good, per_image={"stability": [None, 0.2]}))
    assert not _valid_unit(dict(good, per_image=[])) and not _valid_unit([])


def test_unit_json_of_the_wrong_structure_is_recomputed(tmp_path):
    from empirical.runtime.cache import UnitCache

    cache = UnitCache(tmp_path)
    for stored in ("[]", "{}", '{"pair": 0}', "null", "not json", "\xff"):
        cache.put("k", {"pair": 0, "rows": []})
        cache.path("k").write_text(stored, encoding="latin-1")
        assert cache.get("k", keys=("pair", "rows")) is None, stored
        assert not cache.path("k").exists()  # removed: the recomputed unit replaces it
    cache.put("k", {"pair": 0, "rows": []})
    assert cache.get("k", keys=("pair", "rows")) == {"pair": 0, "rows": []}


@pytest.fixture(scope="module")
def split_run(fm, tmp_path_factory):
    """One tiny finished split run (shared by the resume and leftover tests)."""
    from empirical import split_stability

    out = tmp_path_factory.mktemp("split")
    argv = ["--data-root", str(fm), "--out", str(out), "--sigma", "0.2"] + SPLIT_TINY
    assert split_stability.main(argv) == 0
    return out, argv


def test_a_corrupt_unit_in_a_run_is_recomputed_on_rerun(split_run, capsys):
    import json

    from empirical import split_stability

    out, argv = split_run
    before = json.loads((out / "results.json").read_text())["summary"]
    # one measurement unit (a dict) and the network constants (a list of dicts) both replaced by `[]`
    units = sorted((out / "units").iterdir())
    unit = next(u for u in units if isinstance(json.loads(u.read_text()), dict))
    consts = next(u for u in units if isinstance(json.loads(u.read_text()), list))
    for u in (unit, consts):
        u.write_text("[]")
    assert split_stability.main(argv) == 0
    assert json.loads((out / "results.json").read_text())["summary"] == before  # recomputed, bit for bit
    assert isinstance(json.loads(unit.read_text()), dict) and json.loads(consts.read_text()) != []


# --------------------------------------------------------------------------- 6. leftovers of a killed run
def test_stale_temp_files_are_cleaned_at_the_next_start_and_only_ours(tmp_path):
    import os

    from empirical.runtime.files import prepare_out_dir

    (tmp_path / "units").mkdir()
    (tmp_path / "checkpoints").mkdir()
    ours = [tmp_path / ".results.json3k2j_x9a.tmp", tmp_path / "units" / ".abc.jsonq1w2e3r4.tmp",
            tmp_path / "checkpoints" / "0123456789abcdef.ptzx81_mm1.tmp",
            tmp_path / "checkpoints" / "0123.partial.ptabcdefgh.tmp"]
    fresh = tmp_path / ".summary.csvAAAAbbbb.tmp"  # a live write of another process: too young to be stale
    theirs = [tmp_path / "notes.tmp", tmp_path / "data.json.tmp", tmp_path / "sub" / ".x.json12345678.tmp"]
    (tmp_path / "sub").mkdir()
    for f in ours + theirs + [fresh]:
        f.write_text("x")
        if f is not fresh:
            os.utime(f, (1e9, 1e9))  # 2001: long dead
    prepare_out_dir(tmp_path)
    assert not any(f.exists() for f in ours)
    assert all(f.exists() for f in theirs + [fresh])


def test_results_are_written_readable_by_others_respecting_the_umask(split_run):
    import os
    import stat

    out, _ = split_run
    mask = os.umask(0)
    os.umask(mask)
    files = [out / "results.json", out / "summary.csv", out / "COMPLETE"] + list((out / "checkpoints").iterdir())
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f  # 0644 with the usual umask 022, not 0600


def test_unfinished_run_has_no_marker_and_is_reported_as_such(split_run, tmp_path, capsys):
    import shutil

    from empirical import split_stability
    from empirical.report.import_run import main as import_main
    from empirical.runtime.files import is_complete

    out, argv = split_run
    assert is_complete(out)
    run = tmp_path / "killed"
    shutil.copytree(out, run)
    (run / "COMPLETE").unlink()  # killed between results.json and the figures
    (run / "stability_vs_sigma.png").unlink(missing_ok=True)
    assert not is_complete(run)
    assert import_main([str(run), "x", "--root", str(tmp_path / "tree")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unfinished run" in err and "COMPLETE" in err and "\n" not in err
    assert not (tmp_path / "tree" / "results" / "x").exists()
    # a finished run whose results.json changed afterwards is no longer vouched for
    (tmp_path / "edited").mkdir()
    shutil.copy(out / "COMPLETE", tmp_path / "edited")
    (tmp_path / "edited" / "results.json").write_text("{}")
    assert not is_complete(tmp_path / "edited")
    # resuming the killed run says so, then finishes it
    argv = [a if a != str(out) else str(run) for a in argv]
    assert split_stability.main(argv) == 0
    assert "holds an unfinished run" in capsys.readouterr().err
    assert is_complete(run) and (run / "stability_vs_sigma.png").exists()


# --------------------------------------------------------------------------- 7. the demo's first screen
def test_data_found_is_said_once(monkeypatch, capsys):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("get_data", Path(__file__).resolve().parent.parent / "scripts" / "get_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "present", lambda folder=None: True)
    said = []
    for argv in (["--soft"], []):  # what `make demo` runs: setup (--soft), then data
        monkeypatch.setattr(sys, "argv", ["get_data.py"] + argv)
        assert mod.main() == 0
        said.append(capsys.readouterr().out)
    assert said[0] == "" and said[1].count("found") == 1


def test_no_progress_bars_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    import sys

    from empirical.runtime.progress import bar_disabled

    x, y = _images(64)
    train(models.build("mlp", 1, 8, 2, "tanh"), x, y, lambda v: v, TrainConfig(epochs=2, batch_size=8), progress=True)
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a TTY: tqdm draws nothing
    assert bar_disabled(False) is True and bar_disabled(True) is None  # None: tqdm decides by isatty()
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert bar_disabled(True) is False  # a notebook keeps its widget


def test_split_table_names_each_map_and_explains_vacuous(split_run, capsys):
    import json

    from empirical.experiments.split.cli import print_table

    out, _ = split_run
    print_table(json.loads((out / "results.json").read_text()))
    text = capsys.readouterr().out
    assert "SmoothGrad (σ = 0.2)" in text and "Simple-Grad (σ = 0)" in text
    rows = [line for line in text.splitlines() if line.startswith(("Theorem", "Proposition"))]
    # each row: its verdict in words, then "certified" or the numbered assumptions it lacks (footnoted below)
    assert rows and all(re.search(r" (vacuous|informative)  (certified|lacks \[[\d,]+\])$", line.rstrip()) for line in rows)
    assert "  [1] " in text
    assert "True" not in text and "False" not in text
    assert "vacuous: the bound is above the trivial bound" in text
