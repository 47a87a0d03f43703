"""Boxes from masks and label maps, and the checks on boxes."""

import numpy as np
import pytest
import torch

from medmtl.data.boxes import box_targets_from_mask, boxes_from_label_map, boxes_from_mask, check_boxes
from medmtl.errors import DataError


def test_boxes_one_per_8_connected_component():
    mask = np.zeros((10, 12), dtype=bool)
    mask[1:3, 2:5] = True       # component 1
    mask[3, 5] = True           # diagonal neighbour: same component with 8-connectivity
    mask[7:9, 8:11] = True      # component 2
    mask[9, 0] = True           # single pixel
    boxes = boxes_from_mask(mask)
    assert boxes.dtype == np.float32
    assert boxes.tolist() == [[2, 1, 6, 4], [8, 7, 11, 9], [0, 9, 1, 10]]
    assert boxes_from_mask(mask, min_area=2).shape == (2, 4)
    assert boxes_from_mask(np.zeros((4, 4), bool)).shape == (0, 4)
    with pytest.raises(ValueError, match="2D mask"):
        boxes_from_mask(np.zeros((1, 4, 4), bool))


def test_label_map_boxes_carry_their_class():
    label_map = np.zeros((8, 8), dtype=np.int64)
    label_map[0:2, 0:2] = 2
    label_map[5:7, 5:8] = 1
    label_map[0:1, 6:8] = 2
    boxes, labels = boxes_from_label_map(label_map)
    assert boxes.dtype == np.float32 and labels.dtype == np.int64
    assert boxes.tolist() == [[5, 5, 8, 7], [0, 0, 2, 2], [6, 0, 8, 1]]
    assert labels.tolist() == [1, 2, 2]
    empty_boxes, empty_labels = boxes_from_label_map(np.zeros((4, 4), np.int64))
    assert empty_boxes.shape == (0, 4) and empty_labels.shape == (0,)


def test_box_targets_from_a_sample_mask_keep_a_single_previous_label():
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[1:3, 1:3] = 1
    mask[5:7, 5:7] = 1
    boxes, labels = box_targets_from_mask(mask)
    assert boxes.dtype == torch.float32 and labels.dtype == torch.long
    assert boxes.tolist() == [[1, 1, 3, 3], [5, 5, 7, 7]] and labels.tolist() == [1, 1]
    assert box_targets_from_mask(mask, torch.tensor([3, 3]))[1].tolist() == [3, 3]  # e.g. image class + 1
    assert box_targets_from_mask(mask, torch.tensor([2, 3]))[1].tolist() == [1, 1]
    mask[5:7, 5:7] = 2  # not binary: the mask's classes
    assert box_targets_from_mask(mask, torch.tensor([3, 3]))[1].tolist() == [1, 2]


def test_check_boxes_names_the_source():
    check_boxes(torch.zeros(0, 4), 8, 8, "s")
    check_boxes(torch.tensor([[0.0, 0, 8, 8]]), 8, 8, "s")
    with pytest.raises(DataError, match="s: box.*outside"):
        check_boxes(torch.tensor([[0.0, 0, 9, 8]]), 8, 8, "s")
    with pytest.raises(DataError, match="zero or negative area"):
        check_boxes(torch.tensor([[2.0, 2, 2, 4]]), 8, 8, "s")
