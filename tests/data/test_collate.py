import pytest
import torch

from medmtl.data.collate import collate_samples, subset_batch
from medmtl.errors import DataError


def test_missing_targets_are_marked_absent_and_zero_filled():
    samples = [
        {"image": torch.ones(1, 8, 8), "name": "a", "label": torch.tensor(1)},
        {"image": torch.zeros(1, 8, 8), "name": "b", "mask": torch.ones(8, 8, dtype=torch.long)},
    ]
    batch = collate_samples(samples)
    assert batch["image"].shape == (2, 1, 8, 8)
    assert batch["name"] == ["a", "b"]
    assert batch["present"]["label"].tolist() == [True, False]
    assert batch["present"]["mask"].tolist() == [False, True]
    assert batch["targets"]["label"].tolist() == [1, 0]
    assert batch["targets"]["mask"][0].sum() == 0 and batch["targets"]["mask"][1].sum() == 64


def test_variable_length_boxes_stay_lists():
    samples = [
        {"image": torch.ones(1, 8, 8), "boxes": torch.tensor([[0.0, 0, 2, 2]]), "box_labels": torch.tensor([1])},
        {"image": torch.ones(1, 8, 8)},
    ]
    batch = collate_samples(samples)
    assert isinstance(batch["targets"]["boxes"], list)
    assert batch["targets"]["boxes"][1].shape == (0, 4)
    assert batch["present"]["boxes"].tolist() == [True, False]


def test_images_of_different_sizes_are_a_data_error_naming_them():
    samples = [{"image": torch.zeros(1, 8, 16, 16), "name": "a"}, {"image": torch.zeros(1, 10, 16, 16), "name": "b"}]
    with pytest.raises(DataError, match="batch_size: 1") as info:
        collate_samples(samples)
    assert info.value.path == "b" and "'a'" in info.value.problem and "[1, 10, 16, 16]" in info.value.problem


def test_subset_batch_keeps_the_chosen_samples_with_their_targets_and_flags():
    samples = [{"image": torch.full((1, 4, 4), float(i)), "name": f"s{i}", "label": i % 2,
                "boxes": torch.ones(i, 4)} for i in range(3)]
    samples[1].pop("label")
    batch = collate_samples(samples)
    part = subset_batch(batch, torch.tensor([True, False, True]))
    assert part["name"] == ["s0", "s2"]
    assert part["image"][:, 0, 0, 0].tolist() == [0.0, 2.0]
    assert part["targets"]["label"].tolist() == [0, 0] and part["present"]["label"].tolist() == [True, True]
    assert [len(b) for b in part["targets"]["boxes"]] == [0, 2]
    assert subset_batch(batch, torch.tensor([False, True, False]))["present"]["label"].tolist() == [False]
