"""Generated blocks inside Markdown files: find them, render them, compare or rewrite the files."""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from empirical.report.registry import BLOCKS, Results, render

OPEN = re.compile(r"<!-- report:([a-z0-9-]+) -->")
CLOSE = "<!-- /report:{} -->"


class MarkerError(ValueError):
    pass


@dataclass(frozen=True)
class Span:
    name: str
    start: int  # index of the first character of the body (after the opening marker's newline)
    end: int  # index of the closing marker


def markdown_files(root: Path) -> list[Path]:
    """README.md and docs/*.md under ``root``, the files that may hold generated blocks."""
    files = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    return [f for f in files if f.exists()]


def spans(text: str, where: str = "") -> list[Span]:
    """Every block in ``text``; a marker left open, nested or closed twice is an error."""
    out, pos = [], 0
    while (m := OPEN.search(text, pos)) is not None:
        name = m.group(1)
        close = CLOSE.format(name)
        end = text.find(close, m.end())
        if end < 0:
            raise MarkerError(f"{where}: block {name!r} is not closed ({close})")
        inner = OPEN.search(text, m.end(), end)
        if inner is not None:
            raise MarkerError(f"{where}: block {inner.group(1)!r} opens inside block {name!r}")
        start = m.end() + 1 if text[m.end():m.end() + 1] == "\n" else m.end()
        out.append(Span(name, start, end))
        pos = end + len(close)
    stray = re.findall(r"<!-- /report:([a-z0-9-]+) -->", text)
    if len(stray) != len(out):
        raise MarkerError(f"{where}: {len(stray)} closing markers for {len(out)} blocks")
    return out


def fill(text: str, rendered: dict[str, str], where: str = "") -> str:
    """``text`` with every block's body replaced by its rendering."""
    parts, pos = [], 0
    for s in spans(text, where):
        parts += [text[pos:s.start], rendered[s.name] + "\n"]
        pos = s.end
    return "".join(parts) + text[pos:]


@dataclass
class Outcome:
    changed: list[tuple[Path, str]]  # (file, block) whose body differs from the rendering
    unknown: list[tuple[Path, str]]  # markers naming no registered block
    unused: list[str]  # registered blocks that no file holds


def run(root: Path, write: bool) -> Outcome:
    """Render every block the files hold; rewrite the files (``write``) or only compare them."""
    results = Results(root)
    cache: dict[str, str] = {}
    changed, unknown, seen = [], [], set()
    for path in markdown_files(root):
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(root))
        found = spans(text, where)
        for s in found:
            seen.add(s.name)
            if s.name not in BLOCKS:
                unknown.append((path, s.name))
                continue
            if s.name not in cache:
                cache[s.name] = render(s.name, results)
            if text[s.start:s.end] != cache[s.name] + "\n":
                changed.append((path, s.name))
        if write and not any(u[0] == path for u in unknown):
            new = fill(text, cache, where)
            if new != text:
                atomic_write(path, new)
    return Outcome(changed, unknown, sorted(set(BLOCKS) - seen))


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
