"""The README's headline findings: one generated sentence per study, each linked to its table in docs/."""
from __future__ import annotations

from empirical import stats
from empirical.report import benchmarks, loo, md, smoothing, split
from empirical.report.registry import Results, block


def _split(res: Results) -> str:
    f = split.facts(res, split.GPU)
    vg, ig = f["vg"], f["ig"]
    rr, rise, e = vg["ratio_max"], ig["rise_after_lowest"], vg["stab_law"].exponent
    pred = next(l for l in f["r"]["laws"] if l["method"] == "vg" and l["quantity"] == "stability")
    fid = vg["fid_law"].exponent
    s = (f"**Disjoint-split stability against σ (GPU run).** SmoothGrad's stability error at σ = {vg['sigmas'][-1]:g} is {md.ci(rr, 2)} of the unsmoothed "
         f"one (paired, {stats.ci_note(rr)}): {stats.verdict(rr, 'higher', 'lower', null=1.0)}; it falls as "
         f"σ^{md.ci(e, 3)}, {stats.verdict(e, 'shallower than', 'steeper than', null=pred['predicted_exponent']['empirical'])}"
         f" Theorem 6's predicted {md.sig(pred['predicted_exponent']['empirical'], 2)}; its fidelity error grows as "
         f"σ^{md.ci(fid, 2)}, {stats.verdict(fid, 'superlinear', 'sublinear', null=1.0)} against Proposition 7's "
         f"linear law.")
    if rise is not None:
        s += (f" Smoothed IG is lowest at σ = {ig['sigmas'][ig['lowest']]:g}; its change from there to "
              f"σ = {ig['sigmas'][-1]:g} is {md.ci(rise, 3, signed=True)} ({rise.signs().text}): "
              f"{stats.verdict(rise, 'rising', 'falling')}; a power law fits it with R² = "
              f"{md.num(ig['stab_law'].r2.estimate, 2)}.")
    return s + " [Tables](docs/split_stability.md#on-the-gpu)"


def _loo(res: Results) -> str:
    r = res.json(loo.GPU)
    cfg = r["config"]
    b = r["bounds"]
    e = loo.n_law(res, loo.GPU, "sgd_ct", "loo_random").exponent
    pr = loo.proxy_ratios(res, loo.GPU)
    ns = sorted(pr)
    t_rows = [row for row in loo._t_rows(res, loo.GPU)]
    loose = sum(w == "the bound is loose" for *_, w in t_rows)
    return (f"**Leave-one-out stability, the theorems' own quantity (GPU run).** Theorems 5/6 hold in "
            f"{sum(x['holds'] for x in b)} of {len(b)} evaluations, {md.span([x['log10_ratio'] for x in b], 1, sep='–')}"
            f" orders of magnitude above the measurement. Against T the measured exponent lies below the bound's "
            f"T^(βc/(βc+1)) in {loose} of {len(t_rows)} (optimizer, n) cells: the bound is loose in T there. Against n "
            f"(SGD c/t, random replacement) the error falls as n^{md.ci(e, 2)} ({stats.ci_note(e)}); against the "
            f"predicted n^−1: {stats.verdict(e, 'shallower', 'steeper', null=-1.0)}. The paper's disjoint-split proxy "
            f"is {md.span([pr[n][0] for n in ns] + [pr[n][1] for n in ns], 0, sep='–')} times the leave-one-out "
            f"quantity, and {loo._monotone_words(ns, [pr[n][1] for n in ns], 'the ratio')}. "
            f"[Tables](docs/loo_stability.md#on-the-gpu)")


def _smoothing(res: Results) -> str:
    f = smoothing.seed_facts(res)
    by: dict[str, list[dict]] = {}
    for c in f["claims"]:
        by.setdefault(c["label"], []).append(c)

    def words(label: str) -> str:  # "sparser (VG, IG, SG)" or "not significant (VG, SG), lose more (IG)"
        groups: dict[str, list[str]] = {}
        for c in by[label]:
            groups.setdefault(c["verdict"], []).append(smoothing.LABELS[c["method"]])
        return ", ".join(f"{v} ({', '.join(ms)})" for v, ms in groups.items())

    L = [c[0] for c in smoothing._claims()]
    return (f"**Adversarial training (A) and feature-map smoothing, {len(f['seeds'])} seeds of the CPU medium "
            f"preset** (a direction only where every seed agrees). Adversarial training against N: Gini "
            f"{words(L[0])}; ROS {words(L[1])}; RRS {words(L[2])}; RIS {words(L[3])}. The five smoothing blocks "
            f"against A: ROS {words(L[5])}, and against N {words(L[6])}; RRS {words(L[7])}; RIS {words(L[8])}; Gini "
            f"{words(L[9])}. [Table](docs/smoothing_study.md#seed-replicates)")


def _bench(res: Results) -> str:
    r = res.json(benchmarks.GPU)
    le = [s for s in r["saliency"] if s["case"] == "lenet-28"]
    ratios = [benchmarks.time_ratio(s["ours"]["all_seconds"], s["captum"]["all_seconds"]) for s in le]
    faster = sum(stats.verdict(t, "higher", "lower", null=1.0) == "lower" for t in ratios)
    rn = [benchmarks.time_ratio(s["ours"]["all_seconds"], s["captum"]["all_seconds"]) for s in r["saliency"]
          if s["case"] != "lenet-28"]
    caps = r["memory"]["resnet18_224_caps"]
    return (f"**Engine speed (GPU run).** On the GPU, our LeNet saliency maps take {md.span([t.estimate for t in ratios], 2, sep='–')}"
            f" of Captum's time (ours faster in {faster} of {len(ratios)} methods, CIs over timing repeats), on "
            f"ResNet-18 {md.span([t.estimate for t in rn], 2, sep='–')}. {len(r['checks']['failed'])} of "
            f"{r['checks']['count']} "
            f"checks fail and are reported; the memory budget is kept at {sum(c['within_budget'] for c in caps)} of "
            f"{len(caps)} caps. [Tables](docs/benchmarks.md#on-the-gpu)")


@block("headline", split.GPU, loo.GPU, "smoothing_study-medium*/results.json", benchmarks.GPU)
def headline(res: Results) -> str:
    """The headline findings, each worded by the verdict function and linked to its table."""
    return "\n".join("- " + s for s in (_split(res), _loo(res), _smoothing(res), _bench(res)))
