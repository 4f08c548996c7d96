"""Markdown pieces for blocks: tables, number formats, interval cells."""
from __future__ import annotations

from typing import Iterable, Sequence

from empirical import stats
from empirical.stats import fmt


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A pipe table; cells are str()-ed, a None cell is left empty."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join("" if c is None else str(c) for c in r) + " |")
    return "\n".join(lines)


def num(v: float | None, digits: int = 2, signed: bool = False) -> str:
    return fmt(v, digits, signed) if v is not None else "n/a"


def sig(v: float, figures: int = 3) -> str:
    """``figures`` significant figures: 414114 → "414,000", 0.00036 → "0.00036", 2.9e-7 → "2.9e−7"."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{float(f'{v:.{figures}g}'):,.0f}"
    s = f"{v:.{figures}g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s.replace("-", "−")


def ci(s: stats.Summary, digits: int = 2, signed: bool = False) -> str:
    """``"0.62 [0.61, 0.64]"``."""
    return stats.interval(s, digits, signed)


def span(values: Iterable[float], digits: int = 2, signed: bool = False, sep: str = " to ") -> str:
    """``"1.45 to 2.60"`` (min to max); one value when they round alike."""
    v = sorted(values)
    lo, hi = fmt(v[0], digits, signed), fmt(v[-1], digits, signed)
    return lo if lo == hi else f"{lo}{sep}{hi}"


def pct(v: float, digits: int = 0) -> str:
    return f"{fmt(100 * v, digits)} %"


def seconds(v: float) -> str:
    """Wall time: ``"23.8 s"``, ``"535 s"``, ``"2193 s (37 min)"``."""
    if v < 100:
        return f"{v:.1f} s"
    if v < 600:
        return f"{v:.0f} s"
    return f"{v:.0f} s ({v / 60:.0f} min)"


def join(items: Sequence[str], last: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]
