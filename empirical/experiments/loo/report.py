"""The leave-one-out run's aggregation and outputs (`empirical.experiments.loo.run` computes the units): per-cell means,
medians and trimmed means with intervals over replicas, the first-draw strata, the Theorem 5/6 bounds beside
them with the assumptions each lacks, bootstrap power-law fits against n (fixed T and fixed epochs), T and σ,
and the results folder (results.json, summary.csv, bounds.csv, laws.csv, strata.csv, stability_vs_*.png).

`rederive` rebuilds all of it from a saved results.json (its units hold every per-replica value): how the
committed files were brought up to date without retraining.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from empirical import stats
from empirical.experiments.loo.figures import figures
from empirical.measures import agreement as metrics
from empirical.runtime.files import write_csv, write_json

if TYPE_CHECKING:
    from empirical.experiments.loo.config import LooConfig


PROXIES = ("proxy_shared", "proxy_indep")
BOOT_RESAMPLES = 2000  # per summary cell; thousands of cells, and the renderers recompute the ones they print


def _kinds_worst(rows: list[dict], kinds: tuple[str, ...]) -> dict:
    loo = [r for r in rows if r["comparison"] in {f"loo_{k}" for k in kinds}]
    return max(loo, key=lambda r: r["mean"])


def _robust(v: np.ndarray) -> dict:
    """Median and 20 % trimmed mean beside the mean, each with a bootstrap interval over replicas (the
    per-replica values are heavy-tailed: a few replicas that drew the replaced sample early carry the mean)."""
    out: dict = {}
    for name, statistic in (("mean", stats.mean), ("median", stats.median), ("trimmed_mean", stats.trimmed_mean)):
        if name != "mean":
            out[name] = float(statistic(v[None])[0])
        if len(v) < 2:
            out[name + "_boot_ci"] = None
            continue
        sm = stats.summarize(v, unit="replica", statistic=statistic, resamples=BOOT_RESAMPLES)
        out[name + "_boot_ci"] = [sm.ci_low, sm.ci_high]  # method: results["summary_intervals"]
    return out


def _strata(first: list[int | None], counts: list[int], T: int) -> dict[str, dict[str, list[int]]]:
    """Replica indices per stratum: by how many times the replaced sample was drawn in the first T steps, and
    by when it was first drawn (log2 of T/t₁: the theorems' c/t step makes an early draw weigh most)."""
    by_draws: dict[str, list[int]] = {}
    by_first: dict[str, list[int]] = {}
    for r, (t1, k) in enumerate(zip(first, counts)):
        by_draws.setdefault(str(k) if k < 3 else "3+", []).append(r)
        if t1 is None or t1 > T:
            label = "never"
        else:
            q = math.log2(T / t1)
            label = "(T/2, T]" if q < 1 else "(T/4, T/2]" if q < 2 else "(T/16, T/4]" if q < 4 else "[1, T/16]"
        by_first.setdefault(label, []).append(r)
    return {"draws": by_draws, "first_draw": by_first}


def assemble(cfg: LooConfig, units: list[dict], info: dict) -> dict:
    from scipy.stats import spearmanr

    from empirical.data import DatasetSpec
    from empirical.experiments.loo.replicas import network_gaps, replaced_draws
    from empirical.nets import certify
    from theory import bounds as tb

    spec = DatasetSpec(**info["spec"])
    net_gaps = network_gaps(cfg, info["m"])
    info = dict(info, assumption_gaps=net_gaps)
    summary, bound_rows, strata_rows, sampling = [], [], [], []
    per_rep: dict[tuple, np.ndarray] = {}  # (optimizer, n, T, method, σ, comparison) -> per-replica values
    consts: dict[tuple, dict] = {}
    for u in units:
        o, n = u["optimizer"], u["n"]
        Ts = [snap["T"] for snap in u["snapshots"]]
        draws = replaced_draws(cfg, n, [rp["position"] for rp in u["replicas"]], max(Ts))
        first = [d[0] if d else None for d in draws]
        for r, d in enumerate(draws):
            sampling.append({"optimizer": o, "n": n, "replica": r, "position": u["replicas"][r]["position"],
                             "first_draw": first[r], "draws_by_T": {str(T): sum(t <= T for t in d) for T in Ts}})
        for snap in u["snapshots"]:
            T = snap["T"]
            counts = [sum(t <= T for t in d) for d in draws]
            strata = _strata(first, counts, T)
            rank_first = [t if t is not None and t <= T else T + 1 for t in first]  # never drawn: after T
            K = dict(snap["constants"], C=info["C"])
            # Remark 4's constants must hold at every iterate: with the run's bound on the iterates' layer norms
            # (B_trajectory, max Frobenius norm up to T) they do; without it (older files) the rows say so
            traj = K.get("B_trajectory") is not None
            K["B_remark4"] = [max(a, b) for a, b in zip(K["B"], K["B_trajectory"])] if traj else K["B"]
            # one function for both studies: √2 of cross-entropy, corrected β or noisy SGD's √(2/π)L/s
            r4 = certify.remark4_constants(K["B_remark4"], info["C"], o, cfg.weight_noise)
            K["L_remark4"], K["beta_remark4"] = r4["L"], r4["beta"]
            consts[(o, n, T)] = K
            rows = []
            for ms in snap["measures"]:
                v = np.asarray(ms["per_replica"])
                per_rep[(o, n, T, ms["method"], ms["sigma"], ms["comparison"])] = v
                st = metrics.summarize(v, unit="replica")
                scale = float(np.mean(ms["scale_per_replica"]))
                row = {"optimizer": o, "n": n, "T": T, "method": ms["method"], "sigma": ms["sigma"],
                       "comparison": ms["comparison"], "mean": st["mean"], "std": st["std"],
                       "ci_low": st["ci_low"], "ci_high": st["ci_high"], "replicas": st["n"],
                       "sup_x": float(np.max(ms["per_image"])), "relative": st["mean"] / scale if scale else None,
                       "saliency_norm": scale,
                       "param_distance": float(np.mean(snap["param_distance"][ms["comparison"]])),
                       "test_accuracy_S": float(np.mean(snap["test_accuracy_S"]))}
                row.update(_robust(v))
                if ms["comparison"].startswith("loo_"):
                    row["drew_replaced"] = int(sum(c > 0 for c in counts))
                    rho = spearmanr(rank_first, v).statistic if len(set(rank_first)) > 1 and np.ptp(v) > 0 else None
                    row["spearman_first_draw"] = None if rho is None or not np.isfinite(rho) else float(rho)
                    for by, groups in (strata.items() if ms["method"] == "vg" else ()):  # VG: keeps files small
                        for label, idx in groups.items():
                            sv = v[idx]
                            strata_rows.append({"optimizer": o, "n": n, "T": T, "method": ms["method"],
                                                "sigma": ms["sigma"], "comparison": ms["comparison"], "by": by,
                                                "stratum": label, "replicas": len(idx), "mean": float(sv.mean()),
                                                "median": float(np.median(sv)), "share_of_sum":
                                                float(sv.sum() / v.sum()) if v.sum() > 0 else None})
                rows.append(row)
            summary += rows
            for (meth, s) in {(r["method"], r["sigma"]) for r in rows}:
                sel = [r for r in rows if r["method"] == meth and r["sigma"] == s]
                worst = _kinds_worst(sel, cfg.kinds)
                rand = next(r for r in sel if r["comparison"] == f"loo_{cfg.kinds[0]}")
                summary.append(dict(worst, comparison="loo_worst", worst_kind=worst["comparison"][4:],
                                    sup_x=max(r["sup_x"] for r in sel if r["comparison"].startswith("loo_"))))
                if meth == "ig":
                    continue
                sig_abs = certify.theorem6_sigma(spec, s) if meth == "sg" else 0.0  # smallest channel σ
                name = "Theorem 5 (SimpleGrad)" if meth == "vg" else "Theorem 6 (SmoothGrad)"
                for cname in ("remark4", "empirical"):
                    L = K["L_remark4"] if cname == "remark4" else K["L_emp"]
                    beta = K["beta_remark4"] if cname == "remark4" else K["beta_emp"]
                    B = K["B_remark4"] if cname == "remark4" else K["B"]
                    for variant in ("printed", "corrected"):
                        if meth == "vg":
                            lb = tb.log10_theorem5_simplegrad_bound(B, info["C"], L, beta, cfg.c, T, n, variant)
                        else:
                            lb = tb.log10_theorem6_smoothgrad_bound(B, info["C"], L, beta, cfg.c, T, n, sig_abs,
                                                                    variant)
                        lm = math.log10(worst["mean"]) if worst["mean"] > 0 else None
                        trivial = math.log10(2.0) + float(tb.log_gamma_sets(B)[-1, 0])
                        ls = math.log10(worst["sup_x"]) if worst["sup_x"] > 0 else None
                        bound_rows.append(certify.annotate({
                            "optimizer": o, "n": n, "T": T, "method": meth, "sigma": s, "sigma_abs": sig_abs,
                            "bound": name, "constants": cname, "variant": variant, "L": L, "beta": beta, "c": cfg.c,
                            "log10_bound": lb, "measured_random": rand["mean"], "measured_worst": worst["mean"],
                            "worst_kind": worst["comparison"][4:], "log10_measured_worst": lm,
                            "log10_sup_x_worst": ls, "log10_ratio": (lb - lm) if lm is not None else None,
                            # consistent with the bound: the sup over test images lies below it (not a certificate)
                            "holds": bool(lm is None or ls is None or ls <= lb),
                            "log10_trivial": trivial, "vacuous": bool(lb > trivial)},
                            certify.row_gaps(name, net_gaps, o, cname, trajectory_bounded=traj)))
    laws = fit_laws(cfg, per_rep, consts)
    return {"experiment": "loo_stability", "config": asdict(cfg), "info": info, "units": units,
            "constants": [dict(optimizer=o, n=n, T=T, **K) for (o, n, T), K in consts.items()],
            "summary": summary, "bounds": bound_rows, "laws": laws, "strata": strata_rows, "sampling": sampling,
            "summary_intervals": f"*_boot_ci: bootstrap over replicas ({BOOT_RESAMPLES} resamples; BCa from "
                                 f"{stats.BCA_MIN_UNITS} replicas on, expanded percentile below: empirical.stats); "
                                 "ci_low/ci_high: the t-interval of the mean"}


CENTERS = {"mean": np.mean, "median": np.median, "trimmed": lambda a, axis: stats.trimmed_mean(
    np.moveaxis(a, axis, 1))}


def bootstrap_exponent(x: list[float], values: list[np.ndarray], resamples: int = 2000, seed: int = 0,
                       confidence: float = 0.95, center: str = "mean") -> dict:
    """Exponent of center(values[i]) ≈ a·x_i^b, fitted on log-log centres, with a percentile bootstrap CI.

    values[i] [R]: per-replica measurements at x_i; replica r is the same draw of seeds at every x (paired),
    so replicas are resampled jointly across x. center: "mean", "median" or "trimmed" (20 % trimmed mean).
    """
    V = np.stack(values)  # [len(x), R]
    lx = np.log(np.asarray(x, dtype=float))
    agg = CENTERS[center]
    means = agg(V, axis=1)
    if np.any(means <= 0) or len(x) < 2:
        return {"exponent": None, "ci_low": None, "ci_high": None, "center": center}
    fit = metrics.fit_power_law(x, means, confidence)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, V.shape[1], (resamples, V.shape[1]))
    bm = agg(V[:, pick], axis=2).T  # [resamples, len(x)]
    with np.errstate(divide="ignore"):
        ly = np.log(bm)
    ok = np.isfinite(ly).all(1)
    ly, lxc = ly[ok], lx - lx.mean()
    slopes = ((ly - ly.mean(1, keepdims=True)) * lxc).sum(1) / (lxc ** 2).sum()
    q = (1 - confidence) / 2
    return {"exponent": fit["exponent"], "ci_low": float(np.quantile(slopes, q)) if len(slopes) else None,
            "ci_high": float(np.quantile(slopes, 1 - q)) if len(slopes) else None, "r2": fit["r2"],
            "resamples": int(ok.sum()), "center": center}


def fit_laws(cfg: LooConfig, per_rep: dict, consts: dict) -> list[dict]:
    """Fitted exponents against n (at T_max), T (per n) and σ (per n, T_max), beside the predicted ones."""
    from theory import bounds as tb

    ns, Ts, T_max = sorted(cfg.ns), sorted(cfg.steps), max(cfg.steps)
    maps = [("vg", 0.0), ("ig", 0.0)] + [("sg", s) for s in cfg.sigmas]
    comps = [f"loo_{k}" for k in cfg.kinds] + list(PROXIES)
    laws = []

    def predicted(o, n, T, which):
        K = consts[(o, n, T)]
        out = {}
        for cname, beta in (("remark4", K["beta_remark4"]), ("empirical", K["beta_emp"])):
            out[cname] = tb.predicted_laws(beta, cfg.c)[which] if beta > 0 else None
        return out

    # n-arms: the fixed T grid's longest T, and each fixed number of epochs (T = round(e·n), T ∝ n). The
    # theorems' n^−1 describes the bound, not the quantity: it is recorded as the bound's exponent.
    arms = [(f"T={T_max}", {n: T_max for n in ns})] + [
        (f"epochs={e:g}", {n: cfg.epoch_steps(n, e) for n in ns}) for e in cfg.epochs]
    for o in cfg.optimizers:
        if len(ns) >= 2:
            for at, T_of in arms:
                for meth, s in maps:
                    for comp in comps:
                        for center in CENTERS if (meth, comp) == ("vg", "loo_random") else ("mean",):
                            fit = bootstrap_exponent(ns, [per_rep[(o, n, T_of[n], meth, s, comp)] for n in ns],
                                                     seed=cfg.seed, center=center)
                            laws.append(dict(optimizer=o, against="n", at=at, method=meth, sigma=s, comparison=comp,
                                             **fit, predicted={"theorems 5-6 (the bound)": -1.0}))
        if len(Ts) >= 2:
            for n in ns:
                for meth, s in maps:
                    for comp in comps:
                        fit = bootstrap_exponent(Ts, [per_rep[(o, n, T, meth, s, comp)] for T in Ts], seed=cfg.seed)
                        laws.append(dict(optimizer=o, against="T", at=f"n={n}", method=meth, sigma=s, comparison=comp,
                                         **fit, predicted=predicted(o, n, T_max, "T")))
        if len(cfg.sigmas) >= 2:
            for n in ns:
                for comp in comps:
                    fit = bootstrap_exponent(list(cfg.sigmas), [per_rep[(o, n, T_max, "sg", s, comp)] for s in cfg.sigmas],
                                             seed=cfg.seed)
                    laws.append(dict(optimizer=o, against="sigma", at=f"n={n}, T={T_max}", method="sg", sigma=None,
                                     comparison=comp, **fit, predicted=predicted(o, n, T_max, "sigma_smoothgrad")))
    return laws


# --------------------------------------------------------------------------- outputs
def write_outputs(results: dict, out: Path) -> None:
    out = Path(out)
    write_json(out / "results.json", results)
    write_csv(out / "summary.csv", results["summary"])
    write_csv(out / "bounds.csv", results["bounds"])
    if results.get("strata"):
        write_csv(out / "strata.csv", results["strata"])
    write_csv(out / "laws.csv", [dict(r, predicted=";".join(f"{k}={v}" for k, v in r["predicted"].items()))
                                 for r in results["laws"]])
    figures(results, out)


def rederive(results: dict) -> dict:
    """A saved leave-one-out results dict re-aggregated by the current code from its units (no training, no
    maps); provenance and wall time of the run are kept, the change is recorded under results["rederived"]."""
    from empirical.experiments.loo.config import LooConfig
    from empirical.runtime.environment import provenance

    raw = results["config"]
    cfg = LooConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    info = {k: v for k, v in results["info"].items() if k != "assumption_gaps"}
    out = assemble(cfg, results["units"], info)
    for key in ("reused_units", "provenance", "wall_seconds", "committed_copy"):
        if key in results:
            out[key] = results[key]
    out["rederived"] = {"by": "empirical.experiments.loo.report.rederive",
                        "code_commit": provenance("cpu").get("git_commit"),
                        "what": "summary, bounds, laws, constants, strata and sampling recomputed from the saved units "
                                "(√2 in Remark 4's L and β, named missing assumptions, medians/trimmed means, "
                                "first-draw strata); the units (per-replica measurements) untouched"}
    return out
