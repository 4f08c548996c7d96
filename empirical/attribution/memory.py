"""How many samples a forward/backward to the input may take at once, under a memory budget.

The saliency engine (:mod:`empirical.attribution`) chunks its rows by ``max_batch``; this module turns a user's
memory budget (MiB) into one: measured on CUDA (peak-memory statistics, then verified by a real pass), estimated
from the activations' sizes on the CPU.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from empirical.attribution.engine import _target_grad
from empirical.errors import UserError
from empirical.nets.models import eval_mode as _eval_mode

VERIFY_LIMIT = 1 << 16  # max_batch_for_memory checks its CUDA estimate by a real pass up to this many samples


def shrink_to_fit(batch: int, peak_of: Callable[[int], float], budget: float, rounds: int = 6,
                  margin: float = 0.95) -> int:
    """Lower ``batch`` until ``peak_of(batch)`` (bytes) is at most ``budget``: each round scales it by
    margin · budget / peak (memory is roughly linear in the batch), for at most ``rounds`` measurements;
    then halves. Returns at least 1 (a single sample is the floor: nothing smaller exists)."""
    for _ in range(rounds):
        peak = peak_of(batch)
        if peak <= budget or batch == 1:
            return batch
        scaled = int(batch * margin * budget / peak) if math.isfinite(peak) else batch // 2
        batch = max(1, min(batch - 1, scaled))
    while batch > 1 and peak_of(batch) > budget:
        batch //= 2
    return batch


def max_batch_for_memory(model: nn.Module, sample_shape: Sequence[int], mem_mb: float,
                         device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> int:
    """Largest ``max_batch`` whose forward/backward (input gradient) should fit in ``mem_mb`` MiB, at least 1.

    ``dtype``: of the probe inputs; default the dtype of the model's first floating-point parameter (float32
    for a model without one).

    CUDA: peak memory (``torch.cuda.max_memory_allocated``) of one forward/backward of 4 and of 8 samples; the
    per-sample cost is the slope between them, so memory already held (weights) does not count. That estimate
    is then checked by a forward/backward at the batch it gives (up to ``VERIFY_LIMIT`` samples), and lowered
    until the measured peak fits: on an H100, cuDNN's workspace grows faster than linearly at large batches,
    and the slope alone let peaks exceed the budget by up to 36%. CPU:
    no allocator statistics, so a conservative estimate, 3 × (input + every submodule's output) bytes per
    sample, measured by hooks on one sample (kept for backward, their gradients, and slack); activations of
    functional calls outside submodules are missed, which the factor 3 is meant to cover.
    """
    device = torch.device(device)
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    shape = tuple(int(s) for s in sample_shape)
    budget = float(mem_mb) * 2 ** 20
    if not math.isfinite(budget) or budget <= 0:
        raise UserError(f"mem_mb must be a positive number, got {mem_mb!r}")
    with _eval_mode(model):
        if device.type == "cuda":
            peaks = []
            for b in (4, 8):
                x = torch.randn((b,) + shape, device=device, dtype=dtype)
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                start = torch.cuda.memory_allocated(device)
                _target_grad(model, x, torch.zeros(b, dtype=torch.long, device=device))
                torch.cuda.synchronize(device)
                peaks.append(torch.cuda.max_memory_allocated(device) - start)
            per_sample = max((peaks[1] - peaks[0]) / 4, peaks[1] / 8)
            estimate = max(1, int(budget // max(per_sample, 1)))
            if estimate > VERIFY_LIMIT:
                return estimate

            def peak_of(b: int) -> float:
                x = torch.randn((b,) + shape, device=device, dtype=dtype)
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                start = torch.cuda.memory_allocated(device)
                try:
                    _target_grad(model, x, torch.zeros(b, dtype=torch.long, device=device))
                    torch.cuda.synchronize(device)
                    return float(torch.cuda.max_memory_allocated(device) - start + x.numel() * x.element_size())
                except torch.cuda.OutOfMemoryError:
                    return math.inf
                finally:
                    del x
                    torch.cuda.empty_cache()
            return shrink_to_fit(estimate, peak_of, budget)
        else:
            sizes = []
            hooks = [m.register_forward_hook(lambda mod, i, o: sizes.append(
                o.numel() * o.element_size() if isinstance(o, torch.Tensor) else 0))
                for m in model.modules() if m is not model]
            try:
                with torch.no_grad():
                    x = torch.zeros((1,) + shape, device=device, dtype=dtype)
                    model(x)
            finally:
                for h in hooks:
                    h.remove()
            per_sample = 3 * (x.numel() * x.element_size() + sum(sizes))
    return max(1, int(budget // max(per_sample, 1)))
