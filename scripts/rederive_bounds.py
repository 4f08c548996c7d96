"""Bring committed result folders up to date with the current bound code, without retraining (issue 21).

    PYTHONPATH=$PWD python scripts/rederive_bounds.py results/split_stability results/loo_stability ...

Each folder's results.json (or .json.gz) is re-aggregated from what it saved (split: the per-network constants
and the summary, `empirical.experiments.split.bounds.rederive`; leave-one-out: the units with every
per-replica value, `empirical.experiments.loo.report.rederive`), and the CSVs and figures that show bounds
are rewritten (the split study's measurement tables and figures are left as they are). A
file that was committed with floats rounded (a `committed_copy` note) is rounded the same way again.
`rederived` in the file records which function did it and at which commit.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path


def round_floats(obj, digits: int = 7):
    """Floats to `digits` significant digits (float32 resolution), recursively."""
    if isinstance(obj, float):
        return obj if not math.isfinite(obj) or obj == 0 else float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [round_floats(v, digits) for v in obj]
    return obj


def rederive_folder(folder: Path) -> None:
    gz = (folder / "results.json.gz").exists()
    path = folder / ("results.json.gz" if gz else "results.json")
    with (gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")) as f:
        results = json.load(f)
    if results["experiment"] == "split_stability":
        from empirical.experiments.split import bounds, run

        new, write = bounds.rederive(results), run.write_outputs
        changed = ["bounds.csv", "bound_vs_measured.png"]  # the measurements and their figures stay as they are
    elif results["experiment"] == "loo_stability":
        from empirical.experiments.loo import report

        new, write = report.rederive(results), report.write_outputs
        changed = ["summary.csv", "bounds.csv", "laws.csv", "strata.csv", "stability_vs_n.png", "stability_vs_T.png",
                   "stability_vs_sigma.png"]  # the figures draw the bounds
    else:
        raise SystemExit(f"{path}: experiment {results['experiment']!r} has no bound rows to rederive")
    if "committed_copy" in results:
        new = round_floats(new)
    with tempfile.TemporaryDirectory() as tmp:
        write(new, Path(tmp))
        for name in changed:
            shutil.copyfile(Path(tmp) / name, folder / name)
        if gz:  # the folder keeps its compressed copy only, compact as committed
            compact = json.dumps(json.loads((Path(tmp) / "results.json").read_text()), separators=(",", ":"))
            with gzip.GzipFile(path, "wb", 9, mtime=0) as dst:
                dst.write(compact.encode())
        else:
            shutil.copyfile(Path(tmp) / "results.json", path)
    print(f"{folder}: {len(new['bounds'])} bound rows, {sum(b['certified'] for b in new['bounds'])} certified")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    for folder in ap.parse_args(argv).folders:
        rederive_folder(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
