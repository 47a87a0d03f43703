import numpy as np
import pytest

from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.npz import read_medmnist_npz
from medmtl.errors import DataError


def test_grey_and_rgb_archives(tmp_path):
    path = tmp_path / "mini.npz"
    rng = np.random.default_rng(0)
    np.savez(path, train_images=rng.integers(0, 255, (5, 28, 28), dtype=np.uint8),
             train_labels=np.array([[0], [1], [1], [0], [1]]),
             val_images=rng.integers(0, 255, (2, 28, 28, 3), dtype=np.uint8), val_labels=np.array([1, 0]))
    train = read_medmnist_npz(path, "train")
    assert [r.label for r in train] == [0, 1, 1, 0, 1]
    assert train[0].name == "train_00000"
    sample = MultiTaskDataset(train, channels=1, image_size=32)[1]
    assert sample["image"].shape == (1, 32, 32) and sample["label"].item() == 1
    val = MultiTaskDataset(read_medmnist_npz(path, "val"), channels=3, image_size=28)
    assert val[0]["image"].shape == (3, 28, 28) and 0 <= val[0]["image"].min() <= val[0]["image"].max() <= 1


def test_missing_keys_are_listed(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, train_images=np.zeros((1, 4, 4), np.uint8), train_y=np.zeros(1))
    with pytest.raises(DataError, match=r"odd.npz.*train_labels.*arrays found: \['train_images', 'train_y'\]"):
        read_medmnist_npz(path, "train")
    with pytest.raises(DataError, match="odd.npz.*test_images"):
        read_medmnist_npz(path, "test")


def test_missing_or_corrupt_archive(tmp_path):
    with pytest.raises(DataError, match="gone.npz.*does not exist"):
        read_medmnist_npz(tmp_path / "gone.npz", "train")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.npz.*cannot be read"):
        read_medmnist_npz(bad, "train")
