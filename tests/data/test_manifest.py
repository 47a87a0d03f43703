import numpy as np
import pytest
import torch
from PIL import Image

from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.manifest import read_manifest
from medmtl.errors import DataError


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "img" / f"c{i}.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:5] = 1
    Image.fromarray(mask).save(tmp_path / "img" / "c0_mask.png")
    return tmp_path


def write_csv(folder, text, name="m.csv"):
    path = folder / name
    path.write_text(text)
    return path


def test_partial_labels(folder):
    csv = write_csv(folder, "image,mask,label,size,time,event\n"
                            "img/c0.png,img/c0_mask.png,malignant,2.5,10,1\n"
                            "img/c1.png,,0,,,\n"
                            "img/c2.png,,,,4.5,0\n"
                            "img/c3.png,,benign,1.0,,\n")
    records = read_manifest(csv, label_col="label", classes=["benign", "malignant"], value_cols=["size"],
                            time_col="time", event_col="event")
    assert [r.name for r in records] == ["c0", "c1", "c2", "c3"]
    assert records[0].targets == {"label": 1, "value": 2.5, "survival": (10.0, 1)}
    assert records[1].targets == {"label": 0}
    assert records[2].targets == {"survival": (4.5, 0)}
    assert records[3].available_targets() == {"label", "value"}
    assert records[0].available_targets() == {"label", "value", "survival", "mask"}
    assert records[0].available_targets(boxes_from_masks=True) == {"label", "value", "survival", "mask", "boxes",
                                                                   "box_labels"}
    sample = MultiTaskDataset(records, image_size=8, boxes_from_masks=True)[0]
    assert sample["survival"].tolist() == [10.0, 1.0] and sample["value"].shape == ()
    assert sample["boxes"].tolist() == [[2, 2, 5, 4]]


def test_paths_against_root_and_no_mask_column(folder):
    csv = write_csv(folder / "img", "image,grade\nc1.png,3\nc2.png,\n", name="sub.csv")
    records = read_manifest(csv, value_cols=["grade"])  # relative to the CSV's folder
    assert records[0].targets == {"value": 3.0} and not records[0].has_mask
    other = write_csv(folder, "image\nc1.png\n", name="other.csv")
    assert read_manifest(other, root=folder / "img")[0].image_path == folder / "img" / "c1.png"


@pytest.mark.parametrize("body, kwargs, pattern", [
    ("image,label\nimg/c0.png,tumour\n", {"label_col": "label", "classes": ["benign", "malignant"]},
     r"row 1 \(line 2\), column 'label'.*'tumour' is not one of the declared classes"),
    ("image,label\nimg/c0.png,0\nimg/c1.png,2\n", {"label_col": "label", "classes": ["benign", "malignant"]},
     r"row 2 \(line 3\), column 'label'.*outside the declared classes"),
    ("image,t,e\nimg/c0.png,0,1\n", {"time_col": "t", "event_col": "e"},
     r"column 't'.*must be a positive number"),
    ("image,t,e\nimg/c0.png,-3,1\n", {"time_col": "t", "event_col": "e"}, r"column 't'.*positive"),
    ("image,t,e\nimg/c0.png,soon,1\n", {"time_col": "t", "event_col": "e"}, r"column 't'.*not a number"),
    ("image,t,e\nimg/c0.png,5,2\n", {"time_col": "t", "event_col": "e"}, r"column 'e'.*must be 0 .* or 1"),
    ("image,t,e\nimg/c0.png,5,\n", {"time_col": "t", "event_col": "e"}, r"column 'e'.*empty"),
    ("image\nimg/missing.png\n", {}, r"row 1 \(line 2\), column 'image'.*missing.png does not exist"),
    ("picture\nimg/c0.png\n", {}, r"has no column 'image'.*columns are \['picture'\]"),
    ("image\nimg/c0.png\n", {"label_col": "label"}, r"has no column 'label'"),
    ("image,mask\nimg/c0.png,img/nomask.png\n", {}, r"column 'mask'.*nomask.png does not exist"),
])
def test_errors_name_file_row_and_column(folder, body, kwargs, pattern):
    csv = write_csv(folder, body, name="bad_manifest.csv")
    with pytest.raises(DataError, match="bad_manifest.csv") as info:
        read_manifest(csv, **kwargs)
    assert info.match(pattern)


def test_missing_csv(folder):
    with pytest.raises(DataError, match="absent.csv.*does not exist"):
        read_manifest(folder / "absent.csv")


def test_without_declared_classes_labels_are_indices_or_the_sorted_names(folder):
    by_index = write_csv(folder, "image,label\nimg/c0.png,1\nimg/c1.png,0\nimg/c2.png,2\n", "indices.csv")
    assert [r.targets["label"] for r in read_manifest(by_index, label_col="label")] == [1, 0, 2]
    by_name = write_csv(folder, "image,label\nimg/c0.png,tumour\nimg/c1.png,normal\nimg/c2.png,\n", "names.csv")
    records = read_manifest(by_name, label_col="label")
    assert [r.targets.get("label") for r in records] == [1, 0, None]  # normal = 0, tumour = 1 (sorted)


def test_more_class_label_columns_for_more_classification_tasks(folder):
    from medmtl.data.dataset import target_tensors

    csv = write_csv(folder, "image,malignant,grade\nimg/c0.png,1,low\nimg/c1.png,0,high\n", "named.csv")
    records = read_manifest(csv, label_col="malignant", label_cols={"grade": "grade"})
    assert [r.targets["grade"] for r in records] == [1, 0]  # names: classes in sorted order
    csv = write_csv(folder, "image,malignant,grade\nimg/c0.png,1,3\nimg/c1.png,0,1\nimg/c2.png,0,\n",
                    "two_labels.csv")
    records = read_manifest(csv, label_col="malignant", label_cols={"grade": "grade"})
    assert [r.targets.get("grade") for r in records] == [3, 1, None]  # a blank cell: not labelled for grade
    assert target_tensors(records[0])["grade"].dtype == torch.long
    with pytest.raises(DataError, match=r"two_labels.csv.*no column 'stage'"):
        read_manifest(csv, label_cols={"stage": "stage"})
