"""PNG figures made from saved results (never from a live run's memory): read at a glance."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {"vg": "Simple-Grad → SmoothGrad", "ig": "Integrated Gradients → smoothed IG",
          "gradcam": "Grad-CAM (smoothed)", "gradcampp": "Grad-CAM++ (smoothed)"}


def _series(summary: list[dict], method: str, key: str):
    rows = sorted((r for r in summary if r["method"] == method), key=lambda r: r["sigma"])
    xs = [r["sigma"] for r in rows]
    ys = [r[key] for r in rows]
    sd = [r.get(f"{key}_std_images") or 0.0 for r in rows]
    return xs, ys, sd


def _band_plot(ax, summary, methods, key, ylabel):
    for meth in methods:
        xs, ys, sd = _series(summary, meth, key)
        line, = ax.plot(xs, ys, marker="o", label=LABELS.get(meth, meth))
        ax.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)],
                        color=line.get_color(), alpha=0.2)
    ax.set_xlabel("σ / (x_max − x_min)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def split_stability_figures(results: dict, out: Path) -> list[Path]:
    out = Path(out)
    summary = results["summary"]
    methods = results["config"]["methods"]
    cfg = results["config"]
    title = f"{cfg['dataset']} · {cfg['model']} ({cfg['activation']}) · {cfg['pairs']} pairs · {cfg['test_images']} test images"
    paths = []

    panels = (
        ("stability_vs_sigma.png", "Stability vs σ (band: ±1 std over test images)",
         ("stability", "stability error ‖Sal₁ − Sal₂‖₂ (eq. 12)"), ("stability_unit", "same, unit-norm maps")),
        ("fidelity_vs_sigma.png", "Fidelity vs σ (band: ±1 std over test images)",
         ("fidelity", "fidelity error ‖E_z Sal(x+z) − Sal(x)‖₂ (eq. 13)"), ("fidelity_unit", "same, unit-norm maps")),
        ("similarity_vs_sigma.png", "Similarity of the two networks' maps vs σ",
         ("ssim", "SSIM between the pair's maps"), ("topk_iou", f"top-k IoU (k = {results['info']['k_top']} pixels)")),
    )
    for fname, head, left, right in panels:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        _band_plot(axes[0], summary, methods, *left)
        _band_plot(axes[1], summary, methods, *right)
        axes[0].legend(fontsize=8)
        fig.suptitle(head + "\n" + title, fontsize=10)
        fig.tight_layout()
        paths.append(out / fname)
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    rows = results.get("bounds") or []
    if rows:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, quantity in zip(axes, ("stability", "fidelity")):
            for meth in methods:
                # one curve per bound: the certified constants with the ledger's corrected form for the
                # stability theorems, the printed Proposition 7 for fidelity (all variants are in bounds.csv)
                want = ("remark4", "corrected") if quantity == "stability" else ("layer-norms", "printed")
                rs = sorted((r for r in rows if r["method"] == meth and r["quantity"] == quantity
                             and (r["constants"], r["variant"]) == want and r.get("log10_bound") is not None),
                            key=lambda r: r["sigma"])
                if not rs:
                    continue
                xs = [r["sigma"] for r in rs]
                line, = ax.plot(xs, [r["log10_measured"] for r in rs], marker="o", label=f"{meth} measured")
                ax.plot(xs, [r["log10_bound"] for r in rs], ls="--", color=line.get_color(), label=f"{meth} bound")
            ax.set_xlabel("σ / (x_max − x_min)")
            ax.set_ylabel(f"log10 {quantity} error")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[0].set_title("Thm 5 (σ=0) / Thm 6 (σ>0), Remark 4 constants, corrected L' — vs the eq. 12 proxy",
                          fontsize=8)
        axes[1].set_title("Prop. 7 (printed) vs measured eq. 13", fontsize=9)
        fig.suptitle("Bound vs measured (log10)\n" + title, fontsize=10)
        fig.tight_layout()
        paths.append(out / "bound_vs_measured.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
