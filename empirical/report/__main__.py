"""`python -m empirical.report`: render the generated blocks of README.md and docs/*.md from results/.

Without options it rewrites the blocks in place; `--check` only compares (exit 1 and one line per block that
differs); `--print NAME` prints one block; `--list` lists the blocks and the result files each reads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from empirical.report import BLOCKS, render
from empirical.report.files import MarkerError, run
from empirical.report.registry import ROOT, Results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m empirical.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare only; exit 1 if a block differs")
    mode.add_argument("--print", metavar="NAME", help="print one block's Markdown")
    mode.add_argument("--list", action="store_true", help="list the blocks and the result files each reads")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository root (default: this checkout)")
    args = ap.parse_args(argv)
    root = args.root.resolve()

    if args.list:
        for b in sorted(BLOCKS.values(), key=lambda b: b.name):
            print(f"{b.name}: {b.doc} [{', '.join(b.sources) or 'no result file'}]")
        return 0
    if args.print:
        if args.print not in BLOCKS:
            print(f"no block named {args.print!r}; --list shows them", file=sys.stderr)
            return 2
        print(render(args.print, Results(root)))
        return 0
    try:
        out = run(root, write=not args.check)
    except MarkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, name in out.unknown:
        print(f"{path.relative_to(root)}: unknown block {name!r}", file=sys.stderr)
    for name in out.unused:
        print(f"note: block {name!r} is registered but no file holds it", file=sys.stderr)
    if args.check:
        for path, name in out.changed:
            print(f"{path.relative_to(root)}: block {name!r} differs from what results/ renders now")
        return 1 if out.changed or out.unknown else 0
    for path, name in out.changed:
        print(f"{path.relative_to(root)}: re-rendered {name!r}")
    return 1 if out.unknown else 0


if __name__ == "__main__":
    sys.exit(main())
