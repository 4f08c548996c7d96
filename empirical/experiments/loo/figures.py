"""The leave-one-out study's figures: stability against n, T and σ, measured beside the bounds."""
from __future__ import annotations

from pathlib import Path


def figures(results: dict, out: Path) -> list[Path]:
    """stability_vs_{n,T,sigma}.png: measured (CI over replicas) above, Theorem 5/6 bounds below, log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["config"]
    S, Bd = results["summary"], results["bounds"]
    opts, ns, Ts, sigmas = cfg["optimizers"], sorted(cfg["ns"]), sorted(cfg["steps"]), list(cfg["sigmas"])
    T_max = Ts[-1]
    s_mid = sigmas[len(sigmas) // 2] if sigmas else None

    def pick(rows, **kw):
        return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

    def series(xkey, xs, **kw):
        rows = [pick(S, **{xkey: xv}, **kw) for xv in xs]
        keep = [(xv, r[0]) for xv, r in zip(xs, rows) if r and r[0]["mean"] > 0]
        return ([k for k, _ in keep], [r["mean"] for _, r in keep],
                [(r["mean"] - r["ci_low"]) if r["ci_low"] == r["ci_low"] and r["ci_low"] is not None else 0 for _, r in keep],
                [(r["ci_high"] - r["mean"]) if r["ci_high"] is not None else 0 for _, r in keep])

    def bound_series(xkey, xs, **kw):
        pts = [(xv, pick(Bd, **{xkey: xv}, **kw)) for xv in xs]
        return [xv for xv, r in pts if r], [10 ** r[0]["log10_bound"] for _, r in pts if r]

    lines = [("vg", 0.0, "VG"), ("ig", 0.0, "IG")] + ([("sg", s_mid, f"SmoothGrad σ={s_mid}")] if s_mid else [])
    paths = []
    for sweep in ("n", "T", "sigma"):
        fig, axes = plt.subplots(2, len(opts), figsize=(5.5 * len(opts), 8), squeeze=False)
        for col, o in enumerate(opts):
            ax, axb = axes[0, col], axes[1, col]
            if sweep == "n":
                for meth, s, lab in lines:
                    for comp, ls in (("loo_random", "-"), ("loo_worst", ":"), ("proxy_indep", "--")):
                        xs, ys, lo, hi = series("n", ns, optimizer=o, T=T_max, method=meth, sigma=s, comparison=comp)
                        if xs:
                            ax.errorbar(xs, ys, yerr=[lo, hi], ls=ls, marker="o", capsize=3, label=f"{lab} {comp}")
                xs, ys, _, _ = series("n", ns, optimizer=o, T=T_max, method="vg", sigma=0.0, comparison="loo_random")
                if xs:
                    ax.plot(xs, [ys[0] * (x / xs[0]) ** -1 for x in xs], "k-", lw=0.8, alpha=0.5, label="slope −1")
                for meth, s, lab in [ln for ln in lines if ln[0] != "ig"]:
                    for cname, ls in (("empirical", "-"), ("remark4", "--")):
                        xs, ys = bound_series("n", ns, optimizer=o, T=T_max, method=meth, sigma=s, constants=cname,
                                              variant="corrected")
                        axb.plot(xs, ys, ls=ls, marker="s", label=f"bound {lab} ({cname} L, β)")
                    xs, ys, _, _ = series("n", ns, optimizer=o, T=T_max, method=meth, sigma=s, comparison="loo_worst")
                    axb.plot(xs, ys, ":", marker="o", label=f"measured {lab} (worst kind)")
                xl = "n (training-set size)"
                title = f"{o}: against n at T = {T_max}"
            elif sweep == "T":
                for n in ns:
                    for meth, s, lab in lines[:1] + lines[2:]:
                        xs, ys, lo, hi = series("T", Ts, optimizer=o, n=n, method=meth, sigma=s, comparison="loo_random")
                        if xs:
                            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=f"{lab} n={n}")
                    for cname, ls in (("empirical", "-"), ("remark4", "--")):
                        xs, ys = bound_series("T", Ts, optimizer=o, n=n, method="vg", sigma=0.0, constants=cname,
                                              variant="corrected")
                        axb.plot(xs, ys, ls=ls, marker="s", label=f"Thm 5 n={n} ({cname})")
                    xs, ys, _, _ = series("T", Ts, optimizer=o, n=n, method="vg", sigma=0.0, comparison="loo_worst")
                    axb.plot(xs, ys, ":", marker="o", label=f"measured VG n={n} (worst)")
                xl = "T (SGD steps)"
                title = f"{o}: against T (LOO, random replacement)"
            else:
                for n in ns:
                    for comp, ls in (("loo_random", "-"), ("loo_worst", ":")):
                        xs, ys, lo, hi = series("sigma", sigmas, optimizer=o, n=n, T=T_max, method="sg", comparison=comp)
                        if xs:
                            ax.errorbar(xs, ys, yerr=[lo, hi], ls=ls, marker="o", capsize=3, label=f"n={n} {comp}")
                    for cname, ls in (("empirical", "-"), ("remark4", "--")):
                        xs, ys = bound_series("sigma", sigmas, optimizer=o, n=n, T=T_max, method="sg", constants=cname,
                                              variant="corrected")
                        axb.plot(xs, ys, ls=ls, marker="s", label=f"Thm 6 n={n} ({cname})")
                    xs, ys, _, _ = series("sigma", sigmas, optimizer=o, n=n, T=T_max, method="sg", comparison="loo_worst")
                    axb.plot(xs, ys, ":", marker="o", label=f"measured n={n} (worst)")
                xl = "σ / (x_max − x_min)"
                title = f"{o}: SmoothGrad against σ at T = {T_max}"
            for a in (ax, axb):
                a.set_xscale("log")
                a.set_yscale("log")
                a.set_xlabel(xl)
                a.grid(alpha=0.3, which="both")
                a.legend(fontsize=6)
            ax.set_ylabel("E‖Sal(A(S)) − Sal(A(S′))‖₂ (95% CI, replicas)")
            axb.set_ylabel("bound vs measured")
            ax.set_title(title, fontsize=9)
        fig.suptitle(f"Leave-one-out saliency stability · MLP {cfg['depth']}×{cfg['width']} {cfg['activation']} · "
                     f"{cfg['replicas']} replicas · c = {cfg['c']}, lr = {cfg['lr']}", fontsize=10)
        fig.tight_layout()
        paths.append(out / f"stability_vs_{sweep}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
