"""`python -m empirical.loo_stability`: leave-one-out saliency stability (Ye & Farnia eq. 10), measured.

Trains coupled pairs of small chain networks (bias-free MLP, smooth activation) with single-sample
SGD, α_t = min(lr, c/t): A(S) and A(S'), S' = S with one sample replaced by a fresh draw (random, a
flipped label, an outlier far from its class mean, or both), same initialisation, same sample
sequence and, for noisy SGD (eq. 3), the same weight noise. Measures E‖Sal(A(S)) − Sal(A(S'))‖₂ for
Simple-Grad, Integrated Gradients and SmoothGrad over σ, with 95% confidence intervals over
replicas, next to the disjoint-split proxy (eq. 12) and Theorems 5/6 evaluated with the run's c, T,
n and the constants of its networks; fits exponents against n, T and σ beside the predicted ones.
Images: Fashion-MNIST average-pooled by --downsample (default 14×14). Writes results.json (config,
seeds, versions, git commit, device, wall times), summary.csv, bounds.csv, laws.csv and
stability_vs_{n,T,sigma}.png into --out; re-running the same command reuses finished units.

Presets: `demo` (default; about 2-5 minutes on a 2-core CPU) and `paper` (28×28 inputs, n up to 2048,
T up to 16384, 32 replicas; meant for a GPU). Flags given explicitly override the preset.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from empirical import cli
from empirical.experiments.loo.config import ACTS, KINDS, OPTIMIZERS, LooConfig
from empirical.experiments.loo.run import run

PRESETS = {
    "demo": dict(ns=(64, 128, 256), steps=(256, 512, 1024, 2048), replicas=8, sigmas=(0.05, 0.1, 0.2, 0.4),
                 test_images=32, draws=16, ig_steps=16, downsample=2, width=64, max_points=1 << 22),
    "paper": dict(ns=(64, 128, 256, 512, 1024, 2048), steps=(1024, 2048, 4096, 8192, 16384), replicas=32,
                  sigmas=(0.025, 0.05, 0.1, 0.2, 0.4), test_images=200, draws=64, ig_steps=32, downsample=1,
                  width=128, max_points=1 << 27),
}


def _int_at_least(lo: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{what} must be an integer >= {lo}, got {text!r}")
        return v
    return parse


def _positive_sigma(text: str) -> float:
    v = cli.sigma_value(text)
    if v == 0:
        raise argparse.ArgumentTypeError("SmoothGrad sigma must be > 0 (σ = 0, the vanilla gradient, is always measured)")
    return v


def parser() -> argparse.ArgumentParser:
    ap = cli.Parser(prog="python -m empirical.loo_stability", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="size of the run (default: demo)")
    ap.add_argument("--n", type=_int_at_least(2, "n (training-set size)"), nargs="+", default=None, metavar="N",
                    help="training-set sizes n, images (demo: 64 128 256)")
    ap.add_argument("--steps", type=_int_at_least(1, "T (SGD steps)"), nargs="+", default=None, metavar="T",
                    help="T grid: single-sample SGD steps, snapshots of one run per n (demo: 256 512 1024 2048)")
    ap.add_argument("--epochs", type=cli.positive_float, nargs="+", default=(), metavar="E",
                    help="fixed-epoch arm: per n, also T = round(E·n) (T ∝ n, E passes over the samples) beside the "
                         "fixed-T grid (default: none)")
    ap.add_argument("--replicas", type=cli.positive_int, default=None,
                    help="independent (S, S', initialisation, sample order, noise) draws per n (demo: 8)")
    ap.add_argument("--sigma", type=_positive_sigma, nargs="+", default=None, metavar="S",
                    help="SmoothGrad noise std as a fraction of the pixel range (x_max − x_min), > 0; "
                         "σ = 0 (vanilla gradient) is always measured (demo: 0.05 0.1 0.2 0.4)")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                    help="replaced samples searched toward the sup of eq. 10: random (fresh draw), flip (its label "
                         "changed), outlier (farthest from its class mean), outlier_flip (default: all)")
    ap.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS),
                    help="sgd_ct: α_t = min(lr, c/t); noisy_sgd: the same on the smoothed loss of eq. 3 (default: both)")
    ap.add_argument("--activation", default="tanh",
                    help=f"activation φ, one of {', '.join(ACTS)}; the theorems assume a 1-Lipschitz, 1-smooth φ with "
                         "φ(0) = 0 (tanh, the default)")
    ap.add_argument("--width", type=cli.positive_int, default=None, help="hidden units per layer (demo: 64)")
    ap.add_argument("--depth", type=_int_at_least(0, "depth"), default=2,
                    help="hidden layers; the network has depth + 1 weight matrices (default 2)")
    ap.add_argument("--downsample", type=cli.positive_int, default=None,
                    help="average-pooling factor of the 28×28 images, a divisor of 28 (demo: 2, i.e. 14×14)")
    ap.add_argument("--lr", type=cli.positive_float, default=0.05, help="largest step size, parameter units (default 0.05)")
    ap.add_argument("--c", type=cli.positive_float, default=2.0,
                    help="the c of α_t = min(lr, c/t) ≤ c/t in Theorems 5/6; step size × steps (default 2)")
    ap.add_argument("--weight-noise", type=cli.positive_float, default=0.01,
                    help="noisy SGD: std s of the weight noise V ~ N(0, s²I), parameter units (default 0.01)")
    ap.add_argument("--test-images", type=cli.positive_int, default=None, help="test points x averaged over (demo: 32)")
    ap.add_argument("--draws", type=_int_at_least(2, "draws"), default=None, help="SmoothGrad noise draws per image (demo: 16)")
    ap.add_argument("--ig-steps", type=cli.positive_int, default=None,
                    help="Integrated Gradients Gauss–Legendre nodes, baseline 0 (demo: 16)")
    ap.add_argument("--outlier-pool", type=cli.positive_int, default=512,
                    help="fresh draws searched for the outlier replacement (default 512)")
    ap.add_argument("--max-points", type=cli.positive_int, default=None,
                    help="memory cap: nets × points × features per saliency pass, in floats (demo: 4194304 = 16 MiB "
                         "per activation; paper: 2^27)")
    ap.add_argument("--data-root", default=None,
                    help="folder with the four Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist, "
                         "from Debian's dataset-fashion-mnist)")
    ap.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:N (default auto)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sets, initialisations, orders and noise (default 0)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default runs/loo_stability-<preset>); finished units in it are reused")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def config_from_args(args: argparse.Namespace) -> LooConfig:
    pre = PRESETS[args.preset]
    pick = lambda v, k: pre[k] if v is None else v
    return LooConfig(
        data_root=args.data_root, downsample=pick(args.downsample, "downsample"), activation=args.activation,
        width=pick(args.width, "width"), depth=args.depth, ns=tuple(sorted(set(pick(args.n, "ns")))),
        steps=tuple(sorted(set(pick(args.steps, "steps")))), epochs=tuple(sorted(set(args.epochs))), replicas=pick(args.replicas, "replicas"),
        kinds=tuple(dict.fromkeys(args.kinds)), optimizers=tuple(dict.fromkeys(args.optimizers)), lr=args.lr, c=args.c,
        weight_noise=args.weight_noise, sigmas=tuple(sorted(set(pick(args.sigma, "sigmas")))),
        test_images=pick(args.test_images, "test_images"), draws=pick(args.draws, "draws"),
        ig_steps=pick(args.ig_steps, "ig_steps"), outlier_pool=args.outlier_pool, seed=args.seed,
        device=cli.resolve_device(args.device), max_points=pick(args.max_points, "max_points"))


def _f(v, spec: str, zero_log: bool = False) -> str:
    """A number for the report, or what stands in for it: a measured 0 (a valid measurement: the replaced sample
    was never drawn in T steps, so A(S) = A(S')) has log10 −inf; a value the run could not define is n/a."""
    if v is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return format("-inf" if zero_log else "n/a", f">{width}" if width else "")
    return format(v, spec)


def print_report(res: dict) -> None:
    cfg = res["config"]
    T_max, s_mid = max(cfg["steps"]), cfg["sigmas"][len(cfg["sigmas"]) // 2]
    print(f"\nleave-one-out stability E‖Sal(A(S)) − Sal(A(S'))‖₂ at T = {T_max} (mean [95% CI] over "
          f"{cfg['replicas']} replicas); proxy = disjoint halves (eq. 12)")
    print(f"{'optimizer':<10}{'n':>6} {'map':<10}{'LOO random':>26}{'LOO worst (kind)':>30}{'proxy indep':>13}{'acc':>7}")
    for r in res["summary"]:
        if r["T"] != T_max or r["comparison"] != "loo_random" or (r["method"] == "sg" and r["sigma"] != s_mid):
            continue
        same = dict(optimizer=r["optimizer"], n=r["n"], T=T_max, method=r["method"], sigma=r["sigma"])
        get = lambda comp: next(x for x in res["summary"] if x["comparison"] == comp and all(x[k] == v for k, v in same.items()))
        w, p = get("loo_worst"), get("proxy_indep")
        name = r["method"] if r["method"] != "sg" else f"sg σ={r['sigma']}"
        print(f"{r['optimizer']:<10}{r['n']:>6} {name:<10}{_f(r['mean'], '>10.4g')} [{_f(r['ci_low'], '.3g')}, "
              f"{_f(r['ci_high'], '.3g')}]{_f(w['mean'], '>12.4g')} ({w['worst_kind']}){'':>4}{_f(p['mean'], '>13.4g')}"
              f"{_f(r['test_accuracy_S'], '>7.3f')}")
    print("\nfitted exponents (LOO, random replacement; 95% bootstrap CI over replicas) beside the bound's")
    for law in res["laws"]:
        if law["comparison"] != "loo_random" or (law["method"] == "sg" and law["against"] != "sigma"
                                                 and law["sigma"] != s_mid):
            continue
        if law["exponent"] is None:
            continue
        pred = ", ".join(f"{k} {v:.3g}" for k, v in law["predicted"].items() if v is not None)
        name = law["method"] + (f" σ={law['sigma']}" if law["method"] == "sg" and law["sigma"] else "") + (
            f" ({law['center']})" if law.get("center", "mean") != "mean" else "")
        print(f"  {law['optimizer']:<10} vs {law['against']:<6}({law['at']:<14}) {name:<10} "
              f"{law['exponent']:>7.3f} [{_f(law['ci_low'], '.3f')}, {_f(law['ci_high'], '.3f')}]   bound: {pred}")
    print(f"\nbounds at T = {T_max} (corrected variant), log10: bound vs measured worst-kind mean; 'consistent': the "
          "sup over test images is below the bound; 'certified' only where no assumption is missing (else listed)")
    notes = cli.Footnotes()
    for b in res["bounds"]:
        if b["T"] == T_max and b["variant"] == "corrected" and (b["method"] == "vg" or b["sigma"] == s_mid):
            print(f"  {b['optimizer']:<10} n={b['n']:<5} {b['bound']:<24} σ={b['sigma']:<5} {b['constants']:<10}"
                  f" L={_f(b['L'], '.3g')} β={_f(b['beta'], '.3g')}  log10 bound {_f(b['log10_bound'], '>8.2f')}  "
                  f"measured {_f(b['log10_measured_worst'], '>6.2f', b.get('measured_worst') == 0)}  "
                  f"consistent {b['holds']}  {cli.lacks(b, notes)}")
    for line in notes.lines("what each bound lacks:"):
        print(line)
    print(f"\n{len(res['units'])} units ({res['reused_units']} reused); device {res['provenance']['device']['device']}; "
          f"wall {res['wall_seconds']:.0f} s")


def _report(res: dict, out: Path) -> None:
    print_report(res)
    print(f"\nresults in {out}/ (results.json, summary.csv, bounds.csv, laws.csv, stability_vs_*.png)")



def _run(*a, **kw) -> dict:
    return run(*a, **kw)  # late-bound: a test may stand in for the module's run


STUDY = cli.Study("loo_stability", parser, lambda args: (config_from_args(args), args.preset), _run, _report,
                  "the default demo preset and explicit flags")


def main(argv: list[str] | None = None) -> int:
    return cli.main(STUDY, argv)


if __name__ == "__main__":
    sys.exit(main())
