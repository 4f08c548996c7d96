"""Blocks that read the leave-one-out study honestly (issue 21): when the replaced sample is first drawn, how
much of a mean a few replicas carry, and the fixed-epoch arm (T ∝ n) where a run has one.

Before the step at which the replaced sample is first drawn, the coupled runs on S and S' are identical; the
theorems' c/t step size makes an early draw weigh most. The strata come from the run's own `strata` and
`sampling` records (rebuilt from the seeds, `empirical.experiments.loo.replicas.replaced_draws`).
"""
from __future__ import annotations

from empirical.report import md
from empirical.report.loo import GPU, OPT
from empirical.report.registry import Results, block

FIRST = ("never", "[1, T/16]", "(T/16, T/4]", "(T/4, T/2]", "(T/2, T]")


def _cell(rows: list[dict], label: str) -> str:
    hit = [r for r in rows if r["stratum"] == label]
    return f"{md.sig(hit[0]['mean'], 2)} ({hit[0]['replicas']})" if hit else "— (0)"


def strata_table(r: dict, opt: str = "sgd_ct", comp: str = "loo_random") -> str:
    cfg = r["config"]
    Ts = sorted({min(cfg["steps"]), max(cfg["steps"])})
    summ = {(s["n"], s["T"]): s for s in r["summary"]
            if (s["optimizer"], s["method"], s["sigma"], s["comparison"]) == (opt, "vg", 0.0, comp)}
    per = {(u["n"], snap["T"]): next(m["per_replica"] for m in snap["measures"]
                                      if (m["method"], m["comparison"]) == ("vg", comp))
           for u in r["units"] if u["optimizer"] == opt for snap in u["snapshots"]}
    rows = []
    for n in cfg["ns"]:
        for T in Ts:
            st = [x for x in r["strata"] if (x["optimizer"], x["n"], x["T"], x["method"], x["comparison"], x["by"])
                  == (opt, n, T, "vg", comp, "first_draw")]
            v = sorted(per[(n, T)], reverse=True)
            s = summ[(n, T)]
            rho = s.get("spearman_first_draw")
            rows.append((n, T, f"{s['drew_replaced']}/{len(v)}", md.num(rho, 2) if rho is not None else "—",
                         md.pct(v[0] / sum(v)) if sum(v) > 0 else "—", md.pct(sum(v[:3]) / sum(v)) if sum(v) > 0 else "—",
                         *[_cell(st, f) for f in FIRST]))
    return md.table(("n", "T", "replicas that drew it", "Spearman ρ (first draw, value)", "largest replica's share",
                     "top 3's share", *[f"mean (replicas): first drawn {f}" for f in FIRST]), rows)


def epochs_table(r: dict) -> str:
    laws = [l for l in r["laws"] if l["against"] == "n" and l["at"].startswith("epochs=") and l["method"] == "vg"
            and l["comparison"] == "loo_random"]
    if not laws:
        return ("This run has no fixed-epoch arm: every n is trained for the same T, which is many epochs at the "
                "smallest n and a fraction of one at the largest, so the networks compared across n differ in "
                "more than n. `--epochs E` adds snapshots at T = round(E·n) to a run.")
    rows = [(OPT[l["optimizer"]], l["at"], l.get("center", "mean"),
             f"{md.num(l['exponent'], 2)} [{md.num(l['ci_low'], 2)}, {md.num(l['ci_high'], 2)}]"
             if l["exponent"] is not None else "—") for l in laws]
    return md.table(("optimizer", "arm", "centre", "exponent of n (VG, random) [CI]"), rows) + (
        "\n\n[CI]: 95 % percentile bootstrap over replicas, resampled whole across n. —: the centre is 0 at some n "
        "(a median over replicas most of which never drew the replaced sample in that many steps).")


@block("loo-gpu-strata", GPU)
def loo_gpu_strata(res: Results) -> str:
    """The GPU run's replicas by when the replaced sample was first drawn, and its fixed-epoch arm if any."""
    r = res.json(GPU)
    return (strata_table(r) + "\n\nSGD c/t, VG, random replacement. A replica whose replaced sample was never "
            "drawn by T has trained identically on S and S'. The n-exponents above are fitted through means, "
            "medians and trimmed means: where they differ, the exponent rests on the few replicas that drew the "
            "sample early.\n\n"
            + epochs_table(r))


@block("loo-cpu-reading", "loo_stability/results.json")
def loo_cpu_reading(res: Results) -> str:
    """The CPU demo's replicas by first draw of the replaced sample, its fixed-epoch arm and its certificates."""
    r = res.json("loo_stability/results.json")
    b = r["bounds"]
    cert = [x for x in b if x.get("certified")]
    return (strata_table(r) + "\n\nSGD c/t, VG, random replacement.\n\n" + epochs_table(r) + "\n\n"
            + f"Certificates: {len(cert)} of the {len(b)} bound rows are valid bounds for the networks and the "
            f"algorithm run (Remark 4's constants from the iterates' recorded layer norms); the measurement is "
            f"consistent with the bound in {sum(x['holds'] for x in b)} of {len(b)}, and the certified bounds are "
            f"loose by {md.span([x['log10_ratio'] for x in cert], 1, sep='–') if cert else '—'} orders of magnitude.")
