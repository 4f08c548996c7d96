"""The smoothing study end to end at a tiny size, and its errors on bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from empirical import smoothing_study
from empirical.data import FASHION_MNIST
from empirical.experiments.smoothing.config import REGIMES, SmoothingStudyConfig
from empirical.experiments.smoothing.regimes import build_regime, lockstep_group
from tests.fakedata import fake_fashion_mnist
from tests.notebooks import committed, run_notebook

TINY = ["--small", "--train-images", "120", "--eval-images", "6", "--robust-steps", "2", "--robust-images", "6",
        "--sg-draws", "2", "--ig-steps", "2", "--stab-samples", "2", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    return fake_fashion_mnist(tmp_path_factory.mktemp("fm"), n_train=200, n_test=40)


def test_every_regime_builds_with_its_block():
    cfg = SmoothingStudyConfig()
    for name, (flt, _) in REGIMES.items():
        net = build_regime(cfg, FASHION_MNIST, name).eval()
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        has_block = any(type(m).__name__ == "SmoothingBlock" for m in net.modules())
        assert has_block == (flt is not None), name


def test_tiny_study_end_to_end(fm, tmp_path):
    args = ["--data-root", str(fm), "--regimes", "N", "A", "NG", "--out", str(tmp_path)] + TINY
    assert smoothing_study.main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    for f in ("table.csv", "curves.csv", "ssim_vs_noise.png", "road_morf.png", "road_lerf.png", "tradeoff_accuracy.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    rows = res["table"]
    assert {(r["regime"], r["method"]) for r in rows} == {(g, m) for g in ("N", "A", "NG") for m in ("vg", "ig", "sg")}
    for r in rows:
        assert 0 <= r["gini"] <= 1 and 0 <= r["benign_accuracy"] <= 1 and 0 <= r["robust_accuracy"] <= 1
        assert r["curvature_mean"] >= 0
        if r["regime"] == "N":
            assert r["dG"] == 0 and r["dROAD"] == 0
    assert {m["eps"] for m in res["models"] if m["regime"] == "A"} == {0.1}
    assert {m["eps"] for m in res["models"] if m["regime"] == "N"} == {0.0}
    # re-run: checkpoints and evaluation units reused, same table
    assert smoothing_study.main(args) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert all(m["reused_checkpoint"] for m in again["models"])
    assert again["table"] == rows
    # the first model's evaluation kept, the others recomputed: the same numbers (the robust-accuracy attack
    # once drew its random start from the global RNG, whose state then depended on which units were cached)
    units = sorted((tmp_path / "units").glob("*.json"), key=lambda f: f.stat().st_mtime_ns)
    assert len(units) == 3
    for f in units[1:]:
        f.unlink()
    assert smoothing_study.main(args) == 0
    third = json.loads((tmp_path / "results.json").read_text())

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert strip(third["table"]) == strip(rows)


def test_eps_grid_trains_each_adversarial_regime_at_each_eps_and_plots_the_tradeoff(fm, tmp_path):
    args = ["--data-root", str(fm), "--regimes", "N", "A", "--eps-grid", "0.03", "--out", str(tmp_path)] + TINY
    assert smoothing_study.main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert sorted((m["regime"], m["eps"]) for m in res["models"]) == [("A", 0.03), ("A", 0.1), ("N", 0.0)]
    assert all(m["lockstep"]["models"] == 3 for m in res["models"])  # trained together
    assert {(r["regime"], r["eps"]) for r in res["table"]} == {("A", 0.03), ("A", 0.1), ("N", 0.0)}
    assert (tmp_path / "tradeoff_eps.png").stat().st_size > 0


def test_train_tf32_trains_under_tf32_keys_its_checkpoints_apart_and_restores_the_setting(fm, tmp_path, monkeypatch):
    from empirical import runtime as results
    from empirical.experiments.smoothing import run as smoothing_run
    seen = []
    real = smoothing_run.train_many_or_load

    def spy(*a, **kw):
        seen.append(results.fp32_precision()["cudnn_conv"])
        return real(*a, **kw)
    monkeypatch.setattr(smoothing_run, "train_many_or_load", spy)
    before = results.fp32_precision()
    args = ["--data-root", str(fm), "--regimes", "N", "A", "--out", str(tmp_path)] + TINY
    assert smoothing_study.main(args) == 0
    plain = json.loads((tmp_path / "results.json").read_text())
    assert smoothing_study.main(args + ["--train-tf32"]) == 0
    tf32 = json.loads((tmp_path / "results.json").read_text())
    assert seen == ["ieee", "tf32"] and results.fp32_precision() == before
    assert tf32["config"]["train_tf32"] is True and plain["config"]["train_tf32"] is False
    # its own checkpoints (other weights on a GPU), never the full-float32 ones
    assert not any(m["reused_checkpoint"] for m in tf32["models"])
    assert {m["key"] for m in tf32["models"]}.isdisjoint({m["key"] for m in plain["models"]})
    assert all(m["train_fp32"] == "n/a (CPU)" for m in tf32["models"])
    # on the CPU the setting changes nothing: the same weights, the same table

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert strip(tf32["table"]) == strip(plain["table"])


def test_seed_flag_seeds_training_and_evaluation_and_every_flag_has_help():
    cfg, _ = smoothing_study.config_from_args(smoothing_study.parser().parse_args(["--seed", "3", "--device", "cpu"]))
    assert cfg.seed == 3 and cfg.train.seed == 3
    cfg, _ = smoothing_study.config_from_args(smoothing_study.parser().parse_args(["--device", "cpu"]))
    assert cfg.seed == 0 and cfg.train.seed == 0  # the committed runs' checkpoints keep their keys
    missing = [a.option_strings for a in smoothing_study.parser()._actions if not a.help]
    assert missing == []


@pytest.mark.parametrize("args,needle", [
    (["--regimes", "X"], "X"),
    (["--eps", "-1"], "positive"),
    (["--eps", "2"], "(0, 1]"),
    (["--model", "mlp"], "mlp"),
    (["--sg-sigma", "nan"], "sigma"),
    (["--block-after", "nope"], "nope"),
])
def test_bad_input(args, needle, fm, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    r = subprocess.run([sys.executable, "-m", "empirical.smoothing_study", "--data-root", str(fm), "--out",
                        str(tmp_path / "o"), "--regimes", "N", "M1"] + TINY + args,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_robust_accuracy_attack_is_seeded_by_the_config(monkeypatch):
    """The robust-accuracy PGD draws its random start from a generator seeded by the study's seed, not from the
    global RNG (whose state depends on what ran before, so a cached evaluation unit would not reproduce)."""
    from empirical.attacks import pgd as attacks
    from empirical.experiments.smoothing import run as smoothing_run
    from empirical.experiments.smoothing.regimes import PixelModel
    from empirical.experiments.smoothing.run import evaluate_model

    seen = []

    def spy(*a, generator=None, **kw):
        seen.append(generator)
        raise KeyboardInterrupt  # only the call's arguments matter here
    monkeypatch.setattr(attacks, "robust_accuracy", spy)
    assert smoothing_run.attacks is attacks
    cfg = SmoothingStudyConfig(seed=4)
    pm = PixelModel(build_regime(cfg, FASHION_MNIST, "N"), FASHION_MNIST).eval()
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(cfg, pm, x, y, torch.arange(2), x, y, "N", 0.0, 1.0)
    assert isinstance(seen[0], torch.Generator) and seen[0].initial_seed() == 4 + 5


def test_notebook_reads_the_committed_runs():
    nb, text = run_notebook("smoothing_study.ipynb", committed("smoothing_study-gpu"))
    assert "[VG] adversarial training makes maps sparser (dG > 0): 6/6 regimes" in text
    assert "[VG] A less stable than N by ROS: yes" in text and "no ε grid in this run" in text
    assert any(o.get("output_type") == "display_data" for c in nb.cells for o in c.get("outputs", []))
    _, text = run_notebook("smoothing_study.ipynb", committed("smoothing_study-epsgrid-medium"))
    assert "[VG] Gini of A over ε = [0.01, 0.03, 0.06, 0.1]: [0.572, 0.606, 0.625, 0.631]" in text


def test_small_networks_train_together_large_ones_one_at_a_time():
    assert lockstep_group(SmoothingStudyConfig(model="lenet"), 7) == 7
    assert lockstep_group(SmoothingStudyConfig(model="wrn28_10", dataset="cifar10"), 7) == 1
    assert lockstep_group(SmoothingStudyConfig(model="resnet18"), 25) == 1
