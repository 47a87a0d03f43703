import numpy as np
import pytest
import torch

from medmtl.data.boxes import boxes_from_mask
from medmtl.data.transforms import (
    Compose, RandomElastic, RandomHorizontalFlip, RandomIntensity, RandomRotation, RandomVerticalFlip, Resize,
    build_transforms, hflip, rotate, vflip,
)


def make_sample(height=24, width=32):
    image = torch.rand(1, height, width, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(height, width, dtype=torch.long)
    mask[3:9, 4:13] = 1
    mask[14:20, 20:27] = 1
    boxes = torch.from_numpy(boxes_from_mask(mask.numpy() > 0))
    return {"image": image, "mask": mask, "boxes": boxes, "box_labels": torch.tensor([1, 1]), "name": "s",
            "label": torch.tensor(1)}


def mask_boxes(sample):
    return torch.from_numpy(boxes_from_mask(sample["mask"].numpy() > 0))


def sorted_rows(boxes):
    return sorted(boxes.tolist())


@pytest.mark.parametrize("flip", [hflip, vflip])
def test_flips_keep_mask_and_boxes_aligned(flip):
    sample = make_sample()
    out = flip(sample)
    assert sorted_rows(out["boxes"]) == sorted_rows(mask_boxes(out))
    assert torch.equal(flip(out)["image"], sample["image"])  # a flip is its own inverse
    assert torch.equal(sample["mask"], make_sample()["mask"])  # input untouched


def test_rotation_keeps_mask_and_boxes_aligned():
    sample = make_sample()
    out = rotate(sample, 25.0)
    assert sorted_rows(out["boxes"]) == sorted_rows(mask_boxes(out))
    assert len(out["box_labels"]) == len(out["boxes"]) == 2
    assert out["mask"].dtype == torch.long and set(out["mask"].unique().tolist()) <= {0, 1}


def test_rotating_boxes_without_mask_matches_rotated_mask():
    sample = make_sample(32, 32)
    for angle in (90.0, -90.0, 180.0):
        with_mask = rotate(sample, angle)
        no_mask = rotate({k: v for k, v in sample.items() if k != "mask"}, angle)
        np.testing.assert_allclose(sorted_rows(no_mask["boxes"]), sorted_rows(with_mask["boxes"]), atol=1e-4)
    # A small rotation: the rotated corners' bounds contain the rotated lesion.
    with_mask, no_mask = rotate(sample, 20.0), rotate({k: v for k, v in sample.items() if k != "mask"}, 20.0)
    for inner, outer in zip(sorted_rows(with_mask["boxes"]), sorted_rows(no_mask["boxes"])):
        assert outer[0] <= inner[0] + 1 and outer[1] <= inner[1] + 1
        assert outer[2] >= inner[2] - 1 and outer[3] >= inner[3] - 1


def test_boxes_rotated_out_of_the_image_are_dropped_with_labels():
    sample = make_sample(32, 32)
    sample["boxes"] = torch.tensor([[0.0, 0, 2, 2], [10, 10, 20, 20]])
    sample["box_labels"] = torch.tensor([7, 8])
    del sample["mask"]
    out = rotate(sample, 45.0)
    assert out["box_labels"].tolist() == [8]  # the corner box leaves the image


def test_resize_scales_boxes_and_keeps_labels():
    sample = make_sample(24, 32)
    out = Resize(48)(sample)
    assert out["image"].shape == (1, 48, 48) and out["mask"].shape == (48, 48)
    assert sorted_rows(out["boxes"]) == sorted_rows(mask_boxes(out))
    no_mask = Resize(48)({k: v for k, v in sample.items() if k != "mask"})
    np.testing.assert_allclose(sorted_rows(no_mask["boxes"]), sorted_rows(out["boxes"]), atol=1.0)
    assert no_mask["box_labels"].tolist() == [1, 1]


def test_same_seed_same_result_and_generator_is_used():
    sample = make_sample()
    pipeline = build_transforms({"hflip": True, "vflip": True, "rotate_degrees": 30, "intensity": 0.3,
                                 "elastic": True}, 32, train=True)
    assert len(pipeline) == 6
    torch.manual_seed(5)
    a = pipeline(sample)
    torch.manual_seed(5)
    b = pipeline(sample)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    c = pipeline(sample, torch.Generator().manual_seed(9))
    d = pipeline(sample, torch.Generator().manual_seed(9))
    assert torch.equal(c["image"], d["image"]) and torch.equal(c["boxes"], d["boxes"])
    outputs = {pipeline(sample, torch.Generator().manual_seed(s))["image"].sum().item() for s in range(4)}
    assert len(outputs) > 1


def test_elastic_moves_image_and_mask_together():
    sample = make_sample(32, 32)
    sample["image"] = sample["mask"][None].float()  # the image is the mask: they must stay equal
    out = RandomElastic(magnitude=0.08, p=1.0, generator=torch.Generator().manual_seed(1))(sample)
    assert not torch.equal(out["mask"], sample["mask"])
    agree = ((out["image"][0] > 0.5).long() == out["mask"]).float().mean()
    assert agree > 0.97
    assert sorted_rows(out["boxes"]) == sorted_rows(mask_boxes(out))


def test_intensity_changes_image_only_and_stays_in_range():
    sample = make_sample()
    out = RandomIntensity(0.5, generator=torch.Generator().manual_seed(0))(sample)
    assert not torch.equal(out["image"], sample["image"])
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    assert out["mask"] is sample["mask"] and out["boxes"] is sample["boxes"]


def test_random_flips_and_rotation_apply_sometimes():
    sample = make_sample()
    g = torch.Generator().manual_seed(0)
    flipped = [not torch.equal(RandomHorizontalFlip(0.5)(sample, g)["image"], sample["image"]) for _ in range(20)]
    assert 0 < sum(flipped) < 20
    assert torch.equal(RandomVerticalFlip(0.0)(sample)["image"], sample["image"])
    assert torch.equal(RandomRotation(0.0)(sample)["image"], sample["image"])


def test_eval_transforms_only_resize():
    pipeline = build_transforms({"hflip": True}, 16, train=False)
    assert len(pipeline) == 1 and isinstance(pipeline, Compose)
    assert pipeline(make_sample())["image"].shape == (1, 16, 16)
