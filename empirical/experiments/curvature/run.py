"""Claim 4 over a smoothing-study run: every checkpoint's per-image curvature–stability rank correlations.

Reads the checkpoints a smoothing study wrote (``<run>/checkpoints/<key>.pt``, each with the ``key_parts`` that
name its regime, ε, network and data), rebuilds each network with its smoothing block, and evaluates
:func:`empirical.experiments.curvature.claims.curvature_claim` on a common set of test images that every model
classifies correctly (the first ``images`` of a permutation seeded by ``seed``, as the smoothing study chooses
its evaluation set). Trains nothing. Writes ``results.json`` (config, models, per-image columns, correlations,
provenance) and ``table.csv`` (one row per model × method × curvature × stability: ρ and its CI over images),
plus ``between_models``: per (method, curvature, stability), Spearman over models of the models' median
curvature and median stability, with a bootstrap CI over models (how regimes, not images, line up).
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from empirical import data as data_mod
from empirical.errors import UserError
from empirical.experiments.curvature.claims import CurvatureClaimConfig, curvature_claim, rho_row
from empirical.experiments.smoothing.config import REGIMES, SmoothingStudyConfig
from empirical.experiments.smoothing.regimes import PixelModel, build_regime
from empirical.experiments.smoothing.run import _representation, explain_fn
from empirical.runtime.environment import provenance
from empirical.runtime.files import mark_complete, prepare_out_dir, read_json, write_csv, write_json

_ARCH_FIELDS = ("dataset", "image_size", "model", "activation", "block_after", "kernel_size", "gaussian_sigma")


def find_checkpoints(models_dir: Path) -> list[tuple[Path, dict]]:
    """(path, key_parts) of every finished smoothing-study checkpoint under ``models_dir`` (its ``checkpoints/``
    folder, or the folder itself), sorted by regime order then ε then seed. Partial and snapshot files are
    skipped; a folder without one finished checkpoint is an error."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise UserError(f"--models {models_dir} is not a folder")
    folder = models_dir / "checkpoints" if (models_dir / "checkpoints").is_dir() else models_dir
    found = []
    for path in sorted(folder.glob("*.pt")):
        if path.name.count(".") != 1:  # <key>.partial.pt, <key>.prev.pt ...: unfinished trainings
            continue
        blob = torch.load(path, map_location="cpu", weights_only=False)
        parts = (blob.get("record") or {}).get("key_parts") if isinstance(blob, dict) else None
        if not parts or parts.get("study") != "smoothing-v1" or parts.get("regime") not in REGIMES:
            continue
        found.append((path, parts))
    if not found:
        raise UserError(f"--models {models_dir}: no finished smoothing-study checkpoint (<key>.pt) in {folder}")
    order = {r: i for i, r in enumerate(REGIMES)}
    return sorted(found, key=lambda pk: (order[pk[1]["regime"]], pk[1]["eps"], pk[1]["train"]["seed"]))


def load_model(path: Path, parts: dict, spec: data_mod.DatasetSpec, device) -> PixelModel:
    """The pixel-space network of one checkpoint, rebuilt from its ``key_parts``."""
    scfg = SmoothingStudyConfig(**{k: parts[k] for k in _ARCH_FIELDS})
    net = build_regime(scfg, spec, parts["regime"])
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["state_dict"])
    return PixelModel(net.requires_grad_(False).eval(), spec).to(device).eval()


def common_eval_set(models: list[PixelModel], x_all: torch.Tensor, y_all: torch.Tensor, n: int, seed: int):
    """Indices of the first ``n`` test images (seeded permutation, then sorted) every model classifies correctly."""
    correct = torch.ones(len(x_all), dtype=torch.bool, device=x_all.device)
    for pm in models:
        with torch.no_grad():
            pred = torch.cat([pm(x_all[i:i + 1024]).argmax(1) for i in range(0, len(x_all), 1024)])
        correct &= pred == y_all
    perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed)).to(x_all.device)
    idx = perm[correct[perm]][:n].sort().values
    if len(idx) < 3:
        raise UserError(f"only {len(idx)} test images are classified correctly by every model; need >= 3")
    return idx


_EXPLAIN_FIELDS = ("ig_steps", "sg_sigma", "sg_draws")


def explain_settings(models_dir: Path, cfg: CurvatureClaimConfig) -> tuple[SmoothingStudyConfig, str]:
    """The IG / SmoothGrad settings the run evaluated its maps with (its ``results.json`` config, when the run has
    finished), else the smoothing study's defaults; SmoothGrad seeded by ``cfg.seed`` and keyed by image id."""
    base = SmoothingStudyConfig()
    path = Path(models_dir) / "results.json"
    source = "smoothing-study defaults"
    if path.is_file():
        conf = read_json(path).get("config", {})
        base = replace(base, **{k: conf[k] for k in _EXPLAIN_FIELDS if k in conf})
        source = str(path)
    return replace(base, seed=cfg.seed, max_batch=cfg.max_batch), source


def between_models(model_records: list[dict], cfg: CurvatureClaimConfig) -> list[dict]:
    """Per (method, curvature, stability): Spearman over models of each model's median curvature and median
    stability (finite images), with a bootstrap CI over models; None where fewer than 3 models."""
    rows = []
    for method in sorted({m["method"] for m in model_records}):
        recs = [m for m in model_records if m["method"] == method]
        for cname in recs[0]["curvature"]:
            for sname in recs[0]["stability"]:
                a = np.array([np.nanmedian(np.asarray(m["curvature"][cname], dtype=float)) for m in recs])
                b = np.array([np.nanmedian(np.asarray(m["stability"][sname], dtype=float)) for m in recs])
                rows.append({"method": method, "curvature": cname, "stability": sname,
                             **rho_row(a, b, "model", cfg)})
    return rows


def run(models_dir: Path, out: Path, cfg: CurvatureClaimConfig, images: int = 256, methods=("vg",),
        data_root: str | None = None, device: str = "cpu", progress: bool = True) -> dict:
    cfg.validate()
    bad = [m for m in methods if m not in ("vg", "ig", "sg")]
    if bad or not methods:
        raise UserError(f"unknown method(s) {bad or '(none)'}; valid: vg, ig, sg")
    t0 = time.time()
    found = find_checkpoints(models_dir)
    out = prepare_out_dir(out)  # a file or read-only --out fails here, before any model is evaluated
    arch = {tuple(p[k] for k in ("dataset", "image_size")) for _, p in found}
    if len(arch) > 1:
        raise UserError(f"--models mixes data sets / image sizes {sorted(arch)}; give one study's run folder")
    parts0 = found[0][1]
    ds = data_mod.load(parts0["dataset"], data_root, parts0["image_size"])
    models = [load_model(p, k, ds.spec, device) for p, k in found]
    x_all = ds.test_x.to(device).float().div_(255.0)
    y_all = ds.test_y.to(device)
    idx = common_eval_set(models, x_all, y_all, images, cfg.seed)
    x, y = x_all[idx], y_all[idx]
    scfg, explain_from = explain_settings(models_dir, cfg)
    records, table = [], []
    for (path, parts), pm in zip(found, models):
        for method in methods:
            t1 = time.time()
            res = curvature_claim(pm, x, y, explain_fn(pm, method, scfg), cfg, representation=_representation(pm),
                                  ids=idx, explain_ids=True)
            rec = {"checkpoint": path.name, "key": path.stem, "regime": parts["regime"], "eps": parts["eps"],
                   "train_seed": parts["train"]["seed"], "method": method, "seconds": time.time() - t1,
                   "curvature": res["curvature"], "stability": res["stability"], "correlations": res["correlations"]}
            records.append(rec)
            for c in res["correlations"]:
                table.append({k: rec[k] for k in ("regime", "eps", "train_seed", "method")}
                             | {k: c.get(k) for k in ("curvature", "stability", "n_images", "estimate", "ci_low",
                                                      "ci_high", "verdict")}
                             | {"interval": c.get("method")})
            if progress:
                print(f"{parts['regime']:>6} ε={parts['eps']:g} seed={parts['train']['seed']} {method}: "
                      f"{time.time() - t1:.0f} s", flush=True)
    results = {"experiment": "curvature_claims", "config": asdict(cfg), "models_dir": str(models_dir),
               "images": images, "methods": list(methods), "explain_settings_from": explain_from,
               "explain_settings": {k: getattr(scfg, k) for k in _EXPLAIN_FIELDS},
               "eval_indices": idx.tolist(), "n_eval": len(idx),
               "models": records, "between_models": between_models(records, cfg),
               "provenance": provenance(torch.device(device)), "wall_seconds": time.time() - t0}
    write_json(out / "results.json", results)
    write_csv(out / "table.csv", table)
    mark_complete(out)  # last: a run killed before this reads as unfinished
    return results
