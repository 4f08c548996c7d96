"""Blocks of the smoothing study (docs/smoothing_study.md): feature-map smoothing × adversarial training.

Unit: the seed. A claim about what adversarial training or a smoothing block does to a trained network is a
claim over training runs; the study stores per-run aggregates (over its evaluation images), so its verdicts
come from the seed replicates of the CPU medium preset (`results/smoothing_study-medium` is seed 0, every
`results/smoothing_study-medium-seed<k>` another seed, picked up automatically). A single run (the GPU run,
the ε grid) has no interval.
"""
from __future__ import annotations

import numpy as np

from empirical import stats
from empirical.report import md
from empirical.report.common import command, commit, device
from empirical.report.registry import Results, block

GPU, EPS, SMALL = "smoothing_study-gpu/results.json", "smoothing_study-epsgrid-medium/results.json", \
    "smoothing_study-small/results.json"
SEEDS = r"smoothing_study-medium(-seed\d+)?"
LABELS = {"vg": "VG", "ig": "IG", "sg": "SG"}
FILTERS = ("M1", "M2", "G", "E", "NG")
UNIT = "seed"
# config fields that may differ between seed replicates (everything else must match)
SEED_FREE = {"seed", "device", "max_batch", "cuda_graphs", "train_tf32", "data_root", "train"}


def seed_runs(res: Results) -> list[tuple[int, str, dict]]:
    """(seed, folder, results) of every medium-preset replicate, sorted by seed; configs checked alike."""
    runs = []
    for folder in res.folders(SEEDS):
        rel = f"{folder}/results.json"
        if res.exists(rel):
            r = res.json(rel)
            runs.append((int(r["config"]["seed"]), folder, r))
    runs.sort()
    base = {k: v for k, v in runs[0][2]["config"].items() if k not in SEED_FREE}
    for s, folder, r in runs[1:]:
        other = {k: v for k, v in r["config"].items() if k not in SEED_FREE}
        diff = sorted(k for k in base if base[k] != other.get(k))
        train = {k: v for k, v in r["config"]["train"].items() if k != "seed"}
        if diff or train != {k: v for k, v in runs[0][2]["config"]["train"].items() if k != "seed"}:
            raise ValueError(f"{folder} is not a seed replicate of {runs[0][1]}: {diff or 'train'} differ")
    if len({s for s, _, _ in runs}) != len(runs):
        raise ValueError("two medium runs share a seed")
    return runs


def rows(r: dict) -> dict[tuple[str, str], dict]:
    return {(t["regime"], t["method"]): t for t in r["table"] if t.get("eps", 0) in (0, r["config"]["eps"])
            or t["regime"] == "N"}


# a claim: (label, per-run value for map m, positive word, negative word)
def _claims():
    def A(key):
        return lambda R, m: R[("A", m)][key]

    def filt_minus_A(key):
        return lambda R, m: float(np.mean([R[(f, m)][key] - R[("A", m)][key] for f in FILTERS]))

    def filt(key):
        return lambda R, m: float(np.mean([R[(f, m)][key] for f in FILTERS]))

    ssim = "ssim_noise_0.05"
    return [
        ("adversarial training, A − N: Gini (sparsity)", A("dG"), "sparser", "less sparse"),
        ("A − N: log10 ROS stability (dROS)", A("dROS"), "more output-stable", "less output-stable"),
        ("A − N: log10 RRS stability (dRRS)", A("dRRS"), "more representation-stable",
         "less representation-stable"),
        ("A − N: log10 RIS stability (dRIS)", A("dRIS"), "more input-stable", "less input-stable"),
        ("A − N: SSIM of maps under input noise 0.05", lambda R, m: R[("A", m)][ssim] - R[("N", m)][ssim],
         "more similar", "less similar"),
        ("smoothers − A: log10 ROS stability", filt_minus_A("dROS"), "recover some", "lose more"),
        ("smoothers − N: log10 ROS stability", filt("dROS"), "above N", "still below N"),
        ("smoothers − A: log10 RRS stability", filt_minus_A("dRRS"), "recover some", "lose more"),
        ("smoothers − A: log10 RIS stability", filt_minus_A("dRIS"), "recover some", "lose more"),
        ("smoothers − A: Gini", filt_minus_A("gini"), "sparser than A", "give some sparsity back"),
    ]


def seed_facts(res: Results) -> dict:
    """Per claim and map: per-seed values, the interval over seeds and the verdict."""
    def compute() -> dict:
        runs = seed_runs(res)
        R = [rows(r) for _, _, r in runs]
        out = {"seeds": [s for s, _, _ in runs], "claims": []}
        for label, f, pos, neg in _claims():
            for m in LABELS:
                v = [f(Ri, m) for Ri in R]
                s = stats.summarize(v, unit=UNIT)
                out["claims"].append({"label": label, "method": m, "values": v, "summary": s,
                                      "verdict": stats.verdict(s, pos, neg)})
        share = {}
        for m in LABELS:
            per = [[Ri[(f, m)]["dG"] / Ri[("A", m)]["dG"] for f in FILTERS] for Ri in R]
            share[m] = (per, stats.summarize([np.mean(p) for p in per], unit=UNIT))
        out["share"] = share
        return out
    return res.memo("smoothing-seeds", compute)


@block("smoothing-seeds-setup", "smoothing_study-medium*/results.json", "smoothing_study-medium*/source.json")
def smoothing_seeds_setup(res: Results) -> str:
    """Which seed replicates of the medium preset exist, and how each was made."""
    runs = seed_runs(res)
    cfg = runs[0][2]["config"]
    lines = []
    for s, folder, r in runs:
        src = res.json(f"{folder}/source.json") if res.exists(f"{folder}/source.json") else {}
        wall = src.get("wall_seconds", r["wall_seconds"])
        lines.append(f"seed {s}: `results/{folder}/`, `{command(r, 'empirical.smoothing_study')}` at "
                     f"{commit(r)}, wall {md.seconds(wall)} on {device(r)}")
    return (f"{len(runs)} seeds of the medium preset: {cfg['model']}/{cfg['activation']}, Adam "
            f"{cfg['train']['lr']:g}, batch {cfg['train']['batch_size']}, {cfg['train']['epochs']:g} epochs on "
            f"{cfg['train_images']:,} images, adversarial regimes trained with {cfg['attack'].upper()} + random start "
            f"at ε = {cfg['eps']:g}; {cfg['eval_images']} evaluation images that every model of that seed "
            f"classifies correctly. A seed changes the initialisation, batch order, training subset, attack starts, "
            f"evaluation images and noise draws.\n\n" + "\n".join("- " + x for x in lines))


@block("smoothing-seeds", "smoothing_study-medium*/results.json")
def smoothing_seeds(res: Results) -> str:
    """The smoothing study's claims, one verdict per claim and map from the seed replicates."""
    f = seed_facts(res)
    seeds = f["seeds"]
    body = []
    for c in f["claims"]:
        s = c["summary"]
        body.append((c["label"] if c["method"] == "vg" else "", LABELS[c["method"]],
                     *[md.num(v, 2, signed=True) for v in c["values"]], md.ci(s, 2, signed=True),
                     s.signs().text, c["verdict"]))
    s0 = f["claims"][0]["summary"]
    return md.table(("claim (log10 stability: positive = more stable)", "map", *[f"seed {k}" for k in seeds],
                     "mean [CI]", "signs", "verdict"), body) + (
        f"\n\n[CI]: {stats.ci_note(s0)}. With {len(seeds)} seeds the interval is the range of the seeds' values "
        f"and excludes 0 exactly when every seed agrees in sign; it covers the median of a new seed's value with "
        f"probability {md.pct(1 - 2 * 0.5 ** len(seeds))}, not 95 %. \"Smoothers\": the mean over "
        f"{md.join(FILTERS)}. Differences of log10 stability scores: positive = more stable.")


@block("smoothing-gini-share", "smoothing_study-medium*/results.json")
def smoothing_gini_share(res: Results) -> str:
    """How much of adversarial training's gain in Gini the smoothing filters keep, per map."""
    f = seed_facts(res)
    out = []
    for m, (per, s) in f["share"].items():
        flat = [x for p in per for x in p]
        out.append(f"{LABELS[m]}: the filters keep {md.span(flat, 2, sep='–')} of A's Gini gain over N (each filter "
                   f"and seed); mean over filters {md.ci(s, 2)} ({stats.ci_note(s)}).")
    return "\n".join("- " + x for x in out)


def _verdict_lists(res: Results) -> tuple[list[str], list[str]]:
    f = seed_facts(res)
    held, mixed = [], []
    by: dict[str, list[dict]] = {}
    for c in f["claims"]:
        by.setdefault(c["label"], []).append(c)
    for label, cs in by.items():
        words = {c["verdict"] for c in cs}
        text = f"{label}: " + ", ".join(f"{LABELS[c['method']]} {c['verdict']}" for c in cs)
        (held if "not significant" not in words else mixed).append(text)
    return held, mixed


@block("smoothing-seeds-summary", "smoothing_study-medium*/results.json")
def smoothing_seeds_summary(res: Results) -> str:
    """Which of the study's claims every seed agrees on, and which not."""
    held, mixed = _verdict_lists(res)
    n = len(seed_facts(res)["seeds"])
    return (f"Every seed agrees (all {n}, for every map):\n\n" + "\n".join("- " + h for h in held)
            + f"\n\nNot significant for at least one map (the seeds disagree in sign):\n\n"
            + "\n".join("- " + m for m in mixed))


def _acc_note(r: dict) -> str:
    cfg = r["config"]
    n_rob = min(cfg["robust_images"], r["n_eval"])
    asked = (f"; the run asked for {cfg['robust_images']} but the evaluation set holds {r['n_eval']}"
             if cfg["robust_images"] > r["n_eval"] else "")
    return (f"Benign accuracy: on the whole test set. Robust accuracy: PGD-{cfg['robust_steps']} at "
            f"ε = {cfg['robust_eps']:g} on {n_rob} evaluation images, all of which every model of the run classifies "
            f"correctly: an accuracy conditional on clean correctness{asked}.")


@block("smoothing-gpu-setup", GPU)
def smoothing_gpu_setup(res: Results) -> str:
    """How the GPU smoothing run was made."""
    r = res.json(GPU)
    cfg = r["config"]
    src = res.json("smoothing_study-gpu/source.json") if res.exists("smoothing_study-gpu/source.json") else None
    return (f"`{command(r, 'empirical.smoothing_study')}` (code {commit(r, src)}): the regimes "
            f"{md.join(cfg['regimes'])}, {cfg['model']}/{cfg['activation']}, Adam {cfg['train']['lr']:g}, batch "
            f"{cfg['train']['batch_size']}, {cfg['train']['epochs']:g} epochs on {cfg['train_images']:,} images, "
            f"adversarial regimes trained with {cfg['attack'].upper()} + random start at ε = {cfg['eps']:g}; "
            f"{r['n_eval']} evaluation images that every model classifies correctly, SmoothGrad σ = {cfg['sg_sigma']:g} "
            f"with {cfg['sg_draws']} draws, IG {cfg['ig_steps']} nodes, RIS/ROS/RRS over {cfg['stab_samples']} "
            f"perturbations in an L∞ ball of radius {cfg['stab_radius']:g}, ROAD at {len(cfg['road_percentages'])} "
            f"levels. Wall {md.seconds(r['wall_seconds'])} on {device(r)}. One seed: no interval; the seed replicates "
            "below carry the verdicts.")


@block("smoothing-gpu-table", GPU)
def smoothing_gpu_table(res: Results) -> str:
    """The GPU smoothing run's VG table (one seed, no CI)."""
    r = res.json(GPU)
    R = rows(r)
    body = []
    for g in r["config"]["regimes"]:
        t = R[(g, "vg")]
        body.append((g, f"{md.num(t['benign_accuracy'], 3)} / {md.num(t['robust_accuracy'], 2)}", md.num(t["gini"], 3),
                     md.num(t["dG"], 3, signed=True), md.num(t["dRIS"], 2, signed=True),
                     md.num(t["dROS"], 2, signed=True), md.num(t["dRRS"], 2, signed=True),
                     md.num(t["road_auc_morf"], 3), md.sig(t["curvature_mean"], 3)))
    return md.table(("regime (VG)", "benign / robust acc.", "Gini", "dG", "dRIS", "dROS", "dRRS", "ROAD MoRF AUC",
                     "input-Hessian norm"), body) + (
        "\n\n" + _acc_note(r) + " dRIS, dROS, dRRS: log10 differences to N, positive = more stable than N "
        "(`table.csv` has IG and SG too). One training seed: no CI.")


@block("smoothing-epsgrid", EPS, "smoothing_study-epsgrid-medium/source.json")
def smoothing_epsgrid(res: Results) -> str:
    """The ε trade-off (N and A at several ε), one seed, no CI."""
    r = res.json(EPS)
    src = res.json("smoothing_study-epsgrid-medium/source.json")
    by = {}
    for t in r["table"]:
        by[(t["eps"], t["method"])] = t
    eps = sorted({e for e, _ in by})
    body = []
    for e in eps:
        v = {m: by[(e, m)] for m in LABELS}
        body.append((f"{e:g}" + (" (N)" if e == 0 else ""),
                     f"{md.num(v['vg']['benign_accuracy'], 3)} / {md.num(v['vg']['robust_accuracy'], 2)}",
                     " / ".join(md.num(v[m]["gini"], 3) for m in LABELS), md.num(v["vg"]["road_auc_morf"], 3),
                     md.num(v["vg"]["ssim_noise_0.05"], 2), md.num(v["vg"]["log10_ros"], 2),
                     " / ".join(md.num(v[m]["dRIS"], 2, signed=True) for m in LABELS)))
    dris = {m: [by[(e, m)]["dRIS"] for e in eps if e > 0] for m in LABELS}
    return (f"`{src['command'].replace(' --device cpu', '').replace(' --out runs/smoothing_study-epsgrid-medium', '')}`"
            f" ({src['trained_and_evaluated_at']}; wall {md.seconds(src['wall_seconds'])}: training "
            f"{md.seconds(src['training_seconds'])}, evaluation {md.seconds(src['evaluation_seconds'])}).\n\n"
            + md.table(("ε", "benign / robust acc.", "Gini VG / IG / SG", "ROAD MoRF VG", "SSIM VG, noise 0.05",
                        "log10 ROS VG", "dRIS VG / IG / SG"), body)
            + "\n\n" + _acc_note(r) + " One seed: no CI, so no difference here is called significant. dRIS over "
            "ε > 0: " + ", ".join(f"{LABELS[m]} {md.span(v, 2, signed=True)}" for m, v in dris.items()) + ".")


@block("smoothing-runs", SMALL, "smoothing_study-medium/source.json")
def smoothing_runs(res: Results) -> str:
    """The small (smoke) run and the medium run's provenance."""
    r = res.json(SMALL)
    cfg = r["config"]
    src = res.json("smoothing_study-medium/source.json")
    return (f"- `results/smoothing_study-small/`: `{command(r, 'empirical.smoothing_study')}` at {commit(r)}: "
            f"{cfg['train']['epochs']:g} epoch on {cfg['train_images']:,} images, {r['n_eval']} evaluation images "
            f"(too small to show the adversarial effects); wall {md.seconds(r['wall_seconds'])}.\n"
            f"- `results/smoothing_study-medium/` (seed 0): wall {md.seconds(src['wall_seconds'])}; {src['training']}.")
