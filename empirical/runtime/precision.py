"""CUDA float32 precision (full IEEE float32 or TF32): read, set, and set for a block."""
from __future__ import annotations

import contextlib
from typing import Any

import torch


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
