"""The disjoint-split experiment of Ye & Farnia (sec. 5.1): stability and fidelity against σ, next to the bounds.

For each pair p, the training set is split into two disjoint halves S1, S2 (fresh seeded permutation
per pair), a network is trained on each, and for every test image x (label y) and every σ:

- stability (eq. 12 proxy): ||Sal_{A(S1)}^σ(x,y) − Sal_{A(S2)}^σ(x,y)||₂, raw and on unit-norm maps;
- fidelity (eq. 13): mean over the two networks of ||E_z[Sal(x+z,y)] − Sal(x,y)||₂;
- SSIM and top-k intersection / IoU between the two networks' maps (sec. 5.3).

Sal^σ is the Gaussian-smoothed map E_z[Sal(x+z, y)], z ~ N(0, σ_c²) per channel c with
σ_c = σ · (x_max − x_min) / std_c (σ is a fraction of the pixel range; see `empirical.data`). σ = 0 is
the plain map. For "vg" that is SmoothGrad; for "ig" smoothed Integrated Gradients. The two networks
of a pair see identical noise (common random numbers: draws seeded by image id), so their difference
measures the networks, not the Monte-Carlo noise; the MC standard error is reported besides.

Bounds (`empirical.nets.constants` for the constants, `theory.bounds` for the formulas): Theorem 5 (σ = 0,
SimpleGrad), Theorem 6 (σ > 0, SmoothGrad) and Proposition 7 (fidelity) evaluated with each trained
network's B_i, C, the run's c, T, n and m, in log10 (they overflow float64 on real networks).
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from empirical import attribution as saliency
from empirical import data as data_mod
from empirical.attribution import memory
from empirical.errors import TrainingDiverged, UserError
from empirical.experiments.split.config import SplitStabilityConfig
from empirical.measures import agreement as metrics
from empirical.nets import constants as netbounds
from empirical.nets import models
from empirical.runtime.cache import UnitCache
from empirical.runtime.environment import provenance
from empirical.runtime.files import mark_complete, prepare_out_dir, write_csv, write_json
from empirical.runtime.progress import bar_disabled
from empirical.training.checkpoints import config_digest
from empirical.training.trainer import accuracy, train_or_load


# --------------------------------------------------------------------------- maps
def compute_maps(cfg: SplitStabilityConfig, model, x, y, ids, sigma_abs: torch.Tensor, method: str,
                 grad_layer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The map Sal^σ for one network on the test images; returns (maps, MC standard error or None)."""
    smoothed = bool(sigma_abs.max() > 0)
    common = dict(max_batch=cfg.max_batch)
    if method == "vg" and not smoothed:
        return saliency.vanilla_gradient(model, x, y, **common), None
    if method == "ig" and not smoothed:
        return saliency.integrated_gradients(model, x, y, steps=cfg.ig_steps, **common), None
    if method in ("vg", "ig"):
        out = saliency.smoothgrad(model, x, y, stdevs=sigma_abs, n_draws=cfg.draws, seed=cfg.seed, ids=ids,
                                  base=method, ig_steps=cfg.ig_steps, return_stderr=True, **common)
        return out
    plus = method == "gradcampp"
    if not smoothed:
        return saliency.gradcam(model, x, y, layer=grad_layer, plus=plus), None
    return saliency.smoothed(lambda xx, yy: saliency.gradcam(model, xx, yy, layer=grad_layer, plus=plus),
                             x, y, stdevs=sigma_abs, n_draws=cfg.draws, seed=cfg.seed, ids=ids,
                             max_batch=cfg.max_batch, return_stderr=True)


def _rel_se(maps: torch.Tensor, se: torch.Tensor | None) -> float | None:
    if se is None:
        return None
    return (se.flatten(1).norm(dim=1) / maps.flatten(1).norm(dim=1).clamp_min(1e-30)).mean().item()


def _valid_unit(rec) -> bool:
    """A cached measurement unit as this version writes it: its fields, and a finite number per image and
    metric (an older run could have cached nulls, from NaN/inf, which the summary cannot read back)."""
    return (isinstance(rec, dict) and {"pair", "sigma", "method", "per_image", "mc_rel_stderr"} <= rec.keys()
            and isinstance(rec["per_image"], dict)
            and all(isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                    for v in rec["per_image"].values()))


# --------------------------------------------------------------------------- run
def run(cfg: SplitStabilityConfig, out: Path, progress: bool = True) -> dict:
    """Run the whole experiment into `out` (resumable); returns the results dict also written to results.json."""
    cfg.validate()
    t_start = time.time()
    out = prepare_out_dir(out)  # a file or read-only --out fails here, before any training
    device = torch.device(cfg.device)
    ds = data_mod.load(cfg.dataset, cfg.data_root, cfg.image_size)
    spec = ds.spec
    n_total = len(ds.train_x)
    n = cfg.n if cfg.n is not None else min(n_total // 2, cfg.n_cap or n_total)
    if 2 * n > n_total:
        raise UserError(f"two disjoint splits of n={n} need {2 * n} training images, only {n_total} exist; "
                        f"use n <= {n_total // 2}")
    if cfg.test_images > len(ds.test_x):
        raise UserError(f"--test-images {cfg.test_images} exceeds the {len(ds.test_x)} test images")
    cache = UnitCache(out)
    ckpt_dir = out / "checkpoints"

    g = torch.Generator().manual_seed(cfg.seed)
    test_idx = torch.randperm(len(ds.test_x), generator=g)[: cfg.test_images].sort().values
    x_test = data_mod.to_model_input(spec, ds.test_x[test_idx], device)
    y_test = ds.test_y[test_idx].to(device)
    x_test_all = data_mod.to_model_input(spec, ds.test_x, device)
    y_test_all = ds.test_y.to(device)
    m = x_test[0].numel()
    k_top = max(1, round(cfg.topk_fraction * spec.size * spec.size))
    C = max(netbounds.input_norm_bound(data_mod.to_model_input(spec, ds.train_x[i : i + 8192], device))
            for i in range(0, n_total, 8192))

    def build():
        return models.build(cfg.model, spec.channels, spec.size, spec.num_classes, cfg.activation)

    # ---- train the 2 × pairs networks (checkpoints reused)
    networks = []
    split_records = []
    bar = tqdm(total=2 * cfg.pairs, desc="networks", disable=bar_disabled(progress))
    for p in range(cfg.pairs):
        halves = data_mod.disjoint_splits(n_total, 2, n, seed=cfg.seed * 1000 + p)
        pair_nets = []
        for h, idx in enumerate(halves):
            digest = data_mod.indices_digest(idx)
            tcfg = replace(cfg.train, seed=cfg.seed * 1000 + 2 * p + h)
            key_parts = {"dataset": cfg.dataset, "image_size": cfg.image_size, "model": cfg.model,
                         "activation": cfg.activation, "train": asdict(tcfg), "split": digest}
            net, rec, reused = train_or_load(build, key_parts, ckpt_dir, dict(
                x_uint8=ds.train_x[idx], y=ds.train_y[idx], normalize=spec.normalize, cfg=tcfg, device=device,
                desc=f"pair {p} half {h}", progress=progress))
            net.requires_grad_(False)
            acc = accuracy(net, x_test_all, y_test_all)
            rec = dict(rec, test_accuracy=acc, reused_checkpoint=reused, split_digest=digest, pair=p, half=h)
            pair_nets.append(net)
            split_records.append(rec)
            bar.update(1)
        networks.append(pair_nets)
    bar.close()

    # ---- network constants for the bounds (one record per network)
    const_key = config_digest("constants-v3", [r["key"] for r in split_records])
    constants = cache.get(const_key, valid=lambda v: isinstance(v, list) and len(v) == 2 * cfg.pairs
                          and all(isinstance(c, dict) and {"B", "C", "L_emp", "beta_emp"} <= c.keys() for c in v))
    if constants is None:
        constants = []
        xb, yb = x_test[:64], y_test[:64]
        for pair_nets in networks:
            for net in pair_nets:
                with torch.enable_grad():
                    net.requires_grad_(True)
                    L_emp = netbounds.empirical_lipschitz(net, xb, yb)
                    beta_emp = netbounds.empirical_smoothness(net, xb, yb)
                    net.requires_grad_(False)
                layers = netbounds.layer_norms(net, x_test[:1])
                constants.append({"B": [lr["B"] for lr in layers], "layers": layers, "C": C,
                                  "L_emp": L_emp, "beta_emp": beta_emp})
        cache.put(const_key, constants)
    gaps = netbounds.assumption_gaps(networks[0][0])

    if cfg.mem_mb is not None:  # results do not depend on max_batch (tested), only speed and memory do
        fit = memory.max_batch_for_memory(networks[0][0], tuple(x_test.shape[1:]), cfg.mem_mb, device)
        cfg = replace(cfg, max_batch=max(1, min(cfg.max_batch, fit)))

    # ---- maps and measurements, one cached unit per (pair, σ, method)
    grad_layers = [[models.gradcam_layer(net, cfg.model) for net in pn] for pn in networks]
    ids = test_idx.to(device)
    eval_cfg = {k: v for k, v in asdict(cfg).items() if k in ("test_images", "draws", "ig_steps", "topk_fraction", "seed")}
    plain: dict = {}

    def maps_of(p: int, h: int, sig: torch.Tensor, meth: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A network's maps, checked: a finite loss does not make a usable network (weights of ~lr can make
        the input gradient overflow); such a network diverged for our purposes, and its checkpoint is removed."""
        mp, se = compute_maps(cfg, networks[p][h], x_test, y_test, ids, sig, meth, grad_layers[p][h])
        bad = int((~torch.isfinite(mp)).sum())
        if bad:
            rec = split_records[2 * p + h]
            (ckpt_dir / f"{rec['key']}.pt").unlink(missing_ok=True)
            raise TrainingDiverged(f"training diverged: the network of pair {p}, half {h} gives {bad} NaN/inf "
                                   f"values in its {meth} maps (its gradients overflow); lower --lr (now "
                                   f"{cfg.train.lr:g})")
        return mp.detach(), se

    units = [(p, s, meth) for p in range(cfg.pairs) for meth in cfg.methods for s in cfg.all_sigmas]
    records = []
    bar = tqdm(units, desc="saliency", disable=bar_disabled(progress))
    for p, s, meth in bar:
        key = config_digest("unit-v2", split_records[2 * p]["key"], split_records[2 * p + 1]["key"], s, meth, eval_cfg)
        rec = cache.get(key, valid=_valid_unit)
        if rec is None:
            t0 = time.time()
            sig = spec.sigma_abs(s, device)
            maps, ses = [], []
            for h in range(2):
                mp, se = maps_of(p, h, sig, meth)
                maps.append(mp)
                ses.append(se)
            if (p, meth) not in plain:
                plain[(p, meth)] = maps if s == 0 else [maps_of(p, h, spec.sigma_abs(0.0, device), meth)[0]
                                                        for h in range(2)]
            base = plain[(p, meth)]
            a, b = maps
            per_image = {
                "stability": metrics.stability_error(a, b),
                "stability_unit": metrics.stability_error(a, b, normalize=True),
                "fidelity": 0.5 * (metrics.fidelity_error(a, base[0]) + metrics.fidelity_error(b, base[1])),
                "fidelity_unit": 0.5 * (metrics.fidelity_error(a, base[0], normalize=True)
                                        + metrics.fidelity_error(b, base[1], normalize=True)),
                "ssim": metrics.ssim(a, b),
                "topk_intersection": metrics.topk_intersection(a, b, k_top),
                "topk_iou": metrics.topk_iou(a, b, k_top),
            }
            bad = [k for k, v in per_image.items() if not bool(torch.isfinite(v).all())]
            if bad:  # finite maps too large for float32 arithmetic: report, never cache (a null would be read back)
                top = max(float(m.abs().max()) for m in maps)
                raise UserError(f"pair {p}, {meth} at σ = {s}: {', '.join(bad)} not finite (maps up to {top:.3g} "
                                f"overflow float32; the networks likely diverged: lower --lr, now {cfg.train.lr:g})")
            rec = {"pair": p, "sigma": s, "method": meth,
                   "per_image": {k: v.detach().cpu().tolist() for k, v in per_image.items()},
                   "mc_rel_stderr": [_rel_se(mp, se) for mp, se in zip(maps, ses)],
                   "seconds": time.time() - t0}
            cache.put(key, rec)
        records.append(rec)
    bar.close()

    results = assemble(cfg, records, constants, split_records, dict(n=n, m=m, C=C, k_top=k_top, spec=asdict(spec),
                       test_indices=test_idx.tolist(), assumption_gaps=gaps))
    results["provenance"] = provenance(device)
    results["wall_seconds"] = time.time() - t_start
    write_outputs(results, out)
    mark_complete(out)  # last: a run killed before this reads as unfinished
    return results


# --------------------------------------------------------------------------- aggregation
def assemble(cfg: SplitStabilityConfig, records: list[dict], constants: list[dict], split_records: list[dict],
             info: dict) -> dict:
    from empirical.experiments.split import bounds as bound_report

    summary = []
    for meth in cfg.methods:
        for s in cfg.all_sigmas:
            rs = [r for r in records if r["method"] == meth and r["sigma"] == s]
            row = {"method": meth, "sigma": s}
            for name in ("stability", "stability_unit", "fidelity", "fidelity_unit", "ssim", "topk_intersection",
                         "topk_iou"):
                per_pair = [float(torch.tensor(r["per_image"][name]).mean()) for r in rs]
                pooled = torch.tensor([v for r in rs for v in r["per_image"][name]], dtype=torch.float64)
                st = metrics.summarize(per_pair, unit="model pair")
                row[name] = st["mean"]
                row[f"{name}_std_images"] = float(pooled.std()) if len(pooled) > 1 else 0.0
                row[f"{name}_std_pairs"] = st["std"]
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = st["ci_low"], st["ci_high"]
                if name in ("stability", "fidelity"):
                    row[f"{name}_per_pair"] = per_pair
            ses = [v for r in rs for v in r["mc_rel_stderr"] if v is not None]
            row["mc_rel_stderr"] = sum(ses) / len(ses) if ses else None
            summary.append(row)
    bounds_rows, laws = bound_report.evaluate(cfg, summary, constants, split_records, info)
    return {"experiment": "split_stability", "config": asdict(cfg), "info": info, "networks": split_records,
            "constants": constants, "summary": summary, "bounds": bounds_rows, "laws": laws,
            "units": records}


def write_outputs(results: dict, out: Path) -> None:
    from empirical.experiments.split import figures

    write_json(out / "results.json", results)
    write_csv(out / "summary.csv", [{k: v for k, v in r.items() if not k.endswith("_per_pair")}
                                    for r in results["summary"]])
    write_csv(out / "bounds.csv", results["bounds"])
    figures.split_stability_figures(results, out)
