"""What every benchmark shares: the sizes of a run (one frozen dataclass per preset), timers, sweeps, checks.

Timing: ``warmup`` untimed calls, then ``repeats`` timed ones; the figure is their median. On CUDA the
device is synchronised before the clock starts and before it stops, so queued kernels count. Ours and the
reference (Captum, Quantus) are timed interleaved, call by call, so that load from elsewhere on a shared
machine hits both alike. A batch-size
sweep times each candidate once (after one warm-up call) and keeps the fastest; a candidate that runs out
of device memory is recorded as such and skipped.

Checks: every comparison with Captum or Quantus records ``{"passed", "max_abs_diff", "tolerance", ...}``
in the result; ``python -m benchmarks`` exits 1 when one fails.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from empirical.nets import models

# Benchmark cases: name -> (model, channels, side in pixels).
CASES = {"lenet-28": ("lenet", 1, 28), "resnet18-32": ("resnet18", 3, 32), "resnet18-224": ("resnet18", 3, 224)}


@dataclass(frozen=True)
class BenchConfig:
    preset: str
    cases: tuple[str, ...]  # keys of CASES
    images: dict = field(default_factory=dict)  # case -> images per saliency measurement (VG: × ig_steps)
    batch_cap: dict = field(default_factory=dict)  # case -> largest batch (rows per forward/backward) tried
    sweep_factor: int = 2  # batch-size sweeps try 1, factor, factor², ... up to the cap, and the cap
    warmup: int = 1  # untimed calls before timing
    repeats: int = 5  # timed calls; the median is reported
    ig_steps: int = 50  # Integrated Gradients path steps (Gauss-Legendre, Captum's default rule)
    sg_draws: int = 100  # SmoothGrad noise draws
    sgig_draws: int = 10  # smoothed IG: noise draws ...
    sgig_steps: int = 10  # ... × IG steps per draw
    sigma: float = 0.15  # SmoothGrad noise std, absolute in model-input units (inputs ~ N(0, 1))
    equal_rtol: float = 1e-4  # saliency checks: max |ours − reference| <= equal_rtol · max |reference|
    metric_images: int = 1000  # images of the metric benchmarks
    metric_perturbations: int = 10  # perturbations per image for RIS / ROS / RRS
    metric_radius: float = 0.02  # L∞ radius of those perturbations (pixel units)
    quantus_warmup: int | None = None  # Quantus's untimed/timed calls in the metric section (None: warmup/repeats);
    quantus_repeats: int | None = None  # fewer on the full run, where one Quantus call takes tens of seconds
    road_percentages: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # percent of pixels removed
    train_batch: int = 64  # images per SGD step
    train_steps: int = 50  # timed SGD steps (natural training)
    pgd_train_steps: int = 10  # timed SGD steps of PGD training
    pgd_steps: int = 10  # attack steps per batch (eps 0.1, step 0.025, pixel units)
    n_models: int = 4  # models trained at once (vmap)
    smooth_steps: int = 300  # timed steps of the smoothing study's lockstep training (7 models, batch 32, Adam)
    smooth_eager_steps: int = 20  # timed steps of one such model trained alone, eagerly (empirical.training.trainer.train)
    smooth_attack_steps: int = 40  # its PGD steps (step ε/10, ε = 0.1): the paper's training attack
    e2e: dict = field(default_factory=dict)  # SplitStabilityConfig sizes of the end-to-end run; empty: skipped
    memory_images: int = 4  # images of the memory sweep (× draws or steps rows)
    memory_rows: int = 64  # draws (SmoothGrad) or steps (IG) per image in the memory sweep
    memory_mb: tuple[int, ...] = (256, 1024, 4096, 16384)  # memory budgets (MiB) of the 224×224 OOM check


PRESETS = {
    "full": BenchConfig(
        preset="full", cases=("lenet-28", "resnet18-32", "resnet18-224"),
        images={"lenet-28": 256, "resnet18-32": 64, "resnet18-224": 4},
        batch_cap={"lenet-28": 8192, "resnet18-32": 2048, "resnet18-224": 256},
        # the default split-stability sweep (`python -m empirical.split_stability --sigma 0.15`, the demo preset)
        e2e=dict(pairs=2, n=10000, test_images=100, draws=16, ig_steps=8, epochs=2.0),
        memory_images=8, memory_rows=64, quantus_warmup=0, quantus_repeats=1),
    "quick": BenchConfig(
        preset="quick", cases=("lenet-28", "resnet18-32"),
        images={"lenet-28": 32, "resnet18-32": 1}, batch_cap={"lenet-28": 256, "resnet18-32": 8},
        sweep_factor=4, repeats=3, ig_steps=8, sg_draws=8, sgig_draws=4, sgig_steps=2,
        metric_images=32, metric_perturbations=3, road_percentages=(10, 50, 90),
        train_batch=32, train_steps=8, pgd_train_steps=2, n_models=2, smooth_steps=2, smooth_eager_steps=1,
        e2e=dict(pairs=1, n=100, test_images=8, draws=4, ig_steps=4, epochs=1.0),
        memory_images=2, memory_rows=16),
    "tiny": BenchConfig(
        preset="tiny", cases=("lenet-28",), images={"lenet-28": 2}, batch_cap={"lenet-28": 16},
        sweep_factor=4, warmup=1, repeats=1, ig_steps=4, sg_draws=4, sgig_draws=2, sgig_steps=2,
        metric_images=8, metric_perturbations=2, road_percentages=(20, 60),
        train_batch=8, train_steps=2, pgd_train_steps=1, pgd_steps=2, n_models=2, smooth_steps=1,
        smooth_eager_steps=1, smooth_attack_steps=2, memory_images=1, memory_rows=4, memory_mb=(64, 256)),
}


def build_model(case: str, device, act: str = "relu", seed: int = 0) -> torch.nn.Module:
    """The case's network, seeded initialisation, eval mode, weights frozen (only input gradients are taken)."""
    name, c, s = CASES[case]
    torch.manual_seed(seed)
    return models.build(name, c, s, 10, act).to(device).eval().requires_grad_(False)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device, warmup: int, repeats: int) -> tuple[dict, Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls; returns (record, last output)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "all_seconds": times}, out


def timed_interleaved(fns: list[Callable[[], Any]], device, warmup: int, repeats: int) -> list[tuple[dict, Any]]:
    """:func:`timed` for several functions, their timed calls interleaved (a, b, c, a, b, c, ...), so that load
    from elsewhere on a shared machine slows them alike and their ratios stay meaningful."""
    outs: list[Any] = [None] * len(fns)
    for _ in range(warmup):
        outs = [f() for f in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            sync(device)
            t0 = time.perf_counter()
            outs[i] = fn()
            sync(device)
            times[i].append(time.perf_counter() - t0)
    return [({"seconds": statistics.median(t), "all_seconds": t}, o) for t, o in zip(times, outs)]


def timed_pair(a: Callable[[], Any], b: Callable[[], Any], device, warmup: int, repeats: int,
               b_warmup: int | None = None, b_repeats: int | None = None) -> tuple[dict, Any, dict, Any]:
    """:func:`timed_interleaved` of two functions: (record a, output a, record b, output b). With ``b_warmup`` or
    ``b_repeats`` given, b is timed on its own with those counts (a slow baseline timed fewer times)."""
    if b_warmup is None and b_repeats is None:
        (ra, oa), (rb, ob) = timed_interleaved([a, b], device, warmup, repeats)
    else:
        (ra, oa), = timed_interleaved([a], device, warmup, repeats)
        (rb, ob), = timed_interleaved([b], device, warmup if b_warmup is None else b_warmup,
                                       repeats if b_repeats is None else b_repeats)
    return ra, oa, rb, ob


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def free_memory(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def candidates(cap: int, factor: int) -> list[int]:
    """Powers of ``factor`` up to ``cap`` (1, factor, factor², ...), and ``cap`` itself, ascending."""
    out, b = {max(1, int(cap))}, 1
    while b < cap:
        out.add(b)
        b *= factor
    return sorted(out)


def sweep(make: Callable[[int], Callable[[], Any]], sizes: list[int], device) -> dict:
    """Time ``make(b)()`` once per size b (after one warm-up call); returns seconds per size and the fastest."""
    secs: dict[int, float | None] = {}
    for b in sizes:
        try:
            secs[b] = timed(make(b), device, 1, 1)[0]["seconds"]
        except RuntimeError as e:
            if not is_oom(e):
                raise
            secs[b] = None  # out of device memory: recorded as null
            free_memory(device)
    ok = {b: s for b, s in secs.items() if s is not None}
    if not ok:
        raise RuntimeError(f"every batch size of the sweep {sizes} ran out of memory")
    best = min(ok, key=ok.get)
    return {"seconds_by_size": secs, "best": best}


def compare(ours: torch.Tensor, ref: torch.Tensor, rtol: float) -> dict:
    """Max-abs agreement of two maps relative to the reference's scale: passed iff max|a−b| <= rtol · max|ref|."""
    diff = (ours.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    return {"passed": bool(diff <= rtol * scale), "max_abs_diff": diff, "max_abs_reference": scale,
            "tolerance": f"max|ours - ref| <= {rtol:g} * max|ref|"}


FLOOR_FACTOR = 4  # a check passes within this many times the reference's own batch-size variation


def with_floor(check: dict, diff: float, floor: float, what: str) -> dict:
    """Widen ``check`` to the reference's own float-rounding floor: passed iff it passed, or ``diff`` is at most
    FLOOR_FACTOR x ``floor``, where ``floor`` is how far the same reference computed with another batch size
    moves (on CUDA, cuDNN picks kernels by batch size, and its fp32 Winograd / FFT kernels differ at ~1e-4)."""
    check = dict(check)
    check["floor"] = {"value": floor, "what": what, "factor": FLOOR_FACTOR}
    check["passed_strict"] = check["passed"]
    check["passed"] = bool(check["passed"] or diff <= FLOOR_FACTOR * floor)
    return check


def collect_checks(obj: Any, path: str = "") -> list[tuple[str, bool]]:
    """Every ``{"passed": bool, ...}`` record in a nested result, with its path."""
    found = []
    if isinstance(obj, dict):
        if isinstance(obj.get("passed"), bool):
            found.append((path, obj["passed"]))
        for k, v in obj.items():
            found += collect_checks(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += collect_checks(v, f"{path}[{i}]")
    return found
