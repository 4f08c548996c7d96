"""`python -m empirical.split_stability`: saliency-map stability and fidelity against σ, next to the bounds.

Trains pairs of networks on disjoint halves of the training set (Ye & Farnia sec. 5.1), computes
Simple-Grad / Integrated Gradients (and Grad-CAM, Grad-CAM++) maps smoothed with Gaussian noise of
standard deviation σ (a fraction of the pixel range, as in the paper), and reports the stability proxy
(eq. 12), the fidelity error (eq. 13), SSIM and top-k overlap, next to Theorems 5, 6 and Proposition 7
evaluated on the same networks. Writes results.json, summary.csv, bounds.csv and PNG figures into
--out; re-running the same command reuses finished networks and measurements (an interrupted run
resumes).

Presets: `demo` (default; a 2-core CPU finishes it in minutes: 2 pairs of disjoint 10,000-image
splits, 2 epochs, 100 test images, 16 draws, 8 IG steps) and `paper` (the full sweep: σ ∈ {0, 0.05,
..., 0.40}, 5 pairs on disjoint halves, 5 epochs, 500 test images, 100 noise draws, 50 IG steps; a GPU job).
Flags given explicitly override the preset.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from empirical import cli
from empirical.data import DATASETS
from empirical.experiments.split.config import PAPER_SIGMAS, STUDY_METHODS, SplitStabilityConfig
from empirical.experiments.split.run import run
from empirical.nets.models import ACTIVATIONS, MODELS
from empirical.training.trainer import OPTIMIZERS, TrainConfig

PRESETS = {
    "demo": dict(sigmas=(0.15,), pairs=2, n_cap=10000, test_images=100, draws=16, ig_steps=8, epochs=2.0),
    "paper": dict(sigmas=PAPER_SIGMAS, pairs=5, n_cap=None, test_images=500, draws=100, ig_steps=50, epochs=5.0),
}


def parser() -> argparse.ArgumentParser:
    ap = cli.Parser(prog="python -m empirical.split_stability", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="size of the run (default: demo)")
    ap.add_argument("--sigma", type=cli.sigma_value, nargs="+", default=None, metavar="S",
                    help="noise std as a fraction of the pixel range (x_max − x_min), one or more values; "
                         "σ = 0 (the unsmoothed map) is always added. Demo: 0.15")
    ap.add_argument("--dataset", choices=DATASETS, default="fashion-mnist", help="data set (default: fashion-mnist)")
    ap.add_argument("--data-root", default=None, help="folder with the data files (default for fashion-mnist: "
                    "/usr/share/datasets/fashion-mnist, from Debian's dataset-fashion-mnist)")
    ap.add_argument("--image-size", type=cli.positive_int, default=64, help="imagefolder: side in pixels after resizing")
    ap.add_argument("--model", choices=MODELS, default="lenet", help="network (default: lenet)")
    ap.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                    help="activation; the bounds assume a smooth one (softplus, tanh). Default: relu")
    ap.add_argument("--methods", nargs="+", choices=STUDY_METHODS, default=["vg", "ig"],
                    help="saliency maps; each is smoothed at every σ > 0 (vg → SmoothGrad). Default: vg ig")
    ap.add_argument("--pairs", type=cli.positive_int, default=None, help="independent pairs of disjoint splits (demo: 2)")
    ap.add_argument("--n", type=cli.positive_int, default=None, help="training images per split (demo: 10000; paper: half the training set)")
    ap.add_argument("--epochs", type=cli.positive_float, default=None, help="passes over each split (demo: 2)")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd_ct",
                    help="sgd_ct: SGD with step min(lr, c/t) as Theorems 5/6 assume (default); noisy_sgd: eq. 3; "
                         "sgd: momentum + cosine; adam")
    ap.add_argument("--lr", type=cli.positive_float, default=0.05, help="peak step size (default 0.05)")
    ap.add_argument("--c", type=cli.positive_float, default=20.0, help="the c of the step-size bound α_t ≤ c/t (default 20)")
    ap.add_argument("--batch-size", type=cli.positive_int, default=64, help="images per SGD step (default 64)")
    ap.add_argument("--weight-noise", type=cli.nonnegative_float, default=0.0, help="noisy_sgd: std of the Gaussian weight perturbation (parameter units)")
    ap.add_argument("--test-images", type=cli.positive_int, default=None, help="test images evaluated (demo: 100)")
    ap.add_argument("--draws", type=cli.positive_int, default=None, help="noise draws per smoothed map (demo: 16)")
    ap.add_argument("--ig-steps", type=cli.positive_int, default=None, help="Integrated Gradients path steps (demo: 8)")
    ap.add_argument("--topk-fraction", type=cli.positive_float, default=0.1, help="k of the top-k metrics as a fraction of the pixels (default 0.1)")
    ap.add_argument("--max-batch", type=cli.positive_int, default=4096, help="memory cap: model evaluations per forward pass (default 4096)")
    ap.add_argument("--mem-mb", type=cli.positive_float, default=None,
                    help="memory cap for the saliency passes in MiB: lowers --max-batch to what fits (estimated)")
    ap.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:N")
    ap.add_argument("--seed", type=int, default=0, help="seed of splits, test subset, noise and model seeds (default 0)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: runs/split_stability-<preset>)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def config_from_args(args: argparse.Namespace) -> SplitStabilityConfig:
    pre = PRESETS[args.preset]
    pick = lambda v, k: pre[k] if v is None else v
    train = TrainConfig(optimizer=args.optimizer, epochs=pick(args.epochs, "epochs"), batch_size=args.batch_size,
                        lr=args.lr, c=args.c, weight_noise=args.weight_noise)
    return SplitStabilityConfig(
        dataset=args.dataset, data_root=args.data_root, image_size=args.image_size, model=args.model,
        activation=args.activation, sigmas=tuple(pick(args.sigma, "sigmas")), methods=tuple(args.methods),
        pairs=pick(args.pairs, "pairs"), n=args.n, n_cap=pre["n_cap"], test_images=pick(args.test_images, "test_images"),
        draws=pick(args.draws, "draws"), ig_steps=pick(args.ig_steps, "ig_steps"), topk_fraction=args.topk_fraction,
        train=train, seed=args.seed, device=cli.resolve_device(args.device), max_batch=args.max_batch,
        mem_mb=args.mem_mb)


MAP_NAMES = {"vg": ("Simple-Grad", "SmoothGrad"), "ig": ("IG", "smoothed IG"),
             "gradcam": ("Grad-CAM", "smoothed Grad-CAM"), "gradcampp": ("Grad-CAM++", "smoothed Grad-CAM++")}


def map_label(method: str, sigma: float) -> str:
    """What a row's map is, in words: "Simple-Grad (σ = 0)", "SmoothGrad (σ = 0.15)" (σ: fraction of the pixel range)."""
    plain, smoothed = MAP_NAMES.get(method, (method, f"smoothed {method}"))
    return f"{plain} (σ = 0)" if sigma == 0 else f"{smoothed} (σ = {sigma:g})"


def _num(v, spec: str) -> str:
    return format(v, spec) if v is not None else format("n/a", ">" + "".join(c for c in spec if c.isdigit())[:2])


def print_table(results: dict) -> None:
    print(f"\n{'map':<24}{'stability':>11}{'±std':>10}{'unit-norm':>11}{'fidelity':>10}{'SSIM':>8}{'top-k IoU':>11}")
    for r in results["summary"]:
        print(f"{map_label(r['method'], r['sigma']):<24}{r['stability']:>11.4g}{r['stability_std_images']:>10.3g}"
              f"{r['stability_unit']:>11.4f}{r['fidelity']:>10.4g}{r['ssim']:>8.3f}{r['topk_iou']:>11.3f}")
    print("stability: ‖map of the S1 network − map of the S2 network‖₂ (eq. 12), mean over test images (±std over "
          "them);\nunit-norm: the same on unit-norm maps (0..2); fidelity: ‖smoothed − plain map‖₂ (eq. 13)")
    rows = [b for b in results["bounds"] if b.get("log10_bound") is not None]
    if rows:
        print(f"\n{'bound':<27}{'constants':<12}{'variant':<13}{'map':<22}{'log10 bound':>12}{'log10 meas.':>12}"
              f"{'log10 ratio':>12}  verdict")
        notes = cli.Footnotes()
        for b in rows:
            print(f"{b['bound']:<27}{b['constants']:<12}{b['variant']:<13}{map_label(b['method'], b['sigma']):<22}"
                  f"{b['log10_bound']:>12.2f}{_num(b['log10_measured'], '>12.2f')}{_num(b['log10_ratio'], '>12.2f')}  "
                  f"{'vacuous' if b['vacuous'] else 'informative'}  {cli.lacks(b, notes)}")
        print("vacuous: the bound is above the trivial bound of the quantity (2Γ_k0 for a gradient map, as ‖∇ₓf‖ ≤ Γ_k0;"
              "\nΓ_k0(2C + σ√m) for IG's fidelity), so it says nothing about these networks; informative: below it.\n"
              "log10 ratio = log10 measured − log10 bound; measured: the disjoint-split proxy (eq. 12) of the bounded "
              "eq. 10.\ncertified: the bound is valid for these networks and this training; else the assumptions it lacks:")
        print("\n".join(notes.lines("")[1:]))
    for law in results["laws"]:
        if law.get("fitted_exponent") is not None:
            lo, hi = law["fitted_ci"]
            ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
            print(f"law: {MAP_NAMES.get(law['method'], (law['method'],) * 2)[1]} {law['quantity']} ∝ "
                  f"σ^{law['fitted_exponent']:.3f}{ci}; predicted {law['predicted_exponent']}")
    acc = [n["test_accuracy"] for n in results["networks"]]
    print(f"\nnetworks: {len(acc)}, test accuracy {min(acc):.3f}..{max(acc):.3f}; "
          f"device {results['provenance']['device']['device']}; wall {results['wall_seconds']:.0f} s")


def _report(results: dict, out: Path) -> None:
    print_table(results)
    print(f"\nresults in {out}/ (results.json, summary.csv, bounds.csv, *.png)")



def _run(*a, **kw) -> dict:
    return run(*a, **kw)  # late-bound: a test may stand in for the module's run


STUDY = cli.Study("split_stability", parser, lambda args: (config_from_args(args), args.preset), _run, _report,
                  "the default demo preset and explicit flags")


def main(argv: list[str] | None = None) -> int:
    return cli.main(STUDY, argv)


if __name__ == "__main__":
    sys.exit(main())
