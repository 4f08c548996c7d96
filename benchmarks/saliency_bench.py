"""Sections 1, 2 and 5: the gradient ceiling, saliency throughput against Captum, and peak memory.

- Ceiling: a bare batched forward + backward to the input (``autograd.grad`` of the summed target logits,
  eval mode, frozen weights), swept over batch sizes; gradient evaluations per second at the best size.
- Saliency: our engine (``empirical.attribution``) with ``max_batch`` = the ceiling's best batch, against Captum
  on the same model and inputs: ``Saliency(abs=False)``, ``IntegratedGradients`` (Gauss-Legendre, its
  ``internal_batch_size`` swept), ``NoiseTunnel(Saliency)`` and ``NoiseTunnel(IntegratedGradients)`` (their
  ``nt_samples_batch_size`` swept). One evaluation = one forward/backward of one point. SmoothGrad is timed
  with our seeded draws and Captum's own noise; the maps are checked on the SAME draws (ours with explicit
  ``noise`` against Captum's Saliency / IG averaged over x + σε), and our seeded path against
  explicit ``draw_noise`` draws; ours fed those draws as ``noise`` is timed too (the cost of drawing the
  seeded noise is the difference). Ours, Captum and the bare gradient at the best batch are timed interleaved,
  and the ceiling fraction divides by that same-run bare rate (robust to load from elsewhere).
- Memory (CUDA only): peak ``torch.cuda.max_memory_allocated`` above what was held before, of SmoothGrad and
  IG at ``max_batch`` = 1, 2, 4, ... up to the memory cap; and a 224×224 ResNet-18 run at the ``max_batch``
  that ``max_batch_for_memory`` gives for each budget, which must not run out of memory.
"""
from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

from benchmarks.common import (
    CASES,
    BenchConfig,
    build_model,
    candidates,
    compare,
    free_memory,
    is_oom,
    sweep,
    timed,
    timed_interleaved,
    with_floor,
)
from empirical import attribution as saliency
from empirical.attribution import memory


def _inputs(case: str, n: int, device, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    _, c, s = CASES[case]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, s, s, generator=g).to(device)
    return x, torch.randint(0, 10, (n,), generator=g).to(device)


def _free_mib(device) -> float:
    free, _ = torch.cuda.mem_get_info(device)
    return free / 2 ** 20


def batch_cap(cfg: BenchConfig, case: str, model, device) -> int:
    """The preset's cap, lowered on CUDA to what half the free memory holds (``max_batch_for_memory``)."""
    cap = cfg.batch_cap[case]
    if torch.device(device).type == "cuda":
        _, c, s = CASES[case]
        cap = min(cap, memory.max_batch_for_memory(model, (c, s, s), 0.5 * _free_mib(device), device))
    return max(1, cap)


def _bare_grad(model, x, t):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(model(x).gather(1, t[:, None]).sum(), x)
    return g


def ceiling(cfg: BenchConfig, case: str, device) -> dict:
    model = build_model(case, device)
    cap = batch_cap(cfg, case, model, device)
    x, t = _inputs(case, cap, device)
    sw = sweep(lambda b: (lambda: _bare_grad(model, x[:b], t[:b])), candidates(cap, cfg.sweep_factor), device)
    rates = {b: (b / s if s else None) for b, s in sw["seconds_by_size"].items()}
    best = max((b for b in rates if rates[b]), key=rates.get)
    rec, _ = timed(lambda: _bare_grad(model, x[:best], t[:best]), device, cfg.warmup, cfg.repeats)
    return {"case": case, "cap": cap, "evals_per_s_by_batch": rates, "best_batch": best,
            "seconds": rec["seconds"], "evals_per_s": best / rec["seconds"]}


def _record(case, method, evals, settings, ours_rec, ours_batch, bare, captum_api, captum_rec, captum_sweep, check):
    ours_rate = evals / ours_rec["seconds"]
    cap_rate = evals / captum_rec["seconds"]
    return {"case": case, "method": method, "evaluations": evals, "settings": settings,
            "ours": {"seconds": ours_rec["seconds"], "all_seconds": ours_rec["all_seconds"], "max_batch": ours_batch,
                     "evals_per_s": ours_rate, "ceiling_fraction": ours_rate / bare["evals_per_s"]},
            "captum": {"api": captum_api, "seconds": captum_rec["seconds"], "all_seconds": captum_rec["all_seconds"],
                       "evals_per_s": cap_rate, "ceiling_fraction": cap_rate / bare["evals_per_s"],
                       "sweep": captum_sweep},
            "ceiling_same_run": bare,
            "time_ratio_ours_over_captum": ours_rec["seconds"] / captum_rec["seconds"],
            "check": check}


def _in_chunks(fn, x, t, chunk):
    return torch.cat([fn(x[i:i + chunk], t[i:i + chunk]) for i in range(0, x.shape[0], chunk)])


def saliency_section(cfg: BenchConfig, case: str, ceil: dict, device) -> list[dict]:
    model = build_model(case, device)
    best, cap = ceil["best_batch"], ceil["cap"]
    n = cfg.images[case]
    x, t = _inputs(case, n, device)
    sal, ig = Saliency(model), IntegratedGradients(model)
    rtol, w, r = cfg.equal_rtol, cfg.warmup, cfg.repeats
    xb, tb = _inputs(case, best, device, seed=3)
    out = []

    def three(ours_fn, captum_fn, *more):
        """Ours, Captum and the bare gradient at the ceiling's best batch (and ``more``), interleaved call by call."""
        recs = timed_interleaved([ours_fn, captum_fn, lambda: _bare_grad(model, xb, tb), *more], device, w, r)
        (o, mo), (c, mc), (b, _) = recs[:3]
        bare = {"evals_per_s": best / b["seconds"], "seconds": b["seconds"], "batch": best}
        return (o, mo, c, mc, bare, *recs[3:])

    # Vanilla gradient: as many images as IG has evaluations, at most one ceiling batch.
    nv = max(1, min(best, n * cfg.ig_steps))
    xv, tv = _inputs(case, nv, device, seed=2)
    ours, m_ours, cap_rec, m_cap, bare = three(lambda: saliency.vanilla_gradient(model, xv, tv, max_batch=best),
                                               lambda: sal.attribute(xv, target=tv, abs=False))
    out.append(_record(case, "vg", nv, {"images": nv}, ours, best, bare, "Saliency(abs=False)", cap_rec, None,
                       compare(m_ours, m_cap, rtol)))

    # Integrated Gradients, Gauss-Legendre nodes (Captum's default, ours matches them exactly).
    s = cfg.ig_steps
    sizes = [n * k for k in candidates(max(1, min(s, cap // n)), cfg.sweep_factor)]
    sw = sweep(lambda b: (lambda: ig.attribute(x, target=t, n_steps=s, method="gausslegendre",
                                                internal_batch_size=b)), sizes, device)
    ours, m_ours, cap_rec, m_cap, bare = three(
        lambda: saliency.integrated_gradients(model, x, t, steps=s, max_batch=best),
        lambda: ig.attribute(x, target=t, n_steps=s, method="gausslegendre", internal_batch_size=sw["best"]))
    out.append(_record(case, "ig", n * s, {"images": n, "steps": s}, ours, best, bare,
                       f"IntegratedGradients(internal_batch_size={sw['best']})", cap_rec, sw,
                       compare(m_ours, m_cap, rtol)))

    # SmoothGrad (base vg) and smoothed IG (base ig).
    for method, d, steps in (("sg", cfg.sg_draws, 1), ("sg_ig", cfg.sgig_draws, cfg.sgig_steps)):
        base = "vg" if method == "sg" else "ig"
        kw = dict(stdevs=cfg.sigma, n_draws=d, seed=0, base=base, ig_steps=max(steps, 1), max_batch=best)
        eps = saliency.draw_noise(x, d, seed=0)
        m_explicit = saliency.smoothgrad(model, x, t, noise=eps, **kw)
        points = (x[:, None] + cfg.sigma * eps).flatten(0, 1)
        tp = t.repeat_interleave(d)
        if method == "sg":
            ref = _in_chunks(lambda a, b: sal.attribute(a, target=b, abs=False), points, tp, best)
            nt_api = "NoiseTunnel(Saliency)"

            def nt_call(k):
                return lambda: NoiseTunnel(sal).attribute(x, nt_type="smoothgrad", nt_samples=d, nt_samples_batch_size=k,
                                                          stdevs=cfg.sigma, target=t, abs=False)
        else:
            per = max(1, best // steps)  # whole images (all their steps) per IG call
            ref = _in_chunks(lambda a, b: ig.attribute(a, target=b, n_steps=steps, method="gausslegendre"),
                             points, tp, per)
            nt_api = "NoiseTunnel(IntegratedGradients)"

            def nt_call(k):
                rows = n * k
                return lambda: NoiseTunnel(ig).attribute(
                    x, nt_type="smoothgrad", nt_samples=d, nt_samples_batch_size=k, stdevs=cfg.sigma, target=t,
                    n_steps=steps, method="gausslegendre",
                    internal_batch_size=rows * max(1, min(steps, cap // rows)))
        ref = ref.view(n, d, *x.shape[1:]).mean(1)
        sizes = candidates(max(1, min(d, cap // (n * steps))), cfg.sweep_factor)
        sw = sweep(nt_call, sizes, device)
        ours, m_seeded, cap_rec, _, bare, (expl, _) = three(lambda: saliency.smoothgrad(model, x, t, **kw),
                                                            nt_call(sw["best"]),
                                                            lambda: saliency.smoothgrad(model, x, t, noise=eps, **kw))
        check = compare(m_explicit, ref, rtol)
        if not check["passed"]:  # the reference again, other chunks: its own float floor on this device
            alt_chunk = max(1, (best if method == "sg" else per) // 2)
            alt = (_in_chunks(lambda a, b: sal.attribute(a, target=b, abs=False), points, tp, alt_chunk) if method == "sg"
                   else _in_chunks(lambda a, b: ig.attribute(a, target=b, n_steps=steps, method="gausslegendre"),
                                   points, tp, alt_chunk))
            floor = (alt.view(n, d, *x.shape[1:]).mean(1).double() - ref.double()).abs().max().item()
            check = with_floor(check, check["max_abs_diff"], floor,
                               f"max|Captum reference in chunks of {alt_chunk} - the same in chunks of "
                               f"{best if method == 'sg' else per}|")
        check["same_draws"] = "ours with noise=draw_noise(x, n_draws, seed=0) vs Captum averaged over x + sigma*eps"
        check["seeded_equals_explicit"] = compare(m_seeded, m_explicit, 1e-6)
        rec = _record(case, method, n * d * steps, {"images": n, "draws": d, "steps": steps, "sigma": cfg.sigma},
                      ours, best, bare, f"{nt_api}(nt_samples_batch_size={sw['best']})", cap_rec, sw, check)
        # The same engine fed precomputed draws: what drawing the seeded noise costs.
        rec["ours_explicit_noise"] = {"seconds": expl["seconds"], "all_seconds": expl["all_seconds"],
                                      "evals_per_s": n * d * steps / expl["seconds"]}
        out.append(rec)
    return out


# --------------------------------------------------------------------------- memory
def _peak(fn, device) -> tuple[int | None, bool]:
    """Peak bytes allocated by ``fn()`` above what was allocated before; (None, True) on out-of-memory."""
    free_memory(device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    try:
        fn()
        torch.cuda.synchronize(device)
    except RuntimeError as e:
        if not is_oom(e):
            raise
        free_memory(device)
        return None, True
    return torch.cuda.max_memory_allocated(device) - start, False


def memory_section(cfg: BenchConfig, device) -> dict:
    if torch.device(device).type != "cuda":
        est = {}
        for case in cfg.cases:
            _, c, s = CASES[case]
            model = build_model(case, device)
            est[case] = {str(mb): memory.max_batch_for_memory(model, (c, s, s), mb, device) for mb in cfg.memory_mb}
        return {"peak": "n/a on CPU (torch's CPU allocator keeps no peak statistics; tracemalloc does not see it)",
                "max_batch_for_memory_estimates": est}
    sweeps = []
    for case in cfg.cases:
        _, c, s = CASES[case]
        model = build_model(case, device)
        cap = min(cfg.memory_images * cfg.memory_rows,
                  memory.max_batch_for_memory(model, (c, s, s), 0.8 * _free_mib(device), device))
        x, t = _inputs(case, cfg.memory_images, device)
        for method in ("sg", "ig"):
            rows = []
            for mb in candidates(cap, 2):
                if method == "sg":
                    fn = lambda: saliency.smoothgrad(model, x, t, stdevs=cfg.sigma, n_draws=cfg.memory_rows, max_batch=mb)  # noqa: E731
                else:
                    fn = lambda: saliency.integrated_gradients(model, x, t, steps=cfg.memory_rows, max_batch=mb)  # noqa: E731
                peak, oom = _peak(fn, device)
                rows.append({"max_batch": mb, "peak_bytes": peak, "peak_mib": None if peak is None else peak / 2 ** 20,
                             "oom": oom})
            sweeps.append({"case": case, "method": method, "images": cfg.memory_images, "rows_per_image": cfg.memory_rows,
                           "by_max_batch": rows, "check": {"passed": not any(q["oom"] for q in rows),
                                                           "what": "no out-of-memory at any max_batch up to the cap"}})
    # 224×224 ResNet-18 at the max_batch each memory budget gives: must not run out of memory.
    case = "resnet18-224"
    _, c, s = CASES[case]
    model = build_model(case, device)
    budgets = sorted(set(list(cfg.memory_mb) + [int(0.8 * _free_mib(device))]))
    runs = []
    for mem_mb in budgets:
        mb = memory.max_batch_for_memory(model, (c, s, s), mem_mb, device)
        n_img = max(1, cfg.memory_images)
        draws = max(cfg.memory_rows, -(-2 * mb // n_img))  # at least two chunks, so the cap binds
        x, t = _inputs(case, n_img, device)
        peak, oom = _peak(lambda: saliency.smoothgrad(model, x, t, stdevs=cfg.sigma, n_draws=draws, max_batch=mb), device)
        runs.append({"budget_mib": mem_mb, "max_batch": mb, "images": n_img, "draws": draws, "peak_bytes": peak,
                     "peak_mib": None if peak is None else peak / 2 ** 20, "oom": oom,
                     "within_budget": None if peak is None else peak <= mem_mb * 2 ** 20})
    return {"sweeps": sweeps, "resnet18_224_caps": runs,
            "check": {"passed": not any(q["oom"] for q in runs),
                      "what": "SmoothGrad on a 224x224 ResNet-18 at max_batch_for_memory(budget) never runs out of memory"}}
