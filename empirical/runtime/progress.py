"""When to draw a progress bar: on a terminal or in a notebook, never as hundreds of lines in a log file."""
from __future__ import annotations

import sys


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the caller asked for (``progress``): True (off) when not asked; in a Jupyter
    kernel False (its widget redraws in place); else None, tqdm's own rule: off when stderr is not a terminal,
    so `make demo > log` or a batch job writes no bar lines."""
    if not progress:
        return True
    return False if "ipykernel" in sys.modules else None
