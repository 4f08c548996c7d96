r"""One unit for the smoothing noise σ: a FRACTION OF THE PIXEL RANGE, as in the papers and the CLI.

Ye & Farnia (sec. 5) and Smilkov et al. (sec. 3, "noise level" σ / (x_max − x_min)) state σ relative to the
range of the input; a network, however, sees inputs in its own units (normalised by a mean and std, or
[0, 1], or [0, 255]). :func:`sigma_abs` maps the relative σ to the network's units and :func:`sigma_rel`
back. ``pixel_range`` is the width of the pixel range IN THE MODEL'S INPUT UNITS: 1.0 for inputs in [0, 1],
255.0 for [0, 255], ``(x_max - x_min) / std_c`` per channel for inputs normalised by a per-channel std (a
tensor [C]; :meth:`empirical.data.DatasetSpec.sigma_abs` does this for our data sets), or a pair (lo, hi).

Every door that adds Gaussian noise (:func:`empirical.attribution.smoothgrad`, :func:`smoothed`, the front
door :func:`empirical.api.attribute`, the CLIs) takes ``sigma`` in this relative unit; the absolute σ is
still accepted, under Captum's name ``stdevs``. A relative σ above :data:`SIGMA_MAX` is an error: noise
wider than the whole pixel range no longer explains the image (the papers use σ ≤ 0.4), and ``sigma=38``
or ``sigma=1e6`` is far likelier a unit slip than a choice.
"""
from __future__ import annotations

import math
import numbers

import torch

from empirical.errors import UserError

SIGMA_MAX = 1.0  # largest σ accepted, as a fraction of the pixel range


def _width(pixel_range) -> float | torch.Tensor:
    """pixel_range (a width, a (lo, hi) pair or a per-channel tensor of widths) as a width > 0."""
    if isinstance(pixel_range, (tuple, list)) and len(pixel_range) == 2 \
            and all(isinstance(v, numbers.Real) for v in pixel_range):
        lo, hi = (float(v) for v in pixel_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise UserError(f"pixel_range (lo, hi) must be finite with hi > lo, got {tuple(pixel_range)!r}")
        return hi - lo
    if isinstance(pixel_range, numbers.Real) and not isinstance(pixel_range, bool):
        w = float(pixel_range)
        if not (math.isfinite(w) and w > 0):
            raise UserError(f"pixel_range must be a finite width > 0 (model-input units), got {pixel_range!r}")
        return w
    if isinstance(pixel_range, torch.Tensor) and pixel_range.dim() <= 1 and pixel_range.is_floating_point():
        v = pixel_range.detach()
        if not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
            raise UserError(f"pixel_range must be finite widths > 0, got {v.tolist()}")
        return v
    raise UserError(f"pixel_range must be a width > 0, a (lo, hi) pair or a float tensor [C] of widths, got "
                    f"{pixel_range!r}")


def sigma_abs(sigma_rel, pixel_range=1.0):
    r"""σ as a fraction of the pixel range → σ in the model's input units: :math:`\sigma_{abs} = \sigma_{rel}
    \cdot \mathrm{width}`. ``pixel_range``: the width in model-input units (a number, a (lo, hi) pair, or a
    tensor [C] per channel); a tensor in gives a tensor out.

    Example:
        >>> sigma_abs(0.1, 255.0), sigma_abs(0.2, (-1.0, 1.0))
        (25.5, 0.4)
        >>> sigma_abs(0.15, torch.tensor([1.0, 2.0])).tolist()
        [0.15000000596046448, 0.30000001192092896]
    """
    check_relative(sigma_rel)
    return sigma_rel * _width(pixel_range)


def sigma_rel(sigma_abs_value, pixel_range=1.0):
    """The inverse of :func:`sigma_abs`: σ in model-input units → fraction of the pixel range.

    Example:
        >>> sigma_rel(25.5, 255.0)
        0.1
    """
    s = sigma_abs_value
    ok = (isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s >= 0) or (
        isinstance(s, torch.Tensor) and bool(torch.isfinite(s).all()) and not bool((s < 0).any()))
    if not ok:
        raise UserError(f"sigma (absolute) must be finite and >= 0, got {s!r}")
    return s / _width(pixel_range)


def check_relative(sigma, name: str = "sigma") -> None:
    """Raise a one-line error unless ``sigma`` (a number or a tensor, or a tuple of them) lies in
    [0, SIGMA_MAX] of the pixel range."""
    if isinstance(sigma, (tuple, list)):
        for s in sigma:
            check_relative(s, name)
        return
    if isinstance(sigma, torch.Tensor):
        vals = sigma.detach().double().cpu().reshape(-1).tolist()
    elif isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        vals = [float(sigma)]
    else:
        raise UserError(f"{name} must be a number or a tensor (fraction of the pixel range), got {sigma!r}")
    for v in vals:
        if not math.isfinite(v) or v < 0:
            raise UserError(f"{name} must be a finite number >= 0 (fraction of the pixel range), got {v!r}")
        if v > SIGMA_MAX:
            raise UserError(f"{name} = {v!r} is more than {SIGMA_MAX:g} of the pixel range; {name} is a fraction of "
                            f"the range (0.1 = a tenth), not an absolute value: for an absolute σ in the model's "
                            f"input units pass stdevs= (or convert with sigma_rel)")


def _zip(a, b, n: int | None):
    """Pair per-input values: for tuple inputs (``n`` of them) a tuple gives one value per input and anything
    else is shared; for a single input (``n`` None) the values are taken whole (a (lo, hi) pixel range)."""
    if n is None:
        return [(a, b)]
    aa = list(a) if isinstance(a, (tuple, list)) else [a] * n
    bb = list(b) if isinstance(b, (tuple, list)) else [b] * n
    if len(aa) != n or len(bb) != n:
        raise UserError(f"per-input sigma/stdevs/pixel_range must have one entry per input ({n}), got "
                        f"{len(aa)} and {len(bb)}")
    return list(zip(aa, bb))


def resolve(sigma, stdevs, pixel_range, n_inputs: int | None):
    """The absolute σ the engine adds, from exactly one of ``sigma`` (relative) and ``stdevs`` (absolute,
    Captum's name). ``n_inputs``: None for a single tensor input, else the tuple's length (then each of sigma,
    stdevs, pixel_range is one value for all inputs or a tuple with one per input). A relative σ above
    SIGMA_MAX is an error; so is an absolute one when ``pixel_range`` is given (else the range is unknown). For
    tuple inputs a tuple ``pixel_range`` holds one width per input, not a (lo, hi) pair."""
    for name, v in (("sigma", sigma), ("stdevs", stdevs)):
        if n_inputs is None and isinstance(v, (tuple, list)):
            raise UserError(f"{name} for a single input is a number or a tensor [C] (per channel), got {v!r}; a "
                            f"tuple gives one value per input of a tuple of inputs")
    if (sigma is None) == (stdevs is None):
        raise UserError("pass the noise level as exactly one of sigma (fraction of the pixel range) and stdevs "
                        f"(absolute, model-input units); got sigma={sigma!r}, stdevs={stdevs!r}")
    if sigma is not None:
        check_relative(sigma)
        pairs = _zip(sigma, 1.0 if pixel_range is None else pixel_range, n_inputs)
        out = [s * _reshape_width(_width(r), s) for s, r in pairs]
    else:
        out = [s for s, _ in _zip(stdevs, 1.0, n_inputs)]
        if pixel_range is not None:
            for s, r in _zip(stdevs, pixel_range, n_inputs):
                check_relative(s / _reshape_width(_width(r), s) if _numeric(s) else s, "stdevs / pixel_range")
    return out[0] if n_inputs is None else tuple(out)


def _numeric(s) -> bool:
    return isinstance(s, torch.Tensor) or (isinstance(s, numbers.Real) and not isinstance(s, bool))


def _reshape_width(w, s):
    """A per-channel width tensor meets a per-channel σ tensor elementwise; a number passes through."""
    if isinstance(w, torch.Tensor) and isinstance(s, torch.Tensor):
        return w.to(device=s.device, dtype=s.dtype if s.is_floating_point() else w.dtype)
    return w
