"""Per-unit caching for resumable runs: one small JSON per finished unit of work."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from empirical.runtime.files import read_json, write_json


class UnitCache:
    """One small JSON per finished unit of work under `folder/units/`, keyed by a digest string."""

    def __init__(self, folder: Path):
        self.dir = Path(folder) / "units"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def get(self, key: str, keys: Sequence[str] = (), valid: Callable[[Any], bool] | None = None) -> Any | None:
        """The unit stored under ``key``, or None (then it is computed again). A file that does not parse, or parses
        to the wrong structure (not a dict holding ``keys``, or failing ``valid`` when given: e.g. ``[]`` from a
        hand edit or another tool), is corrupt: it is removed and recomputed, never handed on to fail later."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            value = read_json(p)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            value = None  # a torn file (should not happen: writes are atomic) is recomputed
        ok = value is not None and (valid(value) if valid is not None
                                    else isinstance(value, dict) and all(k in value for k in keys))
        if not ok:
            p.unlink(missing_ok=True)
            return None
        return value

    def put(self, key: str, value: Any) -> None:
        write_json(self.path(key), value)
