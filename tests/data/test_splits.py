from collections import Counter

import numpy as np
import pytest

from medmtl.data.records import Record
from medmtl.data.splits import holdout_split, kfold_splits, read_split_file, select
from medmtl.errors import ConfigError, DataError


def records(n=20, labelled=lambda i: True):
    return [Record(f"r{i}", image_array=np.zeros((2, 2)), targets={"label": i % 4 == 0} if labelled(i) else {})
            for i in range(n)]


def test_read_split_file_tolerates_blank_lines_and_extensions(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("benign (1)\n\n  malignant (3).png \nbenign/benign (2).PNG\n# comment\nbenign (1)\n")
    assert read_split_file(path) == ["benign (1)", "malignant (3)", "benign (2)"]


def test_missing_split_file(tmp_path):
    with pytest.raises(DataError, match="val9.txt.*does not exist"):
        read_split_file(tmp_path / "val9.txt")


def test_select_names_unknown_entries(tmp_path):
    recs = records(5)
    assert [r.name for r in select(recs, ["r3", "r1"])] == ["r3", "r1"]
    with pytest.raises(DataError, match=r"my_split.txt.*7 of 8 listed name\(s\) not found.*'x0', 'x1', 'x2', "
                                        r"'x3', 'x4' and 2 more"):
        select(recs, ["r0"] + [f"x{i}" for i in range(7)], source=tmp_path / "my_split.txt")


def test_kfold_is_a_stratified_partition():
    recs = records(40, labelled=lambda i: i < 36)
    folds = kfold_splits(recs, 4, seed=0)
    assert len(folds) == 4
    vals = [r.name for _, val in folds for r in val]
    assert sorted(vals) == sorted(r.name for r in recs)
    for train, val in folds:
        assert not {r.name for r in train} & {r.name for r in val}
        assert Counter(r.label for r in val)[1] in (2, 3)  # 9 positives over 4 folds
    assert [r.name for r in kfold_splits(recs, 4, seed=0)[1][1]] == [r.name for r in folds[1][1]]
    assert [r.name for r in kfold_splits(recs, 4, seed=1)[1][1]] != [r.name for r in folds[1][1]]


def test_holdout_keeps_class_proportions():
    recs = records(40)
    train, val = holdout_split(recs, 0.25, seed=3)
    assert len(val) == 10 and len(train) == 30
    assert Counter(r.label for r in val) == {0: 7, 1: 3} or Counter(r.label for r in val) == {0: 8, 1: 2}


def test_groups_stay_together_in_holdout_and_kfold():
    records = [Record(f"p{s}_{i}", image_array=np.zeros((2, 2)), targets={"label": s % 2}, group=f"slide{s}")
               for s in range(10) for i in range(4)]
    train, val = holdout_split(records, 0.3, seed=1)
    train_groups, val_groups = {r.group for r in train}, {r.group for r in val}
    assert not train_groups & val_groups and len(val_groups) == 3 and len(val) == 12
    assert {r.label for r in val} == {0, 1}  # stratified over groups
    for fold_train, fold_val in kfold_splits(records, 5, seed=0):
        assert not {r.group for r in fold_train} & {r.group for r in fold_val}
        assert len(fold_val) == 8


def test_more_folds_than_groups_names_the_groups():
    records = [Record(f"p{s}_{i}", image_array=np.zeros((2, 2)), targets={"label": s % 2}, group=f"patient{s}")
               for s in range(3) for i in range(4)]
    with pytest.raises(ConfigError, match=r"data.folds.*5 folds need at least 5 groups.*3 group\(s\) in 12 records"):
        kfold_splits(records, 5)
