import numpy as np
import pytest
import torch
from PIL import Image

from medmtl.data.collate import collate_samples
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.records import Record
from medmtl.data.transforms import RandomHorizontalFlip
from medmtl.errors import DataError


def write_pair(folder, name, size=(20, 16), mask_size=None, rgb=True):
    height, width = size
    rng = np.random.default_rng(0)
    shape = (height, width, 3) if rgb else (height, width)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"{name}.png")
    mh, mw = mask_size or size
    mask = np.zeros((mh, mw), np.uint8)
    mask[2:6, 4:10] = 255
    Image.fromarray(mask).save(folder / f"{name}_mask.png")
    return folder / f"{name}.png", folder / f"{name}_mask.png"


def test_sample_follows_conventions(tmp_path):
    image, mask = write_pair(tmp_path, "a", size=(20, 16))
    records = [Record("a", image_path=image, mask_paths=[mask], targets={"label": 1, "value": 0.5,
                                                                          "survival": (12.0, 0)}),
               Record("b", image_array=np.zeros((10, 10), np.uint8), targets={"value": (1.0, 2.0)})]
    dataset = MultiTaskDataset(records, channels=3, image_size=32, boxes_from_masks=True)
    sample = dataset[0]
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    assert sample["name"] == "a"
    assert sample["label"].dtype == torch.long and sample["label"].shape == () and sample["label"].item() == 1
    assert sample["mask"].dtype == torch.long and sample["mask"].shape == (32, 32)
    assert set(sample["mask"].unique().tolist()) == {0, 1}
    # mask rows 2..5 of 20 -> 3.2..9.6 of 32, cols 4..9 of 16 -> 8..20 of 32 (nearest)
    assert sample["boxes"].tolist() == [[8, 4, 20, 10]]
    assert sample["box_labels"].tolist() == [1]
    assert sample["value"].dtype == torch.float32 and sample["value"].shape == ()
    assert sample["survival"].tolist() == [12.0, 0.0]
    other = dataset[1]
    assert set(other) == {"image", "name", "value"} and other["value"].shape == (2,)
    assert dataset.available_targets() == {"box_labels": 1, "boxes": 1, "label": 1, "mask": 1, "survival": 1,
                                           "value": 2}
    assert dataset.labels() == [1, None]
    batch = collate_samples([sample, dataset[0]])
    assert batch["image"].shape == (2, 3, 32, 32)


def test_mask_size_mismatch_names_mask_and_both_sizes(tmp_path):
    image, mask = write_pair(tmp_path, "odd", size=(20, 16), mask_size=(20, 17))
    dataset = MultiTaskDataset([Record("odd", image_path=image, mask_paths=[mask])], image_size=8)
    with pytest.raises(DataError, match=r"odd_mask.png.*17x20.*16x20"):
        dataset[0]


def test_bad_image_files_are_named(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png.*cannot be read as an image"):
        MultiTaskDataset([Record("x", image_path=bad)], image_size=8)[0]
    with pytest.raises(DataError, match="gone.png.*does not exist"):
        MultiTaskDataset([Record("y", image_path=tmp_path / "gone.png")], image_size=8)[0]


def test_cache_decodes_once_and_returns_copies(tmp_path):
    image, mask = write_pair(tmp_path, "c", rgb=False)
    dataset = MultiTaskDataset([Record("c", image_path=image, mask_paths=[mask])], image_size=16)
    first = dataset[0]
    image.unlink()
    mask.unlink()  # the cache must serve the second epoch without the files
    first["image"].fill_(5)
    second = dataset[0]
    assert second["image"].max() <= 1 and torch.equal(second["mask"], first["mask"])
    uncached = MultiTaskDataset(dataset.records, image_size=16, cache_images=False)
    with pytest.raises(DataError, match="does not exist"):
        uncached[0]


def test_transform_runs_after_the_cache(tmp_path):
    image, mask = write_pair(tmp_path, "t")
    plain = MultiTaskDataset([Record("t", image_path=image, mask_paths=[mask])], image_size=16, boxes_from_masks=True)
    flipped = MultiTaskDataset(plain.records, image_size=16, transform=RandomHorizontalFlip(p=1.0),
                               boxes_from_masks=True)
    assert torch.equal(flipped[0]["mask"], plain[0]["mask"].flip(-1))
    x1, y1, x2, y2 = plain[0]["boxes"][0].tolist()
    assert flipped[0]["boxes"].tolist() == [[16 - x2, y1, 16 - x1, y2]]


@pytest.mark.parametrize("box,problem", [([2, 2, 2, 6], "zero or negative area"),
                                         ([4, 4, 30, 8], "outside the 16×20 image")])
def test_given_boxes_outside_the_image_or_without_area_name_the_file(tmp_path, box, problem):
    image, _ = write_pair(tmp_path, "a", size=(20, 16))
    dataset = MultiTaskDataset([Record("a", image_path=image, targets={"boxes": [box]})], image_size=32)
    with pytest.raises(DataError, match=f"a.png.*{problem}"):
        dataset[0]


def test_given_boxes_are_scaled_with_the_image(tmp_path):
    image, _ = write_pair(tmp_path, "a", size=(20, 16))
    sample = MultiTaskDataset([Record("a", image_path=image, targets={"boxes": [[4, 5, 8, 10]]})], image_size=32)[0]
    assert sample["boxes"].tolist() == [[8, 8, 16, 16]] and sample["box_labels"].tolist() == [1]


def test_boxes_come_from_masks_only_when_asked_for(tmp_path):
    image, mask = write_pair(tmp_path, "a", size=(20, 16))
    records = [Record("a", image_path=image, mask_paths=[mask], targets={"label": 0}),
               Record("g", image_path=image, targets={"boxes": [[4, 5, 8, 10]], "box_labels": [2]}),
               Record("both", image_path=image, mask_paths=[mask], targets={"boxes": [[0, 0, 2, 2]]})]
    plain = MultiTaskDataset(records, image_size=32)
    assert set(plain[0]) == {"image", "name", "label", "mask"}
    assert plain[1]["boxes"].tolist() == [[8, 8, 16, 16]] and plain[1]["box_labels"].tolist() == [2]
    assert set(plain[2]) == {"image", "name", "mask"}
    assert plain.available_targets() == {"box_labels": 1, "boxes": 1, "label": 1, "mask": 2}
    detection = MultiTaskDataset(records, image_size=32, boxes_from_masks=True)
    assert detection[0]["boxes"].tolist() == [[8, 4, 20, 10]] and detection[0]["box_labels"].tolist() == [1]
    assert torch.equal(detection[1]["boxes"], plain[1]["boxes"])  # given boxes: unchanged
    assert detection[2]["boxes"].tolist() == [[8, 4, 20, 10]]  # beside a mask: the mask's
    assert detection.available_targets() == {"box_labels": 3, "boxes": 3, "label": 1, "mask": 2}
    for sample in (plain[0], detection[0]):  # the masks and images do not depend on it
        assert torch.equal(sample["mask"], detection[0]["mask"]) and torch.equal(sample["image"], plain[0]["image"])
