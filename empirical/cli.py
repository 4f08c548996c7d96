"""Shared command-line plumbing: value parsers with one-line errors, device choice, error exit, and the one
``main`` every study's entry point runs (:class:`Study` says what differs between them)."""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from empirical.errors import DeadlineReached, UserError
from empirical.runtime.precision import set_fp32_ieee


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump): `error: <what> (see --help)`, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _number(text: str, cast, ok, expected: str):
    """Parse one flag value; the message names the value and what would be valid."""
    try:
        v = cast(text)
    except ValueError:
        v = None
    if v is None or not math.isfinite(v) or not ok(v):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return v


def sigma_value(text: str) -> float:
    # σ is a fraction of the pixel range everywhere (empirical.attribution.sigma); past 1 it is a unit slip
    return _number(text, float, lambda v: 0 <= v <= 1, "a number in [0, 1] for sigma (fraction of the pixel range: "
                   "0.1 is a tenth of it)")


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a finite positive number")


def nonnegative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a finite number >= 0")


def resolve_device(name: str) -> str:
    """The device a ``--device`` value names, checked. A CUDA device is also switched to full float32
    (no TF32, which PyTorch allows in cuDNN convolutions by default: ~1e-3 relative rounding, the size of
    the differences some measurements here compare); the setting is recorded in each result's provenance."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    index = name[5:] if name.startswith("cuda:") else None
    if name not in ("cpu", "cuda") and not (index is not None and index.isdigit()):
        raise UserError(f"--device {name!r}: valid values are auto, cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                        f"valid: cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if name.startswith("cuda"):
        set_fp32_ieee()
    return name


def note_gpu_sized(preset: str, device: str, cpu_sizes: str) -> None:
    """One line on stderr when a GPU-sized preset is about to run on the CPU (it still runs: the user may
    mean it, and every run resumes)."""
    if preset == "paper" and not str(device).startswith("cuda"):
        print(f"note: --preset paper is sized for a GPU and takes hours here on the CPU; {cpu_sizes} are "
              "CPU sizes (an interrupted run resumes)", file=sys.stderr)


class Footnotes:
    """Long texts printed once, below a table, and referred to in its rows by number: the named assumptions a
    bound row lacks repeat across rows, and written out in every row they would push the table off the screen."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def refs(self, joined: str, sep: str = "; ") -> str:
        """``"[1,3]"`` for the "; "-joined texts in ``joined`` (numbered in order of first appearance)."""
        nums = []
        for t in (x.strip() for x in joined.split(sep)):
            if t:
                if t not in self.texts:
                    self.texts.append(t)
                nums.append(self.texts.index(t) + 1)
        return "[" + ",".join(map(str, nums)) + "]"

    def lines(self, heading: str) -> list[str]:
        return [heading] + [f"  [{i}] {t}" for i, t in enumerate(self.texts, 1)] if self.texts else []


def lacks(row: dict, notes: Footnotes) -> str:
    """A bound row's certification in a few characters: "certified", or "lacks [1,2]" with the footnotes."""
    return "certified" if row.get("certified") else f"lacks {notes.refs(row.get('lacks') or '?')}"


def run_main(fn: Callable[[], int]) -> int:
    """Call an entry point; a user's mistake becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DeadlineReached as e:  # a GPU slice's budget: state saved, the same command resumes
        print(f"stopped: {e}", file=sys.stderr)
        return DeadlineReached.EXIT_CODE
    except KeyboardInterrupt:
        print("interrupted: finished units and the last epoch boundary of a training are saved; re-run the same "
              "command to resume", file=sys.stderr)
        return 130


@dataclass(frozen=True)
class Study:
    """What differs between the study entry points; :func:`main` does the rest the same way for all three.

    ``configure(args) -> (config, preset)``; ``run(config, out, progress=..., **run_kwargs(args, t_start))``
    returns the results dict that ``report(results, out)`` prints. ``cpu_sizes`` names the CPU-sized presets for
    the note printed when a GPU-sized preset runs on the CPU."""

    name: str  # runs/<name>-<preset> is the default results folder
    parser: Callable[[], argparse.ArgumentParser]
    configure: Callable[[argparse.Namespace], tuple[Any, str]]
    run: Callable[..., dict]
    report: Callable[[dict, Path], None]
    cpu_sizes: str
    run_kwargs: Callable[[argparse.Namespace, float], dict] = field(default=lambda args, t_start: {})


def main(study: Study, argv: list[str] | None = None) -> int:
    """Parse, validate before any work, run (resuming what a previous call finished), print the report; a
    user's mistake is one line on stderr and exit 2 (:func:`run_main`)."""
    t_start = time.time()  # a --time-limit counts from here
    args = study.parser().parse_args(argv)  # a bad flag: one line, exit 2 (Parser)

    def go() -> int:
        cfg, preset = study.configure(args)
        cfg.validate()
        note_gpu_sized(preset, cfg.device, study.cpu_sizes)
        out = args.out or Path("runs") / f"{study.name}-{preset}"
        res = study.run(cfg, out, progress=not args.no_progress, **study.run_kwargs(args, t_start))
        study.report(res, out)
        return 0

    return run_main(go)
