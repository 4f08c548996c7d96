"""Claim 4 over training runs: each model's per-image ρ, summarised over seeds.

:mod:`empirical.experiments.curvature.run` gives, per model (regime, ε, training seed) and saliency method, a
Spearman ρ between a curvature measure and a stability measure over images, with a CI over images. A claim
about training ("curvature predicts stability in adversarially trained networks") is a claim over training
runs, so its unit is the seed (docs/statistics.md): here every (regime, ε, method, curvature, stability) gets
the mean ρ over seeds with a bootstrap CI over seeds and the sign count; and per (method, curvature,
stability) the scope "all regimes" averages each seed's ρ over its regimes first (one value per seed). With 3
seeds the interval is the seeds' range, and a direction needs all of them on one side of 0
(:func:`empirical.stats.verdict`).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from empirical import stats
from empirical.errors import UserError

POSITIVE, NEGATIVE = "more curvature, less stable", "more curvature, more stable"


def _row(key: dict, per_seed: dict[int, float], resamples: int, seed: int) -> dict:
    seeds = sorted(per_seed)
    row = dict(key, seeds=seeds, n_seeds=len(seeds))
    s = stats.summarize([per_seed[k] for k in seeds], unit="seed", resamples=resamples, seed=seed)
    rec = s.as_dict()
    row.update(rec, signs=s.signs().text, verdict=stats.verdict(s, POSITIVE, NEGATIVE))
    return row


def over_seeds(results: list[dict], resamples: int = 10_000, seed: int = 0) -> list[dict]:
    """Rows ``{scope, eps, method, curvature, stability, seeds, n_seeds, estimate, ci_low, ci_high, ..., signs,
    verdict}`` from several ``results.json`` of :func:`empirical.experiments.curvature.run.run` (one per seed run,
    or one holding several seeds). Correlations that were undefined for a model are left out of its seed."""
    if not results:
        raise UserError("no curvature_claims results to summarise")
    by_model: dict[tuple, dict[int, float]] = defaultdict(dict)
    for res in results:
        if res.get("experiment") != "curvature_claims":
            raise UserError(f"not a curvature_claims results file (experiment {res.get('experiment')!r})")
        for m in res["models"]:
            for c in m["correlations"]:
                if c.get("estimate") is None:
                    continue
                key = (m["regime"], m["eps"], m["method"], c["curvature"], c["stability"])
                if m["train_seed"] in by_model[key]:
                    raise UserError(f"seed {m['train_seed']} appears twice for {key}: give each run once")
                by_model[key][m["train_seed"]] = c["estimate"]
    rows = []
    pooled: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (regime, eps, method, cname, sname), per_seed in sorted(by_model.items(), key=lambda kv: str(kv[0])):
        rows.append(_row({"scope": regime, "eps": eps, "method": method, "curvature": cname, "stability": sname},
                         per_seed, resamples, seed))
        for s, v in per_seed.items():
            pooled[(method, cname, sname)][s].append(v)
    for (method, cname, sname), per_seed in sorted(pooled.items()):
        means = {s: float(np.mean(v)) for s, v in per_seed.items()}
        rows.append(_row({"scope": "all regimes", "eps": None, "method": method, "curvature": cname,
                          "stability": sname}, means, resamples, seed))
    return rows
