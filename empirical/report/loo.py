"""Blocks of the leave-one-out study (docs/loo_stability.md): the theorems' own quantity against n, T and σ.

Unit: the replica. Replica r is one coupled pair of training runs (S and S with one sample replaced), with the
same removed sample, seeds and noise for every kind of replacement, n, T, σ and map: comparisons across them
are paired, and intervals resample replicas (BCa from 10 replicas on, as the stability errors are
heavy-tailed).
"""
from __future__ import annotations

import numpy as np

from empirical import stats
from empirical.report import md
from empirical.report.common import command, commit, device
from empirical.report.registry import Results, block

GPU, CPU = "loo_stability-gpu/results.json", "loo_stability/results.json"
UNIT = "replica"
KINDS = {"loo_random": "random replacement", "loo_flip": "flipped label", "loo_outlier": "outlier",
         "loo_outlier_flip": "outlier, flipped label"}
OPT = {"sgd_ct": "SGD c/t", "noisy_sgd": "noisy SGD"}


def per_replica(res: Results, rel: str) -> dict:
    """``(optimizer, n, T, method, σ, comparison) -> per-replica values``, read once."""
    def compute() -> dict:
        out = {}
        for u in res.json(rel)["units"]:
            for snap in u["snapshots"]:
                for m in snap["measures"]:
                    out[(u["optimizer"], u["n"], snap["T"], m["method"], m["sigma"], m["comparison"])] = \
                        np.asarray(m["per_replica"], dtype=float)
        return out
    return res.memo("loo:" + rel, compute)


def _V(P: dict, keys: list[tuple]) -> np.ndarray:
    return np.stack([P[k] for k in keys], axis=1)  # (replicas, len(keys))


def n_law(res: Results, rel: str, opt: str, comp: str, method: str = "vg", sigma: float = 0.0,
          fit: str = "means") -> stats.PowerLaw | None:
    """The n-exponent at the longest T through replica means (or medians / 20 % trimmed means); None where a
    centre is 0 at some n (a median of replicas most of which never drew the replaced sample)."""
    r = res.json(rel)
    cfg = r["config"]
    T = max(cfg["steps"])
    P = per_replica(res, rel)

    def compute():
        try:
            return stats.power_law(cfg["ns"], _V(P, [(opt, n, T, method, sigma, comp) for n in cfg["ns"]]), unit=UNIT,
                                   fit=fit)
        except ValueError:
            return None
    return res.memo(f"loo-n:{rel}:{opt}:{comp}:{method}:{sigma}:{fit}", compute)


def exponent_difference(res: Results, rel: str, opt: str, comp: str, base: str = "loo_random") -> stats.Summary:
    """The n-exponent of ``comp`` minus that of ``base``, replicas resampled jointly (paired)."""
    cfg = res.json(rel)["config"]
    ns, T = cfg["ns"], max(cfg["steps"])
    P = per_replica(res, rel)
    data = np.stack([_V(P, [(opt, n, T, "vg", 0.0, c) for n in ns]) for c in (comp, base)], axis=2)

    def stat(sample: np.ndarray) -> np.ndarray:  # (B, R, len(ns), 2)
        m = sample.mean(axis=1)
        return stats.loglog_slopes(ns, m[..., 0]) - stats.loglog_slopes(ns, m[..., 1])

    s = stats.bootstrap(data, stat, unit=UNIT, label="paired")
    per_unit = stats.loglog_slopes(ns, data[..., 0]) - stats.loglog_slopes(ns, data[..., 1])
    from dataclasses import replace
    return replace(s, unit_values=tuple(per_unit.tolist()))


def _setup(r: dict, src: dict | None) -> str:
    cfg = r["config"]
    ig = f", {cfg['ig_steps']} IG nodes" if cfg.get("ig_steps") else ""
    return (f"`{command(r, 'empirical.loo_stability')}` (code {commit(r, src)}): {cfg['activation']} MLP "
            f"{cfg['depth']}×{cfg['width']} without biases on Fashion-MNIST"
            + (f" downsampled {cfg['downsample']}×" if cfg.get("downsample", 1) > 1 else "")
            + f", optimizers {md.join([OPT[o] for o in cfg['optimizers']])}; {cfg['replicas']} coupled replicas per "
            f"(n, kind of replacement: {md.join([KINDS['loo_' + k] for k in cfg['kinds']])}); "
            f"n ∈ {{{', '.join(map(str, cfg['ns']))}}}, T ∈ {{{', '.join(map(str, cfg['steps']))}}}, "
            f"SmoothGrad σ ∈ {{{', '.join(f'{s:g}' for s in cfg['sigmas'])}}}; {cfg['test_images']} test images, "
            f"{cfg['draws']} draws{ig}; the disjoint-split proxy (eq. 12) on the same networks. "
            f"Wall {md.seconds(r['wall_seconds'])} on {device(r)}.")


def _source(res: Results, rel: str) -> dict | None:
    s = rel.rsplit("/", 1)[0] + "/source.json"
    return res.json(s) if res.exists(s) else None


@block("loo-gpu-setup", GPU)
def loo_gpu_setup(res: Results) -> str:
    """How the GPU leave-one-out run was made."""
    return _setup(res.json(GPU), _source(res, GPU))


def _n_table(res: Results, rel: str) -> str:
    cfg = res.json(rel)["config"]
    T = max(cfg["steps"])
    rows = []
    for o in cfg["optimizers"]:
        for c in KINDS:
            pl = n_law(res, rel, o, c)
            robust = [n_law(res, rel, o, c, fit=f) for f in ("medians", "trimmed")]
            diff = "" if c == "loo_random" else md.ci(exponent_difference(res, rel, o, c), 2, signed=True)
            word = "" if c == "loo_random" else stats.verdict(exponent_difference(res, rel, o, c),
                                                               "shallower than random", "steeper than random")
            rows.append((OPT[o], KINDS[c], md.ci(pl.exponent, 2), md.num(pl.r2.estimate, 2),
                         *[md.ci(q.exponent, 2) if q is not None else "—" for q in robust], diff, word))
    e0 = n_law(res, rel, cfg["optimizers"][0], "loo_random").exponent
    diffs = [exponent_difference(res, rel, o, c) for o in cfg["optimizers"] for c in KINDS if c != "loo_random"]
    k = sum(stats.verdict(d) != "not significant" for d in diffs)
    worst = (f" Worst cases against random: {k} of {len(diffs)} paired differences have an interval that excludes "
             f"0 (each at {md.pct(stats.CONFIDENCE)}, no correction for {len(diffs)} comparisons)"
             + ("; a shallower worst case is not established across kinds and optimizers." if k < len(diffs)
                else "."))
    return md.table(("optimizer", "replacement", f"exponent of n (VG, T = {T}), means [CI]", "R²",
                     "through medians [CI]", "through 20 % trimmed means [CI]", "minus random's exponent [CI]",
                     "against random"), rows) + (
        f"\n\n[CI]: {stats.ci_note(e0)}; each fit is through the replica mean (median, trimmed mean) at each n, "
        "replicas resampled whole (a replica's curve stays together); the differences are paired (the same "
        "replicas). The n^−1 of Theorems 5/6 is the bound's exponent: the paper makes no claim that the "
        "quantity itself scales so, and none is tested here." + worst)


def _share(res: Results, rel: str, opt: str, comp: str = "loo_random") -> list[tuple[int, float]]:
    cfg = res.json(rel)["config"]
    T = max(cfg["steps"])
    P = per_replica(res, rel)
    return [(n, float(P[(opt, n, T, "vg", 0.0, comp)].max() / P[(opt, n, T, "vg", 0.0, comp)].sum()))
            for n in cfg["ns"]]


@block("loo-gpu-n", GPU)
def loo_gpu_n(res: Results) -> str:
    """Stability against n at the longest training, per kind of replacement, with the worst case against random."""
    cfg = res.json(GPU)["config"]
    big = [n for n in cfg["ns"] if n >= 1024]
    shares = [s for o in cfg["optimizers"] for n, s in _share(res, GPU, o) if n in big]
    return _n_table(res, GPU) + (
        f"\n\nOne replica carries {md.span([100 * s for s in shares], 0, sep='–')} % of the random replacement's mean "
        f"(the largest single replica's share of the sum over {cfg['replicas']}) at n ∈ "
        f"{{{', '.join(map(str, big))}}}: the random-replacement exponent leans on a few replicas.")


@block("loo-gpu-t", GPU)
def loo_gpu_t(res: Results) -> str:
    """Stability against T per n, beside the exponent the bound grows with."""
    return _t_table(res, GPU)


def _t_rows(res: Results, rel: str) -> list[tuple]:
    """Per (optimizer, n): the measured T-exponent, the bound's exponents and the reading."""
    def compute() -> list[tuple]:
        r = res.json(rel)
        cfg = r["config"]
        P = per_replica(res, rel)
        pred = {(l["optimizer"], l["at"]): l["predicted"] for l in r["laws"]
                if l["against"] == "T" and l["method"] == "vg" and l["comparison"] == "loo_random"}
        out = []
        for o in cfg["optimizers"]:
            for n in cfg["ns"]:
                e = stats.power_law(cfg["steps"], _V(P, [(o, n, T, "vg", 0.0, "loo_random") for T in cfg["steps"]]),
                                    unit=UNIT).exponent
                p = pred[(o, f"n={n}")]
                out.append((o, n, e, p, stats.verdict(e, "grows faster than the bound", "the bound is loose",
                                                      null=p["empirical"])))
        return out
    return res.memo("loo-t:" + rel, compute)


def _t_table(res: Results, rel: str) -> str:
    rows = _t_rows(res, rel)
    gaps = [p["empirical"] - e.ci_high for _, _, e, p, _ in rows]
    body = [(OPT[o], n, md.ci(e, 2), md.num(p["empirical"], 2), md.num(p["remark4"], 2), w) for o, n, e, p, w in rows]
    return md.table(("optimizer", "n", "exponent of T (VG, random) [CI]", "bound's exponent βc/(βc+1), measured β",
                     "with Remark 4's β", "reading"), body) + (
        f"\n\n[CI]: {stats.ci_note(rows[0][2])}. Theorems 5/6 bound the error by a quantity growing as T^(βc/(βc+1)); "
        "a measured exponent below it is what an upper bound allows: the bound is loose in T (its exponent exceeds "
        f"the upper end of the measured interval by {md.span(gaps, 2, sep='–')}), not contradicted.")


@block("loo-gpu-sigma", GPU)
def loo_gpu_sigma(res: Results) -> str:
    """SmoothGrad's stability against σ per n, beside the exponent of Theorem 6's bound."""
    r = res.json(GPU)
    cfg = r["config"]
    T = max(cfg["steps"])
    P = per_replica(res, GPU)
    pred = {(l["optimizer"], l["at"]): l["predicted"] for l in r["laws"]
            if l["against"] == "sigma" and l["comparison"] == "loo_random"}
    rows = []
    for o in cfg["optimizers"]:
        for n in cfg["ns"]:
            pl = stats.power_law(cfg["sigmas"], _V(P, [(o, n, T, "sg", s, "loo_random") for s in cfg["sigmas"]]),
                                 unit=UNIT)
            e, p = pl.exponent, pred[(o, f"n={n}, T={T}")]
            rows.append((OPT[o], n, md.ci(e, 3), md.num(p["empirical"], 3), md.sig(p["remark4"], 2),
                         stats.verdict(e, "rises with σ", "falls with σ")))
    return md.table(("optimizer", "n", f"exponent of σ (SmoothGrad, random, T = {T}) [CI]",
                     "Theorem 6's bound: −1/(βc+1), measured β", "with Remark 4's β", "the quantity"), rows) + (
        f"\n\n[CI]: {stats.ci_note(e)}. Theorem 6 bounds the error from above; its σ-exponent describes the "
        "bound, not the quantity, and is shown for reference: the reading tests only whether the quantity "
        "itself falls with σ.")


@block("loo-gpu-bounds", GPU)
def loo_gpu_bounds(res: Results) -> str:
    """Whether Theorems 5/6 hold on the run's own networks, and by how much."""
    return _bounds(res.json(GPU))


def _bounds(r: dict) -> str:
    b = r["bounds"]
    held = sum(x["holds"] for x in b)
    ratio = [x["log10_ratio"] for x in b]
    vac = sum(x["vacuous"] for x in b)
    cert = [x for x in b if x.get("certified")]
    lacks: dict[str, int] = {}
    for x in b:
        for g in filter(None, x.get("lacks", "").split("; ")):
            lacks[g] = lacks.get(g, 0) + 1
    kinds = sorted({(x["optimizer"], x["bound"], x["constants"]) for x in cert})
    return (f"The measurement is consistent with the bound in {held} of {len(b)} evaluations (its sup over test "
            f"images lies below the bound; every n, T, σ, map, set of constants and printed/corrected variant); the "
            f"bound is loose by {md.span(ratio, 1, sep='–')} orders of magnitude over the worst measured kind of "
            f"replacement, and {vac} of the {len(b)} lie above the trivial bound 2Γ_(k,0) (vacuous). "
            + (f"Certificates: {len(cert)} of the {len(b)} rows are valid bounds for the networks and the algorithm "
               f"run ({md.join([f'{OPT[o]}, {name}, {c} constants' for o, name, c in kinds])}). The others lack: "
               if cert else "None of the rows is a certificate for the networks and the algorithm run; they lack: ")
            + "; ".join(f"{g} ({k} rows)" for g, k in lacks.items()) + ".")


def proxy_ratios(res: Results, rel: str) -> dict:
    """Per n at the longest T: the proxy/leave-one-out ratio over every (optimizer, map, σ, proxy) cell, and the
    paired interval of one reference cell (SGD c/t, VG, the shared-start proxy)."""
    cfg = res.json(rel)["config"]
    T = max(cfg["steps"])
    P = per_replica(res, rel)
    out = {}
    for n in cfg["ns"]:
        cells = [P[k].mean() / P[k[:-1] + ("loo_random",)].mean() for k in P
                 if k[1] == n and k[2] == T and k[-1].startswith("proxy")]
        ref = stats.paired_ratio(P[("sgd_ct", n, T, "vg", 0.0, "proxy_shared")],
                                 P[("sgd_ct", n, T, "vg", 0.0, "loo_random")], unit=UNIT)
        out[n] = (min(cells), max(cells), ref)
    return out


def _monotone_words(ns: list[int], values: list[float], what: str) -> str:
    d = np.diff(values)
    if np.all(d > 0):
        return f"{what} rises with n at every step"
    if np.all(d < 0):
        return f"{what} falls with n at every step"
    top = ns[int(np.argmax(values))]
    return f"{what} is not monotone in n: largest at n = {top}"


@block("loo-gpu-proxy", GPU)
def loo_gpu_proxy(res: Results) -> str:
    """The disjoint-split proxy (eq. 12) against the leave-one-out quantity it stands for, per n."""
    return _proxy(res, GPU)


def _proxy(res: Results, rel: str) -> str:
    cfg = res.json(rel)["config"]
    T = max(cfg["steps"])
    pr = proxy_ratios(res, rel)
    ns = sorted(pr)
    rows = [(n, md.span(pr[n][:2], 1, sep="–"), md.ci(pr[n][2], 1)) for n in ns]
    pl = n_law(res, rel, "sgd_ct", "proxy_shared")
    ref = pr[ns[0]][2]
    return md.table(("n", f"proxy / leave-one-out, range over every cell at T = {T}",
                     "SGD c/t, VG, shared-start proxy [CI]"), rows) + (
        f"\n\nCells: optimizer × map (VG, IG, SmoothGrad at each σ) × proxy (shared or independent start), each "
        f"the ratio of replica means; [CI]: {stats.ci_note(ref)}, paired ratio. "
        + _monotone_words(ns, [pr[n][1] for n in ns], "The largest ratio") + "; "
        + _monotone_words(ns, [pr[n][2].estimate for n in ns], "the reference cell's ratio")
        + f". The proxy itself ∝ n^{md.ci(pl.exponent, 2)} (SGD c/t, VG; {stats.ci_note(pl.exponent)}).")


@block("loo-gpu-kinds", GPU)
def loo_gpu_kinds(res: Results) -> str:
    """How much more a mislabelled or outlying replacement moves the maps than a random one."""
    return _kinds(res, GPU)


def _kinds(res: Results, rel: str) -> str:
    cfg = res.json(rel)["config"]
    T = max(cfg["steps"])
    P = per_replica(res, rel)
    rows = []
    for c in ("loo_flip", "loo_outlier", "loo_outlier_flip"):
        cells = [k for k in P if k[2] == T and k[-1] == c]
        ratios = [stats.paired_ratio(P[k], P[k[:-1] + ("loo_random",)], unit=UNIT, resamples=2000) for k in cells]
        above = sum(stats.verdict(s, "above", "below", null=1.0) == "above" for s in ratios)
        rows.append((KINDS[c], md.span([s.estimate for s in ratios], 2, sep="–"), f"{above}/{len(cells)}"))
    return md.table(("replacement", f"mean / random replacement's mean, range over cells at T = {T}",
                     "cells whose CI lies above 1"), rows) + (
        f"\n\nCells: optimizer × n × map (VG, IG, SmoothGrad at each σ); each ratio's CI is a "
        f"{stats.ci_note(ratios[0])}, paired (the same replicas; 2,000 resamples per cell). Which kind is worst "
        "is recorded per cell (`worst_kind` in results.json).")


@block("loo-cpu", CPU)
def loo_cpu(res: Results) -> str:
    """The CPU leave-one-out demo: setup, exponents with CIs over replicas, the proxy ratio."""
    r = res.json(CPU)
    cfg = r["config"]
    pl = n_law(res, CPU, "sgd_ct", "loo_random")
    P = per_replica(res, CPU)
    Ts = [stats.power_law(cfg["steps"], _V(P, [("sgd_ct", n, T, "vg", 0.0, "loo_random") for T in cfg["steps"]]),
                          unit=UNIT).exponent for n in cfg["ns"]]
    pr = proxy_ratios(res, CPU)
    lines = [_setup(r, None),
             f"Against n (SGD c/t, VG, random replacement, T = {max(cfg['steps'])}): n^{md.ci(pl.exponent, 2)} "
             f"through replica means ({stats.ci_note(pl.exponent)})"
             + "".join(f", n^{md.ci(q.exponent, 2)} through {w}" for q, w in
                       ((n_law(res, CPU, 'sgd_ct', 'loo_random', fit='medians'), "medians"),
                        (n_law(res, CPU, 'sgd_ct', 'loo_random', fit='trimmed'), "20 % trimmed means"))
                       if q is not None) + " (n^−1 is the bound's exponent, not a claim about the quantity).",
             f"Against T (per n): exponents {', '.join(md.ci(e, 2) for e in Ts)} for n = "
             f"{', '.join(map(str, cfg['ns']))} ({stats.ci_note(Ts[0])}).",
             f"Proxy / leave-one-out at the longest T: {md.span([v for n in pr for v in pr[n][:2]], 1, sep='–')} "
             "over every cell."]
    return "\n".join("- " + s for s in lines)
