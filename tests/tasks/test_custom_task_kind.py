"""A task kind defined outside medmtl (here, in this test) trains, evaluates, predicts, reports and is
compared through the public API alone: nothing outside its own class and the registry knows it."""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medmtl.cli import app
from medmtl.config import config_from_dict
from medmtl.tasks import TASKS, Task, TaskOptions, register_task
from medmtl.tasks.heads import PooledHead


class BrightnessOptions(TaskOptions):
    kind: Literal["brightness"] = "brightness"
    target: str = "image"
    scale: float = 1.0


class BrightnessTask(Task[torch.Tensor, torch.Tensor]):
    """Predicts the mean intensity of the image ``[B, 1]`` (× ``scale``); needs no labels."""

    kind = "brightness"
    Options = BrightnessOptions
    monitor = ("abs_error", "min")
    summary_metrics = ("abs_error",)

    def build_head(self, feature_info, image_channels):
        self.head = PooledHead(feature_info, 1, [len(feature_info) - 1], 0, 0.0)

    def forward(self, features, image, context, batch=None):
        return self.head(features)

    def _truth(self, image: torch.Tensor) -> torch.Tensor:
        return image.float().mean(dim=(1, 2, 3))[:, None] * self.options.scale

    def compute_loss(self, prediction, target):
        return torch.nn.functional.l1_loss(prediction, self._truth(target))

    def summarize(self, prediction, target):
        return {"abs_error": (prediction.detach() - self._truth(target)).abs()[:, 0].cpu().numpy()}

    def compute_metrics(self, summary, n_resamples=1000, seed=0) -> dict[str, Any]:
        errors = summary["abs_error"]
        return {"n": len(errors), "abs_error": float(errors.mean()),
                "abs_error_ci95": [float(np.quantile(errors, 0.025)), float(np.quantile(errors, 0.975))]}

    def report_figures(self, summary, out_dir, split):
        (out_dir / f"errors_{self.name}.csv").write_text("\n".join(f"{e:.6f}" for e in summary["abs_error"]))
        return [f"## Brightness errors — {self.name}\n\n{len(summary['abs_error'])} images ({split})"]

    def write_prediction(self, prediction, sink):
        return {"brightness": float(prediction[0, 0])}


@pytest.fixture
def brightness_kind():
    register_task(BrightnessTask)
    yield BrightnessTask
    TASKS.pop("brightness")


def _raw() -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"kind": "phantom", "image_size": 32, "batch_size": 8,
                 "phantom": {"n_train": 16, "n_val": 8, "image_size": 32}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 3}},
                  "tasks": [{"kind": "brightness", "scale": 2.0}, {"kind": "classification"}]},
        "trainer": {"max_epochs": 1, "progress_bar": False, "n_bootstrap": 20},
    }


def test_custom_kind_is_validated_by_its_own_options(brightness_kind):
    config = config_from_dict(_raw())
    assert isinstance(config.model.tasks[0], BrightnessOptions) and config.model.tasks[0].scale == 2.0
    raw = _raw()
    raw["model"]["tasks"][0]["scael"] = 2.0
    with pytest.raises(Exception, match=r"model.tasks.0.scael.*scale"):
        config_from_dict(raw)


def test_register_refuses_a_taken_kind(brightness_kind):
    class Other(BrightnessTask):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_task(Other)


@pytest.mark.slow
def test_custom_kind_trains_evaluates_predicts_and_reports(brightness_kind, tmp_path):
    from PIL import Image

    from medmtl.compare import run_comparison
    from medmtl.predict import predict_files
    from medmtl.training.run import load_run, train

    run = tmp_path / "run"
    result = train(config_from_dict(_raw()), run, report=True)
    assert set(result.metrics) == {"brightness", "classification"}
    assert result.metrics["brightness"]["n"] == 8
    report = (run / "report" / "report.md").read_text()
    assert "Brightness errors — brightness" in report and (run / "report" / "errors_brightness.csv").is_file()
    assert "ROC — classification" in report  # the built-in kind still draws its own figure

    cli = CliRunner().invoke(app, ["evaluate", str(run), "--split", "val", "--report"])
    assert cli.exit_code == 0, cli.output
    assert json.loads((run / "metrics_val.json").read_text())["brightness"]["abs_error"] == pytest.approx(
        result.metrics["brightness"]["abs_error"])

    image = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 48), 128, dtype=np.uint8)).save(image)
    config, model = load_run(run)
    predictions = predict_files(config, model, [image], tmp_path / "preds")
    assert set(predictions[str(image)]) == {"brightness", "classification"}
    assert isinstance(predictions[str(image)]["brightness"]["brightness"], float)

    comparison = run_comparison(config_from_dict(_raw()), tmp_path / "cmp", [1], single=["brightness"],
                                n_bootstrap=20)
    assert set(comparison["variants"]) == {"single-brightness", "multi-task"}
    assert "abs_error" in comparison["variants"]["single-brightness"]["brightness"]
    assert "abs_error" in comparison["paired"]["multi-task"]["tasks"]["brightness"]
