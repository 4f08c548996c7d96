"""Claim-4 machinery: per-image curvature and stability columns and their Spearman correlations."""
import numpy as np
import pytest
import scipy.stats as ss
import torch
from torch import nn

from empirical.errors import UserError
from empirical.experiments.curvature.claims import CurvatureClaimConfig, curvature_claim
from empirical.measures.curvature import cure_curvature, gradient_variation
from empirical.measures.relative_stability import relative_input_stability

CFG = CurvatureClaimConfig(radii=(0.5, 2.0), n_draws=2, betas=(5.0,), hessian_iters=5, stab_samples=3,
                           resamples=300, seed=1)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 3)).eval()


def _vg(model):
    def explain(x, target):
        x = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)[0]
    return explain


def test_columns_are_the_measures_and_each_rho_is_scipys():
    net = _net()
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = net(x).argmax(1)
    c = torch.linspace(0, 1, 10).numpy()
    out = curvature_claim(net, x, y, _vg(net), CFG, extra_stability={"planted": c})
    cur, stab = out["curvature"], out["stability"]
    assert set(cur) == {"gv_mean_h0.5", "gv_max_h0.5", "gv_mean_h2", "gv_max_h2", "cure_h0.5", "cure_h2",
                        "softplus_hessian_b5"}
    assert set(stab) == {"ris", "ros", "planted"}
    # the same calls as inside (same batch shapes: bit for bit the same numbers on any kernel path)
    gv = gradient_variation(net, x, y, [0.5, 2.0], n_draws=2, seed=1)
    assert np.allclose(cur["gv_max_h2"], gv.max[1].numpy(), rtol=0, atol=0)
    assert np.allclose(cur["cure_h0.5"], cure_curvature(net, x, y, [0.5, 2.0]).per_step[0].numpy(), rtol=0, atol=0)
    ris = relative_input_stability(_vg(net), net, x, y, radius=0.05, n_samples=3, seed=1)
    assert np.allclose(stab["ris"], ris.score.numpy(), rtol=0, atol=0, equal_nan=True)
    assert len(out["correlations"]) == 7 * 3
    for r in out["correlations"]:
        a, b = np.asarray(cur[r["curvature"]]), np.asarray(stab[r["stability"]])
        keep = np.isfinite(a) & np.isfinite(b)
        assert r["n_images"] == keep.sum()
        if r["estimate"] is None:
            assert np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0
            continue
        assert r["estimate"] == pytest.approx(ss.spearmanr(a[keep], b[keep]).statistic, rel=1e-12)
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"] and r["unit"] == "image"


def test_a_planted_monotone_link_is_found_with_its_sign():
    net = _net()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = net(x).argmax(1)
    base = curvature_claim(net, x, y, _vg(net), CFG)
    g = np.asarray(base["curvature"]["gv_mean_h2"])
    out = curvature_claim(net, x, y, _vg(net), CFG, extra_stability={"up": g ** 3, "down": -g})
    rows = {r["stability"]: r for r in out["correlations"] if r["curvature"] == "gv_mean_h2"}
    assert rows["up"]["estimate"] == pytest.approx(1.0) and rows["up"]["verdict"] == "more curvature, less stable"
    assert rows["down"]["estimate"] == pytest.approx(-1.0) and rows["down"]["verdict"] == "more curvature, more stable"


def test_claim_rejects_bad_input():
    net = _net()
    x = torch.rand(4, 1, 8, 8)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(UserError, match="radii"):
        curvature_claim(net, x, y, _vg(net), CurvatureClaimConfig(radii=()))
    with pytest.raises(UserError, match="y must"):
        curvature_claim(net, x, y[:2], _vg(net), CFG)
    with pytest.raises(UserError, match="extra_stability"):
        curvature_claim(net, x, y, _vg(net), CFG, extra_stability={"e": np.zeros(3)})


def test_cli_over_a_smoothing_study_folder(tmp_path):
    """Checkpoints in the smoothing study's format (no training: seeded initial weights, a little noise per model),
    test labels set to the first model's predictions so every model classifies most images correctly."""
    import json

    from empirical import curvature_claims
    from empirical.data import load
    from empirical.experiments.smoothing.config import SmoothingStudyConfig
    from empirical.experiments.smoothing.regimes import PixelModel, build_regime
    from empirical.training.checkpoints import atomic_save
    from tests.fakedata import fake_fashion_mnist, write_idx

    root = fake_fashion_mnist(tmp_path / "fm", n_train=10, n_test=30)
    spec = load("fashion-mnist", root).spec
    scfg = SmoothingStudyConfig()
    nets = []
    for i, (regime, eps) in enumerate((("N", 0.0), ("A", 0.1), ("G", 0.1))):
        torch.manual_seed(0)
        net = build_regime(scfg, spec, regime).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1 + 1e-3 * i * torch.randn_like(p))
        parts = {"study": "smoothing-v1", "dataset": "fashion-mnist", "image_size": 64, "model": "lenet",
                 "activation": "relu", "regime": regime, "filter": None, "block_after": "block1", "kernel_size": 3,
                 "gaussian_sigma": 1.0, "eps": eps, "train": {"seed": 0}}
        atomic_save({"state_dict": net.state_dict(), "record": {"key_parts": parts}},
                    tmp_path / "run" / "checkpoints" / f"k{i}.pt")
        nets.append(net)
    atomic_save({"state_dict": {}}, tmp_path / "run" / "checkpoints" / "k9.partial.pt")  # skipped
    ds = load("fashion-mnist", root)
    with torch.no_grad():
        pred = PixelModel(nets[0], spec)(ds.test_x.float() / 255).argmax(1)
    write_idx(root / "t10k-labels-idx1-ubyte", pred.numpy().astype(np.uint8), gz=True)
    out = tmp_path / "out"
    args = ["--models", str(tmp_path / "run"), "--out", str(out), "--data-root", str(root), "--images", "6",
            "--radii", "0.5", "--n-draws", "2", "--betas", "5", "--hessian-iters", "3", "--stab-samples", "2",
            "--resamples", "200",
            "--no-progress"]
    assert curvature_claims.main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert [m["regime"] for m in res["models"]] == ["N", "A", "G"] and res["n_eval"] == 6
    assert res["explain_settings"]["sg_draws"] == 50 and res["explain_settings_from"] == "smoothing-study defaults"
    assert len(res["models"][0]["correlations"]) == 4 * 3  # (gv mean, gv max, cure, softplus) × (ris, ros, rrs)
    assert len(res["between_models"]) == 12 and all(r["n_models"] == 3 for r in res["between_models"])
    assert (out / "table.csv").read_text().count("\n") == 1 + 3 * 12
    assert (out / "COMPLETE").is_file()
    assert curvature_claims.main(["--models", str(tmp_path / "fm"), "--out", str(out)]) == 2  # no checkpoint
    assert curvature_claims.main(["--models", str(tmp_path / "run"), "--out", str(out / "table.csv")]) == 2  # a file


def _fake_results(seed_rhos: dict[int, dict[str, float]]) -> list[dict]:
    """One results.json per seed: regimes N and A, method vg, curvature gv, stability ris/ros."""
    out = []
    for s, rhos in seed_rhos.items():
        models = [{"regime": r, "eps": e, "train_seed": s, "method": "vg",
                   "correlations": [{"curvature": "gv", "stability": k, "estimate": v + (0.1 if r == "A" else 0)}
                                    for k, v in rhos.items()]} for r, e in (("N", 0.0), ("A", 0.1))]
        out.append({"experiment": "curvature_claims", "models": models})
    return out


def test_summary_over_seeds_means_and_verdicts(tmp_path):
    import json

    from empirical import curvature_claims
    from empirical.experiments.curvature.summary import NEGATIVE, POSITIVE, over_seeds

    res = _fake_results({0: {"ris": 0.3, "ros": 0.2}, 1: {"ris": 0.5, "ros": -0.1}, 2: {"ris": 0.4, "ros": 0.1}})
    rows = {(r["scope"], r["stability"]): r for r in over_seeds(res, resamples=500)}
    assert rows[("N", "ris")]["estimate"] == pytest.approx(0.4) and rows[("N", "ris")]["n_seeds"] == 3
    assert rows[("A", "ris")]["estimate"] == pytest.approx(0.5)
    assert rows[("all regimes", "ris")]["estimate"] == pytest.approx(0.45)  # per seed: mean of N and A
    assert rows[("all regimes", "ris")]["verdict"] == POSITIVE and rows[("all regimes", "ris")]["signs"] == "3/3 > 0"
    assert rows[("N", "ros")]["verdict"] == "not significant"  # 2 of 3 seeds above 0
    neg = over_seeds(_fake_results({0: {"ris": -0.3}, 1: {"ris": -0.5}, 2: {"ris": -0.4}}), resamples=500)
    assert {r["scope"]: r["verdict"] for r in neg}["N"] == NEGATIVE
    files = []
    for i, r in enumerate(res):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    assert curvature_claims.main(["--summarize", *map(str, files), "--out", str(tmp_path / "s"),
                                  "--resamples", "300"]) == 0
    assert len(json.loads((tmp_path / "s" / "summary.json").read_text())["rows"]) == 6
    assert curvature_claims.main(["--summarize", str(files[0]), str(files[0]), "--out", str(tmp_path / "s")]) == 2
    assert curvature_claims.main(["--summarize", str(files[0])]) == 2  # no --out


def test_explain_settings_follow_the_runs_results_file(tmp_path):
    import json

    from empirical.experiments.curvature.run import explain_settings

    json_cfg = {"config": {"ig_steps": 16, "sg_draws": 16, "sg_sigma": 0.2, "seed": 9}}
    (tmp_path / "results.json").write_text(json.dumps(json_cfg))
    scfg, source = explain_settings(tmp_path, CFG)
    assert (scfg.ig_steps, scfg.sg_draws, scfg.sg_sigma, scfg.seed) == (16, 16, 0.2, CFG.seed)
    assert source.endswith("results.json")
