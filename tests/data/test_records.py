import numpy as np
import pytest

from medmtl.data.records import Record


def test_available_targets_without_decoding(tmp_path):
    # The files do not exist: available_targets must not touch them.
    record = Record("a", image_path=tmp_path / "a.png", mask_paths=[tmp_path / "a_mask.png"],
                    targets={"label": 1, "value": None})
    assert record.available_targets() == {"label", "mask", "boxes", "box_labels"}
    assert record.label == 1


def test_in_memory_record_and_partial_targets():
    record = Record("b", image_array=np.zeros((4, 4)), targets={"survival": (3.0, 1)})
    assert record.available_targets() == {"survival"}
    assert record.label is None
    assert Record("c", image_array=np.zeros((4, 4)), mask_array=np.zeros((4, 4))).available_targets() == {
        "mask", "boxes", "box_labels"}


def test_record_needs_an_image():
    with pytest.raises(ValueError, match="needs an image"):
        Record("nothing")
