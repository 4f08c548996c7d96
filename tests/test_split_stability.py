"""The main job end to end at a tiny size, its resumability, and its errors on bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from empirical import split_stability
from tests.fakedata import fake_fashion_mnist
from tests.notebooks import committed, run_notebook

TINY = ["--pairs", "1", "--test-images", "8", "--draws", "3", "--ig-steps", "3", "--epochs", "0.5",
        "--batch-size", "32", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    return fake_fashion_mnist(tmp_path_factory.mktemp("fm"), n_train=240, n_test=60)


@pytest.fixture(scope="module")
def tiny_run(fm, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = split_stability.main(["--data-root", str(fm), "--sigma", "0.1", "0.3", "--methods", "vg", "ig", "gradcam",
                               "--out", str(out)] + TINY)
    assert rc == 0
    return out


def test_outputs_and_provenance(tiny_run):
    for f in ("results.json", "summary.csv", "bounds.csv", "stability_vs_sigma.png", "fidelity_vs_sigma.png",
              "bound_vs_measured.png"):
        assert (tiny_run / f).stat().st_size > 0, f
    res = json.loads((tiny_run / "results.json").read_text())
    assert res["config"]["sigmas"] == [0.1, 0.3]
    assert {r["sigma"] for r in res["summary"]} == {0.0, 0.1, 0.3}
    prov = res["provenance"]
    assert prov["versions"]["torch"].startswith("2.") and prov["device"]["device"] == "cpu" and "git_commit" in prov
    nets = res["networks"]
    assert len(nets) == 2 and nets[0]["split_digest"] != nets[1]["split_digest"]
    assert all(0 <= n["test_accuracy"] <= 1 for n in nets)
    # σ = 0: fidelity is exactly zero; stability equals the plain maps' distance
    for r in res["summary"]:
        if r["sigma"] == 0:
            assert r["fidelity"] == 0
        assert r["stability"] >= 0 and -1 <= r["ssim"] <= 1 and 0 <= r["topk_iou"] <= 1
    kinds = {(b["bound"], b["constants"], b["variant"]) for b in res["bounds"]}
    assert ("Theorem 5 (SimpleGrad)", "remark4", "printed") in kinds
    assert ("Theorem 6 (SmoothGrad)", "empirical", "corrected") in kinds
    assert any(b["bound"].startswith("Proposition 7 (IG)") for b in res["bounds"])
    for b in res["bounds"]:
        if b["log10_bound"] is not None and b["log10_measured"] is not None:
            assert b["log10_ratio"] == pytest.approx(b["log10_measured"] - b["log10_bound"])
    laws = {(l["method"], l["quantity"]) for l in res["laws"]}
    assert ("vg", "fidelity") in laws
    assert "ReLU" in " ".join(res["info"]["assumption_gaps"])
    # a ReLU / max-pool / bias LeNet certifies nothing: every row names what it lacks
    assert all(not b["certified"] and "ReLU" in b["lacks"] for b in res["bounds"])
    assert all("disjoint-split proxy" in b["lacks"] for b in res["bounds"] if b["bound"].startswith("Theorem"))


def test_rederive_reproduces_the_bound_rows_of_a_current_file(tiny_run):
    from empirical.experiments.split import bounds as split_bounds

    res = json.loads((tiny_run / "results.json").read_text())
    again = split_bounds.rederive(res)
    assert again["bounds"] == res["bounds"]
    assert again["rederived"]["by"].endswith("rederive")


def test_rerun_reuses_everything_and_is_identical(tiny_run, fm):
    before = json.loads((tiny_run / "results.json").read_text())
    rc = split_stability.main(["--data-root", str(fm), "--sigma", "0.1", "0.3", "--methods", "vg", "ig", "gradcam",
                               "--out", str(tiny_run)] + TINY)
    assert rc == 0
    after = json.loads((tiny_run / "results.json").read_text())
    assert all(n["reused_checkpoint"] for n in after["networks"])
    assert after["summary"] == before["summary"]


def test_interrupted_run_resumes_from_units(fm, tmp_path):
    """A run with more σ values reuses the units of the smaller one (what an interrupted run left)."""
    args = ["--data-root", str(fm), "--methods", "vg", "--out", str(tmp_path)] + TINY
    assert split_stability.main(args + ["--sigma", "0.2"]) == 0
    units = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "units").iterdir()}
    assert split_stability.main(args + ["--sigma", "0.2", "0.4"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "units").iterdir()}
    assert all(after[k] == v for k, v in units.items())  # untouched: reused, not recomputed
    assert len(after) == len(units) + 1


def test_same_seed_same_numbers_whatever_the_memory_cap(fm, tmp_path):
    outs = []
    for i, cap in enumerate((["--max-batch", "4096"], ["--mem-mb", "0.5"], ["--max-batch", "4096"])):
        out = tmp_path / f"r{i}"
        assert split_stability.main(["--data-root", str(fm), "--sigma", "0.2", "--methods", "vg",
                                     "--out", str(out)] + TINY + cap) == 0
        outs.append(json.loads((out / "results.json").read_text())["summary"])
    same = lambda a, b: a == pytest.approx(b, rel=1e-5, abs=1e-7)  # noqa: E731  (chunking: float sums)
    assert all(same(r0[k], r1[k]) for r0, r1 in zip(outs[0], outs[1]) for k in r0 if isinstance(r0[k], float))
    assert outs[0] == outs[2]  # same command, same seed, same device: the same numbers, bit for bit


def _cli(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.run([sys.executable, "-m", "empirical.split_stability", "--out", str(tmp_path / "o")] + args,
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["--sigma", "-0.1"], "sigma"),
    (["--sigma", "abc"], "sigma"),
    (["--sigma", "38"], "'38'"),  # a fraction of the pixel range: 38 is a unit slip (issue 15)
    (["--dataset", "mnist"], "mnist"),
    (["--model", "vgg"], "vgg"),
    (["--methods", "lime"], "lime"),
    (["--activation", "swish"], "swish"),
    (["--pairs", "0"], "positive integer"),
    (["--n", "200"], "n <= 120"),
    (["--data-root", "/nonexistent/dir"], "does not exist"),
    (["--device", "tpu"], "tpu"),
])
def test_bad_input_one_line_error_before_training(args, needle, fm, tmp_path):
    base = ["--data-root", str(fm)] if "--data-root" not in args else []
    r = _cli(base + args + ["--no-progress"], tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_corrupt_data_file_is_one_line_error(fm, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in fm.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    r = _cli(["--data-root", str(bad), "--no-progress"], tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "t10k-labels" in r.stderr


@pytest.mark.parametrize("which", ["tiny", "committed"])
def test_notebook_runs_on_saved_results(tiny_run, which):
    # "committed": the committed GPU sweep, gzipped, as a fresh clone has it
    folder = tiny_run if which == "tiny" else committed("split_stability-gpu")
    _, text = run_notebook("split_stability.ipynb", folder)
    assert "Theorem 5" in text and "fashion-mnist" in text
