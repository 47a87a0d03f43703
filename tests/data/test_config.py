import pytest
from pydantic import ValidationError

from medmtl.data.config import DEFAULT_BUSI_ROOT, DataConfig


def test_defaults():
    cfg = DataConfig(kind="busi")
    assert cfg.root == DEFAULT_BUSI_ROOT == "${MEDMTL_DATA}/busi-256"
    assert cfg.classes is None and cfg.image_size == 128 and cfg.channels == 1  # None: the data's own names
    assert cfg.val_fraction == 0.2 and cfg.folds == 5 and cfg.batch_size == 16 and cfg.cache_images
    assert not cfg.augment.hflip and cfg.augment.rotate_degrees == 0
    assert DataConfig(kind="phantom").root is None
    phantom = DataConfig(kind="phantom", phantom={"n_train": 8, "n_val": 4, "seed": 2}).phantom
    assert (phantom.n_train, phantom.n_val, phantom.n_test, phantom.seed) == (8, 4, 0, 2)


@pytest.mark.parametrize("raw", [
    {"kind": "busi", "colour": True},
    {"kind": "busi", "augment": {"hflip": True, "shear": 3}},
    {"kind": "phantom", "phantom": {"n_train": 8, "extra": 1}},
    {"kind": "dicom"},
    {"kind": "busi", "channels": 2},
    {"kind": "busi", "fold": 6, "folds": 5},
    {"kind": "busi", "fold": 0},
    {"kind": "manifest", "time_col": "t"},
])
def test_rejects_bad_values(raw):
    with pytest.raises(ValidationError):
        DataConfig.model_validate(raw)


def test_run_config_accepts_presets():
    from medmtl.config import load_config

    for name in ("demo", "busi-cls-seg"):
        data = load_config(name).data
        assert data.kind in ("phantom", "busi")


def test_label_cols_cannot_take_the_name_of_another_target():
    with pytest.raises(ValueError, match=r"label_cols keys.*\['value'\] is taken"):
        DataConfig(kind="manifest", manifest="m.csv", label_cols={"value": "grade"})
    assert DataConfig(kind="manifest", manifest="m.csv", label_cols={"grade": "grade"}).label_cols == {"grade": "grade"}
