"""Test-time augmentation (medmtl.tta): transform sets, per-task merging, alignment, refusals, the CLI flag."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from medmtl.encoders import create_encoder
from medmtl.errors import ConfigError
from medmtl.model import MultiTaskModel
from medmtl.tasks import ClassificationTask, ReconstructionTask, SegmentationTask
from medmtl.tasks.detection import DetectionTask
from medmtl.tasks.regression import RegressionTask
from medmtl.tasks.survival import SurvivalTask
from medmtl.tta import (
    IDENTITY,
    TTA_CHOICES,
    Transform,
    TTAModel,
    tta_transforms,
    with_tta,
)


def _model(spatial_dims: int = 2) -> MultiTaskModel:
    torch.manual_seed(0)
    encoder = create_encoder("small_cnn", 1, spatial_dims=spatial_dims, width=4, stages=2)
    model = MultiTaskModel(encoder, [ClassificationTask(num_classes=3), SegmentationTask(),
                                     RegressionTask(), ReconstructionTask()])
    return model.eval()


class _PointwiseModel:
    """Exactly flip- and rotation-equivariant: segmentation logits from each pixel alone, classification
    logits from the image's mean and maximum; behaves like a MultiTaskModel."""

    def __init__(self) -> None:
        self.tasks = nn.ModuleDict({"classification": ClassificationTask(), "segmentation": SegmentationTask()})

    def __call__(self, image: torch.Tensor, **_: object) -> dict[str, torch.Tensor]:
        flat = image.flatten(1)
        return {"classification": torch.stack([flat.mean(1), flat.amax(1)], dim=1),
                "segmentation": torch.cat([image, 1 - 3 * image], dim=1)}

    def predict(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self.tasks[name].postprocess(out) for name, out in self(image).items()}

    def eval(self) -> _PointwiseModel:
        return self


def _asymmetric(shape: tuple[int, ...]) -> torch.Tensor:
    image = torch.zeros(shape)
    image[..., 1:3, 0:2] = 1.0  # a corner blob: no flip or rotation leaves it in place
    return image + 0.01 * torch.arange(image.numel()).reshape(shape) / image.numel()


def test_transform_sets_and_bad_choice():
    assert [len(tta_transforms(c, 2)) for c in TTA_CHOICES] == [1, 2, 3, 6]
    assert [len(tta_transforms(c, 3)) for c in TTA_CHOICES] == [1, 2, 4, 7]
    assert tta_transforms("flip", 2)[0] == IDENTITY
    assert tta_transforms("hflip", 2)[1] == tta_transforms("flip", 2)[2] == Transform(flips=(1,))  # W only
    assert tta_transforms("hflip", 3)[1] == Transform(flips=(2,))
    x = torch.rand(1, 2, 4, 5, 6)
    for t in tta_transforms("flip", 3) + [Transform(flips=(0, 2)), Transform(rot90=1)]:
        y = x[..., :5, :5] if t.rot90 else x
        assert torch.equal(t.invert(t.apply(y)), y)
    with pytest.raises(ConfigError, match=r"--tta.*none, hflip, flip, flip\+rot90"):
        tta_transforms("rot", 2)
    model = _PointwiseModel()
    assert with_tta(model, "none", 2) is model
    assert isinstance(with_tta(model, "flip", 2), TTAModel)


def test_identity_set_equals_the_plain_model_exactly():
    model = _model()
    image = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        plain, wrapped = model(image), TTAModel(model, [IDENTITY])(image)
    assert list(wrapped) == list(plain)
    for name in plain:
        assert torch.equal(wrapped[name], plain[name]), name
    tta = TTAModel(model, [IDENTITY])
    assert tta.tasks is model.tasks and tta.encoder is model.encoder and tta.eval() is tta


@pytest.mark.parametrize("choice", ["hflip", "flip", "flip+rot90"])
def test_equivariant_model_is_unchanged_and_segmentation_is_aligned(choice):
    model = _PointwiseModel()
    image = _asymmetric((2, 1, 6, 6))
    plain = model.predict(image)
    raw = model(image)
    tta = TTAModel(model, tta_transforms(choice, 2))
    merged = tta(image)
    predicted = tta.predict(image)
    torch.testing.assert_close(predicted["classification"], plain["classification"])
    assert torch.equal(predicted["segmentation"], plain["segmentation"])
    # per-pixel probabilities stay where they were (a missing inverse would move the blob)
    torch.testing.assert_close(merged["segmentation"].exp(), raw["segmentation"].softmax(1))


def test_classification_and_segmentation_average_probabilities():
    model = _model()
    image = _asymmetric((2, 1, 16, 16))
    with torch.no_grad():
        merged = TTAModel(model, tta_transforms("flip+rot90", 2))(image)
        # independently: explicit flips / rotations and their inverses
        passes = [(lambda x: x, lambda y: y),
                  (lambda x: x.flip(2), lambda y: y.flip(2)),
                  (lambda x: x.flip(3), lambda y: y.flip(3))]
        passes += [(lambda x, k=k: torch.rot90(x, k, (2, 3)), lambda y, k=k: torch.rot90(y, -k, (2, 3)))
                   for k in (1, 2, 3)]
        outs = [(model(forward(image)), back) for forward, back in passes]
    probs = torch.stack([o["classification"].softmax(1) for o, _ in outs]).mean(0)
    seg = torch.stack([back(o["segmentation"]).softmax(1) for o, back in outs]).mean(0)
    recon = torch.stack([back(o["reconstruction"]) for o, back in outs]).mean(0)
    value = torch.stack([o["regression"] for o, _ in outs]).mean(0)
    tasks = model.tasks
    torch.testing.assert_close(tasks["classification"].postprocess(merged["classification"]), probs)
    torch.testing.assert_close(merged["classification"].exp(), probs)  # log-probabilities
    torch.testing.assert_close(merged["segmentation"].exp(), seg)
    assert torch.equal(tasks["segmentation"].postprocess(merged["segmentation"]), seg.argmax(1))
    torch.testing.assert_close(merged["reconstruction"], recon)
    torch.testing.assert_close(merged["regression"], value)
    assert not torch.allclose(seg, model(image)["segmentation"].softmax(1))  # the passes did differ


def test_volumes():
    model = _model(spatial_dims=3)
    image = _asymmetric((1, 1, 8, 8, 8))
    tta = TTAModel(model, tta_transforms("flip", 3))
    assert len(tta.transforms) == 4
    with torch.no_grad():
        merged = tta(image)
        expected = model(image)["segmentation"].softmax(1)
        for axis in (2, 3, 4):
            expected = expected + model(image.flip(axis))["segmentation"].flip(axis).softmax(1)
    assert merged["segmentation"].shape == (1, 2, 8, 8, 8)
    assert merged["reconstruction"].shape == (1, 1, 8, 8, 8)
    torch.testing.assert_close(merged["segmentation"].exp(), expected / 4)
    assert tta.predict(image)["classification"].shape == (1, 3)


def test_per_task_merge_rules():
    outputs = [torch.randn(3, 1) for _ in range(4)]
    bce = ClassificationTask(loss="bce")
    mean_p = torch.stack([o.sigmoid() for o in outputs]).mean(0)
    torch.testing.assert_close(bce.merge_outputs(outputs).sigmoid(), mean_p)
    torch.testing.assert_close(bce.postprocess(bce.merge_outputs(outputs))[:, 1], mean_p[:, 0])
    saturated = [torch.full((1, 1), 40.0), torch.full((1, 1), 50.0)]  # probabilities that round to 1
    assert torch.isfinite(bce.merge_outputs(saturated)).all()
    for task in (SurvivalTask(), RegressionTask()):
        torch.testing.assert_close(task.merge_outputs(outputs), torch.stack(outputs).mean(0))


def test_detection_and_rot90_of_non_square_images_are_refused():
    model = SimpleNamespace(tasks={"lesions": DetectionTask(name="lesions"), "classification": ClassificationTask()})
    with pytest.raises(ConfigError, match=r"--tta.*'lesions' \(detection\) does not support test-time augmentation: its "
                                          r"boxes would need merging"):
        TTAModel(model, tta_transforms("flip", 2))
    tta = TTAModel(_PointwiseModel(), tta_transforms("flip+rot90", 2))
    with pytest.raises(ConfigError, match=r"--tta.*square.*6 × 8"):
        tta(torch.rand(1, 1, 6, 8))
    TTAModel(_PointwiseModel(), tta_transforms("flip", 2))(torch.rand(1, 1, 6, 8))  # flips are fine


def test_cli_flag_reaches_evaluate_and_predict(monkeypatch, tmp_path):
    import medmtl.evaluation
    import medmtl.predict
    import medmtl.training.loaders
    import medmtl.training.run
    from medmtl.cli import app

    used = SimpleNamespace(describe=lambda: "best", as_dict=dict, path=Path("best.ckpt"))
    cfg = SimpleNamespace(model=SimpleNamespace(spatial_dims=2), trainer=SimpleNamespace(n_bootstrap=10), seed=0,
                          data=SimpleNamespace(root=None))
    seen = {}
    monkeypatch.setattr(medmtl.training.run, "load_run_checkpoint", lambda *a: (cfg, _PointwiseModel(), used))
    monkeypatch.setattr(medmtl.training.run, "with_data_overrides", lambda c, o: c)
    monkeypatch.setattr(medmtl.training.loaders, "build_run_datasets", lambda c, m: {"val": []})
    monkeypatch.setattr(medmtl.training.loaders, "evaluation_loader", lambda c, d: [])
    monkeypatch.setattr(medmtl.evaluation, "collect_summaries", lambda model, loader: seen.update(evaluate=model) or {})
    monkeypatch.setattr(medmtl.predict, "predict_files", lambda c, model, images, out, **options: seen.update(predict=model))
    runner = CliRunner()

    result = runner.invoke(app, ["evaluate", str(tmp_path), "--tta", "flip", "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert isinstance(seen["evaluate"], TTAModel) and len(seen["evaluate"].transforms) == 3
    result = runner.invoke(app, ["predict", str(tmp_path), "x.png", "--out", str(tmp_path / "p"), "--tta", "flip+rot90"])
    assert result.exit_code == 0, result.output
    assert isinstance(seen["predict"], TTAModel) and len(seen["predict"].transforms) == 6
    result = runner.invoke(app, ["predict", str(tmp_path), "x.png", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0 and isinstance(seen["predict"], _PointwiseModel)  # default: none
    for command in (["evaluate", str(tmp_path)], ["predict", str(tmp_path), "x.png", "--out", str(tmp_path / "q")]):
        result = runner.invoke(app, [*command, "--tta", "mirror"])
        assert result.exit_code == 2
        assert "--tta" in result.output and "none, hflip, flip, flip+rot90" in result.output


def test_sliding_window_runs_the_wrapper_on_each_window():
    from medmtl.sliding_window import sliding_window_predict

    model = _PointwiseModel()
    image = _asymmetric((1, 1, 12, 12))
    plain = sliding_window_predict(model, image, 8, mode="constant")
    merged = sliding_window_predict(TTAModel(model, tta_transforms("flip+rot90", 2)), image, 8, mode="constant")
    assert merged["segmentation"].shape == plain["segmentation"].shape == (1, 2, 12, 12)
    torch.testing.assert_close(merged["segmentation"].softmax(1), plain["segmentation"].softmax(1))
