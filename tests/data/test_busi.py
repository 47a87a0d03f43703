import numpy as np
import pytest
from PIL import Image

from medmtl.data.busi import scan_busi
from medmtl.data.dataset import MultiTaskDataset
from medmtl.errors import DataError


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_busi(root, counts=(("benign", 3), ("malignant", 2), ("normal", 1)), size=16):
    rng = np.random.default_rng(0)
    for cls, n in counts:
        for i in range(1, n + 1):
            _write(root / cls / f"{cls} ({i}).png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            mask = np.zeros((size, size), np.uint8)
            if cls != "normal":
                mask[2:6, 3:8] = 255
            _write(root / cls / f"{cls} ({i})_mask.png", mask)
    return root


def test_scan_labels_and_names(tmp_path):
    root = make_busi(tmp_path / "busi", counts=(("benign", 11), ("malignant", 2), ("normal", 1)))
    records = scan_busi(root)
    assert [r.name for r in records[:3]] == ["benign (1)", "benign (2)", "benign (3)"]  # natural order
    assert records[10].name == "benign (11)"
    assert [r.label for r in records] == [0] * 11 + [1] * 2
    with_normal = scan_busi(root, include_normal=True)
    assert len(with_normal) == 14 and with_normal[-1].label is None and with_normal[-1].has_mask
    own_class = scan_busi(root, classes=("benign", "malignant", "normal"))
    assert own_class[-1].label == 2


def test_several_masks_are_merged(tmp_path):
    root = make_busi(tmp_path / "busi", counts=(("benign", 1), ("malignant", 1)))
    second = np.zeros((16, 16), np.uint8)
    second[10:14, 10:14] = 255
    _write(root / "benign" / "benign (1)_mask_1.png", second)
    records = scan_busi(root)
    assert len(records[0].mask_paths) == 2
    sample = MultiTaskDataset(records, image_size=16, boxes_from_masks=True)[0]
    assert int(sample["mask"].sum()) == 20 + 16
    assert sample["boxes"].tolist() == [[3, 2, 8, 6], [10, 10, 14, 14]]
    assert sample["box_labels"].tolist() == [1, 1]


def test_clear_errors(tmp_path):
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        scan_busi(tmp_path / "nowhere")
    root = make_busi(tmp_path / "busi", counts=(("benign", 1),))
    with pytest.raises(DataError, match="malignant.*does not exist.*folders there: \\['benign'\\]"):
        scan_busi(root)
    root = make_busi(tmp_path / "busi2", counts=(("benign", 1), ("malignant", 1)))
    _write(root / "malignant" / "malignant (7).png", np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match=r"malignant \(7\)\.png.*has no mask"):
        scan_busi(root)


def test_lesion_image_with_empty_mask_is_an_error_but_normal_is_a_negative(tmp_path):
    root = make_busi(tmp_path / "busi", counts=(("benign", 1), ("malignant", 1), ("normal", 1)))
    records = scan_busi(root, include_normal=True)
    dataset = MultiTaskDataset(records, image_size=16, boxes_from_masks=True)
    normal = dataset[2]
    assert normal["boxes"].shape == (0, 4) and int(normal["mask"].sum()) == 0  # a negative, not an error
    _write(root / "malignant" / "malignant (1)_mask.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match=r"malignant \(1\)_mask\.png.*no foreground.*labelled as showing a lesion"):
        MultiTaskDataset(scan_busi(root), image_size=16)[1]
