"""Blocks of the benchmarks (docs/benchmarks.md): our engine against Captum and Quantus.

Unit: the timing repeat. Each engine is timed ``repeats`` times back to back after a warm-up; a time ratio is
the ratio of the two medians, and its interval resamples each engine's repeats on its own (two-sample). Such
an interval covers timer noise within one process on one machine, not the spread between machines. Where a
side was timed once there is no interval, and the table says so.
"""
from __future__ import annotations

import numpy as np

from empirical import stats
from empirical.report import md
from empirical.report.common import command, commit, device
from empirical.report.registry import Results, block

GPU, CPU = "benchmarks/gpu-h100.json", "benchmarks/cpu-quick.json"
CASES = {"lenet-28": "LeNet 1×28×28", "resnet18-32": "ResNet-18 3×32×32", "resnet18-224": "ResNet-18 3×224×224"}
METHOD = {"vg": "VG", "ig": "IG", "sg": "SmoothGrad", "sg_ig": "smoothed IG"}
UNIT = "timing repeat"


def _median_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.median(p, axis=1) / np.median(q, axis=1)


def time_ratio(ours: list[float], theirs: list[float]) -> stats.Summary:
    """Our median time over theirs, with a two-sample interval over timing repeats."""
    return stats.two_sample(ours, theirs, _median_ratio, unit=UNIT)


def _detail(s: dict) -> str:
    st = s["settings"]
    bits = [f"{st[k]} {k}" for k in ("steps", "draws") if k in st and st[k] != 1]
    return METHOD[s["method"]] + (f", {' × '.join(bits)}" if bits else "")


def _check(c: dict) -> str:
    rel = c["max_abs_diff"] / c["max_abs_reference"] if c.get("max_abs_reference") else None
    v = f"{md.sig(rel, 2)} of max|ref|" if rel is not None else ""
    if not c["passed"]:
        return f"**fails**: {v}" + (f" (floor {md.sig(c['floor']['value'] / c['max_abs_reference'], 1)})"
                                    if c.get("floor") else "")
    if c.get("floor") and c.get("passed_strict") is False:
        return f"{v}: passes only against the reference's own batch floor (×{c['floor']['factor']})"
    return v


def saliency_table(r: dict) -> str:
    rows = []
    last = None
    for s in r["saliency"]:
        tr = time_ratio(s["ours"]["all_seconds"], s["captum"]["all_seconds"])
        word = {"lower": " (ours faster)", "higher": " (ours slower)"}.get(
            stats.verdict(tr, "higher", "lower", null=1.0), " (not significant)")
        rows.append((CASES[s["case"]] if s["case"] != last else "", _detail(s),
                     md.num(s["ours"]["ceiling_fraction"], 2), md.ci(tr, 3) + word, _check(s["check"])))
        last = s["case"]
    n = len(r["saliency"][0]["ours"]["all_seconds"])
    return md.table(("model", "method", "ours / ceiling", "our time / Captum's [CI]", "equality check"), rows) + (
        f"\n\nCeiling: a bare batched forward+backward to the input at its best batch. Time ratio: our median "
        f"over Captum's (Captum at its best batch), below 1 = ours faster; [CI]: {md.pct(stats.CONFIDENCE)} "
        f"two-sample bootstrap over the {n} timing repeats of each engine (expanded percentile; unit: timing repeat, "
        "one process on one machine: timer noise, not the spread between machines).")


@block("bench-gpu-setup", GPU, "benchmarks/gpu-h100.source.json")
def bench_gpu_setup(res: Results) -> str:
    """How the GPU benchmark was made, and its ceilings."""
    r = res.json(GPU)
    src = res.json("benchmarks/gpu-h100.source.json")
    ceil = ", ".join(f"{CASES[c['case']]} {md.sig(c['evals_per_s'], 3)}/s (batch {c['best_batch']})"
                     for c in r["ceiling"])
    return (f"`{command(r, 'benchmarks')}` (code {commit(r, src)}; {r['preset']} preset; TF32 "
            f"{'on' if r['tf32'] else 'off'}; {r['settings']['repeats']} timing repeats after "
            f"{r['settings']['warmup']} warm-up): wall {md.seconds(r['wall_seconds'])} on {device(r)}. "
            f"Gradient ceilings (evaluations per second): {ceil}. {r['checks']['count'] - len(r['checks']['failed'])} "
            f"of {r['checks']['count']} checks pass.")


@block("bench-gpu-saliency", GPU)
def bench_gpu_saliency(res: Results) -> str:
    """Saliency methods on the GPU: fraction of the gradient ceiling, time against Captum, equality."""
    return saliency_table(res.json(GPU))


def metrics_table(r: dict) -> str:
    rows = []
    for m in r["metrics"]:
        qa = m.get("quantus_all_seconds") or [m["quantus_seconds"]]
        oa = m.get("ours_all_seconds") or [m["ours_seconds"]]
        tr = time_ratio(oa, qa)
        c = m["check"]
        if "max_rel_diff" in c:
            chk = f"{md.sig(c['max_rel_diff'], 2)} relative" + (
                f"; our own score moves {md.sig(c['floor']['value'], 2)} between batch sizes" if c.get("floor") else "")
            if c["passed"] and c.get("passed_strict") is False:
                chk += f" (passes only against that floor, ×{c['floor']['factor']})"
        else:
            chk = f"max diff {md.sig(c['max_abs_diff'], 2)}" if c["max_abs_diff"] else "exact"
            if c.get("informative") is False:
                chk += " (uninformative: the curve is flat)"
        speed = 1 / tr.estimate
        ci = (f" [{md.sig(1 / tr.ci_high, 3)}, {md.sig(1 / tr.ci_low, 3)}]" if tr.has_interval else
              f" (no CI: {len(qa)} Quantus timing)" if len(qa) < 2 else "")
        rows.append((m["metric"].upper() if m["metric"] != "gini" else "Gini", md.sig(m["ours_seconds"], 2) + " s",
                     md.sig(m["quantus_seconds"], 3) + " s", f"{md.sig(speed, 3)}×{ci}",
                     ("**fails**: " if not c["passed"] else "") + chk))
    m0 = r["metrics"][1] if len(r["metrics"]) > 1 else r["metrics"][0]
    return md.table(("metric", "ours (median)", "Quantus", "speed-up", "check"), rows) + (
        f"\n\n{m0['images']} images" + (f", {m0['perturbations']} perturbations" if "perturbations" in m0 else "")
        + ". Speed-up: Quantus's median time over ours.")


@block("bench-gpu-metrics", GPU)
def bench_gpu_metrics(res: Results) -> str:
    """Quality metrics on the GPU against Quantus."""
    return metrics_table(res.json(GPU))


@block("bench-gpu-training-memory", GPU)
def bench_gpu_training_memory(res: Results) -> str:
    """Training throughput and the memory-budget check on the GPU."""
    r = res.json(GPU)
    t = r["training"]
    tr = (f"Training (LeNet, images/s, one timing each: no CI): natural {md.sig(t['natural_one_model']['images_per_s'], 3)}"
          f" (one model), {md.sig(t['natural_vmap']['images_per_s'], 3)} ({t['natural_vmap']['models']} models, vmap); "
          f"PGD-{t['pgd']['steps']} {md.sig(t['pgd_one_model']['images_per_s'], 3)} (one), "
          f"{md.sig(t['pgd_vmap']['images_per_s'], 3)} ({t['pgd_vmap']['models']}, vmap). End-to-end tiny "
          f"split-stability run {md.seconds(t['end_to_end']['seconds'])}.")
    caps = r["memory"]["resnet18_224_caps"]
    rows = [(c["budget_mib"], c["max_batch"], md.num(c["peak_mib"], 0), md.pct(c["peak_mib"] / c["budget_mib"] - 1),
             "yes" if c["within_budget"] else "**no**", "yes" if c["oom"] else "no") for c in caps]
    within = sum(c["within_budget"] for c in caps)
    return tr + "\n\n" + md.table(("budget (MiB)", "max_batch found", "measured peak (MiB)", "peak over budget",
                                   "within budget", "out of memory"), rows) + (
        f"\n\nSmoothGrad on a 224×224 ResNet-18 at `max_batch_for_memory(budget)`: no out-of-memory failure, but "
        f"the peak stays within the budget at {within} of {len(caps)} caps (`within_budget` in the file).")


@block("bench-cpu", CPU)
def bench_cpu(res: Results) -> str:
    """The CPU quick benchmark: ceiling fractions, time against Captum and Quantus, the smoothing-protocol step."""
    r = res.json(CPU)
    ratios = [time_ratio(s["ours"]["all_seconds"], s["captum"]["all_seconds"]) for s in r["saliency"]]
    frac = [s["ours"]["ceiling_fraction"] for s in r["saliency"]]
    slower = sum(stats.verdict(t, "higher", "lower", null=1.0) == "higher" for t in ratios)
    sp = r["training"]["smoothing_protocol"]
    lines = [
        f"`{command(r, 'benchmarks')}` (code {commit(r)}; {r['settings']['repeats']} timing repeats): "
        f"{r['checks']['count'] - len(r['checks']['failed'])} of {r['checks']['count']} checks pass; wall "
        f"{md.seconds(r['wall_seconds'])} on {device(r)}.",
        f"Saliency (LeNet and ResNet-18 at 32×32, VG, IG, SmoothGrad, smoothed IG): ours at "
        f"{md.span([100 * f for f in frac], 0, sep='–')} % of the gradient ceiling; our time / Captum's "
        f"{md.span([t.estimate for t in ratios], 3, sep='–')} (ours slower where above 1); the interval over timing "
        f"repeats lies above 1 (ours slower) for {slower} of {len(ratios)} method × model cases "
        f"({stats.ci_note(ratios[0])} of each engine).",
        "Metrics: our time / Quantus's " + ", ".join(
            f"{m['metric']} {md.num(m['time_ratio_ours_over_quantus'], 2)}" for m in r["metrics"]) + ".",
        f"The smoothing study's training step at the paper's sizes (PGD-{sp['attack']['steps']}, batch {sp['batch']}): "
        f"{md.num(sp['lockstep']['seconds_per_step'], 1)} s for the {sp['lockstep']['models']} regimes in lockstep, "
        f"{md.num(sp['one_model_eager']['seconds_per_step'], 2)} s for one adversarial model eagerly; projected "
        f"{md.num(sp['lockstep']['projected_paper_hours'], 0)} hours of this CPU for the paper's "
        f"{sp['paper_steps_per_model']:,} steps per model (one timing: no CI).",
    ]
    return "\n".join("- " + x for x in lines)
