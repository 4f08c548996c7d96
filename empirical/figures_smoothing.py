"""Figures of the smoothing study, from its saved results: SSIM vs noise, ROAD curves, trade-offs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
            pts = [(r["benign_accuracy"], r[key], r["regime"]) for r in table if r["method"] == meth and r[key] is not None]
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
    return paths
