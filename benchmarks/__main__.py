"""`python -m benchmarks`: our saliency engine and metrics against Captum 0.9 and Quantus 0.6, on one device.

Measures, on the device it runs on (``--device``: a CUDA GPU when there is one, else the CPU), and writes one
JSON file (settings, versions, git commit, device, every time and ratio, every equality check) to ``--out``
(default runs/benchmarks/<device>[-<preset>].json), then prints a table:

1. ceiling: gradient evaluations/s of a bare batched forward + backward to the input, at the best batch size
   of a sweep (LeNet 1×28×28, ResNet-18 3×32×32 and 3×224×224);
2. saliency: vanilla gradient, IG (50 steps), SmoothGrad (100 draws), smoothed IG (10 draws × 10 steps):
   our evaluations/s, as a fraction of the ceiling, and our wall time over Captum's, with the maps checked
   equal in the same run (SmoothGrad on the same draws);
3. metrics: Gini, RIS, ROS, RRS (1000 images × 10 perturbations) and ROAD, our wall time over Quantus's,
   values checked equal where the definitions agree;
4. training: images/s of natural and PGD training of LeNet, one model and several at once (vmap); the smoothing
   study's seven-model PGD-40 training in lockstep (CUDA graphs) against one model alone, projected to the
   paper's 50 epochs; and the wall time of a small end-to-end split-stability run;
5. memory (CUDA): peak memory of SmoothGrad and IG against ``max_batch``; no out-of-memory on a 224×224
   ResNet-18 at the ``max_batch`` each memory budget gives.

Presets: full (default; meant for a GPU), ``--quick`` (a 2-core CPU in a few minutes: no 224×224, fewer
steps, draws, images and repeats; every size is in the JSON) and ``--tiny`` (the smoke test). On CUDA, TF32 is
switched off for the run so that both engines compute in full float32 and the maps can be compared to 1e-4.
Exit status 1 when an equality check fails.
"""
from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.common import PRESETS, collect_checks
from empirical import cli
from empirical.runtime.environment import provenance
from empirical.runtime.files import write_json
from empirical.runtime.precision import fp32_precision, set_fp32_ieee

SECTIONS = ("ceiling", "saliency", "metrics", "training", "memory")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CPU-sized run (a few minutes on 2 cores)")
    size.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds; numbers not meaningful)")
    ap.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:N")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                    help="sections to run (saliency needs ceiling, which is then run too)")
    ap.add_argument("--threads", type=cli.positive_int, default=None,
                    help="CPU threads for torch (default: torch's choice); on a CPU shared with other work, 1 avoids "
                         "OpenMP threads spinning against each other")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: runs/benchmarks/<device>[-<preset>].json)")
    return ap


def run(preset: str, device: str, sections, log=print, save=None) -> dict:
    """All ``sections`` at ``preset`` sizes; ``save(res)`` is called after each section with the results so far
    (marked ``"complete": False``), so a run stopped part-way keeps what it measured."""
    from benchmarks import metrics_bench, saliency_bench, training_bench

    cfg = PRESETS[preset]
    t0 = time.perf_counter()
    if torch.device(device).type == "cuda":
        set_fp32_ieee()  # (cli.resolve_device did too) both engines in full float32, as the provenance records
    res: dict = {"benchmark": "saliency-stability engine vs Captum / Quantus", "preset": preset,
                 "settings": asdict(cfg), "provenance": provenance(device),
                 "fp32_precision": fp32_precision() if torch.device(device).type == "cuda" else "n/a (CPU)",
                 "units": {"evals_per_s": "forward+backward of one point per second",
                           "time_ratio": "our median wall time / theirs (below 1: ours is faster)"}}
    sections = set(sections) | ({"ceiling"} if "saliency" in sections else set())
    clock = {"t": time.perf_counter()}
    res["section_seconds"] = {}

    def lap(name):
        now = time.perf_counter()
        res["section_seconds"][name] = now - clock["t"]
        clock["t"] = now
        if save is not None:
            save({**res, "complete": False})

    if "ceiling" in sections:
        res["ceiling"] = []
        for case in cfg.cases:
            log(f"[ceiling] {case}")
            res["ceiling"].append(saliency_bench.ceiling(cfg, case, device))
        lap("ceiling")
    if "saliency" in sections:
        res["saliency"] = []
        for ceil in res["ceiling"]:
            log(f"[saliency] {ceil['case']}")
            res["saliency"] += saliency_bench.saliency_section(cfg, ceil["case"], ceil, device)
            lap(f"saliency {ceil['case']}")
    if "metrics" in sections:
        log("[metrics] Gini, RIS, ROS, RRS, ROAD")
        res["metrics"] = metrics_bench.metrics_section(cfg, device)
        lap("metrics")
    if "training" in sections:
        log("[training] natural, PGD, vmap, end to end")
        res["training"] = training_bench.training_section(cfg, device)
        lap("training")
    if "memory" in sections:
        log("[memory]")
        res["memory"] = saliency_bench.memory_section(cfg, device)
        lap("memory")
    checks = collect_checks({k: v for k, v in res.items() if k in SECTIONS})
    res["checks"] = {"all_passed": all(ok for _, ok in checks), "count": len(checks),
                     "failed": [p for p, ok in checks if not ok]}
    res["wall_seconds"] = time.perf_counter() - t0
    res["complete"] = True
    return res


def _f(v, fmt=".3g") -> str:
    return "-" if v is None else format(v, fmt)


def print_table(res: dict) -> None:
    dev = res["provenance"]["device"]
    print(f"\nbenchmarks ({res['preset']}) on {dev.get('gpu') or dev.get('cpu')} ({dev['device']}, "
          f"{dev['threads']} threads), {res['wall_seconds']:.0f} s")
    if "ceiling" in res:
        print("\nceiling: bare forward+backward to the input")
        for c in res["ceiling"]:
            print(f"  {c['case']:<13} best batch {c['best_batch']:>5}   {_f(c['evals_per_s'], '.4g'):>9} evals/s")
    if "saliency" in res:
        print("\nsaliency          method  evals   ours evals/s  of ceiling  captum evals/s  time ours/captum  check")
        for r in res["saliency"]:
            print(f"  {r['case']:<14} {r['method']:<6} {r['evaluations']:>6} {_f(r['ours']['evals_per_s'], '.4g'):>14}"
                  f" {r['ours']['ceiling_fraction']:>10.0%} {_f(r['captum']['evals_per_s'], '.4g'):>15}"
                  f" {r['time_ratio_ours_over_captum']:>17.2f}  {'ok' if r['check']['passed'] else 'FAIL'}")
    if "metrics" in res:
        print("\nmetrics  images  ours s    quantus s  time ours/quantus  check")
        for r in res["metrics"]:
            print(f"  {r['metric']:<6} {r['images']:>6} {r['ours_seconds']:>8.3g} {r['quantus_seconds']:>10.3g}"
                  f" {r['time_ratio_ours_over_quantus']:>18.3f}  {'ok' if r['check']['passed'] else 'FAIL'}")
    if "training" in res:
        t = res["training"]
        print("\ntraining (LeNet, images/s)")
        for k in ("natural_one_model", "pgd_one_model", "natural_vmap", "pgd_vmap"):
            print(f"  {k:<18} {t[k]['models']} model(s)  {_f(t[k]['images_per_s'], '.4g'):>9}")
        sp = t.get("smoothing_protocol")
        if sp:
            ls, one = sp["lockstep"], sp["one_model_eager"]
            print(f"  smoothing protocol (PGD-{sp['attack']['steps']}, batch {sp['batch']}): {ls['models']} models in "
                  f"lockstep{' (CUDA graphs)' if ls['cuda_graphs'] else ''} {ls['seconds_per_step'] * 1e3:.1f} ms/step "
                  f"-> paper's 50 epochs {ls['projected_paper_hours']:.2f} h; one model alone "
                  f"{one['seconds_per_step'] * 1e3:.1f} ms/step -> {one['projected_paper_hours_all_regimes']:.2f} h")
            print(f"    {ls['flops_per_step'] / 1e9:.0f} GFLOP per lockstep step ({sp['paper_training_pflop']:.1f} PFLOP "
                  f"for the paper's training): {ls['achieved_tflops']:.2f} TFLOP/s achieved")
            if isinstance(sp.get("lockstep_tf32"), dict):
                t32 = sp["lockstep_tf32"]
                print(f"    with TF32 training (--train-tf32): {t32['seconds_per_step'] * 1e3:.1f} ms/step -> "
                      f"{t32['projected_paper_hours']:.2f} h ({t32['speedup_over_ieee']:.2f}x)")
        e = t["end_to_end"]
        if isinstance(e, dict):
            print(f"  end-to-end split-stability run: {e['seconds']:.1f} s (training {e['training_seconds']:.1f} s, "
                  f"maps+metrics {e['saliency_and_metrics_seconds']:.1f} s, other {e['other_seconds']:.1f} s)")
    if "memory" in res:
        m = res["memory"]
        if "peak" in m:
            print(f"\nmemory: {m['peak']}")
        else:
            print("\nmemory: peak MiB by max_batch")
            for s in m["sweeps"]:
                row = ", ".join(f"{q['max_batch']}: {_f(q['peak_mib'], '.0f')}" for q in s["by_max_batch"])
                print(f"  {s['case']:<13} {s['method']:<3} {row}")
            for q in m["resnet18_224_caps"]:
                print(f"  resnet18-224 budget {q['budget_mib']} MiB -> max_batch {q['max_batch']}: "
                      f"peak {_f(q['peak_mib'], '.0f')} MiB, {'OOM' if q['oom'] else 'no OOM'}")
    c = res["checks"]
    print(f"\nchecks: {c['count'] - len(c['failed'])}/{c['count']} passed" +
          ("" if c["all_passed"] else f"; FAILED: {', '.join(c['failed'])}"))


def main(argv: list[str] | None = None) -> int:
    def go() -> int:
        args = parser().parse_args(argv)
        device = cli.resolve_device(args.device)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        preset = "quick" if args.quick else "tiny" if args.tiny else "full"
        out = args.out or Path("runs/benchmarks") / (torch.device(device).type
                                                     + ("" if preset == "full" else f"-{preset}") + ".json")
        with warnings.catch_warnings():
            # Captum warns that it set requires_grad on every call; Quantus warns about its defaults.
            warnings.simplefilter("ignore", UserWarning)
            res = run(preset, device, args.sections, save=lambda r: write_json(out, r))
        write_json(out, res)
        print_table(res)
        print(f"\nwrote {out}")
        return 0 if res["checks"]["all_passed"] else 1
    return cli.run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
