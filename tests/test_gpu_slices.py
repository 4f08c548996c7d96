"""GPU work in slices (docs/gpu_runs.md): a training stops at a wall-clock deadline and resumes bit for bit; a slice's
returned files alone let the next slice finish; the packed state keeps within the device tool's limits.

Every comparison here is exact (torch.equal, ==): the interrupted and the uninterrupted runs execute the same
kernels in the same order on the same CPU in one test session, so there is no rounding difference to allow for.
On a GPU the same holds only as far as its kernels are deterministic (cuDNN may pick other algorithms per process).
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from empirical.data import DEBIAN_FASHION_MNIST
from empirical.errors import DeadlineReached, UserError
from empirical.runtime import slices
from empirical.training.lockstep import AttackSpec, train_lockstep
from empirical.training.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CFG = TrainConfig(optimizer="adam", lr=1e-2, batch_size=16, epochs=2.5, seed=5)  # 64 images: 10 steps, 3 epochs
SPECS = (None, AttackSpec(eps=0.1, step_size=0.02, steps=3),
         AttackSpec(eps=0.1, step_size=0.125, steps=1, use_best=False))


def _data():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(64, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    y = (x.float()[:, :, 2:6, 2:6].mean((1, 2, 3)) > x.float().mean((1, 2, 3))).long()
    return x, y


def _net():
    torch.manual_seed(CFG.seed)
    return nn.Sequential(OrderedDict(block1=nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                                     head=nn.Sequential(nn.Flatten(), nn.Linear(64, 2))))


def norm(v):
    return (v - 0.5) / 0.3


def test_lockstep_deadline_stops_at_every_step_and_resumes_bit_for_bit(tmp_path):
    """A deadline already past stops each call after exactly one step (mid-epoch and at epoch boundaries alike:
    10 steps of 4 per epoch); the chain of calls ends with the uninterrupted run's weights and losses."""
    x, y = _data()
    ref = [_net() for _ in SPECS]
    ref_recs = train_lockstep(ref, SPECS, x, y, norm, CFG, progress=False)
    resumes = [tmp_path / f"m{k}.partial.pt" for k in range(len(SPECS))]
    calls = 0
    while True:
        models = [_net() for _ in SPECS]  # a fresh process each slice: the weights come from the snapshots only
        calls += 1
        try:
            recs = train_lockstep(models, SPECS, x, y, norm, CFG, resumes=resumes, progress=False,
                                  deadline=time.time() - 1)
            break
        except DeadlineReached as e:
            assert f"after step {calls} of 10" in str(e)
    assert calls == 10 and recs[0]["resumed_after_step"] == 9
    for m, r, rec, ref_rec in zip(models, ref, recs, ref_recs):
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), r.state_dict().values()))
        assert rec["final_loss"] == ref_rec["final_loss"]


def test_train_deadline_resumes_bit_for_bit(tmp_path):
    x, y = _data()
    ref = _net()
    ref_rec = train(ref, x, y, norm, CFG, progress=False)
    resume = tmp_path / "one.partial.pt"
    m = _net()
    with pytest.raises(DeadlineReached, match="after step 1 of 10"):
        train(m, x, y, norm, CFG, progress=False, resume=resume, deadline=time.time() - 1)
    m = _net()
    rec = train(m, x, y, norm, CFG, progress=False, resume=resume)
    assert rec["resumed_after_step"] == 1 and rec["final_loss"] == ref_rec["final_loss"]
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))


def test_deadline_needs_a_resume_file():
    x, y = _data()
    with pytest.raises(UserError, match="resume file"):
        train(_net(), x, y, norm, CFG, progress=False, deadline=time.time())
    with pytest.raises(UserError, match="resume file"):
        train_lockstep([_net()], [None], x, y, norm, CFG, progress=False, deadline=time.time())


def _run_folder(root: Path, partial_bytes: int) -> Path:
    """A run folder like a study's: a finished unit, a finished checkpoint, a training's snapshots. The bytes are
    random (incompressible), so packed sizes are predictable."""
    rng = np.random.default_rng(0)
    run = root / "gpu-job"
    (run / "units").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "units" / "u1.json").write_text(json.dumps({"rows": [1, 2, 3]}))
    (run / "checkpoints" / "done.pt").write_bytes(rng.bytes(3000))
    (run / "checkpoints" / "k.partial.pt").write_bytes(rng.bytes(partial_bytes))
    (run / "checkpoints" / "k.partial.pt.prev").write_bytes(rng.bytes(partial_bytes))
    (run / "checkpoints" / "k.partial.ptxyz.tmp").write_bytes(b"torn")
    return run


def test_pack_keeps_within_the_limits_and_unpacks_the_same_files(tmp_path):
    lim = slices.Limits(files=6, file_bytes=4096, total_bytes=256 * 1024, carry_bytes=256 * 1024, reserved_files=3)
    run = _run_folder(tmp_path, partial_bytes=6000)
    m = slices.pack(run, tmp_path / "out", "job", carry_budget=lim.carry_bytes, exit_code=75, limits=lim)
    parts = sorted((tmp_path / "out").glob("job.state.tgz.*"))
    assert m["level"] == 0 and not m["dropped"] and not m["complete"] and len(parts) == len(m["parts"]) == 3
    assert all(p.stat().st_size <= lim.file_bytes for p in parts)
    carry = tmp_path / "carry"
    slices.stash(tmp_path / "out", carry, "job")
    back = tmp_path / "fresh" / "gpu-job"
    slices.unpack(carry, back, "job")
    got = {p.relative_to(back): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    want = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()
            if not p.name.endswith((".tmp", ".prev"))}  # a clean stop (75) needs no previous snapshot
    assert got == want
    with tarfile_names(tmp_path / "out" / "job.results.tar.gz") as names:
        assert "gpu-job/units/u1.json" in names and not any("checkpoints" in n for n in names)
    # a damaged part is named, not extracted
    (carry / "job" / "job.state.tgz.01").write_bytes(b"x")
    with pytest.raises(SystemExit, match="job.state.tgz.01 is missing or damaged"):
        slices.unpack(carry, tmp_path / "again", "job")


def test_pack_drops_the_training_in_progress_when_it_does_not_fit(tmp_path, capsys):
    lim = slices.Limits(files=6, file_bytes=4096, total_bytes=256 * 1024, carry_bytes=256 * 1024, reserved_files=3)
    run = _run_folder(tmp_path, partial_bytes=20000)  # > 3 parts of 4 KiB
    m = slices.pack(run, tmp_path / "out", "job", carry_budget=lim.carry_bytes, exit_code=1, limits=lim)
    assert m["level"] == 1 and m["dropped"] == ["checkpoints/k.partial.pt", "checkpoints/k.partial.pt.prev"]
    assert m["bytes"] <= 3 * 4096 and "trainings in progress left out" in capsys.readouterr().err
    m = slices.pack(run, tmp_path / "out2", "job", carry_budget=2000, exit_code=1, limits=lim)  # the carry binds
    assert m["level"] == 2 and "checkpoints/done.pt" in m["dropped"] and m["bytes"] <= 2000
    with pytest.raises(SystemExit, match="exceed"):
        slices.pack(run, tmp_path / "out3", "job", carry_budget=10, exit_code=1, limits=lim)


class tarfile_names:
    def __init__(self, path):
        import tarfile
        self.tf = tarfile.open(path)

    def __enter__(self):
        return self.tf.getnames()

    def __exit__(self, *exc):
        self.tf.close()


def _tiny_fashion_mnist(dest: Path, n_train=192, n_test=64) -> Path:
    """The first images of the installed Fashion-MNIST as IDX files: the same loader, a data set of seconds."""
    dest.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            src = DEBIAN_FASHION_MNIST / f"{prefix}-{kind}.gz"
            if not src.exists():
                pytest.skip(f"Fashion-MNIST not installed ({src})")
            raw = gzip.open(src).read()
            nd = raw[3]
            dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
            body = np.frombuffer(raw[4 + 4 * nd:], np.uint8).reshape(dims)[:n]
            (dest / f"{prefix}-{kind}").write_bytes(bytes([0, 0, 8, nd]) + struct.pack(">" + "I" * nd, *body.shape)
                                                   + body.tobytes())
    return dest


def _slice(tmp: Path, name: str, carry: Path, **env) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "GPU_RUNS_TINY": "1", "SLICE_SMOKE": "0",
         "FASHION_MNIST_DIR": str(tmp / "data"), "GPU_RUNS_DIR": str(tmp / f"runs-{name}"),
         "OUT": str(tmp / f"out-{name}"), "GPU_SLICES_CARRY": str(carry),
         # one adversarially trained LeNet (its state, weights and Adam's moments, is 39 MB: within the limits)
         # for 3 steps; the smallest evaluation that still fills every table column
         "PAPER_ARGS": "--regimes A --epochs 1 --train-images 96 --methods vg ig --eval-images 4 --stab-samples 2 "
                       "--robust-images 4 --robust-steps 2 --road-percentages 0.5 --no-progress", **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_runs.sh"), "slice", "smoothing-paper"], env=e,
                          cwd=ROOT, capture_output=True, text=True)


def _numbers(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    drop = {"seconds", "train_seconds", "resumed_after_step", "lockstep", "reused_checkpoint"}  # how, not what
    strip = (lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows])
    return {"table": strip(res["table"]), "curves": res["curves"], "models": strip(res["models"]),
            "eval": res["eval_indices"]}


@pytest.mark.slow
def test_two_slices_equal_one_uninterrupted_run(tmp_path):
    """GPU_RUNS_TINY=1, the paper smoothing job: slice 1 stops after one training step (its time limit), returns
    its files; slice 2 starts from those files alone (a fresh run folder, a carry folder holding only them) and
    finishes; the results and weights equal one slice that ran the job uninterrupted."""
    _tiny_fashion_mnist(tmp_path / "data")
    s1 = _slice(tmp_path, "1", tmp_path / "carry-1", SLICE_TIME_LIMIT="0.001")
    assert s1.returncode == 75, s1.stdout + s1.stderr
    assert "stopped at its deadline after step 1 of 3" in s1.stdout
    returned = sorted(p.name for p in (tmp_path / "out-1").iterdir())
    assert len(returned) <= slices.DEVICE.files and sum((tmp_path / "out-1" / n).stat().st_size
                                                        for n in returned) <= slices.DEVICE.total_bytes
    shutil.rmtree(tmp_path / "runs-1")  # the machine is bare again: only the returned files survive
    slices.stash(tmp_path / "out-1", tmp_path / "carry-2", "smoothing-paper")
    s2 = _slice(tmp_path, "2", tmp_path / "carry-2")
    assert s2.returncode == 0, s2.stdout + s2.stderr
    s0 = _slice(tmp_path, "0", tmp_path / "carry-none")
    assert s0.returncode == 0, s0.stdout + s0.stderr
    r2, r0 = tmp_path / "runs-2" / "gpu-smoothing-paper", tmp_path / "runs-0" / "gpu-smoothing-paper"
    assert json.loads((r2 / "results.json").read_text())["models"][0]["resumed_after_step"] == 1
    assert _numbers(r2) == _numbers(r0)
    (c2,), (c0,) = list((r2 / "checkpoints").glob("*.pt")), list((r0 / "checkpoints").glob("*.pt"))
    assert c2.name == c0.name
    w2, w0 = (torch.load(c, weights_only=False)["state_dict"] for c in (c2, c0))
    assert all(torch.equal(w2[k], w0[k]) for k in w0)
    assert json.loads((tmp_path / "out-2" / "smoothing-paper.state.json").read_text())["complete"]


def test_plan_projects_from_the_committed_benchmark_fields():
    from empirical.runtime import slice_plan as sp
    bench = json.loads((ROOT / "results/benchmarks/gpu-h100.json").read_text())
    rows = {r["slice"]: r for r in sp.plan(bench, tree_bytes=12 * slices.MIB, data_bytes=30 * slices.MIB,
                                           wheel_bytes=8 * slices.MIB)}
    assert rows["bench"]["work_s"][0] == bench["wall_seconds"] and rows["bench"]["slices"] == (1, 1)
    ceiling = next(r for r in bench["ceiling"] if r["case"] == "lenet-28")
    sg = next(r for r in bench["saliency"] if r["case"] == "lenet-28" and r["method"] == "sg")["ours"]["evals_per_s"]
    assert sp.SMOOTH_TRAIN_EVALS == 93_750 * 32 * (6 * 41 + 1)
    lo, hi = rows["smoothing-paper"]["work_s"]
    assert lo == pytest.approx(sp.SMOOTH_TRAIN_EVALS / ceiling["evals_per_s"] + sp.SMOOTH_EVAL_EVALS / sg, rel=1e-12)
    eager = ceiling["evals_per_s_by_batch"]["32"]
    assert hi == pytest.approx(sp.SMOOTH_TRAIN_EVALS / eager + sp.SMOOTH_EVAL_EVALS / sg, rel=1e-12)
    # seven models' weights and Adam moments (262 MiB) against 64 - 12 - 30 MiB: no slice chain, only one slice
    smooth = rows["smoothing-paper"]
    assert smooth["slices"] == (None, None) and smooth["room_bytes"] == 22 * slices.MIB
    assert rows["split-50"]["slices"][0] >= 2 and rows["leaderboard-paper"]["work_s"] is None
    # once the bench slice has measured the lockstep protocol on a GPU, its projection is used instead
    bench["training"]["smoothing_protocol"] = {"lockstep": {"projected_paper_hours": 1.0},
                                               "lockstep_tf32": {"projected_paper_hours": 0.25}}
    lo, hi = next(r for r in sp.plan(bench, 0, 0, 0) if r["slice"] == "smoothing-paper")["work_s"]
    assert (lo, hi) == pytest.approx((900 + sp.SMOOTH_EVAL_EVALS / sg, 3600 + sp.SMOOTH_EVAL_EVALS / sg), rel=1e-12)
    assert sp._slices(sp.WORK_S * 2.5, True, None) == 3 and sp._slices(sp.WORK_S * 0.5, False, None) == 1
    assert sp._slices(sp.WORK_S + 1, False, sp.WORK_S / 2) == 2 and sp._slices(sp.WORK_S * 3, False, None) is None


def test_plan_handoff_size_is_a_real_snapshot_size(tmp_path):
    """The plan's hand-off (weights + Adam's two moments, float32) is what a paper LeNet's snapshot weighs on disk,
    within 1 % (the pickle's keys, the batch order, the losses)."""
    from empirical import data as data_mod
    from empirical.experiments.smoothing.config import SmoothingStudyConfig
    from empirical.experiments.smoothing.regimes import build_regime
    from empirical.runtime import slice_plan as sp
    cfg = TrainConfig(optimizer="adam", lr=1e-3, batch_size=2, epochs=1, seed=0)
    torch.manual_seed(0)
    net = build_regime(SmoothingStudyConfig(), data_mod.FASHION_MNIST, "M1")
    n = sum(p.numel() for p in net.parameters())
    assert n == sp.LENET_PARAMS
    x = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(DeadlineReached):
        train_lockstep([net], [None], x, torch.zeros(8, dtype=torch.long), norm, cfg, progress=False,
                       resumes=[tmp_path / "s.pt"], deadline=time.time() - 1)
    assert (tmp_path / "s.pt").stat().st_size == pytest.approx(n * 4 * 3, rel=0.01)


def test_plan_refuses_a_cpu_benchmark():
    from empirical.runtime import slice_plan as sp
    bench = json.loads((ROOT / "results/benchmarks/cpu-quick.json").read_text())
    with pytest.raises(UserError, match="needs a full GPU benchmark.*'quick' preset on 'cpu'"):
        sp.plan(bench, 0, 0, 0)


@pytest.mark.parametrize("args", [["slice"], ["slice", "split", "loo"], ["slice", "smoke"], ["slice", "train"]])
def test_slice_takes_one_job(args):
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_runs.sh"), *args], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and "usage" in res.stderr


@pytest.mark.slow
def test_smoothing_study_stops_between_units_and_resumes(tmp_path):
    """The evaluation honours the deadline between two models' units (after the first of the call): call 1 trains
    the two models (one step each) and evaluates N, then stops; call 2 evaluates A; the numbers equal one call's."""
    from empirical.experiments.smoothing import cli as smoothing_cli
    from empirical.experiments.smoothing.run import run
    data = _tiny_fashion_mnist(tmp_path / "data", n_train=64, n_test=32)
    args = smoothing_cli.parser().parse_args(
        ["--small", "--regimes", "N", "A", "--epochs", "1", "--train-images", "32", "--methods", "vg",
         "--eval-images", "2", "--stab-samples", "2", "--robust-images", "2", "--robust-steps", "1",
         "--road-percentages", "0.5", "--device", "cpu", "--data-root", str(data)])
    cfg, _ = smoothing_cli.config_from_args(args)
    with pytest.raises(DeadlineReached, match="after 1 of 2 models"):
        run(cfg, tmp_path / "sliced", progress=False, deadline=time.time() - 1)
    assert len(list((tmp_path / "sliced" / "units").glob("*.json"))) == 1
    run(cfg, tmp_path / "sliced", progress=False, deadline=time.time() - 1)
    run(cfg, tmp_path / "whole", progress=False)
    assert _numbers(tmp_path / "sliced") == _numbers(tmp_path / "whole")
