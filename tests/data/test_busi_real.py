"""The real BUSI data in ../shared/data/busi-256 (skipped when absent)."""

import pytest

from medmtl.data.busi import scan_busi
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.splits import read_split_file, select
from medmtl.paths import data_root

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def busi_root():
    root = data_root()
    if root is None or not (root / "busi-256").is_dir():
        pytest.skip("real BUSI data not found: set MEDMTL_DATA to the folder holding busi-256/ "
                    "(default ../shared/data)")
    return root / "busi-256"


def test_counts_and_published_split(busi_root):
    records = scan_busi(busi_root)
    labels = [r.label for r in records]
    assert labels.count(0) == 437 and labels.count(1) == 210
    train = select(records, read_split_file(busi_root / "splits" / "busi_train1.txt"))
    val = select(records, read_split_file(busi_root / "splits" / "busi_val1.txt"))
    assert (len(train), len(val)) == (452, 195)
    assert not {r.name for r in train} & {r.name for r in val}
    assert len(scan_busi(busi_root, include_normal=True)) == 780


def test_every_lesion_image_gets_boxes(busi_root):
    records = scan_busi(busi_root)
    dataset = MultiTaskDataset(records, channels=1, image_size=256, cache_images=False, boxes_from_masks=True)
    assert dataset.available_targets()["boxes"] == 647
    # Decoding all 647 pairs takes a few seconds; boxes at the native 256 px come straight from the masks.
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["image"].shape == (1, 256, 256)
        assert len(sample["boxes"]) >= 1, sample["name"]
        assert len(sample["box_labels"]) == len(sample["boxes"])
