"""Input checks shared by the attribution methods: one-line errors that name the value and what is valid."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import torch

from empirical.errors import UserError

SaliencyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _shape(v) -> str:
    return str(list(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__


def _check_x(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or not x.is_floating_point():
        raise UserError(f"x must be a floating tensor [N, ...] (batch first: [N, C, H, W], [N, D] or N scalars "
                        f"[N]), got {_shape(x)} {getattr(x, 'dtype', '')}")
    if x.shape[0] < 1:
        raise UserError(f"x holds no images: shape {_shape(x)}")


def _positive_int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise UserError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _check_max_batch(max_batch) -> int | None:
    return None if max_batch is None else _positive_int("max_batch", max_batch)


def _check_target(x: torch.Tensor, target) -> tuple[torch.Tensor, int]:
    """(target as a long tensor [N] on x's device, its largest class). Accepted, as in Captum: an int (one class
    for every image), a 0-d or one-element integer tensor (the same), a list of N ints, an integer tensor [N],
    or None for a model with one output per example ([N] or [N, 1]; then the largest class returned is -1).
    Whether the class exists is checked on the first forward's logits (:func:`_logits_at`): learning K here
    would cost an extra forward per call."""
    n = x.shape[0]
    if target is None:  # Captum: a model with one output per example needs no target; -1 marks that case
        return torch.zeros(n, dtype=torch.long, device=x.device), -1
    if isinstance(target, (list, tuple)) and all(isinstance(t, numbers.Integral) and not isinstance(t, bool)
                                                 for t in target):
        if len(target) != n:
            raise UserError(f"target as a list must hold one class per image ({n}), got {len(target)}: {target!r}")
        target = torch.tensor([int(t) for t in target], dtype=torch.long)
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = torch.full((n,), int(target), dtype=torch.long, device=x.device)
    valid = isinstance(target, torch.Tensor) and not target.dtype.is_floating_point and target.dtype != torch.bool \
        and not target.is_complex()
    if valid and target.numel() == 1 and target.dim() <= 1 and n != 1:
        target = target.reshape(1).expand(n)
    if not valid or tuple(target.shape) != (n,):
        raise UserError(f"target must be an int, a 0-d integer tensor, a list of {n} ints or an integer tensor of "
                        f"shape [{n}] (one class per image), got {_shape(target)} {getattr(target, 'dtype', '')}")
    target = target.to(device=x.device, dtype=torch.long)
    lo, hi = (int(v) for v in torch.aminmax(target)) if n else (0, 0)
    if lo < 0:
        raise UserError(f"target out of range: classes must be >= 0, got {lo}")
    return target, hi


def _logits_at(out, n: int, hi: int | None, target: torch.Tensor) -> torch.Tensor:
    """out[i, target[i]], after checking that ``out`` is [n, K] logits with K > hi, the largest target (an
    out-of-range gather on CUDA is a device-side assert that kills the process, not an error message).
    ``hi == -1`` (target None): ``out`` must hold one value per example, [n] or [n, 1]."""
    if hi == -1:
        if isinstance(out, torch.Tensor) and tuple(out.shape) in ((n,), (n, 1)):
            return out.reshape(n)
        raise UserError(f"target=None needs a model with one output per example ([N] or [N, 1]); on {n} image(s) "
                        f"it returned {_shape(out)}: pass target (an int, a list or a tensor [N])")
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != n:
        raise UserError(f"the model must map x [N, ...] to logits [N, K]; on {n} image(s) it returned {_shape(out)}")
    if hi is not None and hi >= out.shape[1]:
        raise UserError(f"target out of range: classes must be in [0, {out.shape[1] - 1}], got {hi}")
    return out.gather(1, target[:, None])[:, 0]


def _check_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ as a tensor broadcastable against one sample x[i] (per channel along dim 0 of the sample)."""
    c = x.shape[1] if x.dim() > 1 else 1  # a batch of scalars [N]: one "channel"
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        s = float(sigma)
        if not math.isfinite(s) or s < 0:
            raise UserError(f"stdevs (absolute sigma, model-input units) must be a finite number >= 0, got {sigma!r}")
        return torch.tensor(s, dtype=x.dtype, device=x.device)
    if not isinstance(sigma, torch.Tensor) or tuple(sigma.shape) not in ((), (c,)):
        raise UserError(f"sigma/stdevs must be a float or a tensor of shape [{c}] (one per channel), got "
                        f"{_shape(sigma)}")
    vals = sigma.detach().double().cpu().reshape(-1)
    if not bool(torch.isfinite(vals).all()) or bool((vals < 0).any()):
        raise UserError(f"stdevs (absolute sigma) must be finite and >= 0 in every channel, got {vals.tolist()}")
    s = sigma.detach().to(device=x.device, dtype=x.dtype)
    if s.dim() == 1 and x.dim() == 1:
        return s.reshape(())
    return s.reshape((c,) + (1,) * (x.dim() - 2)) if s.dim() == 1 else s


def _check_ids(ids, n: int) -> list[int]:
    if ids is None:
        return list(range(n))
    if isinstance(ids, torch.Tensor):
        if ids.dtype.is_floating_point or tuple(ids.shape) != (n,):
            raise UserError(f"ids must be an integer tensor of shape [{n}], got {_shape(ids)} {ids.dtype}")
        return [int(i) for i in ids.tolist()]
    ids = list(ids)
    if len(ids) != n or not all(isinstance(i, numbers.Integral) for i in ids):
        raise UserError(f"ids must be {n} integers (one per image), got {ids!r}")
    return [int(i) for i in ids]


def _check_baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    """None (zeros), a number, or a tensor of x's shape, of one sample's shape, or [1, ...] (broadcast over the
    batch, as Captum does), expanded to x's shape."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    ok = (tuple(x.shape), tuple(x.shape[1:]), (1,) + tuple(x.shape[1:]))
    if not isinstance(baseline, torch.Tensor) or tuple(baseline.shape) not in ok:
        raise UserError(f"baseline must be None, a number, or a tensor of shape {list(x.shape)}, "
                        f"{[1] + list(x.shape[1:])} or {list(x.shape[1:])}, got {_shape(baseline)}")
    return baseline.detach().to(device=x.device, dtype=x.dtype).expand_as(x)


def _alias(name: str, value, old: str, old_value, default):
    """Captum's argument name ``name`` and our older name ``old`` for the same argument: at most one given."""
    if value is not None and old_value is not None:
        raise UserError(f"pass {name} or its alias {old}, not both (got {name}={value!r}, {old}={old_value!r})")
    return value if value is not None else old_value if old_value is not None else default


def _check_choice(name: str, v, valid: Sequence) -> None:
    if v not in valid:
        raise UserError(f"unknown {name} {v!r}; valid: {', '.join(repr(u) for u in valid)}")
