"""`python -m empirical.report.import_run RUN_DIR NAME`: commit a finished run's result files under results/NAME.

Copies the run folder's top-level result files (JSON, CSV, PNG, logs) into ``results/NAME/`` — never
checkpoints (``*.pt``, sub-folders such as ``checkpoints/`` or the evaluation cache ``units/``) — and writes
``source.json`` beside them: the command (from the run's recorded argv), the commit it ran at, its wall time,
how its models were trained, and a sentence saying what the run is. Then ``python -m empirical.report``
picks it up (a ``smoothing_study-medium-seed<k>`` folder joins the seed verdicts by itself).

A run folder without a valid ``COMPLETE`` marker (written last by every run, see :mod:`empirical.runtime.files`)
is unfinished, e.g. killed between its CSVs and its figures: it is refused, saying so, unless ``--unfinished``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from empirical.report.files import atomic_write
from empirical.report.registry import ROOT

KEEP = {".json", ".csv", ".png", ".log"}


def source_record(r: dict, commit: str | None, what: str | None) -> dict:
    argv = list(r.get("provenance", {}).get("argv") or [])
    module = Path(argv[0]).stem if argv else "?"
    rec = {"command": " ".join([f"python -m empirical.{module}"] + argv[1:]),
           "commit": commit or r.get("provenance", {}).get("git_commit"),
           "recorded_git_commit": r.get("provenance", {}).get("git_commit"),
           "device": r.get("provenance", {}).get("device"),
           "wall_seconds": r.get("wall_seconds")}
    models = r.get("models") or []
    if models:
        lock = models[0].get("lockstep") or {}
        rec["training"] = (f"{len(models)} models, {models[0].get('T')} steps each"
                           + (f", {lock.get('models')} in lockstep" if lock else "")
                           + f", {max(m.get('train_seconds', 0) for m in models):.0f} s")
    if what:
        rec["what"] = what
    return rec


def finished(run: Path) -> bool:
    """The run's ``COMPLETE`` marker exists and vouches for its results.json (the sha256 it recorded). Read here
    without importing empirical.runtime (and torch): the report stays light."""
    try:
        mark = json.loads((Path(run) / "COMPLETE").read_text())
        return mark["results_sha256"] == hashlib.sha256((Path(run) / "results.json").read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def import_run(run: Path, name: str, root: Path = ROOT, commit: str | None = None, what: str | None = None) -> Path:
    run = Path(run)
    r = json.loads((run / "results.json").read_text(encoding="utf-8"))
    dest = Path(root) / "results" / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(run.iterdir()):
        if f.is_file() and f.suffix in KEEP and f.name != "source.json":
            shutil.copy2(f, dest / f.name)
    atomic_write(dest / "source.json", json.dumps(source_record(r, commit, what), indent=2, ensure_ascii=False) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m empirical.report.import_run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the finished run's folder (holds results.json)")
    ap.add_argument("name", help="the folder name under results/, e.g. smoothing_study-medium-seed2")
    ap.add_argument("--commit", help="the commit the run's code was at, where the recorded one is not it")
    ap.add_argument("--what", help="one sentence: what the run is")
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--unfinished", action="store_true",
                    help="import a run that has no COMPLETE marker (stopped before writing all its files)")
    args = ap.parse_args(argv)
    if not (args.run / "results.json").exists():
        print(f"error: {args.run}/results.json does not exist (has the run finished?)", file=sys.stderr)
        return 2
    if not finished(args.run) and not args.unfinished:
        print(f"error: {args.run} is an unfinished run (no valid COMPLETE marker: it stopped before writing all its "
              "files); rerun its command to finish it, or pass --unfinished", file=sys.stderr)
        return 2
    print(import_run(args.run, args.name, args.root, args.commit, args.what))
    return 0


if __name__ == "__main__":
    sys.exit(main())
