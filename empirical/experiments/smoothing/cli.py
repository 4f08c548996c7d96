"""`python -m empirical.smoothing_study`: feature-map smoothing, adversarial training and explanation quality.

Trains the regimes of Bhusal, Alam & Rastogi — N natural, A adversarial (PGD L∞), and adversarial
training with a smoothing block after the first block: M1 mean, M2 median, G Gaussian, E embedded
Gaussian, NG non-local Gaussian (also ID/RC: the block without filtering, and `<regime>-nat`: a
filter without adversarial training) — and evaluates VG, IG and SmoothGrad maps on correctly
classified test images: Gini, RIS/ROS/RRS, ROAD (MoRF, LeRF), SSIM under input noise, benign and
robust accuracy, input-Hessian norm. Writes results.json, table.csv (the paper's layout: one row per
regime × method, with dG, dRIS, dROS, dRRS, dROAD against N), curves.csv and PNG figures. Re-running
the same command reuses trained models and finished evaluations. The models train together, in lockstep on one
batch stream (empirical/training/lockstep.py): on a GPU each training step is a CUDA graph, replayed per model on its
own stream (--no-cuda-graphs for eager steps); on the CPU the result is exactly that of training them one
by one. An interrupted training resumes from its last epoch boundary.

Presets: `paper` (default; the paper's FMNIST protocol: LeNet, Adam 1e-3, batch 32, 50 epochs,
ε = 0.1, step ε/10, 40 steps, 1000 images — a GPU job), `medium` (about 45 minutes on a 2-core
CPU: 20,000 training images, 5 epochs, FGSM training with random start, 256 images) and `small` (a
CPU run of a few minutes: 2000 training images, 1 epoch, FGSM training, 64 images). All ε and noise values are in pixel units
of [0, 1] images; σ of SmoothGrad is a fraction of the pixel range.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from empirical import cli
from empirical.data import DATASETS
from empirical.experiments.smoothing.config import PAPER_REGIMES, REGIMES, STUDY_METHODS, SmoothingStudyConfig
from empirical.experiments.smoothing.run import run
from empirical.nets.models import ACTIVATIONS, MODELS
from empirical.training.trainer import TrainConfig

PRESETS = {
    "paper": dict(epochs=50.0, train_images=None, attack="pgd", attack_steps=40, eval_images=1000, ig_steps=32,
                  sg_draws=50, stab_samples=20, robust_images=1000, robust_steps=100,
                  road_percentages=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
    "medium": dict(epochs=5.0, train_images=20000, attack="fgsm", attack_steps=40, eval_images=256, ig_steps=16,
                   sg_draws=16, stab_samples=10, robust_images=256, robust_steps=20,
                   road_percentages=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
    "small": dict(epochs=1.0, train_images=2000, attack="fgsm", attack_steps=5, eval_images=64, ig_steps=8,
                  sg_draws=8, stab_samples=4, robust_images=64, robust_steps=10, road_percentages=(0.2, 0.5, 0.8)),
}


def parser() -> argparse.ArgumentParser:
    ap = cli.Parser(prog="python -m empirical.smoothing_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="run size: paper (GPU), medium (about 45 minutes on 2 CPU cores, minutes on an H100), small (minutes) (default: paper)")
    ap.add_argument("--small", action="store_true", help="same as --preset small (a few minutes on a CPU)")
    ap.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(PAPER_REGIMES),
                    help="regimes to train (default: N A M1 M2 G E NG)")
    ap.add_argument("--dataset", choices=DATASETS, default="fashion-mnist",
                    help="data set (default fashion-mnist, the papers' FMNIST; cifar10 and imagefolder need --data-root)")
    ap.add_argument("--data-root", default=None, help="folder of the data files (fashion-mnist default: Debian's location)")
    ap.add_argument("--image-size", type=cli.positive_int, default=64, help="imagefolder: side in pixels")
    ap.add_argument("--model", choices=[m for m in MODELS if m != "mlp"], default="lenet",
                    help="network (default lenet: the paper's FMNIST net, 32 and 64 filters and a 1024-unit layer)")
    ap.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu", help="hidden activation (default relu)")
    ap.add_argument("--block-after", default="block1", help="named block after which the smoothing block goes (default block1)")
    ap.add_argument("--kernel-size", type=cli.positive_int, default=3, help="local filter window (feature-map pixels)")
    ap.add_argument("--gaussian-sigma", type=cli.positive_float, default=1.0, help="Gaussian filter σ (feature-map pixels)")
    ap.add_argument("--eps", type=cli.positive_float, default=0.1, help="adversarial-training L∞ ε, pixel units (default 0.1)")
    ap.add_argument("--eps-grid", type=cli.positive_float, nargs="*", default=[],
                    help="extra ε values (pixel units) for the accuracy trade-off, e.g. 0.01 0.03 0.06")
    ap.add_argument("--attack", choices=["pgd", "fgsm"], default=None, help="training attack (paper: pgd, small: fgsm)")
    ap.add_argument("--attack-steps", type=cli.positive_int, default=None, help="PGD steps in training (paper: 40; step ε/10)")
    ap.add_argument("--epochs", type=cli.positive_float, default=None, help="training epochs (paper: 50)")
    ap.add_argument("--train-images", type=cli.positive_int, default=None, help="training images used (default: all)")
    ap.add_argument("--methods", nargs="+", choices=STUDY_METHODS, default=list(STUDY_METHODS),
                    help="saliency methods evaluated: vg (vanilla gradient), ig (integrated gradients), sg (SmoothGrad)")
    ap.add_argument("--eval-images", type=cli.positive_int, default=None, help="correctly classified test images (paper: 1000)")
    ap.add_argument("--ig-steps", type=cli.positive_int, default=None,
                    help="integrated-gradients path nodes (Gauss-Legendre; paper preset 32, medium 16, small 8)")
    ap.add_argument("--sg-sigma", type=cli.sigma_value, default=0.15, help="SmoothGrad σ, fraction of the pixel range (0.15)")
    ap.add_argument("--sg-draws", type=cli.positive_int, default=None,
                    help="SmoothGrad noise draws per image (paper preset 50, medium 16, small 8)")
    ap.add_argument("--stab-radius", type=cli.positive_float, default=0.05, help="RIS/ROS/RRS L∞ ball radius, pixel units (0.05)")
    ap.add_argument("--stab-samples", type=cli.positive_int, default=None, help="perturbations per image for RIS/ROS/RRS")
    ap.add_argument("--road-percentages", type=cli.positive_float, nargs="+", default=None,
                    help="ROAD: fractions of pixels removed (paper: 0.1 ... 0.9; small: 0.2 0.5 0.8)")
    ap.add_argument("--robust-images", type=cli.positive_int, default=None,
                    help="evaluation images attacked for the robust accuracy (paper preset 1000)")
    ap.add_argument("--robust-steps", type=cli.positive_int, default=None, help="PGD steps of the robust accuracy (paper: 100)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of everything random: initialisation, batch order, attacks' starts, noise draws, image choice")
    ap.add_argument("--max-batch", type=cli.positive_int, default=4096, help="model evaluations per forward pass")
    ap.add_argument("--no-cuda-graphs", action="store_true",
                    help="on a GPU, train with eager steps instead of CUDA-graphed ones (same results up to rounding; "
                         "graphs make the paper's batch-32 PGD-40 training several times faster)")
    ap.add_argument("--train-tf32", action="store_true",
                    help="on a GPU, train with TF32 convolutions and matrix products (PyTorch's cuDNN default; "
                         "~1e-3 relative rounding per product, several times faster on tensor cores); maps, metrics "
                         "and accuracies are still computed in full float32. Default: full float32 throughout")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default runs/smoothing_study-<preset>)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    ap.add_argument("--time-limit", type=cli.positive_float, default=None, metavar="SECONDS",
                    help="stop cleanly after this many seconds of wall time (a GPU slice's budget): training at a "
                         "step boundary with its state saved, evaluation between two models' units; exit code 75. "
                         "The same command resumes (at least one step or unit runs per call)")
    return ap


def config_from_args(args) -> SmoothingStudyConfig:
    preset = "small" if args.small else args.preset
    pre = PRESETS[preset]
    pick = lambda v, k: pre[k] if v is None else v
    # --seed seeds the training too (initialisation, batch order, attack starts): a second seed is a replicate
    train = TrainConfig(optimizer="adam", lr=1e-3, batch_size=32, epochs=pick(args.epochs, "epochs"), seed=args.seed)
    return SmoothingStudyConfig(
        dataset=args.dataset, data_root=args.data_root, image_size=args.image_size, model=args.model,
        activation=args.activation, regimes=tuple(args.regimes), block_after=args.block_after,
        kernel_size=args.kernel_size, gaussian_sigma=args.gaussian_sigma, eps=args.eps, eps_grid=tuple(args.eps_grid),
        attack=pick(args.attack, "attack"), attack_steps=pick(args.attack_steps, "attack_steps"),
        train_images=pick(args.train_images, "train_images"), train=train, methods=tuple(args.methods),
        eval_images=pick(args.eval_images, "eval_images"), ig_steps=pick(args.ig_steps, "ig_steps"),
        sg_sigma=args.sg_sigma, sg_draws=pick(args.sg_draws, "sg_draws"), stab_radius=args.stab_radius,
        stab_samples=pick(args.stab_samples, "stab_samples"), robust_images=pick(args.robust_images, "robust_images"),
        robust_steps=pick(args.robust_steps, "robust_steps"),
        road_percentages=tuple(pick(args.road_percentages, "road_percentages")), seed=args.seed, device=cli.resolve_device(args.device),
        max_batch=args.max_batch, cuda_graphs=not args.no_cuda_graphs,
        train_tf32=args.train_tf32), preset


def print_table(res: dict) -> None:
    cols = ("regime", "eps", "method", "benign_accuracy", "robust_accuracy", "gini", "log10_ris", "log10_ros", "log10_rrs",
            "road_auc_morf", "curvature_mean", "dG", "dRIS", "dROAD")
    print("  ".join(f"{c:>10.10}" for c in cols))
    for r in res["table"]:
        print("  ".join(f"{r.get(c):>10.4g}" if isinstance(r.get(c), float) else f"{r.get(c)!s:>10.10}" for c in cols))


def _report(res: dict, out: Path) -> None:
    print_table(res)
    print(f"\n{res['n_eval']} images; wall {res['wall_seconds']:.0f} s; results in {out}/")


def _run_kwargs(args: argparse.Namespace, t_start: float) -> dict:
    # the time limit counts from the entry point's start (a slice's start-up is its caller's to subtract)
    return {"deadline": None if args.time_limit is None else t_start + args.time_limit}



def _run(*a, **kw) -> dict:
    return run(*a, **kw)  # late-bound: a test may stand in for the module's run


STUDY = cli.Study("smoothing_study", parser, config_from_args, _run, _report, "--small and --preset medium",
                  _run_kwargs)


def main(argv: list[str] | None = None) -> int:
    return cli.main(STUDY, argv)


if __name__ == "__main__":
    sys.exit(main())
