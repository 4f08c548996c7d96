"""Make sure the embedded default data set (Fashion-MNIST, four IDX files) is on this machine.

Debian ships all 70,000 images as `dataset-fashion-mnist` under /usr/share/datasets/fashion-mnist.
When they are missing and we are root with apt-get, install the package; otherwise say how.
`--soft` only warns, and is silent when the data are there (used by `make setup`, so `make test`, which makes
its own data, never needs it; `make demo` then says "found" once, from `make data`).
Standard library only: it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
HOW = (
    "Fashion-MNIST not found. Install it with `sudo apt-get install dataset-fashion-mnist` "
    f"(it lands in {DEBIAN_DIR}), or put the four IDX files ({', '.join(FILES)}, optionally .gz) "
    "in a folder and pass --data-root FOLDER."
)


def present(folder: Path = DEBIAN_DIR) -> bool:
    return all((folder / f).exists() or (folder / (f + ".gz")).exists() for f in FILES)


def try_apt() -> bool:
    if shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    cmd = ["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
    return present()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--soft", action="store_true", help="warn instead of failing when the data cannot be had")
    args = ap.parse_args()
    if present():
        if not args.soft:  # `make demo` runs both the soft check (setup) and this one: say it once
            print(f"data: Fashion-MNIST found in {DEBIAN_DIR}")
        return 0
    print("data: Fashion-MNIST missing; trying apt-get install dataset-fashion-mnist ...")
    if try_apt():
        print(f"data: installed Fashion-MNIST in {DEBIAN_DIR}")
        return 0
    print(("warning: " if args.soft else "error: ") + HOW, file=sys.stderr)
    return 0 if args.soft else 1


if __name__ == "__main__":
    sys.exit(main())
