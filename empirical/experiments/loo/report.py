"""The leave-one-out run's aggregation and outputs (`empirical.experiments.loo.run` computes the units): per-cell means and
confidence intervals over replicas, the Theorem 5/6 bounds beside them, bootstrap power-law fits against
n, T and σ, and the results folder (results.json, summary.csv, bounds.csv, laws.csv, stability_vs_*.png).
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from empirical.experiments.loo.figures import figures
from empirical.measures import agreement as metrics
from empirical.runtime.files import write_csv, write_json

if TYPE_CHECKING:
    from empirical.experiments.loo.config import LooConfig


PROXIES = ("proxy_shared", "proxy_indep")


def _kinds_worst(rows: list[dict], kinds: tuple[str, ...]) -> dict:
    loo = [r for r in rows if r["comparison"] in {f"loo_{k}" for k in kinds}]
    return max(loo, key=lambda r: r["mean"])


def assemble(cfg: LooConfig, units: list[dict], info: dict) -> dict:
    from theory import bounds as tb

    summary, bound_rows = [], []
    per_rep: dict[tuple, np.ndarray] = {}  # (optimizer, n, T, method, σ, comparison) -> per-replica values
    consts: dict[tuple, dict] = {}
    for u in units:
        for snap in u["snapshots"]:
            o, n, T = u["optimizer"], u["n"], snap["T"]
            K = dict(snap["constants"], C=info["C"])
            K["L_remark4"] = tb.lipschitz_L_bound(K["B"], info["C"])
            K["beta_remark4"] = (tb.smoothness_beta_noisy(K["L_remark4"], cfg.weight_noise, sharp=True)
                                 if o == "noisy_sgd" else tb.smoothness_beta_sgd(K["B"], info["C"], "corrected"))
            consts[(o, n, T)] = K
            rows = []
            for ms in snap["measures"]:
                v = np.asarray(ms["per_replica"])
                per_rep[(o, n, T, ms["method"], ms["sigma"], ms["comparison"])] = v
                st = metrics.summarize(v, unit="replica")
                scale = float(np.mean(ms["scale_per_replica"]))
                rows.append({"optimizer": o, "n": n, "T": T, "method": ms["method"], "sigma": ms["sigma"],
                             "comparison": ms["comparison"], "mean": st["mean"], "std": st["std"],
                             "ci_low": st["ci_low"], "ci_high": st["ci_high"], "replicas": st["n"],
                             "sup_x": float(np.max(ms["per_image"])), "relative": st["mean"] / scale if scale else None,
                             "saliency_norm": scale,
                             "param_distance": float(np.mean(snap["param_distance"][ms["comparison"]])),
                             "test_accuracy_S": float(np.mean(snap["test_accuracy_S"]))})
            summary += rows
            for (meth, s) in {(r["method"], r["sigma"]) for r in rows}:
                sel = [r for r in rows if r["method"] == meth and r["sigma"] == s]
                worst = _kinds_worst(sel, cfg.kinds)
                rand = next(r for r in sel if r["comparison"] == f"loo_{cfg.kinds[0]}")
                summary.append(dict(worst, comparison="loo_worst", worst_kind=worst["comparison"][4:],
                                    sup_x=max(r["sup_x"] for r in sel if r["comparison"].startswith("loo_"))))
                if meth == "ig":
                    continue
                sig_abs = u["sigma_abs"][cfg.sigmas.index(s)] if meth == "sg" else 0.0
                for cname in ("remark4", "empirical"):
                    L = K["L_remark4"] if cname == "remark4" else K["L_emp"]
                    beta = K["beta_remark4"] if cname == "remark4" else K["beta_emp"]
                    for variant in ("printed", "corrected"):
                        if meth == "vg":
                            lb = tb.log10_theorem5_simplegrad_bound(K["B"], info["C"], L, beta, cfg.c, T, n, variant)
                        else:
                            lb = tb.log10_theorem6_smoothgrad_bound(K["B"], info["C"], L, beta, cfg.c, T, n, sig_abs,
                                                                    variant)
                        lm = math.log10(worst["mean"]) if worst["mean"] > 0 else None
                        trivial = math.log10(2.0) + float(tb.log_gamma_sets(K["B"])[-1, 0])
                        ls = math.log10(worst["sup_x"]) if worst["sup_x"] > 0 else None
                        bound_rows.append({
                            "optimizer": o, "n": n, "T": T, "method": meth, "sigma": s, "sigma_abs": sig_abs,
                            "bound": "Theorem 5 (SimpleGrad)" if meth == "vg" else "Theorem 6 (SmoothGrad)",
                            "constants": cname, "variant": variant, "L": L, "beta": beta, "c": cfg.c,
                            "log10_bound": lb, "measured_random": rand["mean"], "measured_worst": worst["mean"],
                            "worst_kind": worst["comparison"][4:], "log10_measured_worst": lm,
                            "log10_sup_x_worst": ls, "log10_ratio": (lb - lm) if lm is not None else None,
                            "holds": bool(lm is None or ls is None or ls <= lb),
                            "log10_trivial": trivial, "vacuous": bool(lb > trivial)})
    laws = fit_laws(cfg, per_rep, consts)
    return {"experiment": "loo_stability", "config": asdict(cfg), "info": info, "units": units,
            "constants": [dict(optimizer=o, n=n, T=T, **K) for (o, n, T), K in consts.items()],
            "summary": summary, "bounds": bound_rows, "laws": laws}


def bootstrap_exponent(x: list[float], values: list[np.ndarray], resamples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict:
    """Exponent of mean(values[i]) ≈ a·x_i^b, fitted on log-log means, with a percentile bootstrap CI.

    values[i] [R]: per-replica measurements at x_i; replica r is the same draw of seeds at every x (paired),
    so replicas are resampled jointly across x.
    """
    V = np.stack(values)  # [len(x), R]
    lx = np.log(np.asarray(x, dtype=float))
    means = V.mean(1)
    if np.any(means <= 0) or len(x) < 2:
        return {"exponent": None, "ci_low": None, "ci_high": None}
    fit = metrics.fit_power_law(x, means, confidence)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, V.shape[1], (resamples, V.shape[1]))
    bm = V[:, pick].mean(2).T  # [resamples, len(x)]
    with np.errstate(divide="ignore"):
        ly = np.log(bm)
    ok = np.isfinite(ly).all(1)
    ly, lxc = ly[ok], lx - lx.mean()
    slopes = ((ly - ly.mean(1, keepdims=True)) * lxc).sum(1) / (lxc ** 2).sum()
    q = (1 - confidence) / 2
    return {"exponent": fit["exponent"], "ci_low": float(np.quantile(slopes, q)) if len(slopes) else None,
            "ci_high": float(np.quantile(slopes, 1 - q)) if len(slopes) else None, "r2": fit["r2"],
            "resamples": int(ok.sum())}


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

    for o in cfg.optimizers:
        if len(ns) >= 2:
            for meth, s in maps:
                for comp in comps:
                    fit = bootstrap_exponent(ns, [per_rep[(o, n, T_max, meth, s, comp)] for n in ns], seed=cfg.seed)
                    laws.append(dict(optimizer=o, against="n", at=f"T={T_max}", method=meth, sigma=s, comparison=comp,
                                     **fit, predicted={"theorems 5-6": -1.0}))
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
    write_csv(out / "laws.csv", [dict(r, predicted=";".join(f"{k}={v}" for k, v in r["predicted"].items()))
                                 for r in results["laws"]])
    figures(results, out)
