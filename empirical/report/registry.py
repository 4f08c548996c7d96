"""The block registry and the result-file reader the blocks share."""
from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]


class Results:
    """Read-only access to ``<root>/results``, each file parsed once per run.

    ``json("split_stability-gpu/results.json")`` also finds ``results.json.gz`` (large runs are committed
    gzipped). Paths are relative to ``results/``.
    """

    def __init__(self, root: Path | str = ROOT):
        self.root = Path(root)
        self.dir = self.root / "results"
        self._cache: dict[str, Any] = {}

    def path(self, rel: str) -> Path:
        p = self.dir / rel
        if not p.exists() and (self.dir / (rel + ".gz")).exists():
            return self.dir / (rel + ".gz")
        return p

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def json(self, rel: str) -> Any:
        if rel not in self._cache:
            p = self.path(rel)
            opener = gzip.open if p.suffix == ".gz" else open
            with opener(p, "rt", encoding="utf-8") as f:
                self._cache[rel] = json.load(f)
        return self._cache[rel]

    def csv(self, rel: str) -> list[dict[str, str]]:
        key = "csv:" + rel
        if key not in self._cache:
            with open(self.path(rel), newline="", encoding="utf-8") as f:
                self._cache[key] = list(csv.DictReader(f))
        return self._cache[key]

    def folders(self, pattern: str) -> list[str]:
        """Folder names under results/ matching a regular expression (full match), sorted."""
        rx = re.compile(pattern)
        return sorted(p.name for p in self.dir.iterdir() if p.is_dir() and rx.fullmatch(p.name))

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per run and shared between blocks (e.g. a study's intervals)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


@dataclass(frozen=True)
class Block:
    name: str
    fn: Callable[[Results], str]
    sources: tuple[str, ...]  # the result files it reads, relative to results/ (for --list)

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


BLOCKS: dict[str, Block] = {}
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def block(name: str, *sources: str) -> Callable[[Callable[[Results], str]], Callable[[Results], str]]:
    """Register ``fn(results) -> Markdown`` as the block ``name`` (lower case, digits, hyphens)."""
    if not NAME.fullmatch(name):
        raise ValueError(f"block name {name!r}: use lower case letters, digits and hyphens")

    def deco(fn: Callable[[Results], str]) -> Callable[[Results], str]:
        if name in BLOCKS:
            raise ValueError(f"block {name!r} registered twice")
        BLOCKS[name] = Block(name, fn, tuple(sources))
        return fn

    return deco


def render(name: str, results: Results | None = None) -> str:
    """The Markdown of one block, without its markers, ending without a newline."""
    if name not in BLOCKS:
        raise KeyError(f"no block named {name!r}; known: {', '.join(sorted(BLOCKS))}")
    return BLOCKS[name].fn(results or Results()).strip("\n")
