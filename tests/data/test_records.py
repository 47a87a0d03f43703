import numpy as np
import pytest

from medmtl.data.records import Record


def test_available_targets_without_decoding(tmp_path):
    # The files do not exist: available_targets must not touch them.
    record = Record("a", image_path=tmp_path / "a.png", mask_paths=[tmp_path / "a_mask.png"],
                    targets={"label": 1, "value": None})
    assert record.available_targets() == {"label", "mask"}
    assert record.available_targets(boxes_from_masks=True) == {"label", "mask", "boxes", "box_labels"}
    assert record.label == 1


def test_given_boxes_are_targets_only_without_a_mask(tmp_path):
    boxes = {"boxes": [[0, 0, 2, 2]]}
    given = Record("g", image_path=tmp_path / "g.png", targets=boxes)
    assert given.available_targets() == given.available_targets(True) == {"boxes", "box_labels"}
    # beside a mask, a sample's boxes are always the mask's (and only when asked for)
    both = Record("m", image_path=tmp_path / "m.png", mask_paths=[tmp_path / "m_mask.png"], targets=boxes)
    assert both.available_targets() == {"mask"}
    assert both.available_targets(True) == {"mask", "boxes", "box_labels"}


def test_in_memory_record_and_partial_targets():
    record = Record("b", image_array=np.zeros((4, 4)), targets={"survival": (3.0, 1)})
    assert record.available_targets() == {"survival"}
    assert record.label is None
    with_mask = Record("c", image_array=np.zeros((4, 4)), mask_array=np.zeros((4, 4)))
    assert with_mask.available_targets() == {"mask"}
    assert with_mask.available_targets(boxes_from_masks=True) == {"mask", "boxes", "box_labels"}


def test_record_needs_an_image():
    with pytest.raises(ValueError, match="needs an image"):
        Record("nothing")
