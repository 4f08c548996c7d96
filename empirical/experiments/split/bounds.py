"""Bounds next to measurements, for the split-stability job: Theorem 5, Theorem 6, Proposition 7.

Each bound is evaluated by `theory.bounds` in log10 (real networks overflow float64) with two sets of
constants:

- ``remark4``: from the layer norms, by `empirical.nets.certify.remark4_constants` (the one function
  both studies use): L = √2·γ·Γ_{k,1}C (Remark 4(1); √2 for cross-entropy, γ the parameter-space gain
  of the conv layers, √(k_h k_w) at stride 1), β = √2·γ²× the corrected Remark 4(2) (the printed
  (3k+1)Γ²C² fails for small C), or √(2/π)L/s for noisy SGD (Proposition 1), s the weight-noise std;
  the saliency Lipschitz constant L′ is scaled by γ too;
- ``empirical``: the local estimates at the trained weights (largest per-sample ‖∇_W ℓ‖, top Hessian
  eigenvalue): what the theorem's constants are on the networks actually trained, not bounds.

B_i is the largest operator norm of layer i over all trained networks (the theorems need
‖W_i‖ ≤ B_i for every output of the algorithm), each one exact (Linear) or an upper bound (Conv2d,
`empirical.nets.constants.conv_norm_upper`). Both the printed and the corrected saliency Lipschitz
constants (ledger: thm5-saliency-lipschitz) are reported.

Every row names the assumptions it lacks (`lacks`, from `certify.row_gaps`: the network's
`assumption_gaps`, the optimizer, unnormalised SmoothGrad inputs, measured constants, and that the
measured quantity is the disjoint-split proxy) and is `certified` only when there are none; on the
committed LeNet/ReLU runs none is.

What is compared: the theorems bound the leave-one-out stability (eq. 10) of one training set of
size n; the measured value is the disjoint-split proxy (eq. 12, mean over test images), a different
quantity that the paper substitutes for it. The ratio says how far the bound sits above the proxy.
A bound is "vacuous" when it exceeds the trivial bound of the quantity (2Γ_{k,0} for gradient maps:
‖∇_x f‖ ≤ Γ_{k,0}; Γ_{k,0}(2C + σ√m) for IG fidelity).

`rederive` rebuilds the bound rows of a saved results file from its per-network constants and the
architecture (geometry only), without retraining: how the committed files were brought up to date.
"""
from __future__ import annotations

import math

from empirical.measures import agreement as metrics
from empirical.nets import certify
from theory import bounds as tb


def _log10(v: float) -> float | None:
    return math.log10(v) if v and v > 0 else None


def _constants(cfg, constants: list[dict], info: dict, split_records: list[dict]) -> dict:
    k = len(constants[0]["B"])
    B = [max(c["B"][i] for c in constants) for i in range(k)]
    C = info["C"]
    T = max(r["T"] for r in split_records)
    # Minibatch SGD of batch b: the differing sample is in a step's batch with probability b/n and then
    # contributes 2αL/b, so the divergence recursion is that of single-sample SGD, but the burn-in term
    # becomes t0·b·M/n. Evaluating the theorem with n_eff = ⌊n/b⌋ in both places is therefore a valid
    # (slightly conservative) translation of Hardt et al.'s argument to minibatches.
    n_eff = max(2, info["n"] // cfg.train.batch_size)
    out = {"B": B, "C": C, "T": T, "n": info["n"], "n_eff": n_eff, "batch_size": cfg.train.batch_size,
           "c": cfg.train.c, "m": info["m"], "k": k}
    gain = max(certify.network_gain(c.get("layers", [])) for c in constants)
    out["remark4"] = certify.remark4_constants(B, C, cfg.train.optimizer, cfg.train.weight_noise, gain)
    out["empirical"] = {"L": max(c["L_emp"] for c in constants), "beta": max(c["beta_emp"] for c in constants)}
    out["log10_trivial_gradient"] = math.log10(2.0) + float(tb.log_gamma_sets(B)[-1, 0])
    out["log10_gamma_k0"] = float(tb.log_gamma_sets(B)[-1, 0])
    out["smoothgrad_sigma_threshold"] = tb.smoothgrad_sigma_threshold(B)
    return out


def evaluate(cfg, summary: list[dict], constants: list[dict], split_records: list[dict], info: dict):
    """Returns (rows: one per bound × constants × variant × method × σ, laws: fitted vs predicted exponents)."""
    from empirical.data import DatasetSpec

    spec = DatasetSpec(**info["spec"])
    K = _constants(cfg, constants, info, split_records)
    info["bound_constants"] = K
    B, C, T, n, c, m = K["B"], K["C"], K["T"], K["n_eff"], K["c"], K["m"]
    # Two separate questions: was the network trained as the theorems assume (SGD with step c/t, or
    # noisy SGD), and does the network itself meet their hypotheses (smooth activation, no max-pool,
    # no biases, a chain)? A bound is a certificate only when both hold; `lacks` names what does not.
    training_as_theorem = not certify.algorithm_gaps(cfg.train.optimizer)
    net_gaps = info.get("assumption_gaps") or []
    network_as_theorem = not net_gaps
    gain = K["remark4"]["param_gain"]
    rows = []
    for r in summary:
        s, meth = r["sigma"], r["method"]
        sig_abs = certify.theorem6_sigma(spec, s)  # Theorem 6's 1/σ needs the smallest channel σ
        base = {"method": meth, "sigma": s, "sigma_abs": sig_abs, "training_as_theorem": training_as_theorem,
                "network_as_theorem": network_as_theorem}
        if meth == "vg":
            for consts in ("remark4", "empirical"):
                L, beta = K[consts]["L"], K[consts]["beta"]
                for variant in ("printed", "corrected"):
                    g = gain  # L′ comes from the layer norms with either set of (L, β): in the kernels it needs γ
                    if s == 0:
                        lb = tb.log10_theorem5_simplegrad_bound(B, C, L, beta, c, T, n, variant=variant, param_gain=g)
                        name = "Theorem 5 (SimpleGrad)"
                    else:
                        lb = tb.log10_theorem6_smoothgrad_bound(B, C, L, beta, c, T, n, sig_abs, variant=variant,
                                                                param_gain=g)
                        name = "Theorem 6 (SmoothGrad)"
                    gaps = certify.row_gaps(name, net_gaps, cfg.train.optimizer, consts, split_proxy=True)
                    rows.append(certify.annotate(_row(base, name, consts, variant, "stability", lb, r["stability"],
                                                      K["log10_trivial_gradient"]), gaps))
        if s > 0 and meth in ("vg", "ig"):
            for sharp in (False, True):
                if meth == "vg":
                    lb = tb.log10_prop7_fidelity_simplegrad(B, sig_abs, m, sharp=sharp)
                    trivial = K["log10_trivial_gradient"]
                    name = "Proposition 7 (SimpleGrad)"
                else:
                    lb = tb.log10_prop7_fidelity_ig(B, C, sig_abs, m, sharp=sharp)
                    trivial = K["log10_gamma_k0"] + math.log10(2 * C + sig_abs * math.sqrt(m))
                    name = "Proposition 7 (IG)"
                rows.append(certify.annotate(
                    _row(base, name, "layer-norms", "sharp E||z||" if sharp else "printed", "fidelity", lb,
                         r["fidelity"], trivial), certify.row_gaps(name, net_gaps, None, "layer-norms")))
    return rows, _laws(cfg, summary, K)


def _row(base: dict, name: str, consts: str, variant: str, quantity: str, log10_bound: float, measured: float,
         log10_trivial: float) -> dict:
    lm = _log10(measured)
    finite = log10_bound is not None and math.isfinite(log10_bound)
    return dict(base, bound=name, constants=consts, variant=variant, quantity=quantity,
                log10_bound=log10_bound if finite else None, measured=measured, log10_measured=lm,
                log10_ratio=(lm - log10_bound) if (finite and lm is not None) else None,
                vacuous=bool(finite and log10_bound > log10_trivial), log10_trivial=log10_trivial)


def _laws(cfg, summary: list[dict], K: dict) -> list[dict]:
    """Fitted exponents of stability and fidelity against σ (σ > 0), beside the predicted ones."""
    laws = []
    for meth in cfg.methods:
        rows = sorted((r for r in summary if r["method"] == meth), key=lambda r: r["sigma"])
        pos = [r for r in rows if r["sigma"] > 0]
        base = next((r for r in rows if r["sigma"] == 0), None)
        ratio = {r["sigma"]: (r["stability"] / base["stability"] if base and base["stability"] else None) for r in pos}
        for quantity, predicted in (("stability", {k: tb.predicted_laws(v["beta"], K["c"])["sigma_smoothgrad"]
                                                   for k, v in (("remark4", K["remark4"]), ("empirical", K["empirical"]))}),
                                    ("fidelity", {"proposition7": 1.0})):
            law = {"method": meth, "quantity": quantity, "predicted_exponent": predicted,
                   "ratio_to_sigma0": ratio if quantity == "stability" else None}
            xs = [r["sigma"] for r in pos for _ in r[f"{quantity}_per_pair"]]
            ys = [v for r in pos for v in r[f"{quantity}_per_pair"]]
            if len({r["sigma"] for r in pos}) >= 2 and all(v > 0 for v in ys):
                # one point per (pair, σ): the interval reflects the spread over pairs
                fit = metrics.fit_power_law(xs, ys)
                law.update(fitted_exponent=fit["exponent"], fitted_ci=[fit["ci_low"], fit["ci_high"]], fit_r2=fit["r2"],
                           fit_points=fit["n"])
            else:
                law.update(fitted_exponent=None, note="needs >= 2 positive σ values to fit an exponent")
            laws.append(law)
    return laws


# --------------------------------------------------------------------------- saved files, brought up to date
def upgrade_constants(cfg, constants: list[dict], spec) -> tuple[list[dict], list[str]]:
    """Per-network constants of a file written before issue 21, completed from the architecture alone.

    Such files recorded B_i without the max-pool factor and no parameter gains. Both depend only on the
    layer geometry (kernel, stride, padding, input size), so they are read off a freshly built network of
    the same architecture (its weights play no role); a folded BatchNorm keeps the scale the file
    recorded (`bn_scale`). Returns (constants with `gain` per layer, the architecture's assumption gaps).
    """
    import torch

    from empirical.nets import constants as netbounds
    from empirical.nets import models

    skel = models.build(cfg.model, spec.channels, spec.size, spec.num_classes, cfg.activation)
    geo = netbounds.layer_norms(skel, torch.zeros(1, spec.channels, spec.size, spec.size), iters=2)
    out = []
    for c in constants:
        layers = []
        for rec, g in zip(c["layers"], geo):
            rec = dict(rec)
            if "gain" not in rec:
                folded = g.get("folded", [])
                pool = math.prod(f["factor"] for f in folded if f["kind"] == "maxpool")
                bn = math.prod(f["factor"] for f in folded if f["kind"] == "batchnorm")
                rec["gain"] = g["gain"] / bn * rec.get("bn_scale", 1.0)  # geometry × the recorded BatchNorm
                for key in ("B", "B_power", "B_upper"):
                    if rec.get(key) is not None:
                        rec[key] *= pool
                rec["folded"] = [f for f in folded if f["kind"] == "maxpool"]
            layers.append(rec)
        out.append(dict(c, layers=layers, B=[r["B"] for r in layers]))
    return out, netbounds.assumption_gaps(skel)


def rederive(results: dict) -> dict:
    """A saved split-stability results dict with its bound rows, laws and constants recomputed by the
    current code from the saved per-network constants and summary (no training, no saliency maps).
    The change is recorded under results["rederived"]."""
    from empirical.data import DatasetSpec
    from empirical.experiments.split.config import SplitStabilityConfig
    from empirical.runtime.environment import provenance
    from empirical.training.trainer import TrainConfig

    raw = dict(results["config"])
    cfg = SplitStabilityConfig(**dict(raw, train=TrainConfig(**raw["train"]), sigmas=tuple(raw["sigmas"]),
                                      methods=tuple(raw["methods"])))
    spec = DatasetSpec(**results["info"]["spec"])
    constants, gaps = upgrade_constants(cfg, results["constants"], spec)
    info = dict(results["info"], assumption_gaps=gaps)
    rows, laws = evaluate(cfg, results["summary"], constants, results["networks"], info)
    git = provenance("cpu").get("git_commit")
    note = {"by": "empirical.experiments.split.bounds.rederive", "code_commit": git,
            "what": "bound rows, laws, info.bound_constants and info.assumption_gaps recomputed from the saved "
                    "per-network constants (max-pool factor and parameter gains added from the architecture); "
                    "measurements untouched"}
    return dict(results, info=info, constants=constants, bounds=rows, laws=laws, rederived=note)
