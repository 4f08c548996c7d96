r"""Leave-one-out saliency stability, the theorems' own quantity (Ye & Farnia eq. 10), measured.

For a training set S of n images and S' = S with the sample at one position p replaced by a fresh
draw from outside S, two networks are trained with the coupling of Hardt et al. (2016)'s proof:
identical initialisation W_0, identical sample sequence i_1, ..., i_T (drawn uniformly with
replacement from the n positions, as Ye & Farnia sec. 3.1 describe SGD), and for noisy SGD (eq. 3)
identical weight noise V_t ~ N(0, s²I) at every step. Then

    ε̂ = E_{S, S', A} E_{x ~ test} ‖Sal_{A(S)}(x, y) − Sal_{A(S')}(x, y)‖₂

is measured for the vanilla gradient (VG, eq. 4), Integrated Gradients (IG, eq. 6, baseline 0,
Gauss–Legendre nodes) and SmoothGrad (eq. 5) over σ, the SmoothGrad noise being the same draws for
every network (common random numbers, `saliency.draw_noise` keyed by test-image id).

What is compared with what:

- Eq. 10 bounds sup |E_A ℓ'(A(S)) − E_A ℓ'(A(S'))| with ℓ' = ‖Sal − Sal_ref‖ (eq. 7). By the triangle
  inequality |ℓ'(A(S)) − ℓ'(A(S'))| ≤ ‖Sal_{A(S)} − Sal_{A(S')}‖, so ε̂ (and its sup over x and over the
  kind of replaced sample) upper-bounds the left side of eq. 10 at the same (S, S', x). Hardt et al.'s
  argument, which Theorems 5 and 6 follow, bounds E_A ‖Sal_{A(S)} − Sal_{A(S')}‖ itself (through
  ‖Sal_W − Sal_W'‖ ≤ L'‖W − W'‖), so the bounds apply to ε̂ directly.
- The supremum over (S, S') is searched over the kind of replacement: ``random`` (a fresh draw),
  ``flip`` (the same draw with a wrong label), ``outlier`` (of a pool of fresh draws, the image
  farthest from its class mean in the network's input space) and ``outlier_flip``. The position p
  is uniform; under with-replacement sampling every position is equivalent.
- The disjoint-split proxy (eq. 12) on networks of the same kind: S and S2 disjoint of n images each
  (2n images), trained with the same W_0 / sample sequence / V (``proxy_shared``) or with their own
  (``proxy_indep``, what the paper's experiments do). Its ratio to ε̂ is reported, not assumed.

Choices (stated once, recorded in every result):

- Network: the theorems' chain f_W(x) = W_k φ(… φ(W_1 x)) without biases, φ = tanh by default (1-Lipschitz,
  1-smooth, φ(0) = 0; softplus has φ(0) = log 2 and is flagged). Initialisation: nn.Linear's default
  U(±1/√fan_in). Replicas are stacked [N, out, in] and trained at once with `torch.bmm` (one autograd
  backward of Σ_nets ℓ_net gives every net its own gradient, since nets share nothing).
- Step size α_t = min(lr, c/t) (`training.step_size`, ``sgd_ct``): it satisfies α_t ≤ c/t of
  Theorems 5-6 without a first step of size c; c is recorded and used in the bounds.
- T grid: the step sizes do not depend on the horizon, so one run to T_max is snapshot at every T of
  the grid: stability against T comes from the same trajectories (paired across T).
- Images: Fashion-MNIST average-pooled by ``downsample`` (default 2: 28×28 → 14×14, m = 196), then
  normalised with the data set's mean/std; σ is a fraction of the pixel range (`DatasetSpec.sigma_abs`).
- Random streams: per seed group (one per replica for the coupled nets, one more for ``proxy_indep``)
  a CPU generator for W_0, one for the sample sequence, and a generator on the device for V (drawn in
  blocks of `NOISE_BLOCK` steps). They depend only on (seed, replica), never on the other replicas,
  so the batched run equals each replica run alone. V depends on the device type (CPU vs CUDA).

Bounds: Theorem 5 (VG) and Theorem 6 (SmoothGrad) via `theory.bounds`, in log10, with the run's c, T,
n, B_i = max over all its networks of `empirical.nets.constants.layer_norms`, C = max ‖x‖₂ over the training
pool, and (L, β) either from Remark 4 (certified: L = Γ_{k,1}C; β corrected Remark 4(2) for SGD,
√(2/π)L/s for noisy SGD) or measured at the trained weights (`empirical.nets.constants.empirical_lipschitz`,
`empirical_smoothness`; lower estimates). No theorem of the paper bounds IG's stability: IG is measured only.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from empirical.errors import UserError
from empirical.experiments.loo.config import LooConfig, derive_seed, widths
from empirical.experiments.loo.replicas import (
    class_means,
    forward,
    init_params,
    network_constants,
    prepare_pool,
    replica_sets,
    saliency_maps,
    sample_orders,
    train,
)
from empirical.experiments.loo.report import assemble, write_outputs
from empirical.measures import agreement as metrics
from empirical.nets import constants as netbounds
from empirical.runtime.cache import UnitCache
from empirical.runtime.environment import provenance
from empirical.runtime.files import mark_complete, prepare_out_dir
from empirical.runtime.progress import bar_disabled
from empirical.training.checkpoints import config_digest


# --------------------------------------------------------------------------- one unit: (optimizer, n)
def run_unit(cfg: LooConfig, pool: dict, optimizer: str, n: int, progress: bool = False) -> dict:
    """Train all replicas of one (optimizer, n) to every T of the grid and measure; a JSON-ready record."""
    t0 = time.time()
    dev = torch.device(cfg.device)
    R, roles = cfg.replicas, cfg.roles
    x, y, spec = pool["x_train"], pool["y_train"], pool["spec"]
    means = class_means(x, y)
    reps = [replica_sets(x, y, means, n, cfg.kinds, derive_seed(cfg.seed, "data", n, r), cfg.outlier_pool)
            for r in range(R)]
    # net j = role_index · R + r; every role of replica r shares seed group r except S2_indep (group R + r)
    idx = torch.stack([reps[r]["sets"][role][0] for role in roles for r in range(R)])
    lab = torch.stack([reps[r]["sets"][role][1] for role in roles for r in range(R)])
    group = torch.tensor([(R + r) if role == "S2_indep" else r for role in roles for r in range(R)])
    group_ids = [("shared", r) for r in range(R)] + [("indep", r) for r in range(R)]
    dims = widths(cfg, x.shape[1])
    W0 = [w[group].to(dev) for w in init_params(dims, [derive_seed(cfg.seed, "init", *g) for g in group_ids])]
    order = sample_orders([derive_seed(cfg.seed, "order", n, *g) for g in group_ids], n, max(cfg.steps))[group]
    noise_seeds = [derive_seed(cfg.seed, "noise", n, *g) for g in group_ids]
    snaps = train(W0, x, idx, lab, order, cfg.train_config(optimizer), cfg.activation, cfg.steps, group, noise_seeds,
                  progress=progress, desc=f"{optimizer} n={n}")
    t_train = time.time() - t0

    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "test"))
    test_idx = torch.randperm(len(pool["x_test"]), generator=g)[:cfg.test_images].sort().values
    xt, yt = pool["x_test"][test_idx.to(dev)], pool["y_test"][test_idx.to(dev)]
    acc_x, acc_y = pool["x_test"][:2000], pool["y_test"][:2000]
    sig_abs = [float(spec.sigma_abs(s).max()) for s in cfg.sigmas]
    ri = {role: slice(i * R, (i + 1) * R) for i, role in enumerate(roles)}
    snapshots = []
    for T in sorted(cfg.steps):
        W = snaps[T]
        maps = saliency_maps(W, xt, yt, test_idx.to(dev), cfg.activation, sig_abs, cfg.draws, cfg.ig_steps, cfg.seed,
                             cfg.max_points)
        measures = []
        for key, mp in maps.items():
            method, sigma = ("sg", cfg.sigmas[sig_abs.index(float(key[3:]))]) if key.startswith("sg@") else (key, 0.0)
            scale = mp[ri["S"]].flatten(2).norm(dim=2)  # [R, M]
            for comp, (a, b) in cfg.comparisons.items():
                d = metrics.stability_error(mp[ri[a]].reshape(R * len(yt), -1), mp[ri[b]].reshape(R * len(yt), -1))
                d = d.view(R, len(yt))
                measures.append({"method": method, "sigma": sigma, "comparison": comp,
                                 "per_replica": d.mean(1).tolist(), "per_image": d.mean(0).tolist(),
                                 "scale_per_replica": scale.mean(1).tolist()})
        pdist = {comp: torch.sqrt(sum((w[ri[a]] - w[ri[b]]).flatten(1).pow(2).sum(1) for w in W)).tolist()
                 for comp, (a, b) in cfg.comparisons.items()}
        with torch.no_grad():
            acc = (forward([w[ri["S"]] for w in W], acc_x.expand(R, -1, -1), cfg.activation).argmax(2)
                   == acc_y).float().mean(1)
        snapshots.append({"T": T, "measures": measures, "param_distance": pdist, "test_accuracy_S": acc.tolist(),
                          "constants": network_constants(cfg, W, x, idx, lab, ri["S"])})
    return {"optimizer": optimizer, "n": n, "replicas": [rp["info"] for rp in reps], "test_indices": test_idx.tolist(),
            "sigma_abs": sig_abs, "snapshots": snapshots, "train_seconds": t_train,
            "eval_seconds": time.time() - t0 - t_train}


# --------------------------------------------------------------------------- the whole run
def unit_key(cfg: LooConfig, optimizer: str, n: int) -> str:
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("device", "max_points", "ns", "optimizers")}
    if optimizer != "noisy_sgd":
        fields.pop("weight_noise")
    return config_digest("loo-unit-v3", fields, optimizer, n, torch.device(cfg.device).type)


def run(cfg: LooConfig, out: Path, progress: bool = True) -> dict:
    """Every (optimizer, n) unit (cached in out/units, reused on a re-run), then results.json, CSVs, PNGs."""
    cfg.validate()
    t_start = time.time()
    out = prepare_out_dir(out)  # a file or read-only --out fails here, before any training
    pool = prepare_pool(cfg)
    for n in cfg.ns:  # every size checked before any training
        need = 2 * n + 1 + cfg.outlier_pool
        if need > len(pool["x_train"]):
            raise UserError(f"n = {n} needs {need} training images (S, a disjoint S2 and {cfg.outlier_pool + 1} fresh "
                            f"draws); the pool has {len(pool['x_train'])}")
    cache = UnitCache(out)
    C = netbounds.input_norm_bound(pool["x_train"])
    units, reused = [], 0
    todo = [(o, n) for o in cfg.optimizers for n in sorted(cfg.ns)]
    bar = tqdm(todo, desc="units (optimizer, n)", disable=bar_disabled(progress))
    for o, n in bar:
        key = unit_key(cfg, o, n)
        rec = cache.get(key, keys=("optimizer", "n", "replicas", "snapshots", "key"))
        if rec is None:
            rec = run_unit(cfg, pool, o, n, progress=progress)
            rec["key"] = key
            cache.put(key, rec)
        else:
            reused += 1
        units.append(rec)
    bar.close()
    results = assemble(cfg, units, {"C": C, "m": int(pool["x_train"].shape[1]), "spec": asdict(pool["spec"]),
                                    "n_pool": len(pool["x_train"])})
    results["reused_units"] = reused
    results["provenance"] = provenance(cfg.device)
    results["wall_seconds"] = time.time() - t_start
    write_outputs(results, out)
    mark_complete(out)  # last: a run killed before this reads as unfinished
    return results
