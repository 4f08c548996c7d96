"""Data sets in their standard on-disk formats, their pixel ranges, σ units, and disjoint splits.

Every data set declares once its per-channel normalisation (mean, std) and its pixel range
[x_min, x_max] = [0, 1] (images are stored as uint8 and scaled by 1/255). The network sees
(x - mean) / std, so one unit of "fraction of the pixel range" is (x_max - x_min) / std_c in
channel c of the network's input: σ_abs,c = σ_rel · (x_max − x_min) / std_c. This is the σ of
Ye & Farnia (sec. 5, Fig. 2: σ / (x_max − x_min), after Smilkov et al. 2017), applied per channel in
the space the network sees, so channels with different spreads get the same relative noise.

Formats:
- Fashion-MNIST: the four IDX files (optionally .gz), found where Debian's `dataset-fashion-mnist`
  installs them or under `--data-root`.
- CIFAR-10: the standard python batches (`data_batch_1..5`, `test_batch`, pickled dicts) in
  `--data-root` (or its `cifar-10-batches-py/` subfolder).
- Image folder (e.g. ImageNette): `root/train/<class>/*.{png,jpg,jpeg}` and `root/val/<class>/...`,
  resized to a square side (bilinear) on load.
"""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from empirical.errors import UserError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("fashion-mnist", "cifar10", "imagefolder")


_AFFINE: dict = {}


def _affine(mean: tuple, std: tuple, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (1, C, 1, 1) mean and std tensors, made once per device and dtype: a host-to-device copy on
    every call would cost a transfer per batch and could not be captured in a CUDA graph (empirical.training.lockstep)."""
    key = (mean, std, dtype, str(device))
    if key not in _AFFINE:
        _AFFINE[key] = (torch.tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1),
                        torch.tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1))
    return _AFFINE[key]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    size: int  # height = width, pixels
    num_classes: int
    mean: tuple[float, ...]  # per channel, in pixel units of [0, 1]
    std: tuple[float, ...]  # per channel, in pixel units of [0, 1]
    x_min: float = 0.0  # pixel range lower end (pixel units)
    x_max: float = 1.0  # pixel range upper end (pixel units)

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Pixel space [0,1] → network input space, per channel. x01: [N, C, H, W]."""
        m, s = _affine(self.mean, self.std, x01.dtype, x01.device)
        return (x01 - m) / s

    def sigma_abs(self, sigma_rel: float, device: torch.device | str = "cpu") -> torch.Tensor:
        """σ as a fraction of the pixel range → per-channel σ in network-input units, shape [C]."""
        if not np.isfinite(sigma_rel) or not 0 <= sigma_rel <= 1:
            raise UserError(f"sigma must be a number in [0, 1] (fraction of the pixel range), got {sigma_rel}")
        std = torch.tensor(self.std, dtype=torch.float32, device=device)
        return sigma_rel * (self.x_max - self.x_min) / std

    def pixel_range(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Width of the pixel range in network-input units, per channel [C]: (x_max − x_min) / std_c; what the
        library's ``pixel_range=`` takes for normalised inputs (``sigma=s, pixel_range=spec.pixel_range()`` adds
        the same noise as ``stdevs=spec.sigma_abs(s)``, up to float rounding)."""
        return (self.x_max - self.x_min) / torch.tensor(self.std, dtype=torch.float32, device=device)


FASHION_MNIST = DatasetSpec("fashion-mnist", 1, 28, 10, mean=(0.2860,), std=(0.3530,))
CIFAR10 = DatasetSpec("cifar10", 3, 32, 10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Dataset:
    """uint8 images [N, C, H, W] and int64 labels [N], per split, with the spec that reads them."""

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


# --------------------------------------------------------------------------- Fashion-MNIST (IDX)
def _open_maybe_gz(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read {path}: {e}") from None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format): magic 0x0000 08 ndim, big-endian dims, uint8 data."""
    raw = _open_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise UserError(f"{path} is not a uint8 IDX file (bad magic number {raw[:4].hex() if raw else 'empty'})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path} is truncated: header shorter than {4 + 4 * ndim} bytes")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    expected = int(np.prod(dims))
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise UserError(f"{path} is corrupt: header says {dims} ({expected} bytes), file has {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for cand in (root / stem, root / (stem + ".gz")):
        if cand.exists():
            return cand
    raise UserError(
        f"missing {stem}[.gz] in {root}. Install Fashion-MNIST with `apt-get install dataset-fashion-mnist` "
        f"(files land in {DEBIAN_FASHION_MNIST}) or pass --data-root pointing at the four IDX files."
    )


def load_fashion_mnist(root: Path | None = None) -> Dataset:
    root = Path(root) if root is not None else DEBIAN_FASHION_MNIST
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        xi = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        yi = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if xi.ndim != 3 or yi.ndim != 1 or len(xi) != len(yi):
            raise UserError(f"Fashion-MNIST {split} files in {root} disagree: images {xi.shape}, labels {yi.shape}")
        side = FASHION_MNIST.size
        if xi.shape[1:] != (side, side):  # checked here, not as a shape error deep in the first layer
            raise UserError(f"Fashion-MNIST {split} images in {root} are {xi.shape[1]}×{xi.shape[2]} pixels; the data "
                            f"set declares {side}×{side} (other IDX data: a data set of its own, not --data-root)")
        if yi.max(initial=0) >= 10:
            raise UserError(f"Fashion-MNIST {split} labels in {root} out of range 0..9 (max {yi.max()})")
        parts[split] = (torch.from_numpy(xi.copy()).unsqueeze(1), torch.from_numpy(yi.astype(np.int64)))
    return Dataset(FASHION_MNIST, *parts["train"], *parts["test"])


# --------------------------------------------------------------------------- CIFAR-10 (python batches)
def load_cifar10(root: Path) -> Dataset:
    if root is None:
        raise UserError("cifar10 needs --data-root: the folder holding data_batch_1..5 and test_batch")
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        p = root / name
        if not p.exists():
            raise UserError(f"missing CIFAR-10 file {p} (expected the python version: data_batch_1..5, test_batch)")
        try:
            with open(p, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8)
            y = np.asarray(d[b"labels"], dtype=np.int64)
        except Exception as e:  # unpickling a corrupt file raises many types
            raise UserError(f"{p} is not a CIFAR-10 python batch: {type(e).__name__}: {e}") from None
        if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
            raise UserError(f"{p}: data shape {x.shape} / labels {y.shape}, expected [N, 3072] and [N]")
        return x.reshape(-1, 3, 32, 32), y

    tr = [batch(f"data_batch_{i}") for i in range(1, 6)]
    te = batch("test_batch")
    tx = torch.from_numpy(np.concatenate([a for a, _ in tr]))
    ty = torch.from_numpy(np.concatenate([b for _, b in tr]))
    return Dataset(CIFAR10, tx, ty, torch.from_numpy(te[0]), torch.from_numpy(te[1]))


# --------------------------------------------------------------------------- image folders (ImageNette)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".JPEG", ".bmp"}


def load_image_folder(root: Path, size: int = 64) -> Dataset:
    """`root/train/<class>/*` and `root/val/<class>/*` (ImageNette layout), RGB, resized to size×size."""
    from PIL import Image

    if root is None:
        raise UserError("imagefolder needs --data-root: a folder with train/<class>/ and val/<class>/ subfolders")
    root = Path(root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UserError(f"image folder {root} has no {split}/ subfolder (expected train/<class>/ and val/<class>/)")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"no class folders in {root / 'train'}")
    out = {}
    for split in ("train", "val"):
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for f in sorted((root / split / c).glob("*")):
                if f.suffix not in IMAGE_SUFFIXES:
                    continue
                try:
                    im = Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
                except Exception as e:
                    raise UserError(f"cannot read image {f}: {e}") from None
                xs.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
                ys.append(ci)
        if not xs:
            raise UserError(f"no images in {root / split}")
        out[split] = (torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64))
    spec = DatasetSpec("imagefolder", 3, size, len(classes), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return Dataset(spec, *out["train"], *out["val"])


def load(name: str, root: Path | str | None = None, image_size: int = 64) -> Dataset:
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    root = Path(root) if root is not None else None
    if root is not None and not root.exists():
        raise UserError(f"--data-root {root} does not exist")
    if name == "fashion-mnist":
        return load_fashion_mnist(root)
    if name == "cifar10":
        return load_cifar10(root)
    return load_image_folder(root, image_size)


def check_pixels(x: torch.Tensor, x_min: float = 0.0, x_max: float = 1.0, what: str = "images") -> None:
    """Raise a one-line UserError unless ``x`` can be read as images of the pixel range [x_min, x_max].

    Unsigned integer images (uint8, uint16, ...) are read as 0..dtype max and scaled by that range; float images
    are taken as given and must already lie in [x_min, x_max] (a float image in 0..255 is the usual mistake: it
    is named, never silently divided). Signed integers are refused: an int64 tensor of 0..255 (what
    ``torch.tensor(list)`` builds) would be scaled by 2^63 to nothing. Costs one min/max pass: call it once,
    at the door, not per batch."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{what} must be a tensor, got {type(x).__name__}")
    if x.dtype == torch.bool or (not x.dtype.is_floating_point and not _unsigned(x.dtype)):
        raise UserError(f"{what} of dtype {x.dtype}: give uint8 (0..255) or floats in the pixel range "
                        f"[{x_min:g}, {x_max:g}]")
    if not x.dtype.is_floating_point or x.numel() == 0:
        return
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise UserError(f"{what} hold {bad} NaN/inf value(s) of {x.numel()}; pixels must be finite in "
                        f"[{x_min:g}, {x_max:g}]")
    lo, hi = float(x.min()) + 0.0, float(x.max()) + 0.0  # + 0.0: print -0.0 as 0
    if lo < x_min or hi > x_max:
        hint = " (0..255 images: divide by 255 or pass uint8)" if hi > 1.5 * x_max else ""
        raise UserError(f"{what} (float) have values in [{lo:.4g}, {hi:.4g}], outside the data set's declared "
                        f"pixel range [{x_min:g}, {x_max:g}]{hint}")


def _unsigned(dtype: torch.dtype) -> bool:
    return dtype in (torch.uint8, getattr(torch, "uint16", None), getattr(torch, "uint32", None),
                     getattr(torch, "uint64", None))


def pixel_scale(dtype: torch.dtype) -> float:
    """Divisor that maps images of ``dtype`` to [0, 1]: the dtype's range for unsigned integers, 1 for floats."""
    return 1.0 if dtype.is_floating_point else float(torch.iinfo(dtype).max)


def as_pixels(x: torch.Tensor) -> torch.Tensor:
    """Images (uint8 or float, already checked by :func:`check_pixels`) → float32 in pixel units, always a new
    tensor: the caller's is never written into."""
    if x.dtype.is_floating_point:
        return x.to(torch.float32, copy=True)
    return x.to(torch.float32).div_(pixel_scale(x.dtype))


def to_model_input(spec: DatasetSpec, x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Images [N,C,H,W] → float32 normalised network input on `device`; ``x`` is left unchanged.

    ``x``: uint8 (0..255, scaled by 1/255; other unsigned integer types by their dtype's range) or float
    already in the spec's pixel range [x_min, x_max]; anything else is a one-line error (:func:`check_pixels`)."""
    check_pixels(x, spec.x_min, spec.x_max)
    return spec.normalize(as_pixels(x.to(device)))


# --------------------------------------------------------------------------- splits
def disjoint_splits(n_total: int, k: int, n: int, seed: int) -> list[torch.Tensor]:
    """K disjoint index sets of n training images each, from a seeded permutation.

    A request that cannot be disjoint (K·n > n_total) is an error, never a wrap-around: the
    published code let its "disjoint" splits overlap silently.
    """
    if k < 1 or n < 1:
        raise UserError(f"splits need k >= 1 and n >= 1 (got k={k}, n={n})")
    if k * n > n_total:
        raise UserError(f"{k} disjoint splits of n={n} images need {k * n} training images, only {n_total} exist; "
                        f"use n <= {n_total // k}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_total, generator=g)
    splits = [perm[i * n : (i + 1) * n].sort().values for i in range(k)]
    seen = torch.zeros(n_total, dtype=torch.int32)
    for s in splits:
        seen[s] += 1
    assert int(seen.max()) <= 1, "splits overlap"
    return splits


def indices_digest(indices: torch.Tensor) -> str:
    """sha256 of the sorted int64 indices: recorded in results so a split can be verified."""
    return hashlib.sha256(indices.sort().values.to(torch.int64).numpy().tobytes()).hexdigest()
