"""Smoke test of benchmarks/attack_bench.py at tiny sizes: every time, ratio and FLOP count is recorded. No timing
is asserted (on a shared 2-core machine it means nothing at this size)."""
from benchmarks.attack_bench import attack_step


def test_attack_step_records_every_part_and_ratio():
    res = attack_step(rows=2, ig_steps=2, repeats=1, warmup=0)
    assert set(res["seconds"]) == {"fwd_bwd", "attack_1", "attack_3", "part_attack_gradient", "part_real_map",
                                   "part_label_forward", "part_kendall"}
    assert all(v > 0 for v in res["seconds"].values())
    assert res["step_seconds"] >= 0 and res["parts_seconds_sum"] > 0 and res["step_over_fwd_bwd"] >= 0
    assert set(res["parts_over_fwd_bwd"]) == {k for k in res["seconds"] if k.startswith("part_")}
    # One LeNet forward on 1×28×28, counted by hand (2 FLOP per multiply-add): conv1 28²·32·25, conv2 14²·64·(32·25),
    # fc1 3136·1024, fc2 1024·10 -> 27.8 MFLOP. A step with 2-step IG is at least the label forward, the real
    # map's 2 forward+backward (>= 2 forwards each) and the surrogate's 2 forward+backward: >= 9 forwards; the
    # double backward adds about two more passes per IG step, so <= 20 forwards is generous.
    fwd = 2 * (28 * 28 * 32 * 25 + 14 * 14 * 64 * 32 * 25 + 3136 * 1024 + 1024 * 10) / 1e9
    assert 9 * fwd <= res["gflop_per_row_step"] <= 20 * fwd, res["gflop_per_row_step"] / fwd
    assert res["paper_protocol"]["projected_hours"] > 0
