r"""Captum-style inputs for the engine: a tensor or a tuple of tensors, plus ``additional_forward_args``.

The engine (:mod:`empirical.attribution.engine`) runs on ONE tensor whose rows are samples. A tuple of inputs
``(x_1, ..., x_m)``, each [N, ...] (Captum's multi-input convention), is packed into one [N, D] tensor (each
input flattened per sample, concatenated), and the model is called on the unpacked views, so gradients,
baselines, noise and path steps need no per-input code; a single tensor is used as is (no copy, no reshape:
the single-input path is bit for bit what it was before tuples existed). Maps come back in the caller's form:
a tensor for a tensor, a tuple of tensors of the inputs' shapes for a tuple.

``additional_forward_args`` (Captum): extra positional arguments after the inputs, a single value or a
tuple. As in Captum, a tensor whose first dimension is N is per sample: each row the engine evaluates gets
the row of its image (Captum repeats such tensors once per path step or noise draw); anything else is
passed unchanged to every call.

Rank and batch are checked here, at the door: every input must be a floating tensor [N, ...] with a batch
dimension first and the same N; a model that cannot run on them (often one image passed without its batch
dimension) gives a one-line error naming the shapes, not torch's traceback from deep inside the model.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from empirical.attribution._checks import _check_baseline, _check_sigma, _shape
from empirical.attribution.engine import keeps_graph
from empirical.errors import UserError
from empirical.nets.models import eval_mode as _eval_mode

_RANK = ("a floating tensor [N, ...] (batch first, then the sample's dims, none for N scalars as in Captum; one "
         "image is x[None] or x[i:i + 1])")


def _describe(parts) -> str:
    return ", ".join(str(list(p.shape)) for p in parts)


class Packed:
    """``inputs`` and ``additional_forward_args`` as the one tensor :attr:`x` [N, ...] the engine runs on."""

    def __init__(self, model, inputs, additional_forward_args=None):
        if not callable(model):
            raise UserError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
        self.model = model
        self.is_tuple = isinstance(inputs, (tuple, list))
        parts = tuple(inputs) if self.is_tuple else (inputs,)
        if not parts:
            raise UserError("inputs is an empty tuple; pass a tensor [N, ...] or a tuple of them")
        for i, p in enumerate(parts):
            where = f"inputs[{i}]" if self.is_tuple else "x"
            if not isinstance(p, torch.Tensor) or p.dim() < 1 or not p.is_floating_point():
                raise UserError(f"{where} must be {_RANK}, got {_shape(p)} {getattr(p, 'dtype', '')}".rstrip())
            if p.shape[0] < 1:
                raise UserError(f"{where} holds no samples: shape {_shape(p)}")
        n = parts[0].shape[0]
        if any(p.shape[0] != n for p in parts) or any(p.dtype != parts[0].dtype or p.device != parts[0].device
                                                      for p in parts):
            raise UserError(f"every input must share the batch size, dtype and device; got shapes "
                            f"{_describe(parts)}, dtypes {[str(p.dtype) for p in parts]}")
        self.parts, self.n = parts, n
        self.shapes = [tuple(p.shape[1:]) for p in parts]
        self.sizes = [p[0].numel() for p in parts]
        # Inside engine.differentiable() the packed inputs keep their graph to the caller's tensors.
        keep = keeps_graph()
        own = [p if keep else p.detach() for p in parts]
        self.x = own[0] if not self.is_tuple else torch.cat([p.reshape(n, -1) for p in own], 1)
        extra = additional_forward_args
        self.extra = () if extra is None else tuple(extra) if isinstance(extra, tuple) else (extra,)
        self.per_sample = [isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == n for a in self.extra]

    # ------------------------------------------------------------------ the model on packed rows
    def unpack(self, points: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.is_tuple:
            return (points,)
        out, lo = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(points[:, lo:lo + size].reshape((points.shape[0],) + shape))
            lo += size
        return tuple(out)

    def forward(self, points: torch.Tensor, rows: torch.Tensor | None = None):
        """The model on packed ``points`` [k, ...]; ``rows`` [k]: each point's image (for per-sample extra args;
        None: points are the N images in order)."""
        extra = tuple(a[rows] if ps and rows is not None else a for a, ps in zip(self.extra, self.per_sample))
        try:
            return self.model(*self.unpack(points), *extra)
        except (torch.cuda.OutOfMemoryError, UserError):
            raise
        except (RuntimeError, TypeError, IndexError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"the model failed on inputs of shape {_describe(self.parts)}"
                            f"{' with additional_forward_args' if self.extra else ''}: {type(e).__name__}: {first}; "
                            f"inputs must be batches [N, ...] with the batch first (one image: x[None] or "
                            f"x[i:i + 1])") from e

    def at(self, rows: torch.Tensor):
        """A callable points → logits for the chunk whose points belong to images ``rows``."""
        return lambda points: self.forward(points, rows)

    # ------------------------------------------------------------------ per-input values, packed
    def maps(self, flat: torch.Tensor):
        """Engine output → the caller's form (a tensor, or a tuple shaped like the inputs)."""
        if not self.is_tuple:
            return flat
        return tuple(p.reshape((flat.shape[0],) + s) for p, s in zip(self.unpack(flat), self.shapes))

    def _per_input(self, value, name: str) -> list:
        if self.is_tuple and isinstance(value, (tuple, list)):
            if len(value) != len(self.parts):
                raise UserError(f"{name} must have one entry per input ({len(self.parts)}), got {len(value)}")
            return list(value)
        return [value] * len(self.parts)

    def baselines(self, baselines) -> torch.Tensor:
        """Baselines (None: zeros; a number; per input a tensor of the input's shape, [1, ...] or [...]) packed
        and expanded to :attr:`x`'s shape."""
        b = [_check_baseline(v, p) for v, p in zip(self._per_input(baselines, "baselines"), self.parts)]
        return b[0] if not self.is_tuple else torch.cat([v.reshape(self.n, -1) for v in b], 1)

    def scale(self, sigma) -> torch.Tensor:
        """Absolute per-input (per-channel) noise σ packed to broadcast against one packed sample."""
        s = [_check_sigma(v, p) for v, p in zip(self._per_input(sigma, "stdevs"), self.parts)]
        if not self.is_tuple:
            return s[0]
        return torch.cat([v.expand(shape).reshape(-1) for v, shape in zip(s, self.shapes)])

    def noise(self, noise, n_draws: int) -> torch.Tensor | None:
        """Explicit standard normal draws, per input [N, n_draws, *shape], packed to [N, n_draws, ...]."""
        if noise is None:
            return None
        parts = list(noise) if self.is_tuple and isinstance(noise, (tuple, list)) else [noise]
        want = [(self.n, n_draws) + s for s in self.shapes]
        if len(parts) != len(want) or any(not isinstance(v, torch.Tensor) or tuple(v.shape) != w
                                          for v, w in zip(parts, want)):
            raise UserError(f"noise must be standard normal draws of shape [N, n_draws, ...] = "
                            f"{', '.join(str(list(w)) for w in want)}, got "
                            f"{', '.join(_shape(v) for v in parts)}")
        if not self.is_tuple:
            return parts[0]
        return torch.cat([v.reshape(self.n, n_draws, -1) for v in parts], 2)


def eval_mode(model):
    """Eval mode for an nn.Module (flags restored after, :func:`empirical.nets.models.eval_mode`); a plain
    callable (Captum's ``forward_func``) has no mode."""
    return _eval_mode(model) if isinstance(model, nn.Module) else contextlib.nullcontext()
