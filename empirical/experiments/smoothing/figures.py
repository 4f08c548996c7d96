"""Figures of the smoothing study, from its saved results: SSIM vs noise, ROAD curves, trade-offs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def make(results: dict, out: Path) -> list[Path]:
    out = Path(out)
    cfg = results["config"]
    methods = cfg["methods"]
    curves = results["curves"]
    main_eps = cfg["eps"]
    regimes = cfg["regimes"]

    def eps_of(regime):
        return next((m["eps"] for m in results["models"] if m["regime"] == regime and m["eps"] in (0.0, main_eps)), 0.0)

    paths = []
    for kind, ylabel, fname in (("ssim_noise", "SSIM(map(x), map(x + noise))", "ssim_vs_noise.png"),
                                ("road_morf", "target probability (MoRF)", "road_morf.png"),
                                ("road_lerf", "target probability (LeRF)", "road_lerf.png")):
        fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.6), squeeze=False)
        for ax, meth in zip(axes[0], methods):
            for reg in regimes:
                pts = sorted((c["x"], c["y"]) for c in curves if c["kind"] == kind and c["method"] == meth
                             and c["regime"] == reg and c["eps"] == eps_of(reg) and c["y"] is not None)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=reg)
            ax.set_title(meth.upper())
            ax.set_xlabel("noise std (pixel units)" if kind == "ssim_noise" else "fraction of pixels removed")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{cfg['dataset']} · {cfg['model']} · {results['n_eval']} images", fontsize=10)
        fig.tight_layout()
        paths.append(out / fname)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

    table = results["table"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "gini", "Gini sparseness"), (axes[1], "log10_ris", "log10 RIS (lower: more stable)")):
        for meth in methods:
            pts = [(r["benign_accuracy"], r[key], _label(r, main_eps)) for r in table
                   if r["method"] == meth and r[key] is not None]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=meth.upper())
                for a, v, reg in pts:
                    ax.annotate(reg, (a, v), fontsize=6)
        ax.set_xlabel("benign accuracy")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Sparsity and stability against benign accuracy (all regimes and ε)", fontsize=10)
    fig.tight_layout()
    paths.append(out / "tradeoff_accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    if len({r["eps"] for r in table if r["eps"] > 0}) > 1:
        paths.append(_eps_tradeoff(results, out))
    return paths


def _label(row: dict, main_eps: float) -> str:
    return row["regime"] if row["eps"] in (0.0, main_eps) else f"{row['regime']} ε={row['eps']:g}"


def _eps_tradeoff(results: dict, out: Path) -> Path:
    """Bhusal et al. appendix (Figs. 12-13): explanation quality against robust accuracy over the ε grid, one
    line per (adversarial regime, method) through its ε values, the natural model N as a star."""
    table = results["table"]
    methods = results["config"]["methods"]
    noise = min(results["config"]["ssim_noise"])
    panels = (("gini", "Gini sparseness (higher: sparser)"), ("road_auc_morf", "ROAD AUC, MoRF"),
              (f"ssim_noise_{noise}", f"SSIM under noise {noise:g}"), ("log10_ros", "log10 ROS (lower: more stable)"))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    regs = [r for r in dict.fromkeys(row["regime"] for row in table) if r != "N"]
    markers = "osD^v<>p"
    for ax, (key, label) in zip(axes.flat, panels):
        for mi, meth in enumerate(methods):
            c = colors[mi % len(colors)]
            for ri, reg in enumerate(regs):
                pts = sorted((r["eps"], r["robust_accuracy"], r.get(key)) for r in table
                             if r["method"] == meth and r["regime"] == reg and r.get(key) is not None)
                if not pts:
                    continue
                ax.plot([p[1] for p in pts], [p[2] for p in pts], marker=markers[ri % len(markers)], color=c,
                        label=f"{reg} {meth.upper()}", alpha=0.85)
                for e, a, v in pts:
                    ax.annotate(f"{e:g}", (a, v), fontsize=6, xytext=(3, 2), textcoords="offset points")
            base = [(r["robust_accuracy"], r.get(key)) for r in table
                    if r["method"] == meth and r["regime"] == "N" and r.get(key) is not None]
            if base:
                ax.scatter([base[0][0]], [base[0][1]], marker="*", s=120, color=c, edgecolor="k",
                           label=f"N {meth.upper()}")
        ax.set_xlabel(f"robust accuracy (PGD-{results['config']['robust_steps']}, ε = {results['config']['robust_eps']:g})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.suptitle("Explanation quality against robust accuracy over the training ε (numbers: ε)", fontsize=10)
    fig.tight_layout()
    path = out / "tradeoff_eps.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
