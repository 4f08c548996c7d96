"""`python -m empirical.curvature_claims --models DIR`: claim 4 (curvature predicts attribution stability) over
the models of a smoothing-study run (see :mod:`empirical.experiments.curvature.run`; trains nothing).

Per model and saliency method: per-image curvature (gradient-field variation V_h mean/max over random L2
directions, CURE C_h/h, softplus-surrogate Hessian norms) and RIS/ROS/RRS, and Spearman's ρ of every pair
with a bootstrap CI over images. Radii are L2 lengths in pixel units of [0, 1] images.

`--summarize R1.json R2.json R3.json --out DIR`: the claim over training, from one run per seed: each model's
ρ averaged over seeds with a bootstrap CI over seeds (:mod:`empirical.experiments.curvature.summary`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from empirical import cli
from empirical.errors import UserError
from empirical.experiments.curvature.claims import CurvatureClaimConfig
from empirical.experiments.curvature.run import run
from empirical.experiments.curvature.summary import POSITIVE, over_seeds
from empirical.runtime.files import prepare_out_dir, read_json, write_csv, write_json


def parser() -> argparse.ArgumentParser:
    d = CurvatureClaimConfig()
    ap = cli.Parser(prog="python -m empirical.curvature_claims", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--models", type=Path, help="a smoothing-study run folder (with checkpoints/)")
    what.add_argument("--summarize", type=Path, nargs="+", metavar="RESULTS_JSON",
                      help="instead: summarise the ρ of earlier runs (one results.json per seed) over seeds")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default results/curvature_claims-<run>; with --summarize required)")
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


def summarize(files: list[Path], out: Path | None, resamples: int, seed: int) -> int:
    if out is None:
        raise UserError("--summarize needs --out (the folder for summary.json and summary.csv)")
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"--summarize: no such file(s) {missing}")
    out = prepare_out_dir(out)
    rows = over_seeds([read_json(f) for f in files], resamples=resamples, seed=seed)
    write_json(Path(out) / "summary.json", {"experiment": "curvature_claims_summary", "inputs": [str(f) for f in files],
                                            "rows": rows})
    write_csv(Path(out) / "summary.csv", [{k: v for k, v in r.items() if k != "unit_values"} for r in rows])
    hits = [r for r in rows if r["scope"] == "all regimes" and r["verdict"] == POSITIVE]
    print(f"{len(rows)} rows; over all regimes, curvature predicts instability (CI over seeds above 0) for: "
          + (", ".join(f"{r['method']} {r['curvature']}→{r['stability']}" for r in hits) or "none"))
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def go() -> int:
        if args.summarize:
            return summarize(args.summarize, args.out, args.resamples, args.seed)
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
