"""Shared command-line plumbing: value parsers with one-line errors, device choice, error exit."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

import torch

from empirical.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump): `error: <what> (see --help)`, exit code 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def sigma_value(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sigma must be a number >= 0 (fraction of the pixel range), got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"sigma must be a finite number >= 0 (fraction of the pixel range), got {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"--device {name!r}: valid values are auto, cpu, cuda, cuda:N")
    return name


def run_main(fn: Callable[[], int]) -> int:
    """Call an entry point; a user's mistake becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished units are saved; re-run the same command to resume", file=sys.stderr)
        return 130
