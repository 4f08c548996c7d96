"""Execute a notebook of notebooks/ on a results folder, as a reader would (RESULTS_DIR), for the tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def committed(name: str) -> Path:
    """A committed results folder; the test is skipped where this checkout has none."""
    folder = ROOT / "results" / name
    if not ((folder / "results.json.gz").exists() or (folder / "results.json").exists()):
        pytest.skip(f"no committed results/{name} in this checkout")
    return folder


def run_notebook(name: str, folder: Path):
    """(the executed notebook, the text its code cells printed)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    os.environ["RESULTS_DIR"] = str(folder)
    try:
        # startup_timeout: a kernel starts in seconds, but on a loaded 2-core machine it has taken over the default 60 s
        nbclient.NotebookClient(nb, timeout=300, startup_timeout=300, kernel_name="python3").execute()
    finally:
        del os.environ["RESULTS_DIR"]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return nb, text
