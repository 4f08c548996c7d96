r"""One statistics standard for the project: bootstrap intervals over the unit a claim is about.

Every interval the project reports comes from here, and every interval says what it was taken over:

- **The unit is the replicate of the claim.** A claim about training (what smoothing or adversarial training
  does to a *trained* network) is a claim over training runs, so its interval resamples seeds or model
  pairs, never images. Per-image values are averaged within a unit first (:func:`unit_means`). The unit's
  name and count travel with the number (:class:`Summary`: ``unit``, ``n_units``).
- **Paired where the design is paired.** Two conditions measured on the same units (the same pair's
  networks at two σ, the same replica's leave-one-out run with two kinds of replacement, the same seed's
  models) are compared by resampling units jointly (:func:`paired_difference`, :func:`paired_ratio`),
  which removes the between-unit variance the conditions share.
- **Percentile or BCa, not t-intervals.** Stability measures are heavy-tailed (leave-one-out errors, log
  ratios); the bootstrap does not assume a normal mean. ``method="auto"`` takes BCa (Efron 1987; Efron &
  Tibshirani 1993, ch. 14) from :data:`BCA_MIN_UNITS` units on. Below that it takes the *expanded*
  percentile interval (Hesterberg 2015, "What teachers should know about the bootstrap", Am. Stat. 69(4)):
  the plain percentile interval of a mean from n units is too narrow by about √((n−1)/n)·z/t_{n−1} (with 5
  model pairs it covers ~85 %, not 95 %), so the expanded one reads the bootstrap quantiles at
  α' = Φ(−√(n/(n−1))·t_{1−α/2, n−1}) instead of α/2. It stays a percentile interval of the bootstrap
  distribution (no normal model of the statistic); BCa's acceleration is a jackknife estimate, too noisy
  from a handful of units to be worth its correction.
- **No direction without an interval that excludes 0.** :func:`verdict` words an effect; a CI that
  contains 0 (or the effect's null: 1 for a ratio, a predicted exponent) is "not significant", whatever the
  sign of the estimate. Below :data:`BCA_MIN_UNITS` units a direction also needs every unit on the same side
  of the null (see :func:`verdict`).

Few units: with 3 seeds the bootstrap distribution of a mean has 10 distinct values, and the 95 %
interval (percentile or expanded) is the range of the three values (each extreme recurs with probability
1/27 > 2.5 %). It then excludes 0 exactly when all three seeds agree in sign. No interval built from 3
exchangeable values can do better: the range [min, max] covers the population median with probability
1 − 2·(1/2)³ = 75 %, whatever ``confidence`` says. So a 3-seed interval is crude: report ``n_units`` and
the exact sign count (:func:`sign_consistency`, "3/3") beside it, as :func:`describe` does.

Vectorised: a statistic receives all resamples at once, shaped ``(B, n_units, ...)`` (units on axis 1), and
returns ``(B,)``; there is no Python loop per resample. Seeded (``seed``) and sized (``resamples``).
With the same seed a one-sample interval draws the same resample indices as
``scipy.stats.bootstrap(..., rng=np.random.default_rng(seed), n_resamples=B)`` and agrees with it
(``tests/test_stats.py``).

Length (~510 lines): one concept, the project's statistics standard; bootstrap, paired designs, verdict
wording and power laws share the Summary record and the few-units rule, and splitting them would scatter it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0
BCA_MIN_UNITS = 10  # below this, "auto" takes the expanded percentile interval (see the module docstring)
INTERVAL_METHODS = ("auto", "percentile", "expanded", "bca")

Statistic = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- statistics over axis 1
def mean(sample: np.ndarray) -> np.ndarray:
    """The mean over units: ``(B, n)`` → ``(B,)``."""
    return sample.mean(axis=1)


def median(sample: np.ndarray) -> np.ndarray:
    """The median over units: ``(B, n)`` → ``(B,)``."""
    return np.median(sample, axis=1)


def _difference_of_means(sample: np.ndarray) -> np.ndarray:
    return sample[..., 0].mean(axis=1) - sample[..., 1].mean(axis=1)


def _ratio_of_means(sample: np.ndarray) -> np.ndarray:
    return sample[..., 0].mean(axis=1) / sample[..., 1].mean(axis=1)


# --------------------------------------------------------------------------- the record
@dataclass(frozen=True)
class SignCount:
    """How many units show each sign: the exact companion of a CI from few units."""

    positive: int  # units above the null
    negative: int  # below
    zero: int  # at it
    null: float = 0.0

    @property
    def n(self) -> int:
        return self.positive + self.negative + self.zero

    @property
    def consistent(self) -> bool:
        """Every unit has the same non-zero sign."""
        return self.n > 0 and (self.positive == self.n or self.negative == self.n)

    @property
    def text(self) -> str:
        """``"3/3 > 0"``, ``"3/3 < 0"`` or ``"2/3 > 0, 1/3 < 0"`` (against the null)."""
        z = fmt(self.null, 2) if self.null else "0"
        parts = [f"{k}/{self.n} {s} {z}" for k, s in ((self.positive, ">"), (self.negative, "<"), (self.zero, "="))
                 if k]
        return ", ".join(parts) if parts else "no units"


@dataclass(frozen=True)
class Summary:
    """An estimate with its interval and what the interval is over.

    ``method`` names the interval ("bootstrap percentile", "paired bootstrap BCa", ...); ``unit`` the
    replicate resampled ("seed", "model pair", "replica", "image", "timing repeat"); ``n_units`` how many.
    With one unit there is no interval: ``ci_low`` and ``ci_high`` are NaN and ``method`` says so.
    """

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    unit: str
    n_units: int
    resamples: int = 0
    unit_values: tuple[float, ...] | None = None  # each unit's own value of the effect, where it has one

    def as_dict(self) -> dict:
        """The plain record stored in result files: ``{estimate, ci_low, ci_high, confidence, method, unit,
        n_units, resamples, unit_values}``."""
        d = asdict(self)
        d["unit_values"] = list(self.unit_values) if self.unit_values is not None else None
        return d

    def signs(self, null: float = 0.0) -> SignCount | None:
        """How many units lie above, below and at ``null`` (None without per-unit values)."""
        if self.unit_values is None:
            return None
        return sign_consistency(self.unit_values, null)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    def excludes(self, value: float = 0.0) -> bool:
        """True when the interval lies strictly on one side of ``value``."""
        return self.has_interval and (self.ci_low > value or self.ci_high < value)


# --------------------------------------------------------------------------- the bootstrap
def _as_units(data) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.shape[0] == 0:
        raise ValueError("no units: the data's first axis is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"data must be finite; got {int((~np.isfinite(arr)).sum())} NaN/inf of {arr.size}")
    return arr


def _check(confidence: float, method: str, resamples: int) -> None:
    if not (0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    if int(resamples) < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples!r}")


def _apply(statistic: Statistic, sample: np.ndarray) -> np.ndarray:
    out = np.asarray(statistic(sample), dtype=np.float64)
    if out.shape != (sample.shape[0],):
        raise ValueError(f"the statistic must map (B, n_units, ...) to (B,); got {sample.shape} -> {out.shape}")
    return out


def _jackknife(data: np.ndarray, statistic: Statistic) -> np.ndarray:
    n = data.shape[0]
    keep = np.where(np.arange(n - 1)[None, :] < np.arange(n)[:, None], np.arange(n - 1)[None, :],
                    np.arange(1, n)[None, :])  # row i: every unit but i, in order
    return _apply(statistic, data[keep])


def _bca_levels(data: np.ndarray, statistic: Statistic, estimate: float, boot: np.ndarray,
                alpha: float) -> tuple[float, float]:
    # Efron & Tibshirani (1993) eqs. 14.14-14.15; z0 with ties counted half (as scipy.stats.bootstrap)
    frac = (np.count_nonzero(boot < estimate) + np.count_nonzero(boot <= estimate)) / (2.0 * boot.size)
    z0 = ndtri(frac)
    jack = _jackknife(data, statistic)
    d = jack.mean() - jack
    den = 6.0 * float((d**2).sum()) ** 1.5
    a = float((d**3).sum()) / den if den > 0 else 0.0
    za = ndtri(alpha)
    lo = ndtr(z0 + (z0 + za) / (1 - a * (z0 + za)))
    hi = ndtr(z0 + (z0 - za) / (1 - a * (z0 - za)))
    return float(lo), float(hi)


def bootstrap(data, statistic: Statistic = mean, *, unit: str, confidence: float = CONFIDENCE,
              method: str = "auto", resamples: int = RESAMPLES, seed: int = SEED, label: str = "") -> Summary:
    """A bootstrap confidence interval of ``statistic`` over the units on ``data``'s first axis.

    data: ``(n_units, ...)``; a unit's row is resampled whole, so columns of one row stay paired.
    statistic: ``(B, n_units, ...)`` → ``(B,)`` (units on axis 1); :func:`mean` by default.
    method: ``"percentile"``, ``"expanded"`` (percentile at Hesterberg's widened levels), ``"bca"`` or
    ``"auto"`` (expanded below :data:`BCA_MIN_UNITS` units, BCa from there on).
    label: a prefix for the method's name ("paired", "two-sample").

    >>> s = bootstrap([0.9, 1.1, 1.3, 0.8, 1.0], unit="seed", resamples=2000)
    >>> round(s.estimate, 2), s.n_units, s.method
    (1.02, 5, 'bootstrap expanded percentile')
    """
    _check(confidence, method, resamples)
    x = _as_units(data)
    n = x.shape[0]
    estimate = float(_apply(statistic, x[None])[0])
    if not math.isfinite(estimate):
        raise ValueError(f"the statistic of the data is not finite ({estimate})")
    prefix = f"{label} " if label else ""
    if n < 2:
        nan = float("nan")
        return Summary(estimate, nan, nan, confidence, f"none (one {unit})", unit, n, 0)
    chosen = method if method != "auto" else ("bca" if n >= BCA_MIN_UNITS else "expanded")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (int(resamples), n))  # the draw scipy.stats.bootstrap makes with this generator
    boot = _apply(statistic, x[idx])
    boot = boot[np.isfinite(boot)]  # e.g. a log of a resampled mean of 0; counted in `resamples`
    if boot.size == 0:
        raise ValueError("no resample gave a finite statistic")
    alpha = (1 - confidence) / 2
    name = f"{prefix}bootstrap {_NAMES[chosen]}"
    if np.ptp(boot) == 0:  # every resample equal: the interval is the point
        return Summary(estimate, estimate, estimate, confidence, name, unit, n, int(boot.size))
    if chosen == "bca":
        levels = _bca_levels(x, statistic, estimate, boot, alpha)
    else:
        a = expanded_alpha(alpha, n) if chosen == "expanded" else alpha
        levels = (a, 1 - a)
    lo, hi = np.quantile(boot, levels)
    return Summary(estimate, float(lo), float(hi), confidence, name, unit, n, int(boot.size))


_NAMES = {"percentile": "percentile", "expanded": "expanded percentile", "bca": "BCa"}


def expanded_alpha(alpha: float, n: int) -> float:
    """Hesterberg's (2015) widened tail level for a percentile interval from n units:
    Φ(−√(n/(n−1))·t_{1−α, n−1}), α the nominal level per tail."""
    from scipy.stats import t

    return float(ndtr(-math.sqrt(n / (n - 1)) * t.ppf(1 - alpha, n - 1)))


def summarize(values, *, unit: str, statistic: Statistic = mean, **kw) -> Summary:
    """The mean (or ``statistic``) of per-unit values with its bootstrap interval; see :func:`bootstrap`."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return replace(bootstrap(v, statistic, unit=unit, **kw), unit_values=tuple(v.tolist()))


def unit_means(values) -> np.ndarray:
    """Per-unit means of ``(n_units, n_items)`` values (e.g. images within a model pair): ``(n_units,)``."""
    v = np.asarray(values, dtype=np.float64)
    return v.reshape(v.shape[0], -1).mean(axis=1)


def _paired(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per unit on each side; got {a.size} and {b.size}")
    return np.stack([a, b], axis=1)


def paired_difference(a, b, *, unit: str, **kw) -> Summary:
    """mean(a) − mean(b) where ``a[i]`` and ``b[i]`` come from the same unit; units resampled jointly.
    ``unit_values`` holds each unit's a[i] − b[i]."""
    ab = _paired(a, b)
    s = bootstrap(ab, _difference_of_means, unit=unit, label="paired", **kw)
    return replace(s, unit_values=tuple((ab[:, 0] - ab[:, 1]).tolist()))


def paired_ratio(a, b, *, unit: str, **kw) -> Summary:
    """mean(a) / mean(b) with ``a[i]``, ``b[i]`` from the same unit; units resampled jointly. Its null is 1
    (``verdict(s, null=1)``); ``unit_values`` holds each unit's a[i] / b[i]."""
    ab = _paired(a, b)
    s = bootstrap(ab, _ratio_of_means, unit=unit, label="paired", **kw)
    with np.errstate(divide="ignore", invalid="ignore"):
        return replace(s, unit_values=tuple((ab[:, 0] / ab[:, 1]).tolist()))


def spearman(sample: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation between the two columns of ``(B, n_units, 2)`` resamples: ``(B,)``. Ties
    (a resample's repeated units) take average ranks, as in ``scipy.stats.spearmanr``; a constant column
    gives NaN (dropped by :func:`bootstrap`)."""
    from scipy.stats import rankdata

    r = rankdata(sample, axis=1)
    r = r - r.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (r[..., 0] * r[..., 1]).sum(1) / np.sqrt((r[..., 0] ** 2).sum(1) * (r[..., 1] ** 2).sum(1))


def rank_correlation(a, b, *, unit: str, **kw) -> Summary:
    """Spearman's ρ between ``a[i]`` and ``b[i]`` measured on the same unit (e.g. one image's curvature and its
    RIS), with a bootstrap interval over units resampled jointly (:func:`bootstrap`; BCa from
    :data:`BCA_MIN_UNITS` units). Its null is 0."""
    return bootstrap(_paired(a, b), spearman, unit=unit, label="paired", **kw)


def two_sample(a, b, statistic: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None, *, unit: str,
               confidence: float = CONFIDENCE, method: str = "auto", resamples: int = RESAMPLES,
               seed: int = SEED) -> Summary:
    """``statistic(A, B)`` of two independent samples (``(B, n_a)``, ``(B, n_b)`` → ``(B,)``; difference of
    means by default), each resampled on its own. ``method``: ``"percentile"`` or ``"expanded"`` (Hesterberg's
    levels for the smaller sample's size); ``"auto"`` expands below :data:`BCA_MIN_UNITS` units per sample.
    For unpaired designs only: where units pair up, :func:`paired_difference` is the right (and narrower)
    interval. ``n_units`` is the smaller sample's size."""
    if method not in ("auto", "percentile", "expanded"):
        raise ValueError(f"two_sample's method must be 'auto', 'percentile' or 'expanded', got {method!r}")
    _check(confidence, "percentile", resamples)
    xa, xb = _as_units(a).reshape(-1), _as_units(b).reshape(-1)
    stat = statistic or (lambda p, q: p.mean(axis=1) - q.mean(axis=1))
    estimate = float(np.asarray(stat(xa[None], xb[None]))[0])
    n = min(xa.size, xb.size)
    if n < 2:
        nan = float("nan")
        return Summary(estimate, nan, nan, confidence, f"none (one {unit})", unit, n, 0)
    chosen = method if method != "auto" else ("expanded" if n < BCA_MIN_UNITS else "percentile")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, xa.size, (int(resamples), xa.size))
    ib = rng.integers(0, xb.size, (int(resamples), xb.size))
    boot = np.asarray(stat(xa[ia], xb[ib]), dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    alpha = (1 - confidence) / 2
    a_ = expanded_alpha(alpha, n) if chosen == "expanded" else alpha
    lo, hi = np.quantile(boot, (a_, 1 - a_))
    return Summary(estimate, float(lo), float(hi), confidence, f"two-sample bootstrap {_NAMES[chosen]}", unit, n,
                   int(boot.size))


def sign_consistency(values, null: float = 0.0) -> SignCount:
    """How many per-unit values are above, below and at ``null``."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return SignCount(int((v > null).sum()), int((v < null).sum()), int((v == null).sum()), float(null))


# --------------------------------------------------------------------------- words
def verdict(s: Summary, positive: str = "positive", negative: str = "negative", null: float = 0.0) -> str:
    """``positive`` when the CI lies above ``null``, ``negative`` when below, otherwise "not significant"
    (and "no interval" when there is one unit). Never a direction for a CI that contains ``null``.

    Below :data:`BCA_MIN_UNITS` units a direction needs, besides the interval, every unit to lie on the same
    side of ``null`` (``s.unit_values``, where the summary has them): a bootstrap interval cannot reach past the units' own range,
    so with 5 model pairs four rising and one falling barely can put the whole interval above 0, while no
    distribution-free test of 5 units reaches 95 % unless all 5 agree (sign test, p = 2·2⁻⁵ = 0.0625 even
    then). The rule keeps such a 4/5 from being worded as a direction.
    """
    if not s.has_interval:
        return "no interval (one " + s.unit + ")"
    side = 1 if s.ci_low > null else -1 if s.ci_high < null else 0
    signs = s.signs(null)
    if side and signs is not None and s.n_units < BCA_MIN_UNITS:
        if (signs.positive if side > 0 else signs.negative) < signs.n:
            side = 0
    return positive if side > 0 else negative if side < 0 else "not significant"


def fmt(v: float, digits: int = 2, signed: bool = False) -> str:
    """A number with ``digits`` decimals and a true minus sign; ``signed`` adds "+" to positives."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    s = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    if s.lstrip("+-").strip("0.") == "":  # a rounded zero has no sign
        s = s.lstrip("+-")
    return s.replace("-", "−")


def interval(s: Summary, digits: int = 2, signed: bool = False) -> str:
    """``"+0.12 [+0.05, +0.20]"``; with no interval just the estimate."""
    if not s.has_interval:
        return fmt(s.estimate, digits, signed)
    return f"{fmt(s.estimate, digits, signed)} [{fmt(s.ci_low, digits, signed)}, {fmt(s.ci_high, digits, signed)}]"


def ci_note(s: Summary) -> str:
    """What the interval is: ``"95 % bootstrap percentile CI over 3 seeds"``."""
    if not s.has_interval:
        return f"no CI: {s.n_units} {s.unit}"
    units = s.unit if s.n_units == 1 else _plural(s.unit)
    return f"{round(100 * s.confidence)} % {s.method} CI over {s.n_units} {units}"


def _plural(unit: str) -> str:
    if unit.endswith(("s", "x")):
        return unit
    if unit.endswith("y") and not unit.endswith(("ay", "ey", "oy")):
        return unit[:-1] + "ies"
    return unit + "s"


def describe(s: Summary, digits: int = 2, signed: bool = True, positive: str = "positive",
             negative: str = "negative", null: float = 0.0) -> str:
    """One phrase for an effect: ``"+0.12 [+0.05, +0.20] (95 % bootstrap expanded percentile CI over 3 seeds;
    3/3 > 0): positive"``, worded by :func:`verdict`."""
    signs = s.signs(null)
    extra = f"; {signs.text}" if signs is not None else ""
    return f"{interval(s, digits, signed)} ({ci_note(s)}{extra}): {verdict(s, positive, negative, null)}"


# --------------------------------------------------------------------------- power laws
@dataclass(frozen=True)
class PowerLaw:
    """``y ≈ c·x^exponent`` fitted in log-log space, with bootstrap intervals over units.

    ``fit``: ``"means"`` (the line through log x and the log of the unit-mean at each x) or ``"pooled"``
    (the line through every unit's point). ``r2`` is that fit's R² with its own interval.
    """

    exponent: Summary
    r2: Summary
    prefactor: float
    fit: str
    n_x: int

    def as_dict(self) -> dict:
        return {"exponent": self.exponent.as_dict(), "r2": self.r2.as_dict(), "prefactor": self.prefactor,
                "fit": self.fit, "n_x": self.n_x}


def fit_loglog(x, y) -> dict:
    r"""Least squares of :math:`\log y = \log c + \beta \log x`: ``{exponent, prefactor, r2, n, n_dropped}``.

    Points with x = 0 have no logarithm and are dropped (``n_dropped``); kept x and y must be positive.
    No interval: a regression over points that share units has no honest per-point interval; use
    :func:`power_law` for one over units.
    """
    xs, ys = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    keep = xs > 0
    if np.any(xs < 0) or np.any(ys[keep] <= 0):
        raise ValueError("x must be >= 0 and y > 0 where x > 0")
    lx, ly = np.log(xs[keep]), np.log(ys[keep])
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ValueError("a power-law fit needs at least 2 distinct positive x values")
    slope, r2 = _slope_r2(lx[None, :], ly[None, :])
    return {"exponent": float(slope[0]), "prefactor": float(math.exp(ly.mean() - slope[0] * lx.mean())),
            "r2": float(r2[0]), "n": int(lx.size), "n_dropped": int((~keep).sum())}


def _slope_r2(lx: np.ndarray, ly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise OLS slope and R² of ly on lx, both ``(B, m)``."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a row with a log of 0 gives NaN, dropped by callers
        cx = lx - lx.mean(axis=1, keepdims=True)
        cy = ly - ly.mean(axis=1, keepdims=True)
        sxx, syy, sxy = (cx**2).sum(1), (cy**2).sum(1), (cx * cy).sum(1)
        slope = sxy / sxx
        r2 = np.where(syy > 0, sxy**2 / (sxx * syy), 1.0)
    return slope, r2


def loglog_slopes(x, y) -> np.ndarray:
    """The log-log slope of each row of positive ``y`` ``(B, len(x))`` against ``x``: ``(B,)``. A building block
    for vectorised statistics such as the paired difference of two exponents."""
    y = np.asarray(y, dtype=np.float64)
    lx = np.broadcast_to(np.log(np.asarray(x, dtype=np.float64)), y.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _slope_r2(lx, np.log(y))[0]


def power_law(x: Sequence[float], values, *, unit: str, fit: str = "means", confidence: float = CONFIDENCE,
              resamples: int = RESAMPLES, seed: int = SEED, method: str = "auto") -> PowerLaw:
    r"""Exponent of :math:`y \approx c\,x^\beta` with a bootstrap interval over units.

    values: ``(n_units, len(x))``; row u is unit u measured at every x (paired: units are resampled whole,
    so a unit's curve stays together). x must be > 0; values ≥ 0 with positive means for ``fit="means"``
    (a resample whose mean is 0 somewhere has no exponent and is left out, as ``resamples`` records). The exponent's interval follows ``method`` (see
    :func:`bootstrap`); R²'s never takes BCa (an R² is bounded by 1, where BCa's normal-theory correction is
    least reliable): it takes the percentile interval instead, expanded below :data:`BCA_MIN_UNITS` units.
    """
    if fit not in ("means", "pooled"):
        raise ValueError(f"fit must be 'means' or 'pooled', got {fit!r}")
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    V = _as_units(values)
    if V.ndim != 2 or V.shape[1] != xs.size:
        raise ValueError(f"values must be (n_units, {xs.size}), got {V.shape}")
    if np.any(xs <= 0) or np.ptp(xs) == 0:
        raise ValueError("x must be positive with at least 2 distinct values")
    if np.any(V < 0) or (fit == "pooled" and np.any(V == 0)) or np.any(V.mean(0) <= 0):
        raise ValueError("values must be >= 0 with positive means (fit='means') or positive (fit='pooled')")
    lx = np.log(xs)

    def stat(which: int) -> Statistic:
        def f(sample: np.ndarray) -> np.ndarray:  # (B, n, len(x))
            if fit == "means":
                with np.errstate(divide="ignore"):
                    ly = np.log(sample.mean(axis=1))
                lxx = np.broadcast_to(lx, ly.shape)
            else:
                ly = np.log(sample).reshape(sample.shape[0], -1)
                lxx = np.broadcast_to(np.tile(lx, sample.shape[1]), ly.shape)
            return _slope_r2(lxx, ly)[which]
        return f

    kw = dict(unit=unit, confidence=confidence, resamples=resamples, seed=seed)
    r2_method = method if method not in ("auto", "bca") else (
        "expanded" if V.shape[0] < BCA_MIN_UNITS else "percentile")
    expo, r2 = bootstrap(V, stat(0), method=method, **kw), bootstrap(V, stat(1), method=r2_method, **kw)
    if np.all(V > 0):  # each unit's own exponent (a unit with a zero has none)
        expo = replace(expo, unit_values=tuple(_slope_r2(np.broadcast_to(lx, V.shape), np.log(V))[0].tolist()))
    ly = np.log(V.mean(0)) if fit == "means" else np.log(V).mean(0)
    prefactor = float(math.exp(ly.mean() - expo.estimate * lx.mean()))
    return PowerLaw(expo, r2, prefactor, fit, int(xs.size))
