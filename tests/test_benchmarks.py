"""Smoke test of `python -m benchmarks` at its tiny size: every section is written and every equality check
against Captum / Quantus passes. No timing is asserted (the numbers at this size mean nothing)."""
import json

import pytest
import torch

pytest.importorskip("captum")
pytest.importorskip("quantus")

from benchmarks.__main__ import SECTIONS, main  # noqa: E402
from benchmarks.common import PRESETS, candidates, collect_checks, compare, timed_pair, with_floor  # noqa: E402


def test_tiny_run_writes_every_section_and_every_check_passes(tmp_path, capsys):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:  # one thread: on a busy CI machine, OpenMP threads spinning against other jobs cost 3x
        assert main(["--tiny", "--device", "cpu", "--threads", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())
    assert set(SECTIONS) <= set(res) and res["preset"] == "tiny"
    assert {"captum", "quantus", "torch"} <= set(res["provenance"]["versions"])
    assert res["settings"]["ig_steps"] == PRESETS["tiny"].ig_steps

    assert [c["case"] for c in res["ceiling"]] == ["lenet-28"] and res["ceiling"][0]["evals_per_s"] > 0
    assert {r["method"] for r in res["saliency"]} == {"vg", "ig", "sg", "sg_ig"}
    for r in res["saliency"]:
        assert r["ours"]["evals_per_s"] > 0 and r["captum"]["evals_per_s"] > 0 and r["time_ratio_ours_over_captum"] > 0
        assert r["check"]["passed"], r["check"]
    assert all(r["check"]["seeded_equals_explicit"]["passed"] for r in res["saliency"] if r["method"].startswith("sg"))
    assert [m["metric"] for m in res["metrics"]] == ["gini", "ris", "ros", "rrs", "road"]
    assert all(m["check"]["passed"] and m["time_ratio_ours_over_quantus"] > 0 for m in res["metrics"])
    for m in res["metrics"]:
        if m["metric"] in ("ris", "ros", "rrs"):
            assert m["check"]["images_compared"] > 0
            # timed at its fastest rows per call among all images times 1, 2, ... perturbations
            n, s = m["images"], m["perturbations"]
            assert set(m["ours_sweep_seconds"]) == {str(n * k) for k in candidates(s, 2)}
            assert m["ours_rows_per_call"] in {n * k for k in candidates(s, 2)}
            # The timed batching computes the same scores on the same maps, to the float32 rounding of two norms
            # (a misaligned perturbation would move them by O(1)). How far the natural maps' rounding moves the
            # timed scores depends on the CPU's kernels (8.8e-4 seen on an Intel AVX-512 machine, <1e-4 on AMD):
            # recorded, not bounded.
            assert m["check"]["timed_batching"]["passed"] and m["check"]["timed_batching"]["max_rel_diff"] < 1e-3
            assert 0 <= m["check"]["timed_run_max_rel_diff"] < float("inf")
    t = res["training"]
    for k in ("natural_one_model", "pgd_one_model", "natural_vmap", "pgd_vmap"):
        assert t[k]["images_per_s"] > 0
    assert t["vmap_check"]["passed"]
    sp = t["smoothing_protocol"]
    assert sp["regimes"] == ["N", "A", "M1", "M2", "G", "E", "NG"] and sp["lockstep"]["models"] == 7
    assert sp["lockstep"]["cuda_graphs"] is False and sp["lockstep"]["projected_paper_hours"] > 0
    assert sp["one_model_eager"]["projected_paper_hours_all_regimes"] > 0 and sp["paper_steps_per_model"] == 93750
    assert sp["lockstep_tf32"].startswith("n/a on CPU")
    # FlopCounterMode: 42.7 GFLOP per step at the tiny preset's 2 attack steps (485 at the paper's 40)
    assert 3e10 < sp["lockstep"]["flops_per_step"] < 6e10 and sp["lockstep"]["achieved_tflops"] > 0
    assert "n/a on CPU" in res["memory"]["peak"]

    checks = collect_checks({k: res[k] for k in SECTIONS})
    assert len(checks) >= 12 and all(ok for _, ok in checks)
    assert res["checks"] == {"all_passed": True, "count": len(checks), "failed": []}
    assert "checks: " in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="peak memory is measured on CUDA only")
def test_memory_section_on_cuda_has_no_oom():
    from benchmarks.saliency_bench import memory_section

    res = memory_section(PRESETS["tiny"], "cuda")
    assert res["check"]["passed"] and all(s["check"]["passed"] for s in res["sweeps"])
    assert all(q["peak_bytes"] > 0 for q in res["resnet18_224_caps"])


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_batch_invariant_explain_gives_each_image_the_same_bits_in_any_batch(device):
    from benchmarks.common import build_model
    from benchmarks.metrics_bench import batch_invariant
    from empirical import attribution as saliency

    model = build_model("lenet-28", device, act="softplus")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(11, 1, 28, 28, generator=g).to(device)
    t = torch.randint(0, 10, (11,), generator=g).to(device)
    f = batch_invariant(lambda a, b: saliency.vanilla_gradient(model, a, b), 4)
    whole = f(x, t)
    assert whole.shape == x.shape
    assert torch.equal(f(x[3:5], t[3:5]), whole[3:5]) and torch.equal(f(x[9:], t[9:]), whole[9:])
    assert torch.allclose(whole, saliency.vanilla_gradient(model, x, t), rtol=1e-5, atol=1e-7)


def test_helpers():
    assert candidates(256, 4) == [1, 4, 16, 64, 256] and candidates(20, 2) == [1, 2, 4, 8, 16, 20]
    assert candidates(1, 4) == [1]
    a = torch.tensor([1.0, -2.0])
    assert compare(a, a + 1e-6, 1e-4)["passed"] and not compare(a, a + 1e-3, 1e-4)["passed"]
    nested = {"x": [{"check": {"passed": True}}, {"check": {"passed": False}}], "y": {"passed": True}}
    assert collect_checks(nested) == [("x[0].check", True), ("x[1].check", False), ("y", True)]


def test_floor_widens_only_a_failed_check_and_keeps_the_strict_verdict():
    a = torch.tensor([1.0, -2.0])
    strict = compare(a, a + 1e-3, 1e-4)  # fails: 1e-3 > 1e-4 · 2
    within = with_floor(strict, strict["max_abs_diff"], 3e-4, "same reference, other batch size")
    assert within["passed"] and not within["passed_strict"] and within["floor"]["factor"] == 4
    beyond = with_floor(strict, strict["max_abs_diff"], 1e-4, "same reference, other batch size")
    assert not beyond["passed"]  # 1e-3 > 4 · 1e-4
    assert not with_floor(strict, strict["max_abs_diff"], 0.0, "deterministic reference")["passed"]


def test_slow_baseline_timed_with_its_own_counts():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1
        return "a"

    def b():
        calls["b"] += 1
        return "b"
    ra, oa, rb, ob = timed_pair(a, b, "cpu", 1, 3, b_warmup=0, b_repeats=1)
    assert (oa, ob) == ("a", "b") and calls == {"a": 4, "b": 1}
    assert len(ra["all_seconds"]) == 3 and len(rb["all_seconds"]) == 1
    timed_pair(a, b, "cpu", 1, 2)
    assert calls == {"a": 7, "b": 4}
