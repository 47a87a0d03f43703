"""Ensembles (medmtl.ensemble): merged outputs per task, agreement of members, the directory, refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from helpers import tiny_config, write_run

from medmtl.builders import build_model
from medmtl.config import config_from_dict
from medmtl.encoders import create_encoder
from medmtl.ensemble import (
    EnsembleModel,
    check_agreement,
    check_evaluation_split,
    default_split,
    load_ensemble,
    write_ensemble,
)
from medmtl.errors import ConfigError, DataError
from medmtl.model import MultiTaskModel
from medmtl.tasks import ClassificationTask, ReconstructionTask, SegmentationTask
from medmtl.tasks.detection import DetectionTask
from medmtl.tasks.regression import RegressionTask
from medmtl.tasks.survival import SurvivalTask


def _member(seed: int, classification_loss: str = "ce") -> MultiTaskModel:
    torch.manual_seed(seed)
    encoder = create_encoder("small_cnn", 1, width=4, stages=2)
    tasks = [ClassificationTask(num_classes=2, loss=classification_loss), SegmentationTask(), RegressionTask(),
             SurvivalTask(), ReconstructionTask()]
    return MultiTaskModel(encoder, tasks).eval()


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_outputs_are_the_means_of_the_members_predictions(loss):
    members = [_member(seed, loss) for seed in range(3)]
    image = torch.rand(2, 1, 16, 16)
    merged = EnsembleModel(members).predict(image)
    each = [member.predict(image) for member in members]
    for name in ("classification", "segmentation", "regression", "survival", "reconstruction"):
        expected = torch.stack([p[name] for p in each]).float().mean(0) if name != "segmentation" else None
        if name == "segmentation":  # label maps: compare the merged probabilities instead
            probs = [m.tasks["segmentation"](m.encoder(image), image, {}, None).softmax(1) for m in members]
            raw = EnsembleModel(members)(image)["segmentation"]
            torch.testing.assert_close(raw.softmax(1), torch.stack(probs).mean(0), atol=1e-5, rtol=1e-4)
            continue
        torch.testing.assert_close(merged[name].float(), expected, atol=1e-5, rtol=1e-4)


def test_one_member_is_the_member_itself():
    member = _member(0)
    image = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(EnsembleModel([member])(image)["regression"], member(image)["regression"])


def test_detection_cannot_be_ensembled():
    model = SimpleNamespace(tasks={"lesions": DetectionTask(name="lesions"), "classification": ClassificationTask()})
    with pytest.raises(ConfigError, match=r"task 'lesions' \(detection\) cannot be ensembled.*boxes"):
        EnsembleModel([model, model])


def _config(**changes):
    raw = tiny_config()
    for key, value in changes.items():
        section, field = key.split("__")
        raw[section][field] = value
    return config_from_dict(raw)


def test_members_must_agree_on_tasks_input_and_outputs(tmp_path):
    base = _config()
    raw = tiny_config()
    raw["model"]["tasks"] = [{"kind": "classification"}]
    fewer = config_from_dict(raw)
    raw = tiny_config()
    raw["model"]["tasks"][0]["num_classes"] = 3
    three = config_from_dict(raw)
    bigger = _config(data__image_size=48)
    first, second = tmp_path / "a", tmp_path / "b"
    check_agreement([first, second], [base, base], [build_model(base), build_model(base)])
    with pytest.raises(DataError, match=r"b: does not fit the ensemble: its tasks .*classification"):
        check_agreement([first, second], [base, fewer], [build_model(base), build_model(fewer)])
    with pytest.raises(DataError, match=r"b: .*output shapes.*\(1, 3\)"):
        check_agreement([first, second], [base, three], [build_model(base), build_model(three)])
    with pytest.raises(DataError, match=r"b: .*input \(channels, size, spatial dims\) \(1, \(48, 48\), 2\)"):
        check_agreement([first, second], [base, bigger], [build_model(base), build_model(bigger)])


def test_cross_validation_ensembles_are_evaluated_on_test_only():
    members = [_member(0), _member(1)]
    folds = EnsembleModel(members, splits_differ=True)
    seeds = EnsembleModel(members, splits_differ=False)
    assert default_split(folds, "val") == "test" and default_split(seeds, "val") == "val"
    check_evaluation_split(folds, "test")
    check_evaluation_split(seeds, "val")
    with pytest.raises(ConfigError, match=r"--split.*trained on different partitions.*val images"):
        check_evaluation_split(folds, "val")
    with pytest.raises(ConfigError, match="encoder per member"):
        folds.encoder  # noqa: B018 - the attribute itself raises


def _fake_run(folder, config, seed):
    """A run directory of an untrained model (seeded); returns the model."""
    torch.manual_seed(seed)
    model = build_model(config)
    write_run(folder, config, model)
    return model.eval()


def test_directory_round_trip_and_bad_input(tmp_path):
    config = _config()
    models = [_fake_run(tmp_path / f"seed{i}", config, i) for i in range(2)]
    path = write_ensemble(tmp_path / "ens", [tmp_path / "seed0", tmp_path / "seed1"])
    spec = json.loads(path.read_text())
    assert spec["checkpoint"] == "selected" and spec["splits_differ"] is False and len(spec["members"]) == 2
    _, ensemble, info = load_ensemble(tmp_path / "ens")
    image = torch.rand(2, 1, 32, 32)
    expected = torch.stack([m.predict(image)["classification"] for m in models]).mean(0)
    torch.testing.assert_close(ensemble.predict(image)["classification"], expected, atol=1e-5, rtol=1e-4)
    assert "of 2 runs" in info.describe() and len(info.as_dict()["members"]) == 2

    with pytest.raises(ConfigError, match="at least two runs"):
        write_ensemble(tmp_path / "one", [tmp_path / "seed0"])
    with pytest.raises(DataError, match="ens: is an ensemble itself"):
        write_ensemble(tmp_path / "nested", [tmp_path / "ens", tmp_path / "seed0"])
    with pytest.raises(DataError, match="nothing: is not a medmtl run directory"):
        write_ensemble(tmp_path / "x", [tmp_path / "seed0", tmp_path / "nothing"])
    with pytest.raises(ConfigError, match="--checkpoint.*ensemble"):
        load_ensemble(tmp_path / "ens", tmp_path / "seed0" / "checkpoints" / "best.ckpt")
    (tmp_path / "ens" / "ensemble.json").write_text('{"members": []}')
    with pytest.raises(DataError, match="ensemble.json: has no 'members' list"):
        load_ensemble(tmp_path / "ens")


def test_an_ensemble_exports_to_one_onnx_file(tmp_path):
    from medmtl.export import export_run
    from medmtl.exported import OnnxRuntimeModel

    config = _config()
    for i in range(2):
        _fake_run(tmp_path / f"seed{i}", config, i)
    write_ensemble(tmp_path / "ens", [tmp_path / "seed0", tmp_path / "seed1"])
    result, used = export_run(tmp_path / "ens", tmp_path / "ens.onnx", "onnx")
    assert result.max_abs_diff < 1e-4 and "of 2 runs" in used.describe()
    _, ensemble, _ = load_ensemble(tmp_path / "ens")
    image = torch.rand(3, 1, 40, 40)
    exported = OnnxRuntimeModel(tmp_path / "ens.onnx")
    torch.testing.assert_close(exported(image)["classification"], ensemble(image)["classification"], atol=1e-4,
                               rtol=1e-4)
