"""Small data files in the real on-disk formats (IDX, CIFAR-10 python batches, image folders)."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    arr = np.asarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def fake_fashion_mnist(root: Path, n_train: int = 400, n_test: int = 100, seed: int = 0, gz: bool = True) -> Path:
    """Class-dependent blobs on 28×28 so that a tiny net learns something in a few steps."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 40, (n, 28, 28))
        for i, c in enumerate(y):
            r, col = 2 + 2 * (c % 5), 4 + 10 * (c // 5)
            x[i, r : r + 8, col : col + 8] += 180
        write_idx(root / f"{prefix}-images-idx3-ubyte", np.clip(x, 0, 255), gz=gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", y, gz=gz)
    return root


def fake_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root) / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, per_batch).tolist()}
        with open(root / name, "wb") as f:
            pickle.dump(d, f)
    return root.parent


def fake_image_folder(root: Path, classes=("a", "b", "c"), per_class: int = 4, size: int = 20, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    return root
