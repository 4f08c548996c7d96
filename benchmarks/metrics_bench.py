"""Section 3: quality metrics, ours (``empirical.measures``) against Quantus 0.6 on identical inputs.

Setting: LeNet with softplus activations (random initialisation, seed 0) on 1×28×28 inputs drawn uniformly
from [0.1, 0.9], so that no input entry and (with a smooth network) no vanilla-gradient entry is exactly
zero; those are the conditions under which our definitions and Quantus's agree (see the docstrings of
``empirical.measures`` and tests/test_quality_metrics.py). Both sides explain with the same function (our
vanilla gradient) and see the same perturbations: ours draws them with ``linf_ball_perturbations``, Quantus
gets the very same tensors back through ``perturb_func`` (drawn before its clock starts). Quantus runs with
``batch_size`` = all images.

Timed and checked are separate calls of ours. Timed: our engine as a user runs it, at the fastest number of
rows per explain call (all images times 1, 2, 4, ... perturbations; Captum likewise runs at its best batch in
the saliency section). Checked: ours with Quantus's call sizes, both libraries explaining through
:func:`batch_invariant` (fixed-size chunks), so that the same image gets the same map bits in either library
whatever the batch it comes in. How far the timed run's scores sit from the checked ones is recorded
(``timed_run_max_rel_diff``, information, not a check): the metrics divide by each map entry, so they amplify
the maps' kernel-dependent float rounding without a useful bound.

Checks, where the definitions agree:
- Gini vs ``Sparseness``: Quantus scores ``|m|/max|m| + 1e-7``; ours on that same array must agree to 1e-6
  (the raw difference, from the 1e-7 offset, is recorded too).
- RIS / ROS / RRS: on images whose perturbations never change the prediction (Quantus gives NaN otherwise),
  relative agreement within the float32 rounding of the two 2-norms (``empirical.runtime.rounding``, ~2e-4
  for 784 map entries), both against Quantus and between our checked and timed batchings on the same maps.
- ROAD: Quantus records accuracy with the signed attribution ranked over one channel; ours with
  ``reduce_channels="none", signed=True, noise=0`` must give the same accuracy per percentage (exactly, up
  to 1e-12).
"""
from __future__ import annotations

import warnings

import numpy as np
import quantus
import torch

from benchmarks.common import BenchConfig, build_model, candidates, sweep, timed_pair, with_floor
from empirical import attribution as saliency
from empirical import measures as quality
from empirical.runtime import rounding


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _replay(xp: torch.Tensor):
    """A Quantus perturb_func handing back our perturbations in Quantus's order (one sample per call, one batch)."""
    state = {"i": 0}

    def perturb(arr, indices, **kw):
        s = state["i"] % xp.shape[0]
        state["i"] += 1
        return xp[s].reshape(arr.shape).cpu().numpy().copy()
    return perturb


def batch_invariant(explain, chunk: int):
    """``explain`` made independent of how its caller batches: rows go through in chunks of exactly ``chunk``
    (the last one padded with copies of its first row), so a given image gets the same kernels, hence the same
    bits, whether Quantus asks for it among 1000 images or we among 10,000 perturbations. Both libraries then
    score bit-identical maps, and the RIS/ROS/RRS checks compare the definitions rather than float rounding
    that the metrics' element-wise divisions amplify (on an H100, by up to 63% between batch sizes)."""
    def f(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, v.shape[0], chunk):
            vb, tb = v[i:i + chunk], t[i:i + chunk]
            k = vb.shape[0]
            if k < chunk:
                vb = torch.cat([vb, vb[:1].expand(chunk - k, *vb.shape[1:])])
                tb = torch.cat([tb, tb[:1].expand(chunk - k)])
            out.append(explain(vb, tb)[:k])
        return torch.cat(out)
    return f


def metrics_section(cfg: BenchConfig, device) -> list[dict]:
    model = build_model("lenet-28", device, act="softplus")
    n, s, radius = cfg.metric_images, cfg.metric_perturbations, cfg.metric_radius
    g = torch.Generator().manual_seed(3)
    x = (0.1 + 0.8 * torch.rand(n, 1, 28, 28, generator=g)).to(device)
    with torch.no_grad():
        y = model(x).argmax(-1)

    chunk = min(n, 4096)  # Quantus explains n images per call: one chunk, unpadded; ours n * s rows in s chunks

    def explain(v, t):
        return batch_invariant(lambda a, b: saliency.vanilla_gradient(model, a, b, max_batch=chunk), chunk)(v, t)

    def q_explain(model, inputs, targets, **kw):
        return explain(torch.as_tensor(inputs, dtype=torch.float32, device=device),
                       torch.as_tensor(targets, device=device)).cpu().numpy()

    maps = explain(x, y)
    x_np, y_np, maps_np = x.cpu().numpy(), y.cpu().numpy(), maps.cpu().numpy()
    dev = str(device)
    w, r = cfg.warmup, cfg.repeats
    qkw = dict(b_warmup=cfg.quantus_warmup, b_repeats=cfg.quantus_repeats)
    out = []

    def record(name, quantus_api, ours_rec, q_rec, check, **extra):
        return {"metric": name, "images": n, **extra, "ours_seconds": ours_rec["seconds"],
                "ours_all_seconds": ours_rec["all_seconds"], "quantus": quantus_api,
                "quantus_seconds": q_rec["seconds"], "quantus_all_seconds": q_rec["all_seconds"],
                "time_ratio_ours_over_quantus": ours_rec["seconds"] / q_rec["seconds"], "check": check}

    # Gini / Sparseness
    sp = quantus.Sparseness(disable_warnings=True)
    ours, g_ours, q_rec, q = timed_pair(
        lambda: quality.gini(maps),
        lambda: np.array(_quiet(sp, model=None, x_batch=x_np, y_batch=y_np, a_batch=maps_np.copy(), batch_size=n)),
        device, w, r, **qkw)
    flat = maps.double().abs().flatten(1)
    shifted = flat / flat.amax(1, keepdim=True) + 1e-7
    same_def = np.abs(quality.gini(shifted).cpu().numpy() - q).max()
    out.append(record("gini", "Sparseness", ours, q_rec, {
        "passed": bool(same_def <= 1e-6), "max_abs_diff": float(same_def), "tolerance": "1e-6 absolute",
        "compared": "ours on |m|/max|m| + 1e-7 (Quantus's input) vs Quantus",
        "max_abs_diff_raw_maps": float(np.abs(g_ours.cpu().numpy() - q).max())}))

    # RIS / ROS / RRS with identical perturbations
    xp = quality.linf_ball_perturbations(x, radius, 0, s, seed=0)
    kw = dict(target=y, radius=radius, n_samples=s, seed=0)
    rep = lambda v: model[:3](v)  # noqa: E731  the input of the head: Quantus hooks "block3.2" (it skips Sequentials)

    def natural(v, t):  # our engine as a user calls it: its own batching
        return saliency.vanilla_gradient(model, v, t)
    stab = (("ris", lambda ex: (quality.relative_input_stability, (ex, model)), quantus.RelativeInputStability, {}),
            ("ros", lambda ex: (quality.relative_output_stability, (ex, model)), quantus.RelativeOutputStability, {}),
            ("rrs", lambda ex: (quality.relative_representation_stability, (ex, model, rep)),
             quantus.RelativeRepresentationStability, {"layer_names": ["block3.2"]}))
    # rows per explain() call: all images times 1, 2, 4, ... perturbations, up to all of them
    sizes = sorted({n * k for k in candidates(s, 2)})
    for name, fn_args, q_cls, q_kw in stab:

        def ours_call(ex, rows):
            fn, args = fn_args(ex)
            return fn(*args, x, **kw, batch_size=rows)

        def q_call():
            metric = q_cls(nr_samples=s, perturb_func=_replay(xp), eps_min=1e-6, disable_warnings=True, **q_kw)
            return np.array(_quiet(metric, model=model, x_batch=x_np, y_batch=y_np, a_batch=None,
                                   explain_func=q_explain, batch_size=n, device=dev))
        # Timed: ours at its fastest batch size (as Captum is, in the saliency section), with the engine's own
        # batching. Checked: ours with Quantus's call sizes and the batch-invariant explain both libraries
        # share, so that both score bit-identical maps.
        sw = sweep(lambda rows: (lambda: ours_call(natural, rows)), sizes, device)
        ours, timed_res, q_rec, q = timed_pair(lambda: ours_call(natural, sw["best"]), q_call, device, w, r, **qkw)
        res = ours_call(explain, n)
        ours_v = res.score.cpu().numpy()
        keep = (res.n_excluded.cpu().numpy() == 0) & np.isfinite(q)
        rel = (np.abs(ours_v[keep] - q[keep]) / np.abs(q[keep])).max() if keep.any() else float("nan")
        # Both libraries score bit-identical maps and perturbations, and the element-wise parts of the
        # definitions are correctly rounded everywhere: only the two 2-norms (map entries; input entries, logits
        # or representation entries) may be summed in another order (empirical.runtime.rounding).
        den_len = {"ris": x[0].numel(), "ros": int(model(x[:1]).numel()), "rrs": int(rep(x[:1]).numel())}[name]
        tol = rounding.ratio_of_norms_rtol(maps[0].numel(), den_len)
        # The timed run's batching with the same (batch-invariant) maps: the engine's batching must not change
        # what is computed, only the norms' summation order.
        same_maps = ours_call(explain, sw["best"]).score.cpu().numpy()
        rebatched = float((np.abs(same_maps[keep] - ours_v[keep]) / np.abs(ours_v[keep])).max()) if keep.any() else 0.0
        # How far the timed run's scores (natural batching: other maps' rounding) are from the checked ones:
        # information only, not a check. The metrics divide by each map entry and by small differences, which
        # amplify kernel-dependent rounding without bound (up to 63% between batch sizes seen on an H100).
        timed_v = timed_res.score.cpu().numpy()
        moved = float((np.abs(timed_v[keep] - ours_v[keep]) / np.abs(ours_v[keep])).max()) if keep.any() else 0.0
        check = {"passed": bool(keep.any() and rel <= tol), "max_rel_diff": float(rel),
                 "tolerance": f"{tol:.2g} relative (float32 rounding of two 2-norms, any summation order)",
                 "images_compared": int(keep.sum()),
                 "compared": "images whose perturbations never change the prediction (Quantus: NaN otherwise)",
                 "timed_batching": {"passed": bool(rebatched <= tol), "max_rel_diff": rebatched,
                                    "rows_per_call": sw["best"], "tolerance": tol,
                                    "compared": "same maps, the timed run's rows per call vs Quantus's"},
                 "timed_run_max_rel_diff": moved}
        if keep.any() and not check["passed"]:
            check = with_floor(check, float(rel), moved, "max relative change of our own score between the "
                               "checked run and the timed run (same definition, other batching)")
        out.append(record(name, q_cls.__name__, ours, q_rec, check, perturbations=s, radius=radius,
                          ours_rows_per_call=sw["best"], ours_sweep_seconds=sw["seconds_by_size"]))

    # ROAD, accuracy curve, no imputation noise, signed ranking over the one channel
    pcts = list(cfg.road_percentages)

    def q_road():
        metric = quantus.ROAD(percentages=pcts, noise=0.0, abs=False, normalise=False, disable_warnings=True)
        return _quiet(metric, model=model, x_batch=x_np, y_batch=y_np, a_batch=maps_np.copy(), batch_size=n,
                      device=dev)
    ours, res, q_rec, q = timed_pair(
        lambda: quality.road(model, x, maps, target=y, percentages=[p / 100 for p in pcts], noise=0.0,
                             reduce_channels="none", signed=True), q_road, device, w, r, **qkw)
    q_curve = np.array([q[p] for p in pcts], dtype=float)
    ours_curve = res.correct.double().mean(0).cpu().numpy()
    diff = float(np.abs(ours_curve - q_curve).max())
    out.append(record("road", "ROAD", ours, q_rec, {
        "passed": bool(diff <= 1e-12), "max_abs_diff": diff, "tolerance": "1e-12 absolute (accuracy per percentage)",
        "ours": ours_curve.tolist(), "quantus": q_curve.tolist(),
        # an untrained network keeps its prediction, so the curve may be flat at 1: then only the plumbing is
        # compared (tests/test_quality_metrics.py pins a curve strictly between 0 and 1)
        "informative": bool(((q_curve > 0) & (q_curve < 1)).any())}, percentages=pcts))
    return out
