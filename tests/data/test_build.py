import numpy as np
import pytest
import torch
from PIL import Image

from medmtl.data.build import build_datasets
from medmtl.data.config import DataConfig
from medmtl.data.transforms import Compose
from medmtl.errors import ConfigError, DataError


def make_busi(root, n_benign=6, n_malignant=4, n_normal=2, size=12):
    rng = np.random.default_rng(0)
    for cls, n in (("benign", n_benign), ("malignant", n_malignant), ("normal", n_normal)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(root / cls / f"{cls} ({i}).png")
            mask = np.zeros((size, size), np.uint8)
            if cls != "normal":
                mask[1:4, 2:5] = 255
            Image.fromarray(mask).save(root / cls / f"{cls} ({i})_mask.png")
    (root / "splits").mkdir()
    for k in (1, 2):
        val = [f"benign ({k})", f"malignant ({k})"]
        train = [f"benign ({i})" for i in range(1, n_benign + 1)] + [f"malignant ({i})" for i in range(1, n_malignant + 1)]
        (root / "splits" / f"train{k}.txt").write_text("\n".join(n for n in train if n not in val) + "\n")
        (root / "splits" / f"val{k}.txt").write_text("\n".join(val) + "\n")
    return root


def busi_config(root, **extra):
    return DataConfig.model_validate({"kind": "busi", "root": str(root), "image_size": 16, **extra})


def test_phantom_splits_and_augmentation_only_on_train():
    cfg = DataConfig.model_validate({"kind": "phantom", "image_size": 32, "augment": {"hflip": True},
                                     "phantom": {"n_train": 8, "n_val": 4, "n_test": 2, "seed": 1}})
    datasets = build_datasets(cfg)
    assert {k: len(v) for k, v in datasets.items()} == {"train": 8, "val": 4, "test": 2}
    assert isinstance(datasets["train"].transform, Compose) and datasets["val"].transform is None
    assert datasets["test"].transform is None
    assert datasets["val"][0]["image"].shape == (1, 32, 32)
    assert not set(datasets["train"].names()) & set(datasets["val"].names())
    assert not torch.equal(datasets["train"][0]["image"], datasets["val"][0]["image"])
    no_aug = build_datasets(cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"hflip": False})}))
    assert no_aug["train"].transform is None
    assert "test" not in build_datasets(DataConfig.model_validate({"kind": "phantom", "image_size": 16,
                                                                   "phantom": {"n_train": 4, "n_val": 2}}))


def test_busi_split_files_with_fold_number(tmp_path):
    root = make_busi(tmp_path / "busi")
    cfg = busi_config(root, fold=2, split_train="splits/train{fold}.txt", split_val="splits/val{fold}.txt")
    datasets = build_datasets(cfg)
    assert sorted(datasets["val"].names()) == ["benign (2)", "malignant (2)"]
    assert len(datasets["train"]) == 8 and "test" not in datasets
    assert datasets["train"].available_targets()["mask"] == 8
    with pytest.raises(ConfigError, match="data.fold"):
        build_datasets(busi_config(root, split_train="splits/train{fold}.txt"))
    # the old placeholder, in a DataConfig built directly (files are migrated by config_from_dict)
    with pytest.raises(ConfigError, match=r"data.split_train.*\{split\}.*now \{fold\}"):
        build_datasets(busi_config(root, fold=1, split_train="splits/train{split}.txt"))


def test_fold_range_only_checked_for_k_fold(tmp_path):
    with pytest.raises(ValueError, match=r"fold 6 is outside 1..5"):
        busi_config(tmp_path, fold=6)
    assert busi_config(tmp_path, fold=6, folds=6).fold == 6
    # published splits: the fold number names a file, data.folds (default 5) does not apply
    assert busi_config(tmp_path, fold=7, split_train="splits/train{fold}.txt").fold == 7
    with pytest.raises(ValueError, match="split"):  # the old key is unknown to DataConfig itself
        busi_config(tmp_path, split=1)


def test_busi_split_file_with_unknown_name(tmp_path):
    root = make_busi(tmp_path / "busi")
    (root / "splits" / "bad_val.txt").write_text("benign (1)\nbenign (99)\n")
    with pytest.raises(DataError, match=r"bad_val.txt.*not found.*'benign \(99\)'"):
        build_datasets(busi_config(root, split_val="splits/bad_val.txt"))
    (root / "splits" / "overlap.txt").write_text("benign (3)\n")
    with pytest.raises(DataError, match="overlap.txt.*both"):
        build_datasets(busi_config(root, split_train="splits/train1.txt", split_val="splits/overlap.txt"))


def test_busi_folds_and_holdout(tmp_path):
    root = make_busi(tmp_path / "busi", n_benign=10, n_malignant=5)
    vals = []
    for fold in (1, 2, 3, 4, 5):
        datasets = build_datasets(busi_config(root, fold=fold, folds=5))
        assert len(datasets["val"]) == 3 and len(datasets["train"]) == 12
        assert sum(datasets["val"].labels()) == 1  # stratified: one malignant per fold
        vals += datasets["val"].names()
    assert len(set(vals)) == 15
    holdout = build_datasets(busi_config(root, val_fraction=0.2, include_normal=True))
    assert len(holdout["val"]) + len(holdout["train"]) == 17
    assert holdout["train"].available_targets()["label"] < len(holdout["train"]) or \
        holdout["val"].available_targets()["label"] < len(holdout["val"])  # normals are unlabelled


def test_manifest_and_npz_kinds(tmp_path):
    for i in range(6):
        Image.fromarray(np.full((8, 8), 30 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    (tmp_path / "m.csv").write_text("image,label,t,e\n" + "".join(
        f"im{i}.png,{['benign', 'malignant'][i % 2]},{i + 1},{i % 2}\n" for i in range(6)))
    cfg = DataConfig.model_validate({"kind": "manifest", "manifest": str(tmp_path / "m.csv"), "label_col": "label",
                                     "time_col": "t", "event_col": "e", "image_size": 8, "val_fraction": 0.34})
    datasets = build_datasets(cfg)
    assert len(datasets["train"]) == 4 and len(datasets["val"]) == 2
    assert datasets["val"].available_targets() == {"label": 2, "survival": 2}
    np.savez(tmp_path / "mini.npz", train_images=np.zeros((5, 28, 28), np.uint8), train_labels=np.arange(5) % 2,
             test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.array([[0], [1]]))
    datasets = build_datasets(DataConfig.model_validate({"kind": "npz", "npz": str(tmp_path / "mini.npz"),
                                                         "image_size": 28, "val_fraction": 0.2}))
    assert {k: len(v) for k, v in datasets.items()} == {"train": 4, "val": 1, "test": 2}
    with pytest.raises(ConfigError, match="data.npz"):
        build_datasets(DataConfig(kind="npz"))


def test_unset_data_folder_is_a_config_error(monkeypatch):
    import medmtl.paths

    monkeypatch.delenv("MEDMTL_DATA", raising=False)
    monkeypatch.setattr(medmtl.paths, "data_root", lambda: None)
    with pytest.raises(ConfigError, match=r"data.root.*MEDMTL_DATA is not set"):
        build_datasets(DataConfig(kind="busi"))


def test_include_normal_with_split_files_splits_the_unlisted_normal_images(tmp_path):
    root = make_busi(tmp_path / "busi", n_normal=10)
    cfg = busi_config(root, fold=1, split_train="splits/train{fold}.txt", split_val="splits/val{fold}.txt",
                      include_normal=True, val_fraction=0.3)
    datasets = build_datasets(cfg)
    normal_val = [n for n in datasets["val"].names() if n.startswith("normal")]
    normal_train = [n for n in datasets["train"].names() if n.startswith("normal")]
    assert len(normal_val) == 3 and len(normal_train) == 7
    assert sorted(n for n in datasets["val"].names() if not n.startswith("normal")) == ["benign (1)", "malignant (1)"]


def test_boxes_from_masks_is_passed_to_every_split():
    cfg = DataConfig.model_validate({"kind": "phantom", "image_size": 16, "phantom": {"n_train": 4, "n_val": 2}})
    plain = build_datasets(cfg)
    assert "boxes" not in plain["train"].available_targets() and "boxes" not in plain["val"][0]
    detection = build_datasets(cfg, boxes_from_masks=True)
    assert all(d.boxes_from_masks and d.available_targets()["boxes"] == len(d) for d in detection.values())
    assert detection["val"][0]["boxes"].shape[-1] == 4


def test_phantoms_at_a_non_square_image_size():
    cfg = DataConfig.model_validate({"kind": "phantom", "image_size": [32, 48], "phantom": {"n_train": 2, "n_val": 1}})
    sample = build_datasets(cfg)["train"][0]
    assert sample["image"].shape == (1, 32, 48) and sample["mask"].shape == (32, 48)


def test_npz_fold_is_a_k_fold_over_train_and_val_together(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mini.npz", train_images=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8),
             train_labels=np.arange(8) % 2, val_images=np.zeros((4, 28, 28), np.uint8),
             val_labels=np.arange(4) % 2, test_images=np.zeros((3, 28, 28), np.uint8), test_labels=np.arange(3) % 2)
    base = {"kind": "npz", "npz": str(tmp_path / "mini.npz"), "image_size": 28, "folds": 3}
    plain = build_datasets(DataConfig.model_validate(base))
    assert {k: len(v) for k, v in plain.items()} == {"train": 8, "val": 4, "test": 3}
    validation = []
    for fold in (1, 2, 3):
        datasets = build_datasets(DataConfig.model_validate({**base, "fold": fold}))
        assert len(datasets["train"]) + len(datasets["val"]) == 12 and len(datasets["test"]) == 3
        assert not set(datasets["train"].names()) & set(datasets["val"].names())
        validation += datasets["val"].names()
    assert sorted(validation) == sorted(plain["train"].names() + plain["val"].names())  # each image validated once
