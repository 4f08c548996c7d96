"""The feature-map smoothing study of Bhusal, Alam & Rastogi: regimes N, A, M1, M2, G, E, NG.

Each regime is a (smoothing filter, adversarial training) pair; the model is the data set's network
with a `SmoothingBlock` (x + Conv1×1(filter(x))) inserted after `block_after` (the first block by
default, as in the paper). Adversarial training is PGD L∞ (Madry et al. 2018) with ε, step and steps in
pixel units of [0, 1] images — the same ε for every adversarial regime (the public code trained the
baseline and the smoothed models at different ε).

Every metric is computed on the pixel-space model x ↦ f(normalize(x)), so perturbations, noise and
clipping live in [0, 1] whatever the normalisation, and maps are gradients with respect to pixels.
Evaluation uses the test images that *every* trained model classifies correctly (a common set, so the
regimes are compared on the same images; the paper takes each model's own correct set), the first
`eval_images` of a seeded permutation.

Metrics per regime × method (VG, IG, SG): Gini sparseness; RIS, ROS, RRS (Agarwal et al. 2022) with
perturbations uniform in an L∞ ball of `radius` clipped to [0, 1], prediction flips excluded and
counted; ROAD AUC (Rong et al. 2022; the paper's ROAD_AUC, MoRF and LeRF); SSIM between the maps of x
and x + N(0, s²) over a noise grid, only where the prediction is unchanged; plus benign accuracy, PGD
robust accuracy and the input-Hessian norm of the target logit (curvature). dG, dRIS, dROS, dRRS,
dROAD are differences to the natural model N.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from empirical import attribution as saliency
from empirical import data as data_mod
from empirical import measures as quality
from empirical.attacks import pgd as attacks
from empirical.errors import DeadlineReached, UserError
from empirical.experiments.smoothing import figures as figures_smoothing
from empirical.experiments.smoothing.config import REGIMES, SmoothingStudyConfig
from empirical.experiments.smoothing.regimes import PixelModel, attack_spec, build_regime, lockstep_group
from empirical.measures import agreement as metrics
from empirical.measures import curvature
from empirical.runtime.cache import UnitCache
from empirical.runtime.environment import provenance
from empirical.runtime.files import mark_complete, prepare_out_dir, write_csv, write_json
from empirical.runtime.precision import fp32_mode
from empirical.runtime.progress import bar_disabled
from empirical.training.checkpoints import config_digest
from empirical.training.lockstep import train_many_or_load


def explain_fn(model: nn.Module, method: str, cfg: SmoothingStudyConfig):
    """(x [N,C,H,W] pixel space, target [N]) → maps, for the pixel-space model."""
    def explain(x, target, ids=None):
        if method == "vg":
            return saliency.vanilla_gradient(model, x, target, max_batch=cfg.max_batch)
        if method == "ig":
            return saliency.integrated_gradients(model, x, target, steps=cfg.ig_steps, max_batch=cfg.max_batch)
        # x is in pixel space [0, 1]: the relative σ with pixel_range 1.
        return saliency.smoothgrad(model, x, target, sigma=cfg.sg_sigma, pixel_range=1.0, n_draws=cfg.sg_draws,
                                   seed=cfg.seed, ids=ids, max_batch=cfg.max_batch)
    return explain


def _representation(model: PixelModel) -> callable:
    """RRS's internal representation: the input of the classifier head (penultimate features)."""
    def rep(x):
        feats = []
        h = model.net.head.register_forward_hook(lambda m, i, o: feats.append(i[0]))
        try:
            model(x)
        finally:
            h.remove()
        return feats[0].flatten(1)
    return rep


def run(cfg: SmoothingStudyConfig, out: Path, progress: bool = True, deadline: float | None = None) -> dict:
    """Train (or load) every model, evaluate each (cached per model), write results.json, table.csv,
    curves.csv and the figures under ``out``.

    ``deadline``: wall-clock time (``time.time()`` seconds; a GPU slice's budget) at which the run stops
    cleanly with :class:`~empirical.errors.DeadlineReached`: training at a step boundary (state saved), the
    evaluation between two models' units (finished units kept). Each call makes progress (one training step or
    one unit at least); the same call again resumes, and the results equal an uninterrupted run's.
    """
    cfg.validate()
    t_start = time.time()
    out = prepare_out_dir(out)  # a file or read-only --out fails here, before any training
    device = torch.device(cfg.device)
    ds = data_mod.load(cfg.dataset, cfg.data_root, cfg.image_size)
    spec = ds.spec
    n_total = len(ds.train_x)
    n_train = cfg.train_images or n_total
    if n_train > n_total:
        raise UserError(f"--train-images {n_train} exceeds the {n_total} training images")
    train_idx = data_mod.disjoint_splits(n_total, 1, n_train, seed=cfg.seed)[0]
    digest = data_mod.indices_digest(train_idx)
    for regime in cfg.regimes:  # a bad --block-after is an error now, not after training N
        if REGIMES[regime][0] is not None:
            build_regime(cfg, spec, regime)
            break
    cache = UnitCache(out)

    # ---- train every (regime, ε) model
    eps_values = sorted(set((cfg.eps,) + tuple(cfg.eps_grid)))
    jobs = [(r, (cfg.eps if REGIMES[r][1] else 0.0)) for r in cfg.regimes]
    jobs += [(r, e) for r in cfg.regimes if REGIMES[r][1] for e in eps_values if e != cfg.eps]
    nets: dict[tuple[str, float], PixelModel] = {}
    train_records = []
    key_parts = [{"study": "smoothing-v1", "dataset": cfg.dataset, "image_size": cfg.image_size,
                  "model": cfg.model, "activation": cfg.activation, "regime": regime, "filter": REGIMES[regime][0],
                  "block_after": cfg.block_after, "kernel_size": cfg.kernel_size, "gaussian_sigma": cfg.gaussian_sigma,
                  "eps": eps, "attack": cfg.attack if eps > 0 else None, "attack_steps": cfg.attack_steps,
                  "train": asdict(cfg.train), "split": digest,
                  # TF32 training gives other weights; the key has the field only then, so full-float32
                  # checkpoints made before it existed stay valid
                  **({"fp32": "tf32"} if cfg.train_tf32 else {})} for regime, eps in jobs]
    # the models in lockstep on one batch stream (CUDA-graphed steps on a GPU); on the CPU this is exactly
    # one-by-one training, so checkpoints are shared with runs made either way
    builds = [lambda regime=regime: build_regime(cfg, spec, regime) for regime, _ in jobs]
    specs = [attack_spec(cfg, eps) for _, eps in jobs]
    size = lockstep_group(cfg, len(jobs))
    trained = []
    train_fp32 = "tf32" if cfg.train_tf32 else "ieee"
    for i in range(0, len(jobs), size):
        with fp32_mode(train_fp32):
            trained += train_many_or_load(builds[i:i + size], key_parts[i:i + size], specs[i:i + size],
                                          out / "checkpoints", dict(
                x_uint8=ds.train_x[train_idx], y=ds.train_y[train_idx], normalize=spec.normalize, cfg=cfg.train,
                device=device, desc=f"train {{n}} of {len(jobs)} models", progress=progress,
                graphs=None if cfg.cuda_graphs else False, deadline=deadline))
    for (regime, eps), (net, rec, reused) in zip(jobs, trained):
        net.requires_grad_(False).eval()
        nets[(regime, eps)] = PixelModel(net, spec).to(device).eval()
        train_records.append(dict(rec, regime=regime, eps=eps, reused_checkpoint=reused,
                                  train_fp32=train_fp32 if device.type == "cuda" else "n/a (CPU)"))

    # ---- the common evaluation set: test images every model classifies correctly
    x_all = ds.test_x.to(device).float().div_(255.0)
    y_all = ds.test_y.to(device)
    correct = torch.ones(len(x_all), dtype=torch.bool, device=device)
    benign = {}
    for key, pm in nets.items():
        with torch.no_grad():
            pred = torch.cat([pm(x_all[i:i + 1024]).argmax(1) for i in range(0, len(x_all), 1024)])
        benign[key] = (pred == y_all).float().mean().item()
        correct &= pred == y_all
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(len(x_all), generator=g).to(device)
    eval_idx = perm[correct[perm]][: cfg.eval_images].sort().values
    if len(eval_idx) == 0:
        raise UserError("no test image is classified correctly by every model: train longer")
    x, y = x_all[eval_idx], y_all[eval_idx]
    ids = eval_idx

    # ---- per model: metrics (one cached unit per (regime, ε))
    # (the training key inside each unit key already says how the model was trained)
    eval_cfg = {k: v for k, v in asdict(cfg).items()
                if k not in ("device", "max_batch", "cuda_graphs", "train_tf32", "regimes", "eps_grid", "data_root")}
    rows, curves = [], []
    computed = 0  # units computed in this call (the deadline lets the first one run: progress per call)
    bar = tqdm(list(nets.items()), desc="metrics", disable=bar_disabled(progress))
    for (regime, eps), pm in bar:
        tkey = next(r["key"] for r in train_records if r["regime"] == regime and r["eps"] == eps)
        # v4: SmoothGrad's RIS/ROS/RRS explain each x' under its image's id (before: under its row in the call)
        key = config_digest("smoothing-unit-v4", tkey, eval_cfg, eval_idx.tolist())
        unit = cache.get(key, keys=("rows", "curves"))
        if unit is None:
            if deadline is not None and computed and time.time() >= deadline:
                bar.close()
                raise DeadlineReached(f"evaluation stopped at its deadline after {len(rows) // len(cfg.methods)} of "
                                      f"{len(nets)} models; finished units are saved: re-run the same command to "
                                      "resume")
            unit = evaluate_model(cfg, pm, x, y, ids, x_all, y_all, regime, eps, benign[(regime, eps)])
            cache.put(key, unit)
            computed += 1
        rows += unit["rows"]
        curves += unit["curves"]
    bar.close()
    _add_differences(rows)
    results = {"experiment": "smoothing_study", "config": asdict(cfg), "models": train_records, "table": rows,
               "curves": curves, "eval_indices": eval_idx.tolist(), "n_eval": len(eval_idx),
               "provenance": provenance(device), "wall_seconds": time.time() - t_start}
    write_json(out / "results.json", results)
    write_csv(out / "table.csv", rows)
    write_csv(out / "curves.csv", curves)
    figures_smoothing.make(results, out)
    mark_complete(out)  # last: a run killed before this reads as unfinished
    return results


def evaluate_model(cfg: SmoothingStudyConfig, pm: PixelModel, x, y, ids, x_all, y_all, regime: str, eps: float,
                   benign_acc: float) -> dict:
    t0 = time.time()
    n_rob = min(cfg.robust_images, len(x))
    # the attack's random start from a seeded generator: the global one's state depends on what ran before
    # (training or loading a checkpoint), and a cached unit must not
    robust = attacks.robust_accuracy(pm, None, x[:n_rob], y[:n_rob], cfg.robust_eps, steps=cfg.robust_steps,
                                     generator=torch.Generator(device=x.device).manual_seed(cfg.seed + 5))
    curv = curvature.input_hessian_norm(pm, x, y, iters=cfg.curvature_iters)
    rows, curves = [], []
    for meth in cfg.methods:
        explain = explain_fn(pm, meth, cfg)
        maps = explain(x, y, ids)
        # clip: x' stays an image of [0, 1] (the pixel-space model's inputs); the library's default is no clipping
        common = dict(radius=cfg.stab_radius, n_samples=cfg.stab_samples, eps_min=cfg.eps_min, seed=cfg.seed, ids=ids,
                      clip=(0.0, 1.0))
        # RIS, ROS, RRS on the same perturbations, each perturbed image explained once for all three. Every x'
        # is explained under its image's id: SmoothGrad gives x and x' the same noise draws (common random
        # numbers), so its scores measure the smoothed map's change, whatever the batch size
        stab = quality.relative_stabilities(explain, pm, x, y, representation=_representation(pm), explain_ids=True,
                                            **common)
        ris, ros, rrs = stab["input"], stab["output"], stab["representation"]
        # tol 1e-6: the imputation's solve error stays far below its own noise (std 0.01, Rong et al.)
        road = {o: quality.road(pm, x, maps, y, percentages=cfg.road_percentages, order=o, seed=cfg.seed, ids=ids,
                                tol=1e-6) for o in ("morf", "lerf")}
        row = {"regime": regime, "eps": eps, "method": meth, "n_images": len(x),
               "benign_accuracy": benign_acc,  # on the whole test set
               "robust_accuracy": robust,  # PGD at robust_eps on the evaluation images (all correctly classified)
               "curvature_mean": curv.mean().item(), "curvature_median": curv.median().item()}
        for name, res in (("ris", ris), ("ros", ros), ("rrs", rrs)):
            v = res.score[torch.isfinite(res.score)]
            row[name] = v.mean().item() if len(v) else None
            row[f"log10_{name}"] = v.clamp_min(1e-300).log10().mean().item() if len(v) else None
            row[f"{name}_flips_excluded"] = int(res.n_excluded.sum())
        row["gini"] = quality.gini(maps).mean().item()
        for o, res in road.items():
            row[f"road_auc_{o}"] = res.auc.mean().item()
            for p, pr in zip(cfg.road_percentages, res.probs.mean(0).tolist()):
                curves.append({"regime": regime, "eps": eps, "method": meth, "kind": f"road_{o}", "x": p, "y": pr})
        g = torch.Generator(device="cpu").manual_seed(cfg.seed + 7)
        for s in cfg.ssim_noise:
            xn = (x + s * torch.randn(x.shape, generator=g).to(x.device)).clamp(0, 1)
            with torch.no_grad():
                same = pm(xn).argmax(1) == y
            if same.any():
                mn = explain(xn[same], y[same], ids[same])
                val = metrics.ssim(maps[same], mn).mean().item()
            else:
                val = None
            curves.append({"regime": regime, "eps": eps, "method": meth, "kind": "ssim_noise", "x": s, "y": val,
                           "kept": int(same.sum())})
            row[f"ssim_noise_{s}"] = val
        rows.append(row)
    for r in rows:
        r["seconds"] = time.time() - t0
    return {"rows": rows, "curves": curves}


def _add_differences(rows: list[dict]) -> None:
    """dG, dRIS, dROS, dRRS, dROAD against the natural model N (same method). Stability differences are
    taken on log10 (the ratios span orders of magnitude); positive dRIS etc. means more stable than N."""
    base = {r["method"]: r for r in rows if r["regime"] == "N"}
    for r in rows:
        b = base.get(r["method"])
        if b is None:
            continue
        r["dG"] = r["gini"] - b["gini"]
        for name in ("ris", "ros", "rrs"):
            a, c = r.get(f"log10_{name}"), b.get(f"log10_{name}")
            r[f"d{name.upper()}"] = (c - a) if (a is not None and c is not None) else None
        r["dROAD"] = r["road_auc_morf"] - b["road_auc_morf"]
