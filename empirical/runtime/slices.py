"""GPU work in slices: what one device call hands to the next, packed within the device tool's limits.

A GPU comes as one bare machine per call (a "slice": one command of at most ~9 minutes within 15 device-minutes),
and files come back only through ``$OUT``: at most 8 files of at most 16 MiB, 64 MiB together. The next call
brings them back as a carried, git-ignored folder (``.slices/``), within 64 MiB for the whole travelling tree
(tracked files, the data and wheels in ``.gpu/``, and the carried state). So a run folder (finished units,
checkpoints, and the epoch/step snapshots of the trainings in progress) crosses from slice to slice as:

    there, at the end of a slice:   pack    run folder -> $OUT/JOB.state.json + JOB.state.tgz.00 ... (the state)
                                            and $OUT/JOB.results.tar.gz (the run folder without checkpoints:
                                            what is committed), beside JOB.log
    here, between slices:           stash   files_at -> .slices/JOB/ (checked against the manifest's sha256)
    there, at the start of a slice: unpack  .slices/JOB/ -> the run folder; the same command then resumes

One folder per job, so a call carries only its own job's state (``carry: [".gpu/data", ".slices/JOB"]``).

When the whole state does not fit (the return limits, or the carry budget left by the tree), ``pack`` drops
first the snapshots of trainings in progress, then every checkpoint, keeping the finished units (small JSON),
and says so in the manifest and on stderr: dropped work is redone, never silently mixed. The arithmetic of
what fits and how long each slice takes is in :mod:`empirical.runtime.slice_plan`.

Only the standard library is used here, so packing works whatever else fails on the machine.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """The device tool's limits on what a call returns and what the next one carries (device README, Limits)."""

    files: int = 8  # files back from $OUT
    file_bytes: int = 16 * MIB  # each returned file
    total_bytes: int = 64 * MIB  # all returned files together
    carry_bytes: int = 64 * MIB  # the whole travelling tree: tracked files, .gpu/, .slices/
    reserved_files: int = 3  # besides the state parts: JOB.log, JOB.results.tar.gz, JOB.state.json


DEVICE = Limits()
NOT_TRAVELLING = {".git", "runs", ".slices", "__pycache__", ".pytest_cache", ".hypothesis", ".venv"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def tree_bytes(root: Path, skip: set[str] = NOT_TRAVELLING) -> int:
    """Bytes of the files under ``root`` that travel with a call (on the bare device machine: all of them but
    what this slice itself made and the old state, which the new one replaces)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in filenames
                     if not os.path.islink(os.path.join(dirpath, f)))
    return total


def _members(run: Path, level: int) -> tuple[list[Path], list[str]]:
    """The run folder's files at a packing level: 0 everything; 1 without the snapshots of trainings in progress;
    2 without any checkpoint. Never temp files of an interrupted write. Returns (kept, dropped names)."""
    kept, dropped = [], []
    for p in sorted(q for q in run.rglob("*") if q.is_file()):
        rel = p.relative_to(run)
        if p.name.endswith(".tmp"):
            continue
        in_ckpt = rel.parts[0] == "checkpoints"
        partial = ".partial.pt" in p.name
        if (level >= 1 and in_ckpt and partial) or (level >= 2 and in_ckpt):
            dropped.append(str(rel))
        else:
            kept.append(rel)
    return kept, dropped


def _tar(run: Path, members: list[Path], dest: Path) -> None:
    # float32 state packs to ~81 % at level 1; level 6 saves under 1 % more, at twice the time
    with tarfile.open(dest, "w:gz", compresslevel=1) as tf:
        for rel in members:
            tf.add(run / rel, arcname=str(rel), recursive=False)


def pack(run: Path, out: Path, job: str, carry_budget: int, exit_code: int = 0, limits: Limits = DEVICE) -> dict:
    """Write the run folder's state (parts of at most ``limits.file_bytes``) and its results tarball (no
    checkpoints) under ``out``; return the manifest (also written as ``JOB.state.json``).

    The state must fit the return limits (files, bytes) left after the log, the results and the manifest, and
    ``carry_budget`` (bytes the next call can carry besides the tree). A clean stop (exit 0, or 75 at a deadline)
    leaves every training's current snapshot consistent, so the previous ones (``*.prev``) are left out; after
    any other exit they are kept (a kill while writing a group's snapshots resumes from them)."""
    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise SystemExit(f"error: run folder {run} does not exist: nothing to pack")
    out.mkdir(parents=True, exist_ok=True)
    results = out / f"{job}.results.tar.gz"
    with tarfile.open(results, "w:gz") as tf:  # what is committed: no checkpoints (13 MB per LeNet)
        tf.add(run, arcname=run.name, filter=lambda ti: None if "/checkpoints" in f"/{ti.name}" else ti)
    if results.stat().st_size > limits.file_bytes:  # it would not come back: say so in the log that does
        print(f"warning: {results.name} is {results.stat().st_size / MIB:.1f} MiB, over the "
              f"{limits.file_bytes / MIB:.0f} MiB a returned file may have; its results are in the state parts too",
              file=sys.stderr)
    for old in out.glob(f"{job}.state.tgz.*"):
        old.unlink()
    log = out / f"{job}.log"
    used = results.stat().st_size + (log.stat().st_size if log.exists() else 0) + 16 * 1024  # + manifest, log tail
    room = min(limits.total_bytes - used, (limits.files - limits.reserved_files) * limits.file_bytes, carry_budget)
    clean = exit_code in (0, 75)
    blob = out / f"{job}.state.tgz"
    for level in (0, 1, 2):
        kept, dropped = _members(run, level)
        if clean:
            kept = [k for k in kept if not k.name.endswith(".prev")]
        _tar(run, kept, blob)
        size = blob.stat().st_size
        if size <= room:
            break
    else:
        blob.unlink()
        raise SystemExit(f"error: even the finished units of {run} ({size / MIB:.1f} MiB packed) exceed the "
                         f"{room / MIB:.1f} MiB left to carry; return fewer results per slice")
    parts = []
    with open(blob, "rb") as f:
        for i, chunk in enumerate(iter(lambda: f.read(limits.file_bytes), b"")):
            part = out / f"{job}.state.tgz.{i:02d}"
            part.write_bytes(chunk)
            parts.append({"name": part.name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    blob.unlink()
    manifest = {"job": job, "run": run.name, "parts": parts, "bytes": size, "room_bytes": room,
                "carry_budget_bytes": carry_budget, "level": level, "dropped": dropped, "exit_code": exit_code,
                "complete": exit_code == 0,
                "commit": os.environ.get("SALIENCY_STABILITY_COMMIT"), "packed_at": time.time(),
                "limits": asdict(limits)}
    (out / f"{job}.state.json").write_text(json.dumps(manifest, indent=1))
    if dropped:
        what = "trainings in progress" if level == 1 else "all checkpoints"
        print(f"warning: the state of {run} did not fit the {room / MIB:.1f} MiB left to return and carry: "
              f"{what} left out ({len(dropped)} files; redone next slice), finished units kept", file=sys.stderr)
    return manifest


def _check_parts(folder: Path, manifest: dict) -> list[Path]:
    paths = []
    for p in manifest["parts"]:
        path = folder / p["name"]
        if not path.exists() or path.stat().st_size != p["bytes"] or _sha256(path) != p["sha256"]:
            raise SystemExit(f"error: state part {path} is missing or damaged (manifest: {p['bytes']} bytes, "
                             f"sha256 {p['sha256'][:12]}...): stash the slice's returned files again")
        paths.append(path)
    return paths


def unpack(carry: Path, run: Path, job: str) -> dict | None:
    """Restore the state a previous slice packed (``carry/JOB/JOB.state.json`` and its parts) into ``run``; None
    when there is none (the first slice). Files already in ``run`` are overwritten by the packed ones."""
    mf = Path(carry) / job / f"{job}.state.json"
    if not mf.exists():
        return None
    manifest = json.loads(mf.read_text())
    paths = _check_parts(mf.parent, manifest)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    joined = run.parent / f".{job}.state.tgz"
    with open(joined, "wb") as f:
        for p in paths:
            f.write(p.read_bytes())
    try:
        with tarfile.open(joined, "r:gz") as tf:
            tf.extractall(run, filter="data")  # relative paths inside `run` only
    finally:
        joined.unlink()
    here = os.environ.get("SALIENCY_STABILITY_COMMIT")
    if manifest.get("commit") and here and manifest["commit"] != here:
        print(f"note: the state was packed by commit {manifest['commit'][:10]}, this slice runs {here[:10]}; "
              "checkpoints and units are keyed by their configuration, so only a change of the code's results "
              "would make them stale", file=sys.stderr)
    return manifest


def stash(files_at: Path, carry: Path, job: str) -> dict:
    """Here, between slices: copy a slice's returned state into ``carry/JOB/`` (replacing the previous state of
    ``job``), checking every part against the manifest."""
    src = Path(files_at)
    mf = src / f"{job}.state.json"
    if not mf.exists():
        raise SystemExit(f"error: no {mf.name} in {src}: that call returned no state for {job}")
    manifest = json.loads(mf.read_text())
    paths = _check_parts(src, manifest)
    carry = Path(carry) / job
    carry.mkdir(parents=True, exist_ok=True)
    for old in list(carry.glob(f"{job}.state.*")):
        old.unlink()
    for p in paths + [mf]:
        shutil.copyfile(p, carry / p.name)
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m empirical.runtime.slices", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="there: the run folder's state and results into OUT")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--exit-code", type=int, default=0, help="the job's exit status (75: stopped at its deadline)")
    p.add_argument("--carry-budget", type=int, default=None,
                   help="bytes the next call can carry for the state (default: 64 MiB less the tree at --tree)")
    p.add_argument("--tree", type=Path, default=Path("."), help="the repository root, as it travelled")
    u = sub.add_parser("unpack", help="there: a carried state into the run folder")
    u.add_argument("--carry", type=Path, required=True)
    u.add_argument("--run", type=Path, required=True)
    u.add_argument("--job", required=True)
    s = sub.add_parser("stash", help="here: a call's returned state into the carried folder")
    s.add_argument("files_at", type=Path)
    s.add_argument("--job", required=True)
    s.add_argument("--carry", type=Path, default=Path(".slices"))
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        budget = a.carry_budget if a.carry_budget is not None else DEVICE.carry_bytes - tree_bytes(a.tree)
        m = pack(a.run, a.out, a.job, budget, a.exit_code)
        print(f"[slices] packed {a.job}: {m['bytes'] / MIB:.1f} MiB in {len(m['parts'])} part(s) "
              f"(room {m['room_bytes'] / MIB:.1f} MiB), level {m['level']}, complete: {m['complete']}")
    elif a.cmd == "unpack":
        m = unpack(a.carry, a.run, a.job)
        print(f"[slices] {a.job}: " + ("no carried state: starting fresh" if m is None else
                                      f"resumed the state packed after exit {m['exit_code']} "
                                      f"({m['bytes'] / MIB:.1f} MiB)"))
    else:
        m = stash(a.files_at, a.carry, a.job)
        print(f"[slices] {a.job}: state ({m['bytes'] / MIB:.1f} MiB) in {a.carry}/{a.job}/; complete: "
              f"{m['complete']}; next call: carry [\".gpu/data\", \"{a.carry}/{a.job}\"]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
