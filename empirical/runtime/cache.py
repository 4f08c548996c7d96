"""Per-unit caching for resumable runs: one small JSON per finished unit of work."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from empirical.runtime.files import read_json, write_json


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
