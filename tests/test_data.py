"""Data readers on generated files in the real formats; σ units; disjoint splits."""
import numpy as np
import pytest
import torch

from empirical import data
from empirical.errors import UserError
from tests.fakedata import fake_cifar10, fake_fashion_mnist, fake_image_folder, write_idx


def test_idx_roundtrip_plain_and_gz(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (False, True):
        p = write_idx(tmp_path / f"x{gz}", a, gz=gz)
        assert np.array_equal(data.read_idx(p), a)


def test_fashion_mnist_reader(tmp_path):
    root = fake_fashion_mnist(tmp_path, n_train=30, n_test=10)
    ds = data.load("fashion-mnist", root)
    assert ds.train_x.shape == (30, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_y.shape == (10,) and ds.test_y.dtype == torch.int64
    assert ds.spec.num_classes == 10


@pytest.mark.parametrize("damage", ["truncate", "magic", "missing"])
def test_corrupt_or_missing_idx_is_one_line_error(tmp_path, damage):
    root = fake_fashion_mnist(tmp_path, n_train=10, n_test=5, gz=False)
    f = root / "train-images-idx3-ubyte"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:-7])
    elif damage == "magic":
        f.write_bytes(b"\x01\x02" + f.read_bytes()[2:])
    else:
        f.unlink()
    with pytest.raises(UserError) as e:
        data.load("fashion-mnist", root)
    assert "\n" not in str(e.value) and "train-images" in str(e.value)


def test_cifar10_reader_and_bad_batch(tmp_path):
    root = fake_cifar10(tmp_path, per_batch=6)
    ds = data.load("cifar10", root)
    assert ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="test_batch"):
        data.load("cifar10", root)


def test_image_folder_reader(tmp_path):
    root = fake_image_folder(tmp_path, per_class=2, size=12)
    ds = data.load("imagefolder", root, image_size=16)
    assert ds.train_x.shape == (6, 3, 16, 16) and ds.spec.num_classes == 3
    assert set(ds.test_y.tolist()) == {0, 1, 2}


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(UserError, match="valid: fashion-mnist"):
        data.load("mnist")
    with pytest.raises(UserError, match="does not exist"):
        data.load("fashion-mnist", tmp_path / "nope")


def test_sigma_units_per_channel():
    """σ_rel · (x_max − x_min) / std_c in network-input units: after de-normalising, every channel
    carries noise of σ_rel in pixel units (Ye & Farnia sec. 5: σ/(x_max − x_min))."""
    spec = data.CIFAR10
    s = spec.sigma_abs(0.2)
    assert torch.allclose(s * torch.tensor(spec.std), torch.full((3,), 0.2))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 3, 4, 4, generator=g) * s.view(1, 3, 1, 1)
    pixel_noise = z * torch.tensor(spec.std).view(1, 3, 1, 1)  # back to pixel units
    assert torch.allclose(pixel_noise.std(dim=(0, 2, 3)), torch.full((3,), 0.2), rtol=0.03)
    with pytest.raises(UserError, match="sigma"):
        spec.sigma_abs(-0.1)


def test_normalize_matches_definition():
    spec = data.CIFAR10
    x = torch.rand(2, 3, 5, 5)
    ref = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    assert torch.allclose(spec.normalize(x), ref)


def test_splits_disjoint_and_sized():
    splits = data.disjoint_splits(1000, 3, 300, seed=5)
    assert all(len(s) == 300 for s in splits)
    allidx = torch.cat(splits)
    assert len(allidx.unique()) == 900
    again = data.disjoint_splits(1000, 3, 300, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(splits, again))
    assert data.indices_digest(splits[0]) == data.indices_digest(again[0])
    assert data.indices_digest(splits[0]) != data.indices_digest(splits[1])


def test_splits_that_cannot_be_disjoint_are_an_error():
    with pytest.raises(UserError, match="use n <= 333"):
        data.disjoint_splits(1000, 3, 334, seed=0)
