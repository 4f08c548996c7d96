"""`python -m empirical.curvature_claims --models DIR`: claim 4 (curvature predicts attribution stability) over
the models of a smoothing-study run (see :mod:`empirical.experiments.curvature.run`; trains nothing).

Per model and saliency method: per-image curvature (gradient-field variation V_h mean/max over random L2
directions, CURE C_h/h, softplus-surrogate Hessian norms) and RIS/ROS/RRS, and Spearman's ρ of every pair
with a bootstrap CI over images. Radii are L2 lengths in pixel units of [0, 1] images.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from empirical import cli
from empirical.experiments.curvature.claims import CurvatureClaimConfig
from empirical.experiments.curvature.run import run


def parser() -> argparse.ArgumentParser:
    d = CurvatureClaimConfig()
    ap = cli.Parser(prog="python -m empirical.curvature_claims", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, required=True, help="a smoothing-study run folder (with checkpoints/)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default results/curvature_claims-<run>)")
    ap.add_argument("--data-root", default=None, help="folder of the data files (fashion-mnist: Debian's by default)")
    ap.add_argument("--images", type=cli.positive_int, default=256, help="common correctly classified test images")
    ap.add_argument("--methods", nargs="+", choices=["vg", "ig", "sg"], default=["vg"], help="saliency methods")
    ap.add_argument("--radii", type=cli.positive_float, nargs="+", default=list(d.radii),
                    help=f"L2 step lengths h, pixel units (default {' '.join(map(str, d.radii))})")
    ap.add_argument("--n-draws", type=cli.positive_int, default=d.n_draws, help="random directions per image and h")
    ap.add_argument("--betas", type=cli.positive_float, nargs="+", default=list(d.betas),
                    help=f"Softplus β of the surrogate (default {' '.join(map(str, d.betas))})")
    ap.add_argument("--hessian-iters", type=cli.positive_int, default=d.hessian_iters,
                    help="power iterations for the surrogate's Hessian norm")
    ap.add_argument("--stab-radius", type=cli.positive_float, default=d.stab_radius, help="RIS/ROS/RRS L∞ radius")
    ap.add_argument("--stab-samples", type=cli.positive_int, default=d.stab_samples, help="perturbations per image")
    ap.add_argument("--resamples", type=cli.positive_int, default=d.resamples, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0, help="image choice, directions, perturbations, bootstrap")
    ap.add_argument("--max-batch", type=cli.positive_int, default=d.max_batch, help="rows per forward pass")
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--no-progress", action="store_true", help="no per-model lines")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def go() -> int:
        cfg = CurvatureClaimConfig(radii=tuple(args.radii), n_draws=args.n_draws, betas=tuple(args.betas),
                                   hessian_iters=args.hessian_iters,
                                   stab_radius=args.stab_radius, stab_samples=args.stab_samples,
                                   resamples=args.resamples, seed=args.seed, max_batch=args.max_batch)
        out = args.out or Path("results") / f"curvature_claims-{Path(args.models).resolve().name}"
        res = run(args.models, out, cfg, images=args.images, methods=tuple(args.methods), data_root=args.data_root,
                  device=cli.resolve_device(args.device), progress=not args.no_progress)
        print(f"{len(res['models'])} model × method evaluations on {res['n_eval']} images; "
              f"wall {res['wall_seconds']:.0f} s; results in {out}/")
        return 0

    return cli.run_main(go)


if __name__ == "__main__":
    sys.exit(main())
