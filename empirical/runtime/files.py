"""Results as data: atomic JSON/CSV writing (a temp file and a rename), so no reader ever sees half a file; the
results folder's life cycle: checked writable before any work, stale temp files of a killed run removed, and a
``COMPLETE`` marker written last, so a run killed between its files reads as unfinished.

Files are written with the permissions an ordinary ``open`` gives (0666 less the umask: 0644 usually), not the
0600 of ``tempfile.mkstemp``, so others in a shared lab can read the results."""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from empirical.errors import UserError

COMPLETE = "COMPLETE"  # written last into a finished run's folder
# our own temp files: atomic_write_text's ".<name><8 random>.tmp" and checkpoints.atomic_save's "<name><8 random>.tmp",
# for the kinds of file a run writes
TEMP = re.compile(r"^\.?[^/]+\.(json|csv|pt)[A-Za-z0-9_]{8}\.tmp$")
STALE_SECONDS = 60.0  # a temp file older than this belongs to no live write (a checkpoint's takes < 1 s)


def default_mode() -> int:
    """0666 less the process's umask: what ``open(path, "w")`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def prepare_out_dir(out: Path, flag: str = "--out") -> Path:
    """Make ``out`` ready for a run, before any expensive work: a writable folder (created if missing), else a
    one-line error naming it; temp files a killed run left there (our own pattern, in ``out``, ``out/units`` and
    ``out/checkpoints`` only, older than a minute) removed; the ``COMPLETE`` marker removed, since the folder now
    holds a run in progress. A folder holding an unfinished run (results.json but no marker) is said so on stderr."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file, not a folder; give a folder for the results (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{flag} {out} is not a writable folder ({e.strerror or e}); give a folder you can write to")
    now = time.time()
    for folder in (out, out / "units", out / "checkpoints"):
        if folder.is_dir():
            for f in folder.iterdir():
                if TEMP.match(f.name) and f.is_file() and now - f.stat().st_mtime > STALE_SECONDS:
                    f.unlink(missing_ok=True)
    if (out / "results.json").exists() and not (out / COMPLETE).exists():
        print(f"note: {out} holds an unfinished run (no {COMPLETE} marker: it stopped while writing its results); "
              "finishing it", file=sys.stderr)
    (out / COMPLETE).unlink(missing_ok=True)
    return out


def mark_complete(out: Path) -> None:
    """The last write of a run: ``COMPLETE`` (when, and the sha256 of results.json it vouches for)."""
    out = Path(out)
    digest = hashlib.sha256((out / "results.json").read_bytes()).hexdigest()
    atomic_write_text(out / COMPLETE, json.dumps({"finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "results_sha256": digest}) + "\n")


def is_complete(out: Path) -> bool:
    """Whether ``out`` holds a finished run: a ``COMPLETE`` marker whose digest matches results.json."""
    out = Path(out)
    try:
        mark = json.loads((out / COMPLETE).read_text())
        return mark["results_sha256"] == hashlib.sha256((out / "results.json").read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _clean(o: Any) -> Any:
    """JSON cannot hold NaN/inf portably: write them as null (and keep numbers as numbers)."""
    if isinstance(o, float):
        return o if o == o and abs(o) != float("inf") else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, torch.Tensor):
        return _clean(o.tolist())
    if isinstance(o, Path):
        return str(o)
    return o


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def write_csv(path: Path, rows: Iterable[dict]) -> None:
    rows = list(rows)
    buf = io.StringIO()
    if rows:
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: _clean(v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())
