"""Results as data: provenance, atomic JSON/CSV writing, and per-unit caching for resumable runs.

Every result file records the full config, seeds, package versions, git commit and device. Each
unit of work (one trained model, one (pair, σ, method) measurement) is saved as it finishes, so an
interrupted run resumes from what it saved and loses nothing.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
        root = Path(__file__).resolve().parent.parent
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


def fp32_precision() -> dict[str, Any]:
    """How CUDA runs float32 convolutions and matrix products: "ieee" (full float32) or "tf32" (10-bit
    mantissa on Ampere and later, ~1e-3 relative error; PyTorch's default for cuDNN convolutions). Raw
    values of PyTorch's settings: "none" under the newer API means "inherit", decided by the legacy flags."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        return {"api": "fp32_precision", "cudnn_conv": conv,
                "cuda_matmul": getattr(torch.backends.cuda.matmul, "fp32_precision", None)}
    return {"api": "allow_tf32", "cudnn_conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee",
            "cuda_matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"}


def _write_fp32(conv: str, matmul: str) -> None:
    """Write PyTorch's raw settings, through the API this PyTorch has. (Setting the legacy ``allow_tf32``
    flags on a PyTorch with the newer API leaves ``"none"`` behind.)"""
    if getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None) is not None:
        torch.backends.cudnn.conv.fp32_precision = conv
        torch.backends.cuda.matmul.fp32_precision = matmul
    else:
        torch.backends.cudnn.allow_tf32 = conv == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = matmul == "tf32"


def set_fp32(mode: str) -> None:
    """CUDA float32 convolutions and matrix products in ``mode``: "ieee" (full float32) or "tf32". A setting
    only: it changes nothing on the CPU."""
    if mode not in ("ieee", "tf32"):
        raise ValueError(f"fp32 mode must be 'ieee' or 'tf32', got {mode!r}")
    _write_fp32(mode, mode)


def set_fp32_ieee() -> None:
    """Full float32 for CUDA convolutions and matrix products (no TF32): :func:`set_fp32` ("ieee")."""
    set_fp32("ieee")


@contextlib.contextmanager
def fp32_mode(mode: str):
    """:func:`set_fp32` inside the block; the previous settings, exactly as they were, afterwards."""
    before = fp32_precision()
    set_fp32(mode)
    try:
        yield
    finally:
        _write_fp32(before["cudnn_conv"], before["cuda_matmul"])


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


class UnitCache:
    """One small JSON per finished unit of work under `folder/units/`, keyed by a digest string."""

    def __init__(self, folder: Path):
        self.dir = Path(folder) / "units"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def get(self, key: str) -> Any | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return read_json(p)
        except (OSError, json.JSONDecodeError):
            return None  # a torn file (should not happen: writes are atomic) is recomputed

    def put(self, key: str, value: Any) -> None:
        write_json(self.path(key), value)
