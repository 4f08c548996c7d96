"""Provenance recorded in every result file: git commit, package versions, device, command line."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from empirical.runtime.precision import fp32_precision

COMMIT_ENV = "SALIENCY_STABILITY_COMMIT"


def git_commit() -> str | None:
    """HEAD of the repository the code runs from ("-dirty" when it has uncommitted changes) when this process
    started (when this module was first imported: a long run records the code it loaded, not what was
    committed while it ran), or the value of $SALIENCY_STABILITY_COMMIT when set: a copy of the working tree
    on another machine (the device tool's) can carry a stale .git, so the commit the code came from is passed
    in from where it was committed."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV].strip()
    return _COMMIT_AT_START


def _read_git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]  # the repository: empirical/runtime/ is two levels down
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


_COMMIT_AT_START = _read_git_commit()


def versions() -> dict[str, str]:
    v = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform()}
    from importlib import metadata

    for dist in ("numpy", "scipy", "sympy", "captum", "quantus", "kornia", "matplotlib", "saliency-stability"):
        try:
            v[dist] = metadata.version(dist)  # metadata, not import: importing quantus costs seconds
        except metadata.PackageNotFoundError:
            pass
    return v


def device_info(device: torch.device | str) -> dict[str, Any]:
    device = torch.device(device)
    info: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["fp32_precision"] = fp32_precision()
    else:
        info["cpu"] = platform.processor() or platform.machine()
        info["cpu_count"] = os.cpu_count()
    return info


def provenance(device: torch.device | str) -> dict[str, Any]:
    return {"git_commit": git_commit(), "git_commit_from": "environment" if os.environ.get(COMMIT_ENV) else "repository",
            "versions": versions(), "device": device_info(device), "argv": sys.argv}
