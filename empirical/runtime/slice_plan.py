"""The ordered GPU slices of issue 20, projected from a benchmark JSON: minutes of work, number of slices, and
the size of what one slice hands to the next against what the device tool lets travel (docs/gpu_runs.md).

Every projection is (gradient evaluations of the job) / (a rate the benchmark measured), with the benchmark
field named beside it; "evaluation" is the benchmark's unit, one forward+backward of one image
(``units.evals_per_s``). Where a committed GPU run of the same job exists, its measured time calibrates the rate.

    python -m empirical.runtime.slice_plan [results/benchmarks/gpu-h100.json]
"""
from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

from empirical.errors import UserError
from empirical.runtime.slices import DEVICE, MIB

ROOT = Path(__file__).resolve().parents[2]
SLICE_S = 540  # SLICE_BUDGET: one command of 9 min, under the call's 10-min limit
SMOKE_S, PACK_S = 60, 45  # the slice's smoke check and its packing margin (scripts/gpu_runs.sh)
WORK_S = SLICE_S - SMOKE_S - PACK_S  # seconds of a slice left for the job
START_S = 120  # a fresh machine's start and the transfers ("a minute or more", device README), counted as device time

# the feature-map smoothing paper's FMNIST protocol (Bhusal et al., appendix A): 7 regimes, 50 epochs of 60k images
# at batch 32, PGD-40 for the 6 adversarial ones; the paper preset's evaluation (empirical/experiments/smoothing/cli.py)
SMOOTH_STEPS = math.ceil(50 * 60_000 / 32)  # 93,750 optimizer steps per model
SMOOTH_TRAIN_EVALS = SMOOTH_STEPS * 32 * (6 * (40 + 1) + 1)  # 41 passes per adversarial step, 1 per natural one
# per model: 1000 images x 3 methods' maps (vg 1, ig 32, sg 50 evaluations each) for the image, its 20 stability
# perturbations and 4 SSIM noise levels, + PGD-100 robust accuracy + 20 Hessian-vector iterations (~2 evaluations)
SMOOTH_EVAL_EVALS = 7 * 1000 * ((1 + 32 + 50) * (1 + 20 + 4) + 100 + 20 * 2)
LENET_PARAMS = 3_275_690  # the paper LeNet with a smoothing block (N, A: 3,274,634; E: 3,276,746), counted by torch
# the split sweep's paper preset (empirical/experiments/split): 5 pairs of LeNets (5 epochs of 30k images, batch 64),
# 500 test images, σ = 0 and 8 values with 100 draws, VG and (smoothed) IG with K Gauss-Legendre nodes
SPLIT_NETS, SPLIT_IMAGES, SPLIT_DRAWS = 10, 500, 100


def split_evals(ig_steps: int) -> int:
    return SPLIT_NETS * SPLIT_IMAGES * (1 + ig_steps) * (1 + 8 * SPLIT_DRAWS)


def _lenet(rows: list[dict], method: str | None = None) -> dict:
    return next(r for r in rows if r["case"] == "lenet-28" and (method is None or r["method"] == method))


WHEELS_EST = 8.5 * MIB  # .gpu/whl when not prepared here: the runbook's .gpu is about 38 MiB, the data 29.4 MiB


def _slices(seconds: float, fits: bool, redo_s: float | None) -> int | None:
    """Slices for ``seconds`` of work. A hand-off that does not fit is dropped by ``slices.pack`` (the trainings in
    progress, then the checkpoints): each later slice first redoes ``redo_s`` (retraining finished models from
    their seeds); None: what is lost is the training itself, so the job progresses only if it ends in one slice."""
    if fits or seconds <= WORK_S:
        return max(1, math.ceil(seconds / WORK_S))
    if redo_s is None or redo_s >= WORK_S:
        return None
    return 1 + math.ceil((seconds - WORK_S) / (WORK_S - redo_s))


def plan(bench: dict, tree_bytes: int, data_bytes: int, wheel_bytes: int,
         split_run: dict | None = None) -> list[dict]:
    """One record per slice kind, in order: what, projected work seconds (low/high where the rate is a range),
    slices, bytes handed on, and the carry room it must fit (64 MiB less the tree and .gpu's parts it needs)."""
    dev = bench.get("provenance", {}).get("device", {}).get("device")
    if dev != "cuda" or bench.get("preset") != "full":
        raise UserError(f"the slice plan needs a full GPU benchmark (results/benchmarks/gpu-*.json); this one is "
                        f"the {bench.get('preset')!r} preset on {dev!r}")
    room = DEVICE.carry_bytes - tree_bytes - data_bytes  # the jobs after bench need the data, not the wheels
    out = [{"slice": "bench", "what": "the benchmarks re-measured on the H200 (python -m benchmarks)",
            "work_s": (bench["wall_seconds"],) * 2, "slices": (1, 1), "handoff_bytes": 0,
            "room_bytes": room - wheel_bytes, "source": "wall_seconds (the whole H100 run)"}]
    ceiling = _lenet(bench["ceiling"])
    lo_rate, hi_rate = ceiling["evals_per_s"], ceiling["evals_per_s_by_batch"]["32"]
    proto = bench.get("training", {}).get("smoothing_protocol", {})
    if "lockstep" in proto:  # measured on a GPU (the bench slice's numbers)
        hours = [proto[k]["projected_paper_hours"] for k in ("lockstep_tf32", "lockstep") if k in proto]
        train_s = (min(hours) * 3600, max(hours) * 3600)
        source = "training.smoothing_protocol.lockstep(_tf32).projected_paper_hours"
    else:  # not measured on a GPU yet: the arithmetic bound and the eager launch-bound rate at batch 32
        train_s = (SMOOTH_TRAIN_EVALS / lo_rate, SMOOTH_TRAIN_EVALS / hi_rate)
        source = ("ceiling[lenet-28].evals_per_s (compute bound, best batch) .. "
                  "ceiling[lenet-28].evals_per_s_by_batch['32'] (eager, batch 32)")
    eval_s = SMOOTH_EVAL_EVALS / _lenet(bench["saliency"], "sg")["ours"]["evals_per_s"]
    smooth = tuple(t + eval_s for t in train_s)
    handoff = 7 * LENET_PARAMS * 4 * 3  # in training: every model's weights and Adam's two moments, float32
    out.append({"slice": "smoothing-paper", "what": "the paper-size smoothing study (7 regimes, 50 epochs, PGD-40)",
                "work_s": smooth, "slices": tuple(_slices(s, handoff <= room, None) for s in smooth),
                "slices_if_carried": tuple(_slices(s, True, None) for s in smooth),
                # the protocol but its length (--epochs E), trained and evaluated inside one slice
                "epochs_one_slice": tuple(max(0.0, 50 * (WORK_S - eval_s) / t) for t in train_s),
                "handoff_bytes": handoff, "room_bytes": room,
                "source": f"{source}; evaluation: saliency[lenet-28, sg].ours.evals_per_s"})
    nat = bench["training"]["natural_one_model"]["images_per_s"]
    train = SPLIT_NETS * 5 * 30_000 / nat
    rate = _lenet(bench["saliency"], "sg_ig")["ours"]["evals_per_s"]
    factor, cal = 1.0, ""
    if split_run is not None:  # the committed run (K = its ig_steps) against the same formula
        k = split_run["config"]["ig_steps"]
        factor = split_run["wall_seconds"] / (train + split_evals(k) / rate)
        cal = f"; x{factor:.2f}: the committed GPU run at K={k} took {split_run['wall_seconds']:.0f} s (wall_seconds)"
    split = ((train + split_evals(50) / rate), (train + split_evals(50) / rate) * factor)
    handoff = SPLIT_NETS * LENET_PARAMS * 4  # the finished networks' weights (the units are small JSON)
    out.append({"slice": "split-50", "what": "the paper-size split sweep with 50 IG nodes",
                "work_s": split,
                "slices": tuple(_slices(s, handoff <= room, train * f) for s, f in zip(split, (1, factor))),
                "handoff_bytes": handoff, "room_bytes": room,
                "source": "training.natural_one_model.images_per_s; saliency[lenet-28, sg_ig].ours.evals_per_s" + cal})
    out.append({"slice": "leaderboard-paper", "what": "the attributional-robustness leaderboard's paper preset",
                "work_s": None, "slices": None, "handoff_bytes": None, "room_bytes": room,
                "source": "not built yet: no job, no projection"})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| # | slice | work (min) | slices | device min | hand-off (MiB) | carry room (MiB) | from |",
             "|---|---|---|---|---|---|---|---|"]
    num = (lambda k: "cannot" if k is None else str(k))  # noqa: E731
    rng = (lambda a, b: a if a == b else f"{a}-{b}")  # noqa: E731
    for i, r in enumerate(rows, 1):
        if r["work_s"] is None:
            lines.append(f"| {i} | {r['slice']}: {r['what']} | - | - | - | - | - | {r['source']} |")
            continue
        lo, hi = (s / 60 for s in r["work_s"])
        k0, k1 = r["slices"]
        ifc = r.get("slices_if_carried")
        note = f" ({rng(*(str(k) for k in ifc))} if the state could travel)" if ifc and None in (k0, k1) else ""
        if "epochs_one_slice" in r:
            e_hi, e_lo = r["epochs_one_slice"]
            note += f"; one slice holds --epochs {e_lo:.1f}-{e_hi:.1f}"
        dev = [None if k is None else k * (START_S + SLICE_S) / 60 for k in (k0, k1)]
        lines.append(f"| {i} | {r['slice']}: {r['what']} | {rng(f'{lo:.1f}', f'{hi:.1f}')} | "
                     f"{rng(num(k0), num(k1))}{note} | "
                     f"{rng(*(num(d and round(d)) for d in dev))} | {r['handoff_bytes'] / MIB:.0f} | "
                     f"{r['room_bytes'] / MIB:.0f} | {r['source']} |")
    return "\n".join(lines)


def _files_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file()) if folder.is_dir() else 0


def main(argv=None) -> int:
    import subprocess

    argv = sys.argv[1:] if argv is None else argv
    bench = json.loads(Path(argv[0] if argv else ROOT / "results/benchmarks/gpu-h100.json").read_text())
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tree = sum((ROOT / f).stat().st_size for f in tracked.decode().split("\0") if f and (ROOT / f).is_file())
    data = _files_bytes(ROOT / ".gpu/data") or _files_bytes(Path("/usr/share/datasets/fashion-mnist"))
    wheels = _files_bytes(ROOT / ".gpu/whl") or WHEELS_EST
    split_file = ROOT / "results/split_stability-gpu/results.json.gz"
    split_run = json.loads(gzip.open(split_file).read()) if split_file.exists() else None
    try:
        print(table(plan(bench, tree, data, wheels, split_run)))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\ntree {tree / MIB:.1f} MiB, data {data / MIB:.1f} MiB, wheels {wheels / MIB:.1f} MiB; a slice: "
          f"{SLICE_S} s command ({WORK_S} s of work) + ~{START_S} s start; 'cannot': the hand-off does not fit "
          "the carry and the job does not end in one slice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
