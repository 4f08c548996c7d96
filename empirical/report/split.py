"""Blocks of the disjoint-split study (docs/split_stability.md): stability and fidelity against σ.

Unit: the model pair (two networks trained on disjoint halves). Per-image values are averaged within a pair;
intervals resample pairs; σ levels of one pair are paired (same networks, images and noise).
"""
from __future__ import annotations

import numpy as np

from empirical import stats
from empirical.report import md
from empirical.report.common import command, commit, device
from empirical.report.registry import Results, block

GPU, CPU = "split_stability-gpu/results.json", "split_stability/results.json"
MAPS = {"vg": "VG → SmoothGrad", "ig": "IG → smoothed IG"}
SMOOTHED = {"vg": "SmoothGrad", "ig": "smoothed IG"}
UNIT = "model pair"


def per_pair(r: dict, method: str, quantity: str = "stability") -> tuple[list[float], np.ndarray]:
    """σ levels and the ``(pairs, σ)`` array of per-pair means over the test images."""
    units = {(u["pair"], u["sigma"]): u for u in r["units"] if u["method"] == method}
    sigmas = sorted({s for _, s in units})
    pairs = sorted({p for p, _ in units})
    return sigmas, np.array([[np.mean(units[(p, s)]["per_image"][quantity]) for s in sigmas] for p in pairs])


def facts(res: Results, rel: str) -> dict:
    """The study's intervals, computed once per run and shared by the blocks and the headline."""
    def compute() -> dict:
        r = res.json(rel)
        out = {"r": r}
        for m in ("vg", "ig"):
            sig, A = per_pair(r, m)
            _, F = per_pair(r, m, "fidelity")
            pos = [i for i, s in enumerate(sig) if s > 0]
            low = int(np.argmin(A.mean(0)))
            out[m] = {
                "sigmas": sig, "A": A, "F": F,
                "ratio_max": stats.paired_ratio(A[:, -1], A[:, 0], unit=UNIT),
                "ratios": A.mean(0) / A.mean(0)[0],
                "monotone_pairs": int(np.sum(np.all(np.diff(A, axis=1) < 0, axis=1))),
                "lowest": low,
                "rise_after_lowest": (stats.paired_difference(A[:, -1], A[:, low], unit=UNIT)
                                      if 0 < low < len(sig) - 1 else None),
                "stab_law": stats.power_law([sig[i] for i in pos], A[:, pos], unit=UNIT, fit="pooled"),
                "fid_law": stats.power_law([sig[i] for i in pos], F[:, pos], unit=UNIT, fit="pooled"),
                "stab": [stats.summarize(A[:, j], unit=UNIT) for j in range(len(sig))],
                "fid": [stats.summarize(F[:, j], unit=UNIT) for j in range(len(sig))],
            }
        return out
    return res.memo("split:" + rel, compute)


def _setup(r: dict, src: dict | None) -> str:
    cfg = r["config"]
    nets = r["networks"]
    acc = [n["test_accuracy"] for n in nets]
    info = r["info"]
    return (f"`{command(r, 'empirical.split_stability')}` (code {commit(r, src)}): {cfg['model']}/{cfg['activation']}, "
            f"{cfg['pairs']} pairs of networks on disjoint halves ({info['n']:,} images each), {cfg['train']['optimizer']}"
            f" ({cfg['train']['epochs']:g} epochs, batch {cfg['train']['batch_size']}; test accuracy "
            f"{md.span(acc, 3, sep='–')}), σ/(x_max−x_min) ∈ {{{', '.join(f'{s:g}' for s in cfg['sigmas'])}}} "
            f"(σ = 0 is the unsmoothed map), {cfg['test_images']} test images, {cfg['draws']} noise draws, "
            f"{cfg['ig_steps']} IG nodes. Wall {md.seconds(r['wall_seconds'])} on {device(r)}; the training recorded "
            f"per network sums to {md.seconds(sum(n['train_seconds'] for n in nets))}"
            + (" (every network reused from an earlier run's checkpoint)" if all(n.get("reused_checkpoint") for n in nets)
               else "") + ".")


def _table(f: dict, r: dict) -> str:
    rows = []
    k = r["config"]["topk_fraction"]
    for m in ("vg", "ig"):
        d = f[m]
        sig = d["sigmas"]
        unit_norm = per_pair(r, m, "stability_unit")[1].mean(0)
        ssim = per_pair(r, m, "ssim")[1].mean(0)
        iou = per_pair(r, m, "topk_iou")[1].mean(0)
        for j, s in enumerate(sig):
            rows.append((MAPS[m] if j == 0 else "", f"{s:.2f}", md.ci(d["stab"][j], 3), md.num(unit_norm[j], 3),
                         "0" if s == 0 else md.ci(d["fid"][j], 3), md.num(ssim[j], 2), md.num(iou[j], 2)))
    n = f["vg"]["A"].shape[0]
    return md.table(("map", "σ/(x_max−x_min)", "stability ‖Sal₁−Sal₂‖ [CI]", "unit-norm", "fidelity (eq. 13) [CI]",
                     "SSIM", f"top-{k:.0%} IoU"), rows) + (
        f"\n\nMeans over {n} model pairs of each pair's mean over the test images; [CI]: "
        f"{md.pct(stats.CONFIDENCE)} bootstrap interval over the {n} model pairs ({f['vg']['stab'][0].method}; "
        f"unit: model pair). Unit-norm, SSIM and IoU: means over pairs.")


def _findings(f: dict, r: dict) -> list[str]:
    out = []
    n = f["vg"]["A"].shape[0]
    for m in ("vg", "ig"):
        d = f[m]
        sig, rr = d["sigmas"], d["ratio_max"]
        word = stats.verdict(rr, "higher", "lower", null=1.0)
        line = (f"**{SMOOTHED[m]}**: raw stability error at σ = {sig[-1]:g} over σ = 0: {md.ci(rr, 2)} "
                f"({stats.ci_note(rr)}, paired ratio; {rr.signs(1.0).negative}/{rr.n_units} pairs lower): {word}. "
                f"Ratio to σ = 0 along the grid: {', '.join(md.num(x, 2) for x in d['ratios'][1:])}; "
                f"it falls at every step in {d['monotone_pairs']}/{n} pairs.")
        if d["rise_after_lowest"] is not None:
            s = d["rise_after_lowest"]
            line += (f" Lowest at σ = {sig[d['lowest']]:g}; from there to σ = {sig[-1]:g} the error changes by "
                     f"{md.ci(s, 3, signed=True)} ({stats.ci_note(s)}, paired; {s.signs().text}): "
                     f"{stats.verdict(s, 'rises', 'falls')}.")
        out.append(line)
    laws = {l["method"] + l["quantity"]: l for l in r["laws"]}
    for m in ("vg", "ig"):
        pl = f[m]["stab_law"]
        pred = laws[m + "stability"]["predicted_exponent"]
        e = pl.exponent
        out.append(
            f"**{SMOOTHED[m]} against σ** (σ > 0, one point per pair and σ): stability ∝ σ^{md.ci(e, 3)} "
            f"({stats.ci_note(e)}), R² = {md.ci(pl.r2, 2)}"
            + ("; a power law describes this curve poorly" if pl.r2.estimate < 0.5 else "")
            + f": {stats.verdict(e, 'rises', 'falls')} with σ. Theorem 6's bound falls as σ^(−1/(βc+1)), "
            f"{md.sig(pred['empirical'], 2)} with the measured β and {md.sig(pred['remark4'], 2)} with Remark 4's; "
            "that exponent describes the bound, not the quantity, so it is not tested against the measured one.")
    for m in ("vg", "ig"):
        pl = f[m]["fid_law"]
        e = pl.exponent
        out.append(f"**Fidelity error of {SMOOTHED[m]}** ∝ σ^{md.ci(e, 2)} ({stats.ci_note(e)}), R² = "
                   f"{md.num(pl.r2.estimate, 2)}; against Proposition 7's linear law: "
                   f"{stats.verdict(e, 'superlinear', 'sublinear', null=1.0)}.")
    out.append(_bounds(r))
    return out


def _bounds(r: dict) -> str:
    K = r["info"]["bound_constants"]
    by: dict[str, list[dict]] = {}
    for b in r["bounds"]:
        by.setdefault(b["bound"], []).append(b)
    parts = []
    for name, rows in by.items():
        above = [-b["log10_ratio"] for b in rows]
        vac = sum(b["vacuous"] for b in rows)
        parts.append(f"{name} sits {md.span(above, 2, sep='–')} orders of magnitude above the measured value "
                     f"({vac}/{len(rows)} evaluations above the trivial bound 2Γ_(k,0): vacuous)")
    lacks = list(dict.fromkeys(g for b in r["bounds"] for g in b.get("lacks", "").split("; ") if g))
    cert = sum(b.get("certified", False) for b in r["bounds"])
    gain = K["remark4"].get("param_gain")
    return (f"**The bounds on the same networks** (B per layer, an upper bound of its operator norm, the largest "
            f"over the networks: {', '.join(md.num(b, 2) for b in K['B'])}"
            + (f"; conv kernels enter L, β and L′ with the parameter gain γ = {md.num(gain, 2)}" if gain else "")
            + f"; C = {md.num(K['C'], 1)}; n_eff = n/batch = {K['n_eff']}, T = {K['T']}): " + "; ".join(parts)
            + f". {cert} of the {len(r['bounds'])} rows are certificates for these networks; the others lack: "
            + "; ".join(lacks) + ". These bounds are for the leave-one-out quantity, which the leave-one-out "
            "study measures directly.")


@block("split-gpu-setup", GPU)
def split_gpu_setup(res: Results) -> str:
    """How the GPU split-stability run was made."""
    r = res.json(GPU)
    src = res.json("split_stability-gpu/source.json") if res.exists("split_stability-gpu/source.json") else None
    return _setup(r, src)


@block("split-gpu-table", GPU)
def split_gpu_table(res: Results) -> str:
    """Stability and fidelity against σ on the GPU, with CIs over model pairs."""
    return _table(facts(res, GPU), res.json(GPU))


@block("split-gpu-findings", GPU)
def split_gpu_findings(res: Results) -> str:
    """What the GPU split run shows, worded by the verdict function."""
    return "\n".join("- " + s for s in _findings(facts(res, GPU), res.json(GPU)))


@block("split-cpu", CPU)
def split_cpu(res: Results) -> str:
    """The CPU split-stability run: setup, wall time as recorded, effects with CIs over its pairs."""
    r = res.json(CPU)
    f = facts(res, CPU)
    n = f["vg"]["A"].shape[0]
    lines = [_setup(r, None) + " The file's wall time is that of the run that wrote it; how long the first "
             "(training) run took is not recorded."]
    laws = {l["method"]: l for l in r["laws"] if l["quantity"] == "stability"}
    for m in ("vg", "ig"):
        d = f[m]
        rr, e = d["ratio_max"], d["stab_law"].exponent
        own = laws[m]["fitted_ci"]
        lines.append(
            f"{SMOOTHED[m]}: the run's own exponent interval (a t-interval over the pooled per-pair points, "
            f"`laws` in results.json) is [{md.num(own[0], 3)}, {md.num(own[1], 3)}]"
            + (", which spans 0: it carries no direction" if own[0] < 0 < own[1] else "")
            + f". Resampling whole pairs instead: exponent σ^{md.ci(e, 3)} ({stats.ci_note(e)}; "
            f"{e.signs().text}): {stats.verdict(e, 'rising', 'falling')}; raw stability error at σ = "
            f"{d['sigmas'][-1]:g} over σ = 0: {md.ci(rr, 2)} (paired ratio; {rr.signs(1.0).text}): "
            f"{stats.verdict(rr, 'higher', 'lower', null=1.0)}.")
    lines.append(f"With {n} pairs no interval can cover better than the range of {n} values does "
                 f"(the range covers the median with probability {md.pct(1 - 2 * 0.5 ** n)}): read these as "
                 "the sign agreement of the pairs, not as 95 % intervals.")
    return "\n".join("- " + s for s in lines)
