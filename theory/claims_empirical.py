"""Empirical claims of the later feature-map paper, decided from committed runs over training seeds (issue 18).

Paper: Bhusal, Alam, Rastogi, "Training for Trustworthy Saliency Maps: Adversarial Training Meets Feature-Map
Smoothing" (`trustworthy-saliency-adv-training-feature-smoothing-abstract.md`; only the abstract is
available). Its claims about what training does to the maps are claims over training runs, so each is decided
over the seed replicates of the smoothing study's CPU medium preset (`results/smoothing_study-medium` and
every `results/smoothing_study-medium-seed<k>`): per seed, one number per part (the run's mean over its
evaluation images), then a bootstrap interval over seeds (:mod:`empirical.stats`: expanded percentile below 10
seeds, and with so few seeds a direction also needs every seed on the same side). A part is in the claimed
direction only where its interval excludes 0 that way; "keeps A's sparsity" is read as "still sparser than
N", the only version a difference test can support (an equivalence to A would need a margin the paper does
not give).

Stability scores are the study's log10 differences to N (dRIS, dROS, dRRS; positive = more stable than N),
Gini its sparsity (eq. 39 of the earlier paper). Maps: VG, IG and SmoothGrad (σ = 0.15).
Claim 4 (curvature) has its algebra in `claims_curvature.py`; its empirical side needs a committed run of the
curvature measures, which does not exist yet.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from theory.ledger import NO_RESULTS, Verdict, claim

PAPER = "trustworthy-saliency-adv-training-feature-smoothing-abstract.md"
RESULTS = "smoothing_study-medium*/results.json"
ROOT = Path(__file__).resolve().parents[1]
MAPS = {"vg": "VG", "ig": "IG", "sg": "SG"}
MIN_SEEDS = 3  # the project's rule: a verdict about training needs at least 3 seeds
EVIDENCE = ("per-seed values of the CPU medium smoothing study, 95 % bootstrap interval over seeds "
            "(empirical.stats); each part × map listed in the verdict's evidence")

# a part: (words, value per seed's table R and map m, claimed sign)
Part = tuple[str, Callable[[dict, str], float], int]


def _diff(a: str, b: str, key: str) -> Callable[[dict, str], float]:
    return lambda R, m: R[(a, m)][key] - (R[(b, m)][key] if b != "0" else 0.0)


def decide(parts: list[Part], root: Path = ROOT) -> Verdict:
    """Every part on every map: its interval over seeds and whether it lies in the claimed direction."""
    from empirical import stats
    from empirical.report.registry import Results
    from empirical.report.smoothing import rows, seed_runs

    res = Results(root)
    if not res.folders(r"smoothing_study-medium(-seed\d+)?"):
        return Verdict(NO_RESULTS, f"no results/{RESULTS}")
    runs = seed_runs(res)
    tables = [rows(r) for _, _, r in runs]
    sides, lines, details = [], [], {"seeds": [s for s, _, _ in runs]}
    enough = len(runs) >= MIN_SEEDS
    for words, f, sign in parts:
        for m, name in MAPS.items():
            s = stats.summarize([f(R, m) for R in tables], unit="seed")
            said = stats.verdict(s, "up", "down")
            side = {"up": 1, "down": -1}.get(said, 0) if enough else 0
            sides.append(side * sign)
            verdict = "as claimed" if side == sign else "against the claim" if side == -sign else "not significant"
            lines.append(f"{words}, {name}: {stats.interval(s, 2, signed=True)} ({s.signs().text}): {verdict}")
            details[f"{words} / {name}"] = s.as_dict()
    status = ("supported" if all(x > 0 for x in sides) else "contradicted" if all(x < 0 for x in sides)
              else "not-significant" if all(x == 0 for x in sides) else "mixed")
    n = len(runs)
    head = f"{n} seeds" + ("" if enough else f" (fewer than {MIN_SEEDS}: no direction is stated)")
    return Verdict(status, head + "; " + "; ".join(lines), details)


PARTS_1: list[Part] = [("Gini A − N", _diff("A", "N", "gini"), +1),
                       ("dRIS of A (A − N, log10)", _diff("A", "0", "dRIS"), +1)]
PARTS_2: list[Part] = [("dROS of A (A − N, log10)", _diff("A", "0", "dROS"), -1)]
PARTS_3: list[Part] = [("dRIS G − A", _diff("G", "A", "dRIS"), +1),
                       ("dROS G − A", _diff("G", "A", "dROS"), +1),
                       ("dRRS G − A", _diff("G", "A", "dRRS"), +1),
                       ("Gini G − N", _diff("G", "N", "gini"), +1)]


@claim(id="ts-adv-sparser-input-stable", paper=PAPER, ref="abstract, claim 1",
       statement="adversarial training yields sparser and more input-stable saliency maps",
       reading="A − N > 0 in Gini and in log10 RIS stability (dRIS), for VG, IG and SmoothGrad",
       method="empirical", status="not-significant", evidence=EVIDENCE, results=RESULTS)
def ts_adv_sparser_input_stable() -> Verdict:
    return decide(PARTS_1)


@claim(id="ts-adv-output-side", paper=PAPER, ref="abstract, claim 2",
       statement="adversarial training degrades output-side stability: explanations change even when "
                 "predictions remain unchanged and logits vary only slightly",
       reading="A − N < 0 in log10 ROS stability (dROS: map change relative to the logits' change), "
               "for VG, IG and SmoothGrad",
       method="empirical", status="not-significant", evidence=EVIDENCE, results=RESULTS)
def ts_adv_output_side() -> Verdict:
    return decide(PARTS_2)


@claim(id="ts-gaussian-block", paper=PAPER, ref="abstract, claim 3",
       statement="a Gaussian-based feature-map smoothing block in an intermediate layer, added to adversarial "
                 "training, improves input-side and output-side stability while preserving the sparsity "
                 "gained from adversarial training",
       reading="G − A > 0 in dRIS, dROS and dRRS, and Gini(G) − Gini(N) > 0 (still sparser than N), "
               "for VG, IG and SmoothGrad",
       method="empirical", status="not-significant", evidence=EVIDENCE, results=RESULTS)
def ts_gaussian_block() -> Verdict:
    return decide(PARTS_3)
