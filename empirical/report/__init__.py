"""Every results table and every result number of README.md and docs/*.md, rendered from results/.

The Markdown files hold generated blocks between markers::

    <!-- report:NAME -->
    ...generated Markdown...
    <!-- /report:NAME -->

``python -m empirical.report`` re-renders every block from the committed result files and rewrites the
files in place (atomically); ``--check`` exits 1 and names each block that differs from what the files in
``results/`` give now; ``--print NAME`` prints one block; ``--list`` lists the blocks and the files each
reads. Prose outside the markers carries no result numbers, so nothing typed by hand can drift.

Adding a block for a new study: write a function ``Results -> str`` (Markdown) in a module of this package,
decorate it with ``@block("name", "results/<folder>/<file>", ...)``, import the module in ``BLOCK_MODULES``
below, and put the markers where the block belongs. Intervals come from :mod:`empirical.stats`, with their
unit; an effect is worded by :func:`empirical.stats.verdict`.

This package reads result files with json/csv/gzip directly and imports only :mod:`empirical.stats`, the
standard library, numpy/scipy and (for the ledger's counts) :mod:`theory`, so that refactoring the
experiments cannot break it.
"""
from __future__ import annotations

import importlib

from empirical.report.registry import BLOCKS, Block, Results, block, render

BLOCK_MODULES = ("split", "loo", "loo_reading", "smoothing", "benchmarks", "ledger", "headline")
for _m in BLOCK_MODULES:
    importlib.import_module(f"empirical.report.{_m}")

__all__ = ["BLOCKS", "Block", "Results", "block", "render"]
